package controllers

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// leaseRules is what a bot's pods may do: read and renew only the Leases they use, those
// named after the bot's pods and the bot's identify buckets. Not create: Kubernetes cannot
// limit create by name, and a pod that could create any Lease could plant another bot's
// next Lease, resume state and all. The operator makes every Lease a bot uses.
func leaseRules(names []string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{{
		APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
		Verbs: []string{"get", "update", "patch"}, ResourceNames: names,
	}}
}

// podLeaseNames lists the heartbeat Leases the bot's pods use or may use again: those of
// every group of the current layout and of the newest old layout (during a reshard its
// lost pods are created again), and of every pod still running.
func podLeaseNames(s *scope) []string {
	seen := map[string]bool{}
	var names []string
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for g := range s.topo.groups() {
		add(leaseName(s.builder.podName(g)))
	}
	var old []observedPod
	var running []string
	for _, p := range s.pods {
		running = append(running, leaseName(p.pod.Name))
		if p.topology != s.topo.label() || p.generation != s.builder.generation {
			old = append(old, p)
		}
	}
	if prev, ok := newestOldLayout(old); ok {
		b := s.builder.forLayout(prev)
		for g := range prev.topo.groups() {
			add(leaseName(b.podName(g)))
		}
	}
	slices.SortFunc(running, compareNatural)
	for _, name := range running {
		add(name)
	}
	return names
}

// botLeaseNames is podLeaseNames and the identify buckets.
func botLeaseNames(s *scope) []string {
	names := podLeaseNames(s)
	for b := range identifyBuckets(s) {
		names = append(names, shardkeeperv1.IdentifyBucketLeaseName(s.bot.Name, int(b)))
	}
	return names
}

// identifyBuckets is how many identify buckets the bot's pods use: Discord's
// max_concurrency, or a higher one a running pod was started with.
func identifyBuckets(s *scope) int32 {
	buckets := maxConcurrency(s.bot)
	for _, p := range s.pods {
		for _, c := range podContainers(p.pod) {
			for _, e := range c.Env {
				if n, err := strconv.ParseInt(e.Value, 10, 32); e.Name == shardkeeperv1.EnvMaxConcurrency && err == nil && n > int64(buckets) {
					buckets = int32(n)
				}
			}
		}
	}
	return buckets
}

// reconcileBuckets makes the identify bucket Leases, owned by the bot so they go with it,
// and takes over any the operator did not make (podleases.go). botruntime takes them; the
// operator only creates them.
func (r *DiscordBotReconciler) reconcileBuckets(ctx context.Context, s *scope) error {
	for b := range identifyBuckets(s) {
		labels := commonLabels(s.bot.Name)
		labels[shardkeeperv1.LabelIdentifyBucket] = strconv.Itoa(int(b))
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
			Name: shardkeeperv1.IdentifyBucketLeaseName(s.bot.Name, int(b)), Namespace: s.bot.Namespace, Labels: labels,
		}}
		if cached := s.leases[lease.Name]; cached != nil && metav1.IsControlledBy(cached, s.bot) {
			continue // made by the operator: nobody else may write it
		}
		created, err := r.ensureLease(ctx, s.bot, lease)
		if err != nil {
			// A bucket someone else made must not stop the rest of the pass (health,
			// rollout): shards of that bucket identify on their own process's limiter
			// meanwhile. The pass still ends in this error, so it is retried and reported.
			s.laterErrs = append(s.laterErrs, err)
			continue
		}
		if created {
			r.event(s.bot, lease, corev1.EventTypeNormal, shardkeeperv1.ReasonCreatedLease, "Create", "created Lease %s", lease.Name)
		}
	}
	return nil
}

// reconcileAccess makes the ServiceAccount, Role and RoleBinding the bot's pods run with.
func (r *DiscordBotReconciler) reconcileAccess(ctx context.Context, s *scope) (ctrl.Result, error) {
	name := serviceAccountName(s.bot.Name)
	meta := func(obj client.Object) client.Object {
		obj.SetName(name)
		obj.SetNamespace(s.bot.Namespace)
		return obj
	}

	sa := meta(&corev1.ServiceAccount{}).(*corev1.ServiceAccount)
	if err := r.ensureOwned(ctx, s.bot, sa, func() error { return nil }); err != nil {
		return ctrl.Result{}, err
	}

	role := meta(&rbacv1.Role{}).(*rbacv1.Role)
	if err := r.ensureOwned(ctx, s.bot, role, func() error {
		role.Rules = leaseRules(botLeaseNames(s))
		return nil
	}); err != nil {
		return ctrl.Result{}, err
	}

	if err := r.reconcileBuckets(ctx, s); err != nil {
		return ctrl.Result{}, err
	}

	binding := meta(&rbacv1.RoleBinding{}).(*rbacv1.RoleBinding)
	return ctrl.Result{}, r.ensureOwned(ctx, s.bot, binding, func() error {
		want := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}
		if binding.CreationTimestamp.IsZero() {
			binding.RoleRef = want
		} else if binding.RoleRef != want {
			return fmt.Errorf("RoleBinding %s refers to %s %s and roleRef cannot change; delete it and the operator recreates it",
				name, binding.RoleRef.Kind, binding.RoleRef.Name)
		}
		binding.Subjects = []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: s.bot.Namespace}}
		return nil
	})
}

// ensureOwned creates or patches an object the bot owns, with an event when it changed.
func (r *DiscordBotReconciler) ensureOwned(ctx context.Context, bot *shardkeeperv1.DiscordBot, obj client.Object, mutate func() error) error {
	kind := kindOf(obj)
	result, err := controllerutil.CreateOrPatch(ctx, r.Client, obj, func() error {
		if err := r.adopt(bot, obj); err != nil {
			return err
		}
		return mutate()
	})
	if apierrors.IsAlreadyExists(err) {
		// The cache holds only objects with our labels: this one was made by someone else.
		return fmt.Errorf("%s %s/%s already exists and is not managed by Shardkeeper; rename or remove it",
			kind, obj.GetNamespace(), obj.GetName())
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind, obj.GetName(), err)
	}
	reasons := ownedObjectReasons[kind]
	switch result {
	case controllerutil.OperationResultCreated:
		r.event(bot, obj, corev1.EventTypeNormal, reasons.created, "Create", "created %s %s", kind, obj.GetName())
	case controllerutil.OperationResultUpdated:
		r.event(bot, obj, corev1.EventTypeNormal, reasons.updated, "Update", "updated %s %s", kind, obj.GetName())
	}
	return nil
}

// adopt sets the labels and the controller owner reference every operator-made object carries.
func (r *DiscordBotReconciler) adopt(bot *shardkeeperv1.DiscordBot, obj client.Object) error {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range commonLabels(bot.Name) {
		labels[k] = v
	}
	obj.SetLabels(labels)
	return controllerutil.SetControllerReference(bot, obj, r.Scheme)
}

// ownedObjectReasons are the event reasons of the kinds ensureOwned makes.
var ownedObjectReasons = map[string]struct{ created, updated string }{
	"ServiceAccount": {shardkeeperv1.ReasonCreatedServiceAccount, shardkeeperv1.ReasonUpdatedServiceAccount},
	"Role":           {shardkeeperv1.ReasonCreatedRole, shardkeeperv1.ReasonUpdatedRole},
	"RoleBinding":    {shardkeeperv1.ReasonCreatedRoleBinding, shardkeeperv1.ReasonUpdatedRoleBinding},
}

func kindOf(obj client.Object) string {
	switch obj.(type) {
	case *corev1.ServiceAccount:
		return "ServiceAccount"
	case *rbacv1.Role:
		return "Role"
	case *rbacv1.RoleBinding:
		return "RoleBinding"
	case *corev1.Pod:
		return "Pod"
	case *coordinationv1.Lease:
		return "Lease"
	}
	return fmt.Sprintf("%T", obj)
}
