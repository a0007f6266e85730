package controllers

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

const (
	wait = 20 * time.Second
	tick = 100 * time.Millisecond
)

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

func TestCreatesOnePodPerShardGroup(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createTokenSecret(t, ns, "chatty-token", "token")
	bot := newBot(ns, "chatty", 5, 2)
	bot.Spec.Gateway = &shardkeeperv1.GatewaySpec{URL: "ws://fake-discord:8080", APIURL: "http://fake-discord:8080/api/v10"}
	bot.Spec.PodTemplate.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}}
	bot.Spec.PodTemplate.Metadata.Labels = map[string]string{"team": "games"}
	g.Expect(k8s.Create(ctx, bot)).To(Succeed())

	var pods map[string]corev1.Pod
	g.Eventually(func(g Gomega) {
		pods = botPods(g, ns, "chatty")
		g.Expect(pods).To(HaveLen(3))
	}, wait, tick).Should(Succeed())

	wantShards := map[string]string{"chatty-0": "0,1", "chatty-1": "2,3", "chatty-2": "4"}
	for name, shardIDs := range wantShards {
		pod, ok := pods[name]
		g.Expect(ok).To(BeTrue(), "pod %s missing; have %v", name, keys(pods))
		g.Expect(metav1.IsControlledBy(&pod, bot)).To(BeTrue(), "pod %s has no controller reference to its bot", name)
		g.Expect(pod.Labels).To(HaveKeyWithValue("team", "games"))
		g.Expect(pod.Labels).To(HaveKeyWithValue(shardkeeperv1.LabelTopology, "5x2"))
		g.Expect(pod.Spec.ServiceAccountName).To(Equal("shardkeeper-chatty"))

		c := pod.Spec.Containers[0]
		g.Expect(c.Image).To(Equal(testDefaultImage))
		env := envOf(c)
		g.Expect(env[shardkeeperv1.EnvShardIDs].Value).To(Equal(shardIDs))
		g.Expect(env[shardkeeperv1.EnvShardCount].Value).To(Equal("5"))
		g.Expect(env[shardkeeperv1.EnvBotName].Value).To(Equal("chatty"))
		g.Expect(env[shardkeeperv1.EnvIntents].Value).To(Equal("GUILDS,GUILD_MESSAGES"))
		g.Expect(env[shardkeeperv1.EnvGatewayURL].Value).To(Equal("ws://fake-discord:8080"))
		g.Expect(env[shardkeeperv1.EnvAPIURL].Value).To(Equal("http://fake-discord:8080/api/v10"))
		g.Expect(env[shardkeeperv1.EnvLeaseDurationSeconds].Value).To(Equal("20"))
		g.Expect(env[shardkeeperv1.EnvPodName].ValueFrom.FieldRef.FieldPath).To(Equal("metadata.name"))
		g.Expect(env[shardkeeperv1.EnvNamespace].ValueFrom.FieldRef.FieldPath).To(Equal("metadata.namespace"))
		g.Expect(env["LOG_LEVEL"].Value).To(Equal("debug"))

		// The token is a file from the Secret, never an env value.
		g.Expect(env[shardkeeperv1.EnvTokenFile].Value).To(Equal("/var/run/secrets/shardkeeper/token"))
		for _, e := range c.Env {
			g.Expect(e.Value).NotTo(ContainSubstring("fake.token"))
			g.Expect(e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil).To(BeTrue(), "env %s reads a Secret", e.Name)
		}
		var tokenVol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == "token" {
				tokenVol = &pod.Spec.Volumes[i]
			}
		}
		g.Expect(tokenVol).NotTo(BeNil())
		g.Expect(tokenVol.Secret.SecretName).To(Equal("chatty-token"))
		g.Expect(tokenVol.Secret.Items).To(Equal([]corev1.KeyToPath{{Key: "token", Path: "token"}}))
		g.Expect(c.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "token", MountPath: "/var/run/secrets/shardkeeper", ReadOnly: true}))

		// Probes on the named health port.
		g.Expect(c.Ports).To(ContainElement(HaveField("Name", "health")))
		for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.StartupProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
			g.Expect(probe).NotTo(BeNil())
			g.Expect(probe.HTTPGet.Path).To(Equal(path))
			g.Expect(probe.HTTPGet.Port.StrVal).To(Equal("health"))
		}

		// Restricted security context.
		sc := c.SecurityContext
		g.Expect(*sc.RunAsNonRoot).To(BeTrue())
		g.Expect(*sc.ReadOnlyRootFilesystem).To(BeTrue())
		g.Expect(*sc.AllowPrivilegeEscalation).To(BeFalse())
		g.Expect(sc.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))
		g.Expect(sc.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
		g.Expect(*pod.Spec.SecurityContext.RunAsNonRoot).To(BeTrue())
	}

	// Status while pods start, then when they are ready.
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "chatty")
		g.Expect(b.Status.Pods).To(Equal(int32(3)))
		g.Expect(b.Status.ShardsSummary).To(Equal("0/5"))
		g.Expect(b.Status.Phase).To(Equal(shardkeeperv1.PhaseStarting))
		g.Expect(meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionReady).Reason).To(Equal(shardkeeperv1.ReasonShardsNotReady))
	}, wait, tick).Should(Succeed())

	markAllReady(g, ns, "chatty")
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "chatty")
		g.Expect(b.Status.ShardsSummary).To(Equal("5/5"))
		g.Expect(b.Status.ReadyShards).To(Equal(int32(5)))
		g.Expect(b.Status.Phase).To(Equal(shardkeeperv1.PhaseRunning))
		g.Expect(b.Status.ObservedGeneration).To(Equal(b.Generation))
		g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, shardkeeperv1.ConditionReady)).To(BeTrue())
		g.Expect(meta.IsStatusConditionFalse(b.Status.Conditions, shardkeeperv1.ConditionProgressing)).To(BeTrue())
		g.Expect(meta.IsStatusConditionFalse(b.Status.Conditions, shardkeeperv1.ConditionDegraded)).To(BeTrue())
	}, wait, tick).Should(Succeed())

	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "chatty") }, wait, tick).Should(
		ContainElements("CreatedServiceAccount", "CreatedRole", "CreatedRoleBinding", shardkeeperv1.ReasonPodCreated, shardkeeperv1.ReasonAllShardsReady))
}

func TestBotPodsGetLeaseAccessAndNothingElse(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createTokenSecret(t, ns, "leasy-token", "token")
	bot := newBot(ns, "leasy", 3, 1)
	g.Expect(k8s.Create(ctx, bot)).To(Succeed())

	key := client.ObjectKey{Namespace: ns, Name: "shardkeeper-leasy"}
	var sa corev1.ServiceAccount
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, key, &sa)).To(Succeed())
		g.Expect(k8s.Get(ctx, key, &role)).To(Succeed())
		g.Expect(k8s.Get(ctx, key, &binding)).To(Succeed())
	}, wait, tick).Should(Succeed())
	for _, obj := range []client.Object{&sa, &role, &binding} {
		g.Expect(metav1.IsControlledBy(obj, bot)).To(BeTrue(), "%T has no controller reference to its bot", obj)
	}
	g.Expect(binding.RoleRef.Name).To(Equal("shardkeeper-leasy"))
	g.Expect(binding.Subjects).To(Equal([]rbacv1.Subject{{Kind: "ServiceAccount", Name: "shardkeeper-leasy", Namespace: ns}}))
	// The pods' heartbeat Leases and the one identify bucket of a bot with max_concurrency 1.
	g.Expect(role.Rules).To(Equal(leaseRules([]string{"leasy-0", "leasy-1", "leasy-2", "leasy-identify0"})))

	// Ask the API server's RBAC authorizer what the pods' identity may do.
	cs := kubernetes.NewForConfigOrDie(restConfig)
	can := func(verb, group, resource, name string) bool {
		review, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   "system:serviceaccount:" + ns + ":shardkeeper-leasy",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: ns, Verb: verb, Group: group, Resource: resource, Name: name,
				},
			},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return review.Status.Allowed
	}
	g.Eventually(func() bool { return can("update", "coordination.k8s.io", "leases", "leasy-1") }, wait, tick).Should(BeTrue())
	// Not create: a pod that could create any Lease could plant another bot's (podleases.go).
	g.Expect(can("create", "coordination.k8s.io", "leases", "")).To(BeFalse())
	g.Expect(can("create", "coordination.k8s.io", "leases", "leasy-1")).To(BeFalse())
	g.Expect(can("get", "coordination.k8s.io", "leases", "leasy-2")).To(BeTrue())
	g.Expect(can("update", "coordination.k8s.io", "leases", "other-bot-0")).To(BeFalse())
	g.Expect(can("delete", "coordination.k8s.io", "leases", "leasy-1")).To(BeFalse())
	g.Expect(can("list", "coordination.k8s.io", "leases", "")).To(BeFalse())
	g.Expect(can("get", "", "secrets", "leasy-token")).To(BeFalse())
	g.Expect(can("list", "", "pods", "")).To(BeFalse())
	g.Expect(can("update", "shardkeeper.dev", "discordbots", "leasy")).To(BeFalse())

	// Resharding widens the Role to the new layout's pods, beside the old ones still running.
	updateBot(g, bot, func(b *shardkeeperv1.DiscordBot) {
		b.Spec.Shards.IntVal = 4
	})
	g.Eventually(func(g Gomega) []string {
		g.Expect(k8s.Get(ctx, key, &role)).To(Succeed())
		return role.Rules[0].ResourceNames
	}, wait, tick).Should(Equal([]string{"leasy-0-g1", "leasy-1-g1", "leasy-2-g1", "leasy-3-g1", "leasy-0", "leasy-1", "leasy-2", "leasy-identify0"}))
}

func TestTokenSecretMissingBlocksPodsUntilItAppears(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	bot := newBot(ns, "tokenless", 2, 1)
	g.Expect(k8s.Create(ctx, bot)).To(Succeed())

	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "tokenless")
		ready := meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(shardkeeperv1.ReasonTokenSecretMissing))
		g.Expect(ready.Message).To(ContainSubstring(ns + "/tokenless-token"))
		g.Expect(b.Status.Phase).To(Equal(shardkeeperv1.PhasePending))
	}, wait, tick).Should(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(botPods(g, ns, "tokenless")).To(BeEmpty()) }, time.Second, tick).Should(Succeed())

	// A Secret without the key is still missing the token, and says which key.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tokenless-token", Namespace: ns},
		Data: map[string][]byte{"other": []byte("x")}}
	g.Expect(k8s.Create(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) string {
		return meta.FindStatusCondition(getBot(g, ns, "tokenless").Status.Conditions, shardkeeperv1.ConditionReady).Message
	}, wait, tick).Should(ContainSubstring(`has no key "token"`))
	g.Expect(botPods(g, ns, "tokenless")).To(BeEmpty())

	// Adding the key starts the bot at once: the Secret watch finds the bot through the index.
	secret.Data["token"] = []byte("MTIz.fake.token")
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, "tokenless")).To(HaveLen(2)) }, 5*time.Second, tick).Should(Succeed())

	// The token never leaks into status or events.
	b := getBot(g, ns, "tokenless")
	raw, _ := json.Marshal(b.Status)
	g.Expect(string(raw)).NotTo(ContainSubstring("fake.token"))
	g.Expect(eventReasons(g, ns, "tokenless")).To(ContainElement(shardkeeperv1.ReasonTokenSecretMissing))
}

func TestSpecChangeReplacesPodsOneAtATime(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ns, bot := startedBot(t, g, "rolly", 3, 1, 3)
	markAllReady(g, ns, "rolly")
	oldRevision := botPods(g, ns, "rolly")["rolly-0"].Labels[shardkeeperv1.LabelRevision]
	g.Eventually(func(g Gomega) shardkeeperv1.BotPhase { return getBot(g, ns, "rolly").Status.Phase }, wait, tick).Should(Equal(shardkeeperv1.PhaseRunning))

	updateBot(g, bot, func(b *shardkeeperv1.DiscordBot) {
		b.Spec.Image = "registry.test/custom-bot:v2"
	})

	updated := func(g Gomega) (newPods, oldPods []string) {
		for name, p := range botPods(g, ns, "rolly") {
			if p.Labels[shardkeeperv1.LabelRevision] == oldRevision {
				oldPods = append(oldPods, name)
			} else {
				g.Expect(p.Spec.Containers[0].Image).To(Equal("registry.test/custom-bot:v2"))
				newPods = append(newPods, name)
			}
		}
		return newPods, oldPods
	}
	for step := 1; step <= 3; step++ {
		// Exactly one more pod moves to the new revision...
		var newPods []string
		g.Eventually(func(g Gomega) {
			newPods, _ = updated(g)
			g.Expect(newPods).To(HaveLen(step))
		}, wait, tick).Should(Succeed(), "step %d", step)
		// ...and no further one while the new pod is not ready.
		g.Consistently(func(g Gomega) {
			n, o := updated(g)
			g.Expect(len(n)+len(o)).To(BeNumerically(">=", 2), "more than one shard group down at once")
			g.Expect(len(n)).To(BeNumerically("<=", step))
		}, 1500*time.Millisecond, tick).Should(Succeed(), "step %d", step)
		if step < 3 {
			g.Eventually(func(g Gomega) shardkeeperv1.BotPhase { return getBot(g, ns, "rolly").Status.Phase }, wait, tick).
				Should(Equal(shardkeeperv1.PhaseUpdating))
		}
		markAllReady(g, ns, "rolly")
	}
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "rolly")
		g.Expect(b.Status.Phase).To(Equal(shardkeeperv1.PhaseRunning))
		g.Expect(b.Status.UpdatedPods).To(Equal(int32(3)))
		g.Expect(b.Status.Image).To(Equal("registry.test/custom-bot:v2"))
		g.Expect(b.Status.Restarts).To(BeZero(), "a rollout is not a restart")
	}, wait, tick).Should(Succeed())
	g.Expect(eventReasons(g, ns, "rolly")).To(ContainElement(shardkeeperv1.ReasonPodReplaced))
}

func TestReshardStartsTheNewLayoutBesideTheOld(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns, bot := startedBot(t, g, "grow", 2, 1, 2)
	markAllReady(g, ns, "grow")
	g.Eventually(func(g Gomega) shardkeeperv1.BotPhase { return getBot(g, ns, "grow").Status.Phase }, wait, tick).
		Should(Equal(shardkeeperv1.PhaseRunning))

	updateBot(g, bot, func(b *shardkeeperv1.DiscordBot) {
		b.Spec.Shards.IntVal = 6
		b.Spec.ShardsPerPod = 2
	})
	// The new layout's pods start under new names while the old ones keep serving, and
	// the bot stays Ready through the old layout.
	g.Eventually(func(g Gomega) {
		pods := botPods(g, ns, "grow")
		g.Expect(pods).To(HaveKey("grow-0"))
		g.Expect(pods).To(HaveKey("grow-1"))
		for _, name := range []string{"grow-0-g1", "grow-1-g1", "grow-2-g1"} {
			g.Expect(pods).To(HaveKey(name))
			g.Expect(pods[name].Labels[shardkeeperv1.LabelTopology]).To(Equal("6x2"))
			g.Expect(pods[name].Labels[shardkeeperv1.LabelGeneration]).To(Equal("1"))
		}
		env := envOf(pods["grow-2-g1"].Spec.Containers[0])
		g.Expect(env[shardkeeperv1.EnvShardIDs].Value).To(Equal("4,5"))
		g.Expect(env[shardkeeperv1.EnvLeaseName].Value).To(Equal("grow-2-g1"))

		b := getBot(g, ns, "grow")
		g.Expect(b.Status.Phase).To(Equal(shardkeeperv1.PhaseUpdating))
		g.Expect(b.Status.Resharding).NotTo(BeNil())
		g.Expect(b.Status.Resharding.FromShards).To(Equal(int32(2)))
		g.Expect(b.Status.Resharding.ToShards).To(Equal(int32(6)))
		g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, shardkeeperv1.ConditionResharding)).To(BeTrue())
		ready := meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionReady)
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(ready.Reason).To(Equal(shardkeeperv1.ReasonOldLayoutServing))
	}, wait, tick).Should(Succeed())
	// The old pods stay while any new one is not ready.
	g.Consistently(func(g Gomega) { g.Expect(botPods(g, ns, "grow")).To(HaveKey("grow-0")) }, time.Second, tick).Should(Succeed())

	markAllReady(g, ns, "grow")
	g.Eventually(func(g Gomega) {
		pods := botPods(g, ns, "grow")
		g.Expect(pods).To(HaveLen(3))
		g.Expect(pods).NotTo(HaveKey("grow-0"))
		b := getBot(g, ns, "grow")
		g.Expect(b.Status.Resharding).To(BeNil())
		g.Expect(b.Status.Phase).To(Equal(shardkeeperv1.PhaseRunning))
		g.Expect(b.Status.ShardsSummary).To(Equal("6/6"))
		g.Expect(meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionResharding).Reason).To(Equal(shardkeeperv1.ReasonLayoutSettled))
	}, wait, tick).Should(Succeed())
	g.Expect(eventReasons(g, ns, "grow")).To(ContainElement(shardkeeperv1.ReasonShardGroupsChanged))

	// Each pod's heartbeat Lease belongs to the bot, so it outlives a replaced pod (and its
	// resume state with it); the old layout's Leases go with the old layout.
	g.Eventually(func(g Gomega) []string {
		var leases coordinationv1.LeaseList
		g.Expect(k8s.List(ctx, &leases, client.InNamespace(ns))).To(Succeed())
		var names []string
		for _, l := range leases.Items {
			g.Expect(metav1.IsControlledBy(&l, bot)).To(BeTrue(), "Lease %s is not controlled by its bot", l.Name)
			names = append(names, l.Name)
		}
		return names
	}, wait, tick).Should(ConsistOf("grow-0-g1", "grow-1-g1", "grow-2-g1", "grow-identify0"))
}

func TestSuspendStopsPodsAndKeepsTheRest(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns, bot := startedBot(t, g, "sleepy", 2, 1, 2)

	updateBot(g, bot, func(b *shardkeeperv1.DiscordBot) {
		b.Spec.Suspend = true
	})
	g.Eventually(func(g Gomega) {
		g.Expect(botPods(g, ns, "sleepy")).To(BeEmpty())
		b := getBot(g, ns, "sleepy")
		g.Expect(b.Status.Phase).To(Equal(shardkeeperv1.PhaseSuspended))
		g.Expect(meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionReady).Reason).To(Equal(shardkeeperv1.ReasonSuspended))
	}, wait, tick).Should(Succeed())
	// Nothing but pods is deleted.
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shardkeeper-sleepy"}, &rbacv1.Role{})).To(Succeed())
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sleepy-token"}, &corev1.Secret{})).To(Succeed())
	g.Consistently(func(g Gomega) { g.Expect(botPods(g, ns, "sleepy")).To(BeEmpty()) }, time.Second, tick).Should(Succeed())

	updateBot(g, bot, func(b *shardkeeperv1.DiscordBot) {
		b.Spec.Suspend = false
	})
	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, "sleepy")).To(HaveLen(2)) }, wait, tick).Should(Succeed())
}

func TestFailedPodsAreReplacedAndRestartsCounted(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns, _ := startedBot(t, g, "flaky", 2, 1, 2)
	markAllReady(g, ns, "flaky")

	// The kubelet restarted flaky-0's container twice and it is now crash looping.
	pod := botPods(g, ns, "flaky")["flaky-0"]
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: "bot", RestartCount: 2, Image: "x", ImageID: "x",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 20s restarting failed container"}},
	}}
	g.Expect(k8s.Status().Update(ctx, &pod)).To(Succeed())
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "flaky")
		g.Expect(b.Status.Restarts).To(Equal(int64(2)))
		g.Expect(b.Status.Phase).To(Equal(shardkeeperv1.PhaseDegraded))
		g.Expect(b.Status.Problems).To(ConsistOf(shardkeeperv1.ShardGroupProblem{
			Pod: "flaky-0", Shards: "0", Reason: "CrashLoopBackOff", Message: "container bot: back-off 20s restarting failed container"}))
		g.Expect(meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionDegraded).Reason).To(Equal(shardkeeperv1.ReasonPodsFailing))
	}, wait, tick).Should(Succeed())

	// flaky-1 is evicted: the operator replaces it and counts one more restart.
	evicted := botPods(g, ns, "flaky")["flaky-1"]
	evicted.Status.Phase = corev1.PodFailed
	evicted.Status.Reason = "Evicted"
	g.Expect(k8s.Status().Update(ctx, &evicted)).To(Succeed())
	g.Eventually(func(g Gomega) {
		p, ok := botPods(g, ns, "flaky")["flaky-1"]
		g.Expect(ok).To(BeTrue())
		g.Expect(p.UID).NotTo(Equal(evicted.UID))
		g.Expect(getBot(g, ns, "flaky").Status.Restarts).To(Equal(int64(3)))
	}, wait, tick).Should(Succeed())
	g.Expect(eventReasons(g, ns, "flaky")).To(ContainElements(shardkeeperv1.ReasonPodFailed, shardkeeperv1.ReasonPodsFailing))

	// Counting is idempotent: later reconciles do not count the same restarts again.
	markAllReady(g, ns, "flaky")
	g.Consistently(func(g Gomega) int64 { return getBot(g, ns, "flaky").Status.Restarts }, time.Second, tick).Should(Equal(int64(3)))
}

func TestKubectlGetShowsShardsPhaseAndRestarts(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns, _ := startedBot(t, g, "seen", 4, 2, 2)
	markAllReady(g, ns, "seen")
	g.Eventually(func(g Gomega) shardkeeperv1.BotPhase { return getBot(g, ns, "seen").Status.Phase }, wait, tick).Should(Equal(shardkeeperv1.PhaseRunning))

	// What `kubectl get discordbots -o wide` prints comes from the server's Table response.
	cs := kubernetes.NewForConfigOrDie(restConfig)
	raw, err := cs.RESTClient().Get().AbsPath("/apis/shardkeeper.dev/v1/namespaces", ns, "discordbots").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	var table metav1.Table
	g.Expect(json.Unmarshal(raw, &table)).To(Succeed())
	var columns []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			columns = append(columns, strings.ToUpper(c.Name))
		}
	}
	g.Expect(columns).To(Equal([]string{"NAME", "SHARDS", "PHASE", "RESTARTS", "AGE"}))
	g.Expect(table.Rows).To(HaveLen(1))
	cell := func(name string) any {
		i := slices.IndexFunc(table.ColumnDefinitions, func(c metav1.TableColumnDefinition) bool { return c.Name == name })
		g.Expect(i).To(BeNumerically(">=", 0), "no column %s", name)
		return table.Rows[0].Cells[i]
	}
	g.Expect(cell("Shards")).To(Equal("4/4"))
	g.Expect(cell("Phase")).To(Equal("Running"))
	g.Expect(cell("Restarts")).To(BeNumerically("==", 0))
	g.Expect(cell("Reason")).To(Equal(shardkeeperv1.ReasonAllShardsReady))
	g.Expect(cell("Image")).To(Equal(testDefaultImage))
	g.Expect(cell("Pods")).To(BeNumerically("==", 2))

	// The same facts on the operator's /metrics.
	g.Expect(testutil.ToFloat64(metricBotReadyShards.WithLabelValues(ns, "seen"))).To(Equal(4.0))
	g.Expect(testutil.ToFloat64(metricBotReady.WithLabelValues(ns, "seen"))).To(Equal(1.0))

	// Deleting the bot drops its series.
	g.Expect(hasSeries(metricBotShards, ns, "seen")).To(BeTrue())
	g.Expect(k8s.Delete(ctx, getBot(g, ns, "seen"))).To(Succeed())
	g.Eventually(func() bool { return hasSeries(metricBotShards, ns, "seen") }, wait, tick).Should(BeFalse())
}

// hasSeries tells whether a metric has a series for the bot.
func hasSeries(c prometheus.Collector, ns, bot string) bool {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	found := false
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			continue
		}
		labels := map[string]string{}
		for _, l := range pb.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["namespace"] == ns && labels["bot"] == bot {
			found = true
		}
	}
	return found
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestPodThatNeverGetsReadyTurnsDegradedOnTime(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createTokenSecret(t, ns, "slow-token", "token")
	bot := newBot(ns, "slow", 1, 1)
	g.Expect(k8s.Create(ctx, bot)).To(Succeed())
	var pod corev1.Pod
	g.Eventually(func(g Gomega) {
		p, ok := botPods(g, ns, "slow")["slow-0"]
		g.Expect(ok).To(BeTrue())
		pod = p
	}, wait, tick).Should(Succeed())

	// Reconcile by hand on a clock of our own, beside the running operator.
	clock := clocktesting.NewFakePassiveClock(pod.CreationTimestamp.Add(time.Minute))
	// It asks the suite's fake Discord: an unreachable one would schedule its own retry. It
	// reads through the operator's cache, whose index finds a bot's pods.
	r := &DiscordBotReconciler{Client: cached, APIReader: k8s, Scheme: k8s.Scheme(), DefaultBotImage: testDefaultImage, Clock: clock,
		DiscordAPIURL: discord.APIURL(), TrustedHosts: testTrustedHosts}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(bot)}

	// A minute in, the pod is still starting: come back when its grace runs out, no sooner
	// and without polling.
	var res ctrl.Result
	g.Eventually(func() error {
		var err error
		res, err = r.Reconcile(ctx, req)
		return err
	}, wait, tick).Should(Succeed())
	g.Expect(res.RequeueAfter).To(Equal(startupGrace - time.Minute))

	// Past the grace, the pod is a problem and the bot is Degraded.
	clock.SetTime(pod.CreationTimestamp.Add(startupGrace + time.Second))
	g.Eventually(func() error { _, err := r.Reconcile(ctx, req); return err }, wait, tick).Should(Succeed())
	b := getBot(g, ns, "slow")
	g.Expect(b.Status.Problems).To(ConsistOf(HaveField("Reason", "NotReady")))
	g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, shardkeeperv1.ConditionDegraded)).To(BeTrue())
}

func TestAFatalReasonHaltsTheBotUntilTheSecretChanges(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns, _ := startedBot(t, g, "badtoken", 2, 1, 2)

	// The bot process exited with TokenInvalid; the kubelet is about to restart it again.
	pod := botPods(g, ns, "badtoken")["badtoken-1"]
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: "bot", RestartCount: 1, Image: "x", ImageID: "x",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 10, Message: "TokenInvalid: Discord rejected the bot token (close 4004 authentication failed)"}},
	}}
	g.Expect(k8s.Status().Update(ctx, &pod)).To(Succeed())

	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "badtoken")
		g.Expect(b.Status.Phase).To(Equal(shardkeeperv1.PhaseFailed))
		g.Expect(b.Status.Halted).NotTo(BeNil())
		g.Expect(b.Status.Halted.Reason).To(Equal(shardkeeperv1.ReasonTokenInvalid))
		ready := meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionReady)
		g.Expect(ready.Reason).To(Equal(shardkeeperv1.ReasonTokenInvalid))
		g.Expect(ready.Message).To(ContainSubstring("Discord rejected the bot token"))
		g.Expect(botPods(g, ns, "badtoken")).To(BeEmpty())
	}, wait, tick).Should(Succeed())
	// No crash loop: nothing comes back while nothing changed.
	g.Consistently(func(g Gomega) { g.Expect(botPods(g, ns, "badtoken")).To(BeEmpty()) }, 2*time.Second, tick).Should(Succeed())
	g.Expect(eventReasons(g, ns, "badtoken")).To(ContainElement(shardkeeperv1.ReasonTokenInvalid))

	// A new token starts it again.
	var secret corev1.Secret
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "badtoken-token"}, &secret)).To(Succeed())
	secret.Data["token"] = []byte(testToken + "\n") // the fake Discord knows only this token
	g.Expect(k8s.Update(ctx, &secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(botPods(g, ns, "badtoken")).To(HaveLen(2))
		g.Expect(getBot(g, ns, "badtoken").Status.Halted).To(BeNil())
	}, wait, tick).Should(Succeed())
	g.Expect(eventReasons(g, ns, "badtoken")).To(ContainElement("Resumed"))
}
