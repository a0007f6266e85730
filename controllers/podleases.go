package controllers

import (
	"context"
	"fmt"
	"strconv"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// The heartbeat Lease of a pod is owned by the DiscordBot, not by the pod: the garbage
// collector would delete a pod-owned Lease with its pod, and the replacement (same name)
// would find no resume state and identify. So the operator creates each pod's Lease before
// the pod, adopts Leases a bot created itself, and deletes the Leases of shard groups that
// no longer exist (an old layout after a reshard).

// ensurePodLease creates the Lease a new pod will renew, unless it exists. Its layout
// labels let a later pass find the layout's generation when no pod of it runs.
func (r *DiscordBotReconciler) ensurePodLease(ctx context.Context, bot *shardkeeperv1.DiscordBot, b podBuilder, pod string) error {
	labels := commonLabels(bot.Name)
	labels[shardkeeperv1.LabelTopology] = b.topo.label()
	labels[shardkeeperv1.LabelGeneration] = strconv.Itoa(int(b.generation))
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: leaseName(pod), Namespace: bot.Namespace, Labels: labels}}
	if err := controllerutil.SetControllerReference(bot, lease, r.Scheme); err != nil {
		return err
	}
	if err := r.Create(ctx, lease); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating Lease %s: %w", lease.Name, err)
	}
	return nil
}

// reconcilePodLeases adopts the bot's pod Leases and deletes those no pod will use again.
func (r *DiscordBotReconciler) reconcilePodLeases(ctx context.Context, s *scope) error {
	if s.layoutProblem != "" {
		return nil // the layout is unknown: which Leases are wanted is unknown too
	}
	wanted := map[string]bool{}
	for _, name := range podLeaseNames(s) {
		wanted[name] = true
	}
	for _, lease := range s.leases {
		if _, bucket := lease.Labels[shardkeeperv1.LabelIdentifyBucket]; bucket {
			continue
		}
		owner := metav1.GetControllerOf(lease)
		if owner != nil && owner.UID != s.bot.UID {
			continue // an earlier bot of this name: its garbage collection takes it
		}
		if !wanted[lease.Name] {
			if err := r.Delete(ctx, lease, client.Preconditions{UID: &lease.UID}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting Lease %s: %w", lease.Name, err)
			}
			logf.FromContext(ctx).V(1).Info("deleted the Lease of a shard group that is gone", "lease", lease.Name)
			continue
		}
		if owner == nil {
			patch := client.MergeFrom(lease.DeepCopy())
			if err := controllerutil.SetControllerReference(s.bot, lease, r.Scheme); err != nil {
				return err
			}
			if err := r.Patch(ctx, lease, patch); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("adopting Lease %s: %w", lease.Name, err)
			}
		}
	}
	return nil
}
