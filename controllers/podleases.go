package controllers

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// The heartbeat Lease of a pod is owned by the DiscordBot, not by the pod: the garbage
// collector would delete a pod-owned Lease with its pod, and the replacement (same name)
// would find no resume state and identify. So the operator creates each pod's Lease before
// the pod, and deletes the Leases of shard groups that no longer exist (an old layout after
// a reshard). Bot pods may not create Leases: every Lease they use is made here.
//
// What a bot reads from its Lease decides where its token goes (the resume URL), so a Lease
// the operator did not make for this bot is never used as it is: it is taken over and reset.

// ensurePodLease makes the Lease a new pod will renew, or takes over one the operator did
// not make for this bot. Its layout labels let a later pass find the layout's generation
// when no pod of it runs.
func (r *DiscordBotReconciler) ensurePodLease(ctx context.Context, bot *shardkeeperv1.DiscordBot, topology string, generation int32, pod string) error {
	labels := commonLabels(bot.Name)
	labels[shardkeeperv1.LabelTopology] = topology
	labels[shardkeeperv1.LabelGeneration] = strconv.Itoa(int(generation))
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: leaseName(pod), Namespace: bot.Namespace, Labels: labels}}
	_, err := r.ensureLease(ctx, bot, lease)
	return err
}

// ensureLease creates want, owned by the bot. When a Lease of that name exists, it is used
// as it is only if this very bot controls it (the operator made it); one with no controller
// or an earlier bot of the same name as controller (someone else created it, or a bot
// before its pods lost the right to) is taken over and reset to want, with an event; one
// controlled by anything else is left alone and reported. created says want was created.
func (r *DiscordBotReconciler) ensureLease(ctx context.Context, bot *shardkeeperv1.DiscordBot, want *coordinationv1.Lease) (created bool, err error) {
	if err := controllerutil.SetControllerReference(bot, want, r.Scheme); err != nil {
		return false, err
	}
	err = r.Create(ctx, want.DeepCopy())
	if err == nil {
		return true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return false, fmt.Errorf("creating Lease %s: %w", want.Name, err)
	}
	// The cache holds only labelled Leases, and may lag: read the API server's copy.
	live := &coordinationv1.Lease{}
	if err := r.liveReader().Get(ctx, client.ObjectKeyFromObject(want), live); err != nil {
		return false, fmt.Errorf("reading Lease %s: %w", want.Name, err)
	}
	return false, r.takeOverLease(ctx, bot, live, want)
}

// takeOverLease resets live to want unless the bot already controls it.
func (r *DiscordBotReconciler) takeOverLease(ctx context.Context, bot *shardkeeperv1.DiscordBot, live, want *coordinationv1.Lease) error {
	if metav1.IsControlledBy(live, bot) {
		return nil
	}
	if owner := metav1.GetControllerOf(live); owner != nil && (owner.Kind != "DiscordBot" || owner.Name != bot.Name) {
		return fmt.Errorf("the Lease %s/%s already exists and belongs to %s %s; rename or remove it", live.Namespace, live.Name, owner.Kind, owner.Name)
	}
	// Everything but the identity goes: the annotations (resume state, shard states, pod
	// UID, identified shard), the holder and its times, labels that would place it in a
	// layout, owners and finalizers that are not the bot's.
	reset := live.DeepCopy()
	reset.Labels = maps.Clone(want.Labels)
	reset.Annotations = nil
	reset.OwnerReferences = nil
	reset.Finalizers = nil
	reset.Spec = *want.Spec.DeepCopy()
	if err := controllerutil.SetControllerReference(bot, reset, r.Scheme); err != nil {
		return err
	}
	// An update with live's resourceVersion: a write in between is not lost, it is retried.
	if err := r.Update(ctx, reset); err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			// The admission policy lets the operator write only objects labelled as its
			// own: one made by someone else needs a person to remove it.
			return fmt.Errorf("the Lease %s/%s exists, was not made by Shardkeeper and may not be taken over (%v); remove it: kubectl delete lease -n %s %s",
				live.Namespace, live.Name, err, live.Namespace, live.Name)
		}
		return fmt.Errorf("taking over Lease %s: %w", live.Name, err)
	}
	previousOwner := "none"
	if owner := metav1.GetControllerOf(live); owner != nil {
		previousOwner = owner.Kind + " " + owner.Name + " (uid " + string(owner.UID) + ")"
	}
	*live = *reset
	logf.FromContext(ctx).Info("took over a Lease the operator did not make for this bot, and cleared what bots read from it",
		"lease", live.Name, "previousController", previousOwner)
	r.event(bot, live, corev1.EventTypeWarning, shardkeeperv1.ReasonLeaseTakenOver, "TakeOver",
		"Lease %s existed but was not made by the operator for this bot; took it over and cleared its resume state, shard states, pod UID and holder", live.Name)
	return nil
}

// fenceEarlierPods readies the Lease of a pod about to be created. The pods that held the
// name before, the one the operator created last and the Lease's last writer, are listed
// as replaced, so that a process of theirs still running (force-deleted on a partitioned
// node) stops instead of writing: botruntime's own fencing catches a predecessor that
// wrote the Lease, this one also a predecessor that never could. It must not fence a pod
// that still exists, so it first reads the pod around the cache: ok is false when a pod
// of that name is there (the cache lags, or the old one is still terminating), and then
// nothing is fenced and no pod may be created.
func (r *DiscordBotReconciler) fenceEarlierPods(ctx context.Context, bot *shardkeeperv1.DiscordBot, pod string) (ok bool, err error) {
	err = r.liveReader().Get(ctx, client.ObjectKey{Namespace: bot.Namespace, Name: pod}, &corev1.Pod{})
	if err == nil {
		return false, nil
	}
	if !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("reading pod %s before creating it: %w", pod, err)
	}
	err = r.updateLiveLease(ctx, bot, leaseName(pod), func(ann map[string]string) bool {
		created := ann[shardkeeperv1.AnnotationCreatedPodUID]
		delete(ann, shardkeeperv1.AnnotationCreatedPodUID)
		changed := shardkeeperv1.AddReplacedPodUIDs(ann, ann[shardkeeperv1.AnnotationPodUID], created)
		return changed || created != ""
	})
	if err != nil {
		return false, fmt.Errorf("fencing the earlier pods of %s on its Lease: %w", pod, err)
	}
	return true, nil
}

// recordCreatedPod notes on a pod's Lease which pod the operator made for it, for
// fenceEarlierPods to list when it makes the next one.
func (r *DiscordBotReconciler) recordCreatedPod(ctx context.Context, bot *shardkeeperv1.DiscordBot, pod *corev1.Pod) error {
	err := r.updateLiveLease(ctx, bot, leaseName(pod.Name), func(ann map[string]string) bool {
		if ann[shardkeeperv1.AnnotationCreatedPodUID] != "" {
			// fenceEarlierPods cleared it before the pod was made: one there now is this
			// pod's, or a newer one's than the caller's (cached) view.
			return false
		}
		ann[shardkeeperv1.AnnotationCreatedPodUID] = string(pod.UID)
		return true
	})
	if err != nil {
		return fmt.Errorf("recording pod %s on its Lease: %w", pod.Name, err)
	}
	return nil
}

// updateLiveLease applies change to the annotations of the bot's Lease as the API server
// has it, and writes it when change says it changed anything, retrying on conflicts (the
// pod renews the same Lease). A Lease the bot does not control is left alone: the
// takeover resets it first.
func (r *DiscordBotReconciler) updateLiveLease(ctx context.Context, bot *shardkeeperv1.DiscordBot, name string, change func(map[string]string) bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lease := &coordinationv1.Lease{}
		if err := r.liveReader().Get(ctx, client.ObjectKey{Namespace: bot.Namespace, Name: name}, lease); err != nil {
			return err
		}
		if !metav1.IsControlledBy(lease, bot) {
			return fmt.Errorf("the Lease %s is not controlled by the bot", name)
		}
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		if !change(lease.Annotations) {
			return nil
		}
		return r.Update(ctx, lease)
	})
}

// liveReader reads around the cache.
func (r *DiscordBotReconciler) liveReader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// reconcilePodLeases takes over the bot's pod Leases it did not make, makes the Lease of
// a running pod that has none (a bot may not create it), and deletes those no pod will use
// again.
func (r *DiscordBotReconciler) reconcilePodLeases(ctx context.Context, s *scope) (ctrl.Result, error) {
	if s.layoutProblem != "" {
		return ctrl.Result{}, nil // the layout is unknown: which Leases are wanted is unknown too
	}
	wanted := map[string]bool{}
	for _, name := range podLeaseNames(s) {
		wanted[name] = true
	}
	buckets := map[string]bool{}
	for b := range identifyBuckets(s) {
		buckets[shardkeeperv1.IdentifyBucketLeaseName(s.bot.Name, int(b))] = true
	}
	for _, lease := range s.leases {
		if _, bucket := lease.Labels[shardkeeperv1.LabelIdentifyBucket]; bucket || buckets[lease.Name] {
			continue // reconcileBuckets' (access.go)
		}
		owner := metav1.GetControllerOf(lease)
		if !wanted[lease.Name] {
			if owner != nil && owner.UID != s.bot.UID {
				continue // an earlier bot of this name: its garbage collection takes it
			}
			if err := r.Delete(ctx, lease, client.Preconditions{UID: &lease.UID}); err != nil && !apierrors.IsNotFound(err) {
				return ctrl.Result{}, fmt.Errorf("deleting Lease %s: %w", lease.Name, err)
			}
			logf.FromContext(ctx).V(1).Info("deleted the Lease of a shard group that is gone", "lease", lease.Name)
			continue
		}
		if metav1.IsControlledBy(lease, s.bot) {
			continue
		}
		pod := s.podNamed(lease.Name)
		if pod == nil {
			// Nothing uses it yet: delete it, and the pod that will gets a fresh one.
			if err := r.Delete(ctx, lease, client.Preconditions{UID: &lease.UID}); err != nil && !apierrors.IsNotFound(err) {
				return ctrl.Result{}, fmt.Errorf("deleting Lease %s: %w", lease.Name, err)
			}
			logf.FromContext(ctx).Info("deleted a Lease the operator did not make for this bot; the pod that uses it gets a fresh one", "lease", lease.Name)
			delete(s.leases, lease.Name)
			continue
		}
		// The labels say the pod's layout, from the pod: the Lease's were written by whoever made it.
		want := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Labels: commonLabels(s.bot.Name)}}
		want.Labels[shardkeeperv1.LabelTopology] = pod.topology
		want.Labels[shardkeeperv1.LabelGeneration] = strconv.Itoa(int(pod.generation))
		live := lease.DeepCopy()
		if err := r.takeOverLease(ctx, s.bot, live, want); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		s.leases[lease.Name] = live
	}
	for _, p := range s.pods {
		if p.terminating {
			continue
		}
		lease := s.leases[leaseName(p.pod.Name)]
		if lease == nil {
			if err := r.ensurePodLease(ctx, s.bot, p.topology, p.generation, p.pod.Name); err != nil {
				return ctrl.Result{}, err
			}
		}
		// A pod made before the operator recorded the pods it creates (or whose record
		// failed): record it now. Only where nothing is recorded: a record naming another
		// pod may be newer than this cache.
		if lease == nil || lease.Annotations[shardkeeperv1.AnnotationCreatedPodUID] == "" {
			if err := r.recordCreatedPod(ctx, s.bot, p.pod); err != nil {
				// A record for fencing, not worth the rest of the pass.
				s.laterErrs = append(s.laterErrs, err)
			}
		}
	}
	return ctrl.Result{}, nil
}

// podNamed is the bot's pod of that name, nil when there is none.
func (s *scope) podNamed(name string) *observedPod {
	for i := range s.pods {
		if s.pods[i].pod.Name == name {
			return &s.pods[i]
		}
	}
	return nil
}
