package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// heartbeats stands in for botruntime in every pod: each running pod renews its Lease
// every duration/4 plus up to 4% jitter, by an optimistic update of its cached copy. A
// pod told to go silent stops renewing; its last renewal is when the API server accepted
// the last write.
type heartbeats struct {
	kube      kubernetes.Interface
	namespace string
	duration  time.Duration
	// nodeLeases: renew as the kubelet renews its node Lease (holder and times only),
	// not as botruntime (which also writes who it is and its shards' states).
	nodeLeases bool

	mu       sync.Mutex
	running  map[types.UID]*beater
	silenced map[types.UID]bool
	renewals int
}

type beater struct {
	pod, lease string
	uid        types.UID
	shard      int
	cached     *coordinationv1.Lease
	last       time.Time // last accepted renewal, on the harness's clock
	renewals   int
}

func newHeartbeats(kube kubernetes.Interface, namespace string, duration time.Duration) *heartbeats {
	return &heartbeats{kube: kube, namespace: namespace, duration: duration,
		running: map[types.UID]*beater{}, silenced: map[types.UID]bool{}}
}

// start begins renewing for a running pod, once per pod UID (a replacement pod of the
// same name gets its own beater, as a new bot process would).
func (h *heartbeats) start(ctx context.Context, pod, lease string, uid types.UID, shard int) {
	h.mu.Lock()
	if _, ok := h.running[uid]; ok {
		h.mu.Unlock()
		return
	}
	b := &beater{pod: pod, lease: lease, uid: uid, shard: shard}
	h.running[uid] = b
	h.mu.Unlock()
	go h.run(ctx, b)
}

// silence stops a pod's renewals: a deleted pod's, or one chosen to go stale.
func (h *heartbeats) silence(uid types.UID) {
	h.mu.Lock()
	h.silenced[uid] = true
	h.mu.Unlock()
}

// lastRenewal is when the pod's last renewal was accepted; ok is false before its first.
func (h *heartbeats) lastRenewal(uid types.UID) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.running[uid]
	if !ok || b.renewals == 0 {
		return time.Time{}, false
	}
	return b.last, true
}

// renewedPods counts pods that renewed at least once and are not silenced.
func (h *heartbeats) renewedPods() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for uid, b := range h.running {
		if b.renewals > 0 && !h.silenced[uid] {
			n++
		}
	}
	return n
}

// renewalCount is how many renewals the API server accepted so far.
func (h *heartbeats) renewalCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.renewals
}

func (h *heartbeats) run(ctx context.Context, b *beater) {
	interval := h.duration / 4
	for {
		h.mu.Lock()
		quiet := h.silenced[b.uid]
		h.mu.Unlock()
		if quiet {
			return
		}
		if at, ok := h.renew(ctx, b); ok {
			h.mu.Lock()
			b.last, b.renewals = at, b.renewals+1
			h.renewals++
			h.mu.Unlock()
		}
		wait := interval + time.Duration(rand.Float64()*0.04*float64(interval))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// renew writes the Lease as botruntime does; on a conflict or a missing copy it reads the
// Lease and tries once more.
func (h *heartbeats) renew(ctx context.Context, b *beater) (time.Time, bool) {
	shards, _ := json.Marshal([]shardkeeperv1.LeaseShardState{{ID: b.shard, State: "ready"}})
	for attempt := 0; attempt < 2; attempt++ {
		if b.cached == nil {
			lease, err := h.kube.CoordinationV1().Leases(h.namespace).Get(ctx, b.lease, metav1.GetOptions{})
			if err != nil {
				return time.Time{}, false // the operator has not made it yet: next tick
			}
			b.cached = lease
		}
		lease := b.cached.DeepCopy()
		now := metav1.NewMicroTime(time.Now())
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != b.pod || (!h.nodeLeases && lease.Annotations[shardkeeperv1.AnnotationPodUID] != string(b.uid)) {
			lease.Spec.AcquireTime = &now
		}
		lease.Spec.HolderIdentity = ptr.To(b.pod)
		lease.Spec.LeaseDurationSeconds = ptr.To(int32(h.duration / time.Second))
		lease.Spec.RenewTime = &now
		if !h.nodeLeases {
			if lease.Annotations == nil {
				lease.Annotations = map[string]string{}
			}
			lease.Annotations[shardkeeperv1.AnnotationPodUID] = string(b.uid)
			lease.Annotations[shardkeeperv1.AnnotationShards] = string(shards)
		}
		updated, err := h.kube.CoordinationV1().Leases(h.namespace).Update(ctx, lease, metav1.UpdateOptions{})
		if err == nil {
			b.cached = updated
			return time.Now(), true
		}
		b.cached = nil
	}
	return time.Time{}, false
}
