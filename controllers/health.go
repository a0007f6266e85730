package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// Health judgement follows the node lifecycle controller: a Lease's renewTime is the bot's
// clock and is never compared with ours. The operator records when IT saw renewTime
// change, and a pod is stale when its own clock passes that moment plus the lease
// duration. After an operator restart every Lease gets a fresh grace period.

const (
	// DefaultStartupGrace is how long a new pod may take to renew its Lease the first time.
	DefaultStartupGrace = 3 * time.Minute
	// DefaultMaxUnhealthyPercent: above this share of a bot's pods unhealthy at once, the
	// operator holds back restarts (an outage, not a broken pod).
	DefaultMaxUnhealthyPercent = 50
	// Per-pod restart budget: restartBudget restarts within restartWindow, then each next
	// restart waits twice as long as the last, from restartBackoffBase up to restartWindow.
	restartBudget      = 3
	restartWindow      = 10 * time.Minute
	restartBackoffBase = 30 * time.Second
	// containerRestartLimit kubelet restarts of the bot container within
	// containerRestartWindow get the pod replaced: a fresh pod, maybe on another node.
	containerRestartLimit  = 3
	containerRestartWindow = 10 * time.Minute
	// staleGracePeriod is the termination grace of a pod deleted because its Lease went
	// stale: its process is most likely hung and ignores SIGTERM, and its replacement (same
	// name, same Lease, same resume state) cannot start until it is gone. A live process
	// still closes its sessions resumably (close 4000) within it.
	staleGracePeriod int64 = 5
	// leaseReadTimeout bounds the live read of a Lease before a restart.
	leaseReadTimeout = 5 * time.Second
)

// leaseTracker remembers, on the operator's clock, when each bot Lease's renewTime last
// changed, and when each pod was first seen.
type leaseTracker struct {
	clock Clock
	mu    sync.Mutex
	// renewals: lease namespace/name -> last renewTime seen and when we saw it change.
	renewals map[types.NamespacedName]renewal
	// podSeen: pod UID -> when we first saw the pod started.
	podSeen map[types.UID]time.Time
	// podsOf: bot -> the pod UIDs the maps above and below hold, so that a pass prunes its
	// own bot's replaced pods without walking every bot's.
	podsOf map[types.NamespacedName]map[types.UID]struct{}
	// restarts: pod namespace/name -> the operator's restarts of it, oldest first.
	restarts map[types.NamespacedName][]time.Time
	// containerRestarts: pod UID -> the restart count last seen and when it went up.
	containerRestarts map[types.UID]*restartHistory
	// fleet: bot -> its pods' health in its last pass, for the cluster-wide storm guard.
	fleet map[types.NamespacedName]fleetEntry
	// watch tells when the operator's watches last failed (nil: never).
	watch *watchOutages
}

// fleetEntry is one bot's pod health as its last pass saw it.
type fleetEntry struct {
	live, unhealthy int
	at              time.Time
}

type restartHistory struct {
	count int32
	times []time.Time
}

type renewal struct {
	renewTime string // as the bot wrote it: compared, never used as a time
	seenAt    time.Time
}

func newLeaseTracker(c Clock) *leaseTracker {
	return &leaseTracker{
		clock:             clockOrReal(c),
		renewals:          map[types.NamespacedName]renewal{},
		podSeen:           map[types.UID]time.Time{},
		podsOf:            map[types.NamespacedName]map[types.UID]struct{}{},
		restarts:          map[types.NamespacedName][]time.Time{},
		containerRestarts: map[types.UID]*restartHistory{},
		fleet:             map[types.NamespacedName]fleetEntry{},
	}
}

// observe records a Lease; it returns true when renewTime changed (or is seen first).
func (t *leaseTracker) observe(lease *coordinationv1.Lease) bool {
	key := client.ObjectKeyFromObject(lease)
	rt := ""
	if lease.Spec.RenewTime != nil {
		rt = lease.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	prev, ok := t.renewals[key]
	if ok && prev.renewTime == rt {
		return false
	}
	t.renewals[key] = renewal{renewTime: rt, seenAt: t.clock.Now()}
	return true
}

func (t *leaseTracker) forget(key types.NamespacedName) {
	t.mu.Lock()
	delete(t.renewals, key)
	t.mu.Unlock()
}

// lastRenewal is when we saw the Lease's renewTime change; ok is false when it never had one.
func (t *leaseTracker) lastRenewal(key types.NamespacedName) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.renewals[key]
	if !ok || r.renewTime == "" {
		return time.Time{}, false
	}
	return r.seenAt, true
}

// firstSeen is when we first saw the pod: a new operator gives every pod a fresh grace.
func (t *leaseTracker) firstSeen(bot types.NamespacedName, uid types.UID) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.podSeen[uid]; ok {
		return at
	}
	now := t.clock.Now()
	t.podSeen[uid] = now
	t.track(bot, uid)
	return now
}

// track records that the tracker holds something about the bot's pod uid. t.mu is held.
func (t *leaseTracker) track(bot types.NamespacedName, uid types.UID) {
	pods := t.podsOf[bot]
	if pods == nil {
		pods = map[types.UID]struct{}{}
		t.podsOf[bot] = pods
	}
	pods[uid] = struct{}{}
}

// keepPods forgets what the tracker holds about the bot's pods that are gone: everything
// keyed by a pod UID would otherwise grow with every replacement. nil forgets them all
// (the bot is gone).
func (t *leaseTracker) keepPods(bot types.NamespacedName, live map[types.UID]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for uid := range t.podsOf[bot] {
		if !live[uid] {
			delete(t.podSeen, uid)
			delete(t.containerRestarts, uid)
			delete(t.podsOf[bot], uid)
		}
	}
	if live == nil {
		delete(t.podsOf, bot)
		delete(t.fleet, bot)
		for key := range t.restarts {
			if key.Namespace == bot.Namespace && podOfBot(key.Name, bot.Name) {
				delete(t.restarts, key)
			}
		}
	}
}

// podOfBot says whether a pod name is one the bot's pods are given (<bot>-<group>, with
// a generation suffix for later layouts).
func podOfBot(pod, bot string) bool {
	rest, ok := strings.CutPrefix(pod, bot+"-")
	return ok && rest != "" && rest[0] >= '0' && rest[0] <= '9'
}

// sizes is how many entries the tracker holds, per map, for tests of its bounds.
func (t *leaseTracker) sizes() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return map[string]int{"renewals": len(t.renewals), "podSeen": len(t.podSeen), "restarts": len(t.restarts),
		"containerRestarts": len(t.containerRestarts), "fleet": len(t.fleet)}
}

// fleetStorm records a bot's pod health and says whether too many pods of all bots are
// unhealthy at once, and how many. Entries older than fleetEntryMaxAge are not counted:
// their bot has not been judged lately (suspended, halted, probes only).
//
// An outage of the API server or of Discord lapses the Leases of every namespace alike. One
// tenant's bots lapsing, on purpose or not, must not hold back the restarts of everyone
// else's: so besides more than maxPercent of all pods, more than maxPercent of the
// namespaces must each be mostly lapsing. With a single namespace that is the same test.
func (t *leaseTracker) fleetStorm(bot types.NamespacedName, live, unhealthy, maxPercent int, now time.Time) (bool, int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fleet[bot] = fleetEntry{live: live, unhealthy: unhealthy, at: now}
	allLive, allUnhealthy := 0, 0
	type counts struct{ live, unhealthy int }
	byNamespace := map[string]counts{}
	for key, e := range t.fleet {
		if now.Sub(e.at) > fleetEntryMaxAge {
			delete(t.fleet, key)
			continue
		}
		allLive += e.live
		allUnhealthy += e.unhealthy
		c := byNamespace[key.Namespace]
		byNamespace[key.Namespace] = counts{c.live + e.live, c.unhealthy + e.unhealthy}
	}
	lapsing, namespaces := 0, 0
	for _, c := range byNamespace {
		if c.live == 0 {
			continue
		}
		namespaces++
		if c.unhealthy*100 > c.live*maxPercent {
			lapsing++
		}
	}
	storm := allUnhealthy >= fleetStormMinPods && tooManyUnhealthy(allUnhealthy, allLive, maxPercent) &&
		lapsing*100 > namespaces*maxPercent
	return storm, allUnhealthy, allLive
}

// fleetStormMinPods is how many pods must lapse together before the cluster-wide guard
// calls it an outage: two small bots failing at once can be two broken bots.
const fleetStormMinPods = 3

// fleetEntryMaxAge bounds how old a bot's last judgement may be and still count in the
// cluster-wide storm guard; a judged bot is looked at again within its lease duration.
const fleetEntryMaxAge = 5 * time.Minute

// containerRestartsWithin records a pod's container restart count and returns how many
// restarts the operator saw happen within window. Restarts from before the operator first
// saw the pod are not counted (a fresh operator gives a fresh grace).
func (t *leaseTracker) containerRestartsWithin(bot types.NamespacedName, uid types.UID, count int32, window time.Duration) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.track(bot, uid)
	now := t.clock.Now()
	h, ok := t.containerRestarts[uid]
	if !ok {
		t.containerRestarts[uid] = &restartHistory{count: count}
		return 0
	}
	for ; h.count < count; h.count++ {
		h.times = append(h.times, now)
	}
	var recent []time.Time
	for _, at := range h.times {
		if now.Sub(at) < window {
			recent = append(recent, at)
		}
	}
	h.times = recent
	return len(recent)
}

// restartHistory returns the operator's restarts of a pod within restartWindow.
func (t *leaseTracker) restartHistory(key types.NamespacedName, now time.Time) []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var recent []time.Time
	for _, at := range t.restarts[key] {
		if now.Sub(at) < restartWindow {
			recent = append(recent, at)
		}
	}
	if len(recent) == 0 {
		delete(t.restarts, key)
		return nil
	}
	t.restarts[key] = recent
	return append([]time.Time(nil), recent...)
}

// budgetAllows applies the per-pod restart budget to the restarts within the window; when
// a restart must wait it says how long.
func budgetAllows(recent []time.Time, now time.Time) (bool, time.Duration) {
	if len(recent) < restartBudget {
		return true, 0
	}
	wait := min(restartBackoffBase<<(len(recent)-restartBudget), restartWindow)
	if next := recent[len(recent)-1].Add(wait); now.Before(next) {
		return false, next.Sub(now)
	}
	return true, 0
}

func (t *leaseTracker) recordRestart(key types.NamespacedName, now time.Time) {
	t.mu.Lock()
	t.restarts[key] = append(t.restarts[key], now)
	t.mu.Unlock()
}

// podHealthInput is what judgePod decides on.
type podHealthInput struct {
	now           time.Time
	podSeen       time.Time
	lastRenewal   time.Time // zero: no renewal seen
	leaseExists   bool
	leaseDuration time.Duration
	startupGrace  time.Duration
	// containerRestarts is how many times the kubelet restarted the bot container within
	// containerRestartWindow (liveness failures: a botruntime bot only exits on SIGTERM or
	// for a fatal reason, which is handled apart).
	containerRestarts int
	// started says a container of the pod ever ran. A pod that never started (not
	// scheduled, its image not pulled) has had no chance to write its Lease: a new pod
	// would wait just the same, so it is not restarted for that (its status says why).
	started bool
	// blindUntil is when the operator's watches last failed: until then it could not see
	// renewals, and their absence says nothing. Zero when they never failed.
	blindUntil time.Time
}

// verdict is judgePod's answer: restart or not, why, and when to look again.
type verdict struct {
	stale bool
	// suspect: not stale yet, but it missed a renewal (no change seen for half the lease
	// duration; a healthy pod renews every quarter). The storm guard counts suspects, so
	// Leases that expire a few seconds apart in one outage are still seen together.
	suspect bool
	reason  string
	message string
	recheck time.Duration
}

// judgePod decides whether a pod's heartbeat is stale. It is pure.
func judgePod(in podHealthInput) verdict {
	if in.containerRestarts >= containerRestartLimit {
		return verdict{stale: true, reason: shardkeeperv1.ReasonContainerRestarting,
			message: fmt.Sprintf("the bot container was restarted %d times in %s (failing liveness probes or crashing); replacing the pod",
				in.containerRestarts, containerRestartWindow)}
	}
	if in.lastRenewal.IsZero() {
		if !in.started {
			return verdict{} // a pod status change wakes the reconcile
		}
		deadline := in.podSeen.Add(in.startupGrace)
		if !in.blindUntil.IsZero() {
			deadline = maxTime(deadline, in.blindUntil.Add(in.leaseDuration))
		}
		if in.now.After(deadline) {
			what := "never created its heartbeat Lease"
			if in.leaseExists {
				what = "never renewed its heartbeat Lease"
			}
			return verdict{stale: true, reason: shardkeeperv1.ReasonLeaseNeverWritten,
				message: fmt.Sprintf("%s within the startup grace of %s", what, in.startupGrace)}
		}
		return verdict{recheck: deadline.Sub(in.now)}
	}
	// Every pod gets a fresh lease duration from the moment the operator could see again,
	// as the node lifecycle controller does after it was cut off.
	expiry := maxTime(in.lastRenewal, in.blindUntil).Add(in.leaseDuration)
	if in.now.After(expiry) {
		return verdict{stale: true, reason: shardkeeperv1.ReasonLeaseStale,
			message: fmt.Sprintf("heartbeat Lease not renewed for %s (lease duration %s)",
				in.now.Sub(in.lastRenewal).Round(time.Second), in.leaseDuration)}
	}
	return verdict{recheck: expiry.Sub(in.now), suspect: in.now.Sub(maxTime(in.lastRenewal, in.blindUntil)) > in.leaseDuration/2}
}

// podStarted says whether a container of the pod ever ran.
func podStarted(pod *corev1.Pod) bool {
	if pod.Status.Phase == corev1.PodRunning {
		return true
	}
	for _, cs := range containerStatuses(pod) {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil || cs.RestartCount > 0 {
			return true
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// restartInput is everything the restart decision for one pod depends on.
type restartInput struct {
	health podHealthInput
	// fatalReason is set when the pod reported a reason restarts cannot fix.
	fatalReason string
	// restarts are the operator's earlier restarts of this pod within restartWindow.
	restarts []time.Time
	// storm is set when too many of the bot's pods are unhealthy at once.
	storm bool
}

// restartDecision says whether to restart a pod now; when a needed restart waits, hold
// says why (Halted, RemediationRestricted, RestartBackoff). reason goes to the event.
type restartDecision struct {
	restart bool
	hold    string
	reason  string
	message string
	recheck time.Duration
}

// Why a needed restart waits.
const (
	holdHalted  = shardkeeperv1.ReasonHalted
	holdStorm   = shardkeeperv1.ConditionRemediationRestricted
	holdBackoff = shardkeeperv1.ReasonRestartBackoff
)

// decideRestart answers "restart this pod now, and why?". It is pure: the chain is fatal
// reason (never restart), staleness (judgePod), the storm guard, then the pod's budget.
func decideRestart(in restartInput) restartDecision {
	if in.fatalReason != "" {
		return restartDecision{hold: holdHalted, reason: in.fatalReason, message: "the pod reported a reason restarts cannot fix"}
	}
	v := judgePod(in.health)
	if !v.stale {
		return restartDecision{recheck: v.recheck}
	}
	if in.storm {
		return restartDecision{hold: holdStorm, reason: v.reason, message: v.message, recheck: in.health.leaseDuration / 2}
	}
	if ok, wait := budgetAllows(in.restarts, in.health.now); !ok {
		return restartDecision{hold: holdBackoff, reason: v.reason, recheck: wait,
			message: fmt.Sprintf("%s, but it was restarted %d times in %s; next restart in %s", v.message, len(in.restarts), restartWindow, wait.Round(time.Second))}
	}
	return restartDecision{restart: true, reason: v.reason, message: v.message}
}

// tooManyUnhealthy is the storm guard: restarting most of a bot at once is worse than the
// fault (an API server or Discord outage makes every Lease stale together).
func tooManyUnhealthy(unhealthy, total, maxPercent int) bool {
	return total > 1 && unhealthy > 1 && unhealthy*100 > total*maxPercent
}

// leaseShardStates reads what the bot wrote about its shards on its Lease.
func leaseShardStates(lease *coordinationv1.Lease) []shardkeeperv1.LeaseShardState {
	var out []shardkeeperv1.LeaseShardState
	if lease == nil {
		return nil
	}
	_ = json.Unmarshal([]byte(lease.Annotations[shardkeeperv1.AnnotationShards]), &out)
	return out
}

// leaseWriter is the UID of the pod that last wrote the Lease: its annotation, or the Pod
// owner that bots of earlier versions set.
func leaseWriter(lease *coordinationv1.Lease) (types.UID, bool) {
	if lease == nil {
		return "", false
	}
	if uid := lease.Annotations[shardkeeperv1.AnnotationPodUID]; uid != "" {
		return types.UID(uid), true
	}
	for _, ref := range lease.OwnerReferences {
		if ref.Kind == "Pod" {
			return ref.UID, true
		}
	}
	return "", false
}

// leaseOf tells whether a Lease was written by this very pod: a replacement pod has the
// same name, and the Lease its predecessor renewed says nothing about it.
func leaseOf(lease *coordinationv1.Lease, pod *corev1.Pod) bool {
	uid, said := leaseWriter(lease)
	if !said {
		return true // a bot that does not say who it is; trust the name
	}
	return uid == pod.UID
}

// shardStateDigest is the part of a Lease's shard states worth a reconcile: states and
// fatal reasons, not the latency and event times that change on every renewal.
func shardStateDigest(lease *coordinationv1.Lease) string {
	var b []byte
	for _, st := range leaseShardStates(lease) {
		b = fmt.Appendf(b, "%d=%s/%s;", st.ID, st.State, st.FatalReason)
	}
	return string(b)
}

// leaseHealth reports whether the bot's health is judged by heartbeat Leases.
func (r *DiscordBotReconciler) leaseHealth(bot *shardkeeperv1.DiscordBot) bool {
	return r.leases != nil && bot.Spec.Health.Mode != shardkeeperv1.HealthModeProbes
}

// observeLeases reads the bot pods' Leases (listed with the pods): renewals for the tracker, and
// what the bots say about their shards (latency, fatal reasons) for the status.
func (r *DiscordBotReconciler) observeLeases(_ context.Context, s *scope) (ctrl.Result, error) {
	if !r.leaseHealth(s.bot) {
		return ctrl.Result{}, nil
	}
	for i := range s.pods {
		p := &s.pods[i]
		if p.terminating {
			continue
		}
		lease, ok := s.leases[leaseName(p.pod.Name)]
		if !ok {
			continue
		}
		r.leases.observe(lease)
		states := leaseShardStates(lease)
		for _, st := range states {
			s.health.maxLatencyMillis = max(s.health.maxLatencyMillis, st.LatencyMillis)
		}
		p.leaseReport = leaseStopReport(lease, states, p.pod)
	}
	return ctrl.Result{}, nil
}

// leaseStopReport is the first reason a shard stopped for good that the pod wrote on its
// Lease, nil when it wrote none. The Lease outlives a replaced pod (the bot owns it): only
// what this very pod wrote counts as its report. A pod may write anything there: only a
// fatal reason is taken, as from its termination message, for it halts the bot and
// becomes the Ready condition's reason.
func leaseStopReport(lease *coordinationv1.Lease, states []shardkeeperv1.LeaseShardState, pod *corev1.Pod) *shardkeeperv1.StopReport {
	if _, said := leaseWriter(lease); !said || !leaseOf(lease, pod) {
		return nil
	}
	for _, st := range states {
		if report := (shardkeeperv1.StopReport{Reason: st.FatalReason, Message: st.FatalMessage}); report.Fatal() {
			return &report
		}
	}
	return nil
}

// judgeHealth restarts pods whose heartbeat Lease went stale, within the restart budgets,
// and records what it saw for the status. It looks again when the next Lease would go
// stale, or a held restart may go.
func (r *DiscordBotReconciler) judgeHealth(ctx context.Context, s *scope) (ctrl.Result, error) {
	if s.bot.Spec.Suspend || s.bot.Status.Halted != nil || !r.leaseHealth(s.bot) {
		return ctrl.Result{}, nil
	}
	log := logf.FromContext(ctx)
	duration := time.Duration(s.bot.Spec.Health.LeaseDurationSeconds) * time.Second
	if duration <= 0 {
		duration = 20 * time.Second
	}
	grace := r.StartupGrace
	if grace <= 0 {
		grace = DefaultStartupGrace
	}
	maxPercent := r.MaxUnhealthyPercent
	if maxPercent <= 0 {
		maxPercent = DefaultMaxUnhealthyPercent
	}

	botKey := client.ObjectKeyFromObject(s.bot)
	type stalePod struct {
		p  observedPod
		in podHealthInput
	}
	var stale []stalePod
	var recheck time.Duration
	// lapsed counts pods whose renewals stopped within the last few lease durations: an
	// outage stops many at once, a pod broken for an hour is no news.
	live, suspects, lapsed := 0, 0, 0
	for _, p := range s.pods {
		if p.terminating || p.failed {
			continue
		}
		live++
		key := types.NamespacedName{Namespace: p.pod.Namespace, Name: leaseName(p.pod.Name)}
		lease, exists := s.leases[leaseName(p.pod.Name)]
		var last time.Time
		if exists && leaseOf(lease, p.pod) {
			last, _ = r.leases.lastRenewal(key)
		}
		var restarts int32
		statuses := p.pod.Status.ContainerStatuses
		if hasProxy(p.pod) {
			// Behind the proxy, the bot container restarts on its own and costs the
			// sessions nothing: replacing the pod would. Only the proxy's restarts count.
			statuses = nil
			if cs, ok := sessionContainerStatus(p.pod); ok {
				statuses = []corev1.ContainerStatus{cs}
			}
		}
		for _, cs := range statuses {
			if _, fatal := fatalBotReason(cs); !fatal {
				restarts += cs.RestartCount
			}
		}
		started := podStarted(p.pod)
		podSeen := s.now
		if started {
			// The startup grace runs from when the operator first saw the pod started.
			podSeen = r.leases.firstSeen(botKey, p.pod.UID)
		}
		in := podHealthInput{
			now: s.now, podSeen: podSeen, started: started, lastRenewal: last, leaseExists: exists,
			leaseDuration: duration, startupGrace: grace, blindUntil: r.leases.watch.blindUntil(),
			containerRestarts: r.leases.containerRestartsWithin(botKey, p.pod.UID, restarts, containerRestartWindow),
		}
		v := judgePod(in)
		if v.stale {
			stale = append(stale, stalePod{p, in})
			s.health.staleShards += int32(len(shardIDsOf(p, s.topo)))
		} else if v.recheck > 0 {
			recheck = minPositive(recheck, v.recheck)
		}
		if v.suspect {
			suspects++
		}
		if (v.reason == shardkeeperv1.ReasonLeaseStale || v.suspect) && s.now.Sub(last) < 3*duration {
			lapsed++
		}
	}
	// A bot of one or two pods cannot tell an outage from a broken pod by itself: it goes
	// by every bot's pods together.
	fleetStorm, fleetUnhealthy, fleetLive := r.leases.fleetStorm(botKey, live, lapsed, maxPercent, s.now)
	if len(stale) == 0 {
		s.health.remediation = ""
		return ctrl.Result{RequeueAfter: recheck}, nil
	}
	storm := tooManyUnhealthy(len(stale)+suspects, live, maxPercent)
	// The fleet guard is about Leases lapsing together; a container the kubelet keeps
	// restarting is the kubelet's own evidence, and is not held by it.
	leaseStorm := false
	switch {
	case storm:
		s.health.remediation = fmt.Sprintf("%d of %d pods have stale or lapsing heartbeat Leases (more than %d%%): holding back restarts, as in an API server or Discord outage",
			len(stale)+suspects, live, maxPercent)
	case live <= 2 && fleetStorm:
		leaseStorm = true
		s.health.remediation = fmt.Sprintf("%d of the %d pods of all bots, in most namespaces, stopped renewing their heartbeat Leases lately (more than %d%%): holding back restarts, as in an API server or Discord outage",
			fleetUnhealthy, fleetLive, maxPercent)
	default:
		s.health.remediation = ""
	}

	for _, sp := range stale {
		podKey := client.ObjectKeyFromObject(sp.p.pod)
		var fatalReason string
		if sp.p.leaseReport != nil {
			fatalReason = sp.p.leaseReport.Reason
		}
		d := decideRestart(restartInput{
			health: sp.in, fatalReason: fatalReason,
			restarts: r.leases.restartHistory(podKey, s.now),
			storm:    storm || (leaseStorm && sp.in.containerRestarts < containerRestartLimit),
		})
		if !d.restart {
			if d.hold == holdBackoff {
				r.event(s.bot, sp.p.pod, corev1.EventTypeWarning, holdBackoff, "Restart", "pod %s: %s", podKey.Name, d.message)
			}
			recheck = minPositive(recheck, d.recheck)
			continue
		}
		// The session start breaker: hold a restart whose new pod would have to identify.
		// (The pass takes the identifies so that two restarts cannot both fit; the new pod
		// is charged for real when it is created.)
		if need := identifiesNeeded(s.leases[leaseName(podKey.Name)], shardIDsOf(sp.p, s.topo), layoutOf(sp.p, s.topo).shards, s.now); !s.budget.take(need) {
			continue // checkGateway looks again at Discord's reset
		}
		// Our cache may be behind: read the live Lease before acting on it. No read, no
		// delete: a failed read (timeout, 429, 5xx) is most likely the outage that made
		// the Lease look stale in the first place.
		if d.reason != shardkeeperv1.ReasonContainerRestarting {
			var live coordinationv1.Lease
			leaseKey := types.NamespacedName{Namespace: podKey.Namespace, Name: leaseName(podKey.Name)}
			readCtx, cancel := context.WithTimeout(ctx, leaseReadTimeout)
			err := r.APIReader.Get(readCtx, leaseKey, &live)
			cancel()
			switch {
			case err != nil && !apierrors.IsNotFound(err):
				log.Info("not restarting a pod whose Lease looks stale: reading the live Lease failed", "pod", podKey.Name, "error", err.Error())
				recheck = minPositive(recheck, duration/4)
				continue
			case err == nil && r.leases.observe(&live):
				recheck = minPositive(recheck, duration)
				continue
			}
		}
		deleted, err := r.deletePod(ctx, s, podDeletion{pod: sp.p.pod, reason: d.reason, message: d.message, restart: true, action: actionRestart})
		if err != nil {
			return ctrl.Result{}, err
		}
		if deleted {
			r.leases.recordRestart(podKey, s.now)
			s.health.lastRestartReason = d.reason
		}
		// The rollout must not act on this pod again in this pass: it is going, or gone.
		for i := range s.pods {
			if s.pods[i].pod.UID == sp.p.pod.UID {
				s.pods[i].terminating = true
			}
		}
	}
	return ctrl.Result{RequeueAfter: recheck}, nil
}

// leaseEvents records renewals on the operator's clock as they arrive, and wakes the bot's
// reconcile only when something worth a look changed (a new Lease, new state), not on
// every renewal: staleness is found by RequeueAfter, not by polling or by event floods.
func (r *DiscordBotReconciler) leaseEvents() handler.Funcs {
	enqueue := func(lease client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if bot := lease.GetLabels()[shardkeeperv1.LabelBot]; bot != "" {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: lease.GetNamespace(), Name: bot}})
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if lease, ok := e.Object.(*coordinationv1.Lease); ok {
				r.leases.observe(lease)
				r.leases.watch.sawLeaseEvent()
			}
			enqueue(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			lease, ok := e.ObjectNew.(*coordinationv1.Lease)
			if !ok {
				return
			}
			r.leases.watch.sawLeaseEvent()
			old, _ := e.ObjectOld.(*coordinationv1.Lease)
			firstRenewal := r.leases.observe(lease) && lease.Spec.RenewTime != nil && old != nil && old.Spec.RenewTime == nil
			oldWriter, _ := leaseWriter(old)
			newWriter, _ := leaseWriter(lease)
			newOwner := old != nil && oldWriter != newWriter
			if firstRenewal || newOwner || shardStateDigest(old) != shardStateDigest(lease) {
				enqueue(lease, q)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.leases.forget(client.ObjectKeyFromObject(e.Object))
			enqueue(e.Object, q)
		},
	}
}
