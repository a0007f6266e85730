package botruntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/disgoorg/snowflake/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// leaseHeartbeat proves the pod alive by renewing its Lease, the way the kubelet renews
// its node Lease: every duration/4 with jitter, by an optimistic update of its cached copy.
// It renews only while the renewal is true: the runtime's loops make progress, the
// dispatcher is not stuck, and every shard is connected, stopped for a reported fatal
// reason, or recovering for less than recoverWithin. The Lease also carries each shard's
// state and the resume state, so a replacement pod resumes. Never the token.
//
// It also fences a pod that was replaced while its process still runs (force-deleted on a
// partitioned node, a new pod of the same name started): the pod that writes the Lease
// last after reading someone else's UID on it is the newer one. A process stops for good
// when it reads another pod's UID on the Lease after it had written its own (the
// replacement overwrote it: optimistic updates make the older one read the newer one's
// write before it can write again), or when its own UID is listed as replaced (the older
// process restarted by its kubelet). A replacement reading its predecessor's UID at its
// first load is not fenced: it has written nothing yet, and it takes over.
type leaseHeartbeat struct {
	client        kubernetes.Interface
	namespace     string
	name          string
	holder        string
	botName       string
	podUID        types.UID
	duration      time.Duration
	recoverWithin time.Duration
	rt            *Runtime
	// clock times the beats and dates renewTime; API calls' deadlines are wall times
	// (callTimeout).
	clock clock.Clock

	// nudge asks for a write before the next beat is due.
	nudge chan struct{}

	mu      sync.Mutex
	cached  *coordinationv1.Lease
	failing bool   // in an episode of API errors (logged once)
	holding string // why renewal is held back, "" when renewing (logged once per reason)
	// wroteOwn is set once this process wrote its pod UID on the Lease.
	wroteOwn bool
	// replaced is set, and fenced closed, when another pod took the Lease over.
	replaced *ReplacedError
	fenced   chan struct{}
}

// callTimeout bounds each API call of the heartbeat: a renewal later than a quarter of
// the lease is late anyway, and a hung connection must not hold the beats after it. It is
// a context deadline, so a wall time: the HTTP client knows no other clock.
func (h *leaseHeartbeat) callTimeout() time.Duration { return max(h.duration/4, time.Second) }

// run renews until ctx ends.
func (h *leaseHeartbeat) run(ctx context.Context) {
	interval := h.duration / 4
	for {
		h.beat(ctx)
		if h.isReplaced() {
			return // the Lease is another pod's now: write nothing more
		}
		// Jitter like the kubelet's renewer, so a thousand pods do not renew in step.
		wait := interval + time.Duration(rand.Float64()*0.04*float64(interval))
		timer := h.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		case <-h.nudge:
			// A shard changed state (ready, failed...): say so now, and store the new
			// session's resume state before anything can happen to the process.
			timer.Stop()
		}
	}
}

func (h *leaseHeartbeat) beat(ctx context.Context) {
	healthy, why := h.rt.healthyForLease(h.recoverWithin)
	if !healthy {
		if h.holding != why {
			h.rt.log.Info("not renewing the heartbeat Lease: the pod is not healthy", "reason", why)
			h.holding = why
		}
		h.rt.metrics.leaseHeld.Set(1)
	} else {
		if h.holding != "" {
			h.rt.log.Info("renewing the heartbeat Lease again")
			h.holding = ""
		}
		h.rt.metrics.leaseHeld.Set(0)
	}
	// State is written either way (it says what is wrong); only a healthy pod renews.
	err := h.write(ctx, healthy, nil)
	if replaced := new(ReplacedError); errors.As(err, &replaced) {
		return // Run reports it
	}
	switch {
	case err != nil && !h.failing:
		h.failing = true
		h.rt.log.Error(err, "cannot write the heartbeat Lease; retrying (logged once until it works again)")
	case err == nil && h.failing:
		h.failing = false
		h.rt.log.Info("heartbeat Lease written again")
	}
	if err != nil {
		h.rt.metrics.leaseFailures.Inc()
	} else if healthy {
		h.rt.metrics.leaseRenewals.Inc()
	}
}

// write updates the Lease: annotations always, renewTime only when renew is set. resume,
// when given, replaces the resume annotation (shutdown); otherwise it follows the sessions.
func (h *leaseHeartbeat) write(ctx context.Context, renew bool, resume []ResumeState) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.replaced != nil {
		return h.replaced
	}
	for attempt := 0; attempt < 2; attempt++ {
		if h.cached == nil {
			if err := h.load(ctx); err != nil {
				return err
			}
		}
		lease := h.cached.DeepCopy()
		if err := h.fill(lease, renew, resume); err != nil {
			return err
		}
		var (
			out *coordinationv1.Lease
			err error
		)
		if lease.ResourceVersion == "" {
			// Run by hand, a bot makes its own Lease; under the operator it may not (the
			// operator makes every Lease a bot uses, before the pod).
			callCtx, cancel := context.WithTimeout(ctx, h.callTimeout())
			out, err = h.client.CoordinationV1().Leases(h.namespace).Create(callCtx, lease, metav1.CreateOptions{})
			cancel()
			if apierrors.IsForbidden(err) {
				h.cached = nil
				return fmt.Errorf("heartbeat Lease %s does not exist and this pod may not create it: the operator makes it before it "+
					"starts the pod, and replaces a pod whose Lease stays missing: %w", h.name, err)
			}
		} else {
			callCtx, cancel := context.WithTimeout(ctx, h.callTimeout())
			out, err = h.client.CoordinationV1().Leases(h.namespace).Update(callCtx, lease, metav1.UpdateOptions{})
			cancel()
		}
		if err == nil {
			h.cached = out
			if h.podUID != "" {
				h.wroteOwn = true
			}
			return nil
		}
		h.cached = nil // stale copy or gone: read it again, once
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return errors.New("heartbeat Lease kept changing under us")
}

// load reads the Lease, or prepares a new one. It returns a *ReplacedError, and writes
// nothing from then on, when another pod took the Lease over.
func (h *leaseHeartbeat) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.callTimeout())
	defer cancel()
	lease, err := h.client.CoordinationV1().Leases(h.namespace).Get(ctx, h.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		h.cached = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: h.name, Namespace: h.namespace}}
		return nil
	}
	if err != nil {
		return err
	}
	if replaced := h.replacedBy(lease); replaced != nil {
		if h.replaced == nil {
			h.replaced = replaced
			close(h.fenced)
		}
		return h.replaced
	}
	h.cached = lease
	return nil
}

// replacedBy says whether the Lease shows that another pod of this name replaced this one.
func (h *leaseHeartbeat) replacedBy(lease *coordinationv1.Lease) *ReplacedError {
	own := string(h.podUID)
	if own == "" {
		return nil // a bot that does not say who it is cannot be told apart
	}
	writer := lease.Annotations[shardkeeperv1.AnnotationPodUID]
	e := &ReplacedError{Lease: h.name, OwnUID: own, ByUID: writer}
	switch {
	case slices.Contains(shardkeeperv1.ReplacedPodUIDs(lease.Annotations), own):
		e.How = "this pod's UID is listed as replaced on the Lease"
	case h.wroteOwn && writer != "" && writer != own:
		e.How = "it overwrote the UID this process had written"
	default:
		return nil
	}
	return e
}

// isReplaced says whether another pod took the Lease over.
func (h *leaseHeartbeat) isReplaced() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.replaced != nil
}

// checkStart reads the Lease before any shard connects, so a replaced pod's process
// restarted by its kubelet stops before it connects. An API error is not a reason to
// wait: the heartbeat reads it again.
func (h *leaseHeartbeat) checkStart(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.load(ctx); err != nil {
		if replaced := new(ReplacedError); errors.As(err, &replaced) {
			return err
		}
		h.cached = nil
	}
	return nil
}

func (h *leaseHeartbeat) fill(lease *coordinationv1.Lease, renew bool, resume []ResumeState) error {
	// The Lease belongs to the DiscordBot (the operator creates it, or adopts it): owned by
	// the pod, it would be garbage-collected with the pod, and the replacement could not
	// resume. Which pod wrote it is an annotation instead.
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	if h.podUID != "" {
		// Taking over from a predecessor: list it, so that if it still runs it stops.
		if prev := lease.Annotations[shardkeeperv1.AnnotationPodUID]; prev != "" && prev != string(h.podUID) {
			shardkeeperv1.AddReplacedPodUIDs(lease.Annotations, prev)
		}
		lease.Annotations[shardkeeperv1.AnnotationPodUID] = string(h.podUID)
	}
	// The operator watches bot Leases through a label-selected cache.
	if h.botName != "" {
		if lease.Labels == nil {
			lease.Labels = map[string]string{}
		}
		lease.Labels[shardkeeperv1.LabelBot] = h.botName
		lease.Labels[shardkeeperv1.LabelManagedBy] = shardkeeperv1.ManagedByValue
	}
	lease.Spec.HolderIdentity = ptr.To(h.holder)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(h.duration / time.Second))
	if renew {
		now := metav1.NewMicroTime(h.clock.Now())
		lease.Spec.RenewTime = &now
		if lease.Spec.AcquireTime == nil {
			lease.Spec.AcquireTime = &now
		}
	}
	shards, err := json.Marshal(h.rt.leaseShardStates())
	if err != nil {
		return err
	}
	if resume == nil {
		// Only what handlers finished counts as received: if the process dies now, the
		// replacement gets everything still queued or in progress replayed.
		resume = h.rt.resumeStates(h.rt.dispatcher.resumePoints())
	}
	resumeJSON, err := json.Marshal(resume)
	if err != nil {
		return err
	}
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[shardkeeperv1.AnnotationShards] = string(shards)
	if h.holding != "" {
		lease.Annotations[shardkeeperv1.AnnotationRenewalHeld] = h.holding
	} else {
		delete(lease.Annotations, shardkeeperv1.AnnotationRenewalHeld)
	}
	lease.Annotations[shardkeeperv1.AnnotationResume] = string(resumeJSON)
	return nil
}

// leaseResumeStore keeps resume state on the pod's heartbeat Lease. The replacement pod has
// the same name, so the same Lease, and resumes from it.
type leaseResumeStore struct{ h *leaseHeartbeat }

func (s leaseResumeStore) Load(ctx context.Context) (map[int]ResumeState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.h.callTimeout())
	defer cancel()
	lease, err := s.h.client.CoordinationV1().Leases(s.h.namespace).Get(ctx, s.h.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s.h.rt.log.Info("no heartbeat Lease yet: no resume state, the shards identify", "lease", s.h.name)
		return map[int]ResumeState{}, nil
	}
	if err != nil {
		return nil, err
	}
	var list []ResumeState
	if raw := lease.Annotations[shardkeeperv1.AnnotationResume]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &list); err != nil {
			return nil, fmt.Errorf("resume state on Lease %s: %w", s.h.name, err)
		}
	}
	out := make(map[int]ResumeState, len(list))
	for _, st := range list {
		out[st.Shard] = st
	}
	return out, nil
}

// Save writes the final resume state without renewing: the process is going away.
func (s leaseResumeStore) Save(ctx context.Context, states []ResumeState) error {
	if states == nil {
		states = []ResumeState{}
	}
	return s.h.write(ctx, false, states)
}

// healthyForLease says whether a renewal would tell the truth, and if not, why.
func (r *Runtime) healthyForLease(recoverWithin time.Duration) (bool, string) {
	if ok, why := r.shardsLive(); !ok {
		return false, why
	}
	// Per worker: one guild's hung handler must not hide behind the others' progress.
	if w, stuck := r.dispatcher.stuckWorker(recoverWithin); stuck {
		return false, w.String()
	}
	for _, s := range r.sessions {
		st := s.status()
		if st.State == StateReady || st.State == StateResumed || st.State == StateFailed || st.State == StateStopped {
			continue
		}
		// In an identify queue, the shard's place bounds its wait, not recoverWithin alone.
		if placed, ok, why := s.turn.verdict(r.clock.Now(), recoverWithin); placed {
			if !ok {
				return false, fmt.Sprintf("shard %d %s", st.ID, why)
			}
			continue
		}
		if down := r.clock.Since(s.downSinceTime()); down > recoverWithin {
			return false, fmt.Sprintf("shard %d has been %s for %s", st.ID, st.State, down.Round(time.Second))
		}
	}
	return true, ""
}

// leaseShardStates is every shard's state as the Lease carries it.
func (r *Runtime) leaseShardStates() []shardkeeperv1.LeaseShardState {
	out := make([]shardkeeperv1.LeaseShardState, 0, len(r.sessions))
	for _, st := range r.Shards() {
		ls := shardkeeperv1.LeaseShardState{ID: st.ID, State: string(st.State), LatencyMillis: st.Latency.Milliseconds(), Guilds: st.Guilds}
		if !st.LastEvent.IsZero() {
			ls.LastEvent = st.LastEvent.UTC().Format(time.RFC3339)
		}
		if st.Fatal != nil {
			ls.FatalReason, ls.FatalMessage = st.Fatal.Reason, st.Fatal.Message
		}
		var guilds []snowflake.ID
		if ls.DroppedEvents, guilds = r.dispatcher.droppedOf(st.ID); len(guilds) > 0 {
			for _, g := range guilds {
				ls.DroppedGuilds = append(ls.DroppedGuilds, g.String())
			}
		}
		out = append(out, ls)
	}
	return out
}
