package charts_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/controllers"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
	"github.com/shardkeeper/shardkeeper/internal/trustedhosts"
)

// serviceAccount is the identity the operator's requests carry.
type serviceAccount struct{ namespace, name string }

func (sa serviceAccount) user() string {
	return "system:serviceaccount:" + sa.namespace + ":" + sa.name
}

// groups are those the API server gives every ServiceAccount token.
func (sa serviceAccount) groups() []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.namespace, "system:authenticated"}
}

// canI is one `kubectl auth can-i VERB RESOURCE[/SUBRESOURCE] -n NAMESPACE` question;
// namespace "" asks about every namespace at once (--all-namespaces).
type canI struct {
	verb, group, resource, subresource, namespace string
	want                                          bool
}

func (c canI) String() string {
	resource := c.resource
	if c.group != "" {
		resource += "." + c.group
	}
	if c.subresource != "" {
		resource += "/" + c.subresource
	}
	where := "in every namespace"
	if c.namespace != "" {
		where = "in " + c.namespace
	}
	return c.verb + " " + resource + " " + where
}

// checkAccess asks the API server's authorizer, as `kubectl auth can-i --as` does, what the
// ServiceAccount may do.
func checkAccess(t *testing.T, ctx context.Context, k8s client.Client, sa serviceAccount, questions []canI) {
	t.Helper()
	for _, q := range questions {
		review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: sa.user(), Groups: sa.groups(),
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: q.verb, Group: q.group, Resource: q.resource, Subresource: q.subresource, Namespace: q.namespace,
			},
		}}
		if err := k8s.Create(ctx, review); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if review.Status.Allowed != q.want {
			t.Errorf("%s may %s: %v, want %v (%s)", sa.user(), q, review.Status.Allowed, q.want, review.Status.Reason)
		}
	}
}

// The chart with watchNamespaces gives the operator what it needs in the watched namespaces,
// leader election in its own, and nothing anywhere else.
func checkWatchNamespacesAccess(t *testing.T, ctx context.Context, k8s client.Client, sa serviceAccount, watched []string) {
	var questions []canI
	for _, ns := range watched {
		for _, verb := range []string{"get", "list", "watch", "create", "update", "patch", "delete"} {
			questions = append(questions,
				canI{verb: verb, resource: "pods", namespace: ns, want: true},
				canI{verb: verb, resource: "serviceaccounts", namespace: ns, want: true},
				canI{verb: verb, group: "rbac.authorization.k8s.io", resource: "roles", namespace: ns, want: true},
				canI{verb: verb, group: "rbac.authorization.k8s.io", resource: "rolebindings", namespace: ns, want: true},
				canI{verb: verb, group: "coordination.k8s.io", resource: "leases", namespace: ns, want: true},
			)
		}
		questions = append(questions,
			// The token is read by name; list and watch carry the Secrets' metadata only
			// (the operator watches them as PartialObjectMetadata) to see a token change.
			canI{verb: "get", resource: "secrets", namespace: ns, want: true},
			canI{verb: "list", resource: "secrets", namespace: ns, want: true},
			canI{verb: "watch", resource: "secrets", namespace: ns, want: true},
			// It makes and patches the gateway proxy's placeholder tokens (only Secrets
			// it labelled: the admission policy); it never replaces or deletes one.
			canI{verb: "create", resource: "secrets", namespace: ns, want: true},
			canI{verb: "patch", resource: "secrets", namespace: ns, want: true},
			canI{verb: "update", resource: "secrets", namespace: ns, want: false},
			canI{verb: "delete", resource: "secrets", namespace: ns, want: false},
			canI{verb: "create", group: "events.k8s.io", resource: "events", namespace: ns, want: true},
			canI{verb: "list", group: "shardkeeper.dev", resource: "discordbots", namespace: ns, want: true},
			canI{verb: "patch", group: "shardkeeper.dev", resource: "discordbots", subresource: "status", namespace: ns, want: true},
			// Nothing that would let it become someone else.
			canI{verb: "create", resource: "serviceaccounts", subresource: "token", namespace: ns, want: false},
			canI{verb: "bind", group: "rbac.authorization.k8s.io", resource: "roles", namespace: ns, want: false},
			canI{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "roles", namespace: ns, want: false},
			canI{verb: "impersonate", resource: "serviceaccounts", namespace: ns, want: false},
			canI{verb: "create", resource: "pods", subresource: "exec", namespace: ns, want: false},
		)
	}
	questions = append(questions,
		// Leader election, in the release's namespace, which it does not watch.
		canI{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: sa.namespace, want: true},
		canI{verb: "create", resource: "pods", namespace: sa.namespace, want: false},
		canI{verb: "get", resource: "secrets", namespace: sa.namespace, want: false},
		// Outside the watched namespaces: nothing.
		canI{verb: "create", resource: "pods", namespace: "default", want: false},
		canI{verb: "delete", resource: "pods", namespace: "kube-system", want: false},
		canI{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "kube-node-lease", want: false},
		canI{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "kube-node-lease", want: false},
		canI{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: "kube-node-lease", want: false},
		canI{verb: "create", group: "rbac.authorization.k8s.io", resource: "roles", namespace: "default", want: false},
		canI{verb: "create", resource: "serviceaccounts", namespace: "default", want: false},
		canI{verb: "get", resource: "secrets", namespace: "kube-system", want: false},
		canI{verb: "list", resource: "secrets", namespace: "default", want: false},
		// And nothing across every namespace.
		canI{verb: "list", resource: "secrets", want: false},
		canI{verb: "watch", resource: "secrets", want: false},
		canI{verb: "list", resource: "pods", want: false},
		canI{verb: "list", group: "coordination.k8s.io", resource: "leases", want: false},
		canI{verb: "list", group: "shardkeeper.dev", resource: "discordbots", want: false},
		canI{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterroles", want: false},
		canI{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings", want: false},
		canI{verb: "list", resource: "nodes", want: false},
		canI{verb: "list", resource: "namespaces", want: false},
	)
	checkAccess(t, ctx, k8s, sa, questions)
}

// Without watchNamespaces RBAC has to let the operator write pods and Leases in every
// namespace, kube-node-lease included, and create and patch Secrets (the gateway proxy's
// placeholder tokens): that is what the admission policy is for. It still never replaces
// or deletes a Secret, makes API tokens or grants what it does not hold.
func checkClusterWideAccess(t *testing.T, ctx context.Context, k8s client.Client, sa serviceAccount) {
	checkAccess(t, ctx, k8s, sa, []canI{
		{verb: "create", resource: "pods", namespace: "any", want: true},
		{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "kube-node-lease", want: true},
		{verb: "list", resource: "secrets", want: true},
		{verb: "update", resource: "secrets", namespace: "any", want: false},
		{verb: "delete", resource: "secrets", namespace: "any", want: false},
		{verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "any", want: false},
		{verb: "bind", group: "rbac.authorization.k8s.io", resource: "roles", namespace: "any", want: false},
		{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "roles", namespace: "any", want: false},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterroles", want: false},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings", want: false},
		{verb: "list", resource: "nodes", want: false},
		{verb: "delete", resource: "namespaces", want: false},
	})
}

// checkAdmissionPolicy acts as the operator's ServiceAccount (impersonation) on a cluster
// where RBAC lets it write everywhere, and shows that the chart's admission policy lets it
// write only what carries its label, and its leader election Lease.
func checkAdmissionPolicy(t *testing.T, ctx context.Context, env *testenv.Env, admin client.Client, sa serviceAccount) {
	operator, err := client.New(impersonating(env, sa), client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	const botNS = "bots-c"
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: botNS}}); err != nil {
		t.Fatal(err)
	}
	managed := map[string]string{shardkeeperv1.LabelManagedBy: shardkeeperv1.ManagedByValue}
	lease := func(ns, name string, labels map[string]string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptrTo("someone")}}
	}
	pod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: botNS, Name: name, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "bot", Image: "registry.test/bot"}}}}
	}

	secret := func(name string, labels map[string]string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: botNS, Name: name, Labels: labels},
			StringData: map[string]string{"token": "a-bot-token"}}
	}

	// A kubelet's node Lease, and objects made by someone else in a bot namespace.
	nodeLease := lease("kube-node-lease", "node-1", nil)
	foreignPod := pod("not-ours", nil)
	botToken := secret("bot-token", nil)
	for _, obj := range []client.Object{nodeLease, foreignPod, botToken, lease(botNS, "not-ours", map[string]string{"app": "other"}),
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: botNS, Name: "lease-reader", Labels: managed},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get"}}}},
	} {
		if err := admin.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	waitUntilEnforced(t, ctx, operator, botNS)

	labelled := func(obj client.Object) client.Object { obj.SetLabels(managed); return obj }
	binding := func() *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: botNS, Name: "bot"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "lease-reader"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "bot", Namespace: botNS}}}
	}
	get := func(obj client.Object) client.Object {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		return obj
	}
	renew := func(l *coordinationv1.Lease) *coordinationv1.Lease {
		l = get(l).(*coordinationv1.Lease)
		l.Spec.HolderIdentity = ptrTo("shardkeeper")
		return l
	}
	leaderElection := lease(sa.namespace, controllers.LeaderElectionID, nil)

	// In order: some steps act on what an earlier one made.
	steps := []struct {
		name    string
		do      func() error
		allowed bool
	}{
		{"create an unlabelled Lease", func() error { return operator.Create(ctx, lease(botNS, "unlabelled", nil)) }, false},
		{"create an unlabelled pod", func() error { return operator.Create(ctx, pod("unlabelled", nil), client.DryRunAll) }, false},
		{"create an unlabelled ServiceAccount", func() error {
			return operator.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: botNS, Name: "bot"}}, client.DryRunAll)
		}, false},
		{"create an unlabelled Role", func() error {
			return operator.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: botNS, Name: "bot"}}, client.DryRunAll)
		}, false},
		{"create an unlabelled RoleBinding", func() error { return operator.Create(ctx, binding(), client.DryRunAll) }, false},

		{"create a labelled pod", func() error { return operator.Create(ctx, pod("ours", managed), client.DryRunAll) }, true},
		{"create a labelled ServiceAccount", func() error {
			return operator.Create(ctx, labelled(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: botNS, Name: "bot"}}), client.DryRunAll)
		}, true},
		{"create a labelled Role", func() error {
			return operator.Create(ctx, labelled(&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: botNS, Name: "bot"}}), client.DryRunAll)
		}, true},
		{"create a labelled RoleBinding", func() error { return operator.Create(ctx, labelled(binding()), client.DryRunAll) }, true},
		{"create a labelled Lease", func() error { return operator.Create(ctx, lease(botNS, "ours", managed)) }, true},
		{"renew its Lease", func() error { return operator.Update(ctx, renew(lease(botNS, "ours", nil))) }, true},
		{"take its label off its Lease", func() error {
			l := get(lease(botNS, "ours", nil))
			l.SetLabels(nil)
			return operator.Update(ctx, l)
		}, false},

		{"renew a node's Lease", func() error { return operator.Update(ctx, renew(nodeLease)) }, false},
		{"label a node's Lease as its own", func() error {
			l := renew(nodeLease)
			l.SetLabels(managed)
			return operator.Update(ctx, l)
		}, false},
		{"patch a node's Lease", func() error {
			l := get(nodeLease)
			return operator.Patch(ctx, l, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"holderIdentity":"shardkeeper"}}`)))
		}, false},
		{"delete a node's Lease", func() error { return operator.Delete(ctx, get(nodeLease)) }, false},
		{"delete someone else's Lease", func() error { return operator.Delete(ctx, lease(botNS, "not-ours", nil)) }, false},
		{"delete someone else's pod", func() error { return operator.Delete(ctx, foreignPod) }, false},
		{"delete its Lease", func() error { return operator.Delete(ctx, lease(botNS, "ours", nil)) }, true},

		// Secrets: the placeholder tokens it makes, and no bot's token.
		{"create an unlabelled Secret", func() error { return operator.Create(ctx, secret("unlabelled", nil), client.DryRunAll) }, false},
		{"create a labelled Secret", func() error { return operator.Create(ctx, secret("placeholders", managed), client.DryRunAll) }, true},
		{"patch a bot's token Secret", func() error {
			return operator.Patch(ctx, get(botToken), client.RawPatch(types.MergePatchType, []byte(`{"stringData":{"token":"stolen"}}`)))
		}, false},
		{"label a bot's token Secret as its own", func() error {
			return operator.Patch(ctx, get(botToken), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"app.kubernetes.io/managed-by":"shardkeeper"}}}`)))
		}, false},

		// controller-runtime's leader election makes its Lease without labels.
		{"create its leader election Lease", func() error { return operator.Create(ctx, leaderElection) }, true},
		{"renew its leader election Lease", func() error { return operator.Update(ctx, renew(leaderElection)) }, true},
		{"delete its leader election Lease", func() error { return operator.Delete(ctx, leaderElection) }, true},
		{"create a Lease of that name elsewhere", func() error {
			return operator.Create(ctx, lease(botNS, controllers.LeaderElectionID, nil), client.DryRunAll)
		}, false},
	}
	for _, step := range steps {
		err := step.do()
		switch {
		case step.allowed && err != nil:
			t.Errorf("%s: refused, want allowed: %v", step.name, err)
		case !step.allowed && err == nil:
			t.Errorf("%s: allowed, want refused by the admission policy", step.name)
		case !step.allowed && !deniedByPolicy(err):
			t.Errorf("%s: refused, but not by the admission policy: %v", step.name, err)
		}
	}
	if l := get(nodeLease).(*coordinationv1.Lease); *l.Spec.HolderIdentity != "someone" || l.Labels != nil {
		t.Errorf("the node's Lease changed: holder %s, labels %v", *l.Spec.HolderIdentity, l.Labels)
	}
}

// impersonating is the control plane's admin config acting as the ServiceAccount.
func impersonating(env *testenv.Env, sa serviceAccount) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: sa.user(), Groups: sa.groups()}
	return cfg
}

// waitUntilEnforced waits for the API server to pick the operator's admission policy up
// (seconds at most): until it refuses the operator an unlabelled Lease in namespace (a
// dry run, so nothing is left behind meanwhile).
func waitUntilEnforced(t *testing.T, ctx context.Context, operator client.Client, namespace string) {
	t.Helper()
	probe := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "probe"}}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		return deniedByPolicy(operator.Create(ctx, probe.DeepCopy(), client.DryRunAll)), nil
	})
	if err != nil {
		t.Fatal("the API server never enforced the admission policy; is the ValidatingAdmissionPolicy admission plugin on?")
	}
}

// deniedByPolicy says whether err is the operator's admission policy refusing a request.
func deniedByPolicy(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "app.kubernetes.io/managed-by=shardkeeper")
}

// checkOperatorRunsWithItsGrants runs the operator as the ServiceAccount, with nothing but
// what the release granted it and under its admission policy, and shows that it does its
// work in a watched namespace: leader election, a bot's pods, Leases, ServiceAccount, Role,
// RoleBinding, events and status.
func checkOperatorRunsWithItsGrants(t *testing.T, ctx context.Context, env *testenv.Env, admin client.Client, sa serviceAccount, watched []string) {
	ctrl.SetLogger(logr.Discard())
	cfg := impersonating(env, sa)
	operator, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	waitUntilEnforced(t, ctx, operator, watched[0])
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        env.Scheme,
		Cache:                         controllers.CacheOptions(watched),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		LeaderElection:                true,
		LeaderElectionID:              controllers.LeaderElectionID,
		LeaderElectionNamespace:       sa.namespace,
		LeaderElectionReleaseOnCancel: true,
		// A grant missing for the cache would hold the controller at its first sync:
		// fail within the test's wait, not minutes later.
		Controller: ctrlconfig.Controller{CacheSyncTimeout: 30 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	const token = "MTIz.fake.token"
	discord := discordtest.NewServer(discordtest.Options{Token: token, MaxConcurrency: 1, RecommendedShards: 2})
	defer discord.Close()
	reconciler := controllers.NewDiscordBotReconciler(mgr, "registry.test/shardkeeper/bot:test")
	reconciler.DiscordAPIURL = discord.APIURL()
	reconciler.TrustedHosts = trustedhosts.MustNew(nil, []string{"127.0.0.1"}) // the fake Discord
	if err := reconciler.SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(runCtx) }()
	defer func() {
		stop()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("the operator stopped with %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("the operator did not stop within a minute")
		}
	}()

	ns := watched[0]
	if err := admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "granted-token"},
		Data: map[string][]byte{"token": []byte(token)}}); err != nil {
		t.Fatal(err)
	}
	bot := &shardkeeperv1.DiscordBot{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "granted"},
		Spec: shardkeeperv1.DiscordBotSpec{TokenSecretRef: shardkeeperv1.SecretKeySelector{Name: "granted-token"}, ShardsPerPod: 1}}
	bot.Spec.Shards.IntVal = 2
	if err := admin.Create(ctx, bot); err != nil {
		t.Fatal(err)
	}

	// The bot's objects, as the operator makes them, in the watched namespace.
	want := map[string]client.ObjectList{"pods": &corev1.PodList{}, "Leases": &coordinationv1.LeaseList{},
		"ServiceAccounts": &corev1.ServiceAccountList{}, "Roles": &rbacv1.RoleList{}, "RoleBindings": &rbacv1.RoleBindingList{}}
	wantCount := map[string]int{"pods": 2, "Leases": 3, "ServiceAccounts": 1, "Roles": 1, "RoleBindings": 1}
	var got map[string]int
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		got = map[string]int{}
		for kind, list := range want {
			if err := admin.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{shardkeeperv1.LabelBot: "granted"}); err != nil {
				return false, err
			}
			got[kind] = meta.LenList(list)
		}
		return reflect.DeepEqual(got, wantCount), nil
	})
	if err != nil {
		t.Fatalf("the operator made %v for a 2-shard bot in %s, want %v", got, ns, wantCount)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := admin.Get(ctx, client.ObjectKeyFromObject(bot), bot); err != nil {
			return false, err
		}
		var events eventsv1.EventList
		if err := admin.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return false, err
		}
		return len(bot.Status.Conditions) > 0 && len(events.Items) > 0, nil
	})
	if err != nil {
		t.Errorf("the operator wrote no status or no event for the bot: conditions %v", bot.Status.Conditions)
	}
	var leader coordinationv1.Lease
	if err := admin.Get(ctx, client.ObjectKey{Namespace: sa.namespace, Name: controllers.LeaderElectionID}, &leader); err != nil {
		t.Errorf("no leader election Lease in %s: %v", sa.namespace, err)
	}
}
