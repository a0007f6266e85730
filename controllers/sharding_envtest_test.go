package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// reportShardingRequired writes what botruntime writes when Discord closes a shard with
// 4011: the shard failed for good, on the pod's own Lease.
func reportShardingRequired(g Gomega, pod corev1.Pod, bot string) {
	writeBotLease(g, pod.Namespace, bot, pod.Name, string(pod.UID),
		`[{"id":0,"state":"Failed","guilds":0,"fatalReason":"ShardingRequired","fatalMessage":"Discord requires more shards (close 4011)"}]`)
}

func TestShardsAutoFollowsDiscordAndReshardsOn4011(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	fake := discordtest.NewServer(discordtest.Options{Token: testToken, RecommendedShards: 2, MaxConcurrency: 2})
	defer fake.Close()

	ns := newNamespace(t)
	createTokenSecret(t, ns, "auto-token", "token")
	bot := newBot(ns, "auto", 1, 1)
	bot.Spec.Shards = intstr.FromString(shardkeeperv1.ShardsAuto)
	bot.Spec.Gateway = &shardkeeperv1.GatewaySpec{APIURL: fake.APIURL()}
	g.Expect(k8s.Create(ctx, bot)).To(Succeed())

	// Discord's recommendation and identify concurrency reach the status and the pods.
	g.Eventually(func(g Gomega) {
		pods := botPods(g, ns, "auto")
		g.Expect(pods).To(HaveLen(2))
		g.Expect(envOf(pods["auto-1"].Spec.Containers[0])[shardkeeperv1.EnvShardCount].Value).To(Equal("2"))
		g.Expect(envOf(pods["auto-1"].Spec.Containers[0])[shardkeeperv1.EnvMaxConcurrency].Value).To(Equal("2"))
		b := getBot(g, ns, "auto")
		g.Expect(b.Status.Gateway).NotTo(BeNil())
		g.Expect(b.Status.Gateway.RecommendedShards).To(Equal(int32(2)))
		g.Expect(b.Status.Gateway.MaxConcurrency).To(Equal(int32(2)))
		g.Expect(b.Status.Shards).To(Equal(int32(2)))
	}, wait, tick).Should(Succeed())
	g.Expect(fake.Stats().RESTRequests["GET /gateway/bot"]).To(BeNumerically("<=", 2), "the operator should not poll Discord")

	// The bot outgrew its shards: Discord closes with 4011 and now recommends 4.
	fake.SetRecommendedShards(4)
	reportShardingRequired(g, botPods(g, ns, "auto")["auto-0"], "auto")
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "auto")
		g.Expect(b.Status.Halted).To(BeNil())
		g.Expect(b.Status.Gateway.RecommendedShards).To(Equal(int32(4)))
		g.Expect(b.Status.Resharding).NotTo(BeNil())
		g.Expect(b.Status.Resharding.ToShards).To(Equal(int32(4)))
		g.Expect(meta.IsStatusConditionTrue(b.Status.Conditions, shardkeeperv1.ConditionResharding)).To(BeTrue())
		pods := botPods(g, ns, "auto")
		for _, name := range []string{"auto-0-g1", "auto-1-g1", "auto-2-g1", "auto-3-g1"} {
			g.Expect(pods).To(HaveKey(name))
			g.Expect(envOf(pods[name].Spec.Containers[0])[shardkeeperv1.EnvShardCount].Value).To(Equal("4"))
		}
	}, wait, tick).Should(Succeed())
	markAllReady(g, ns, "auto")
	g.Eventually(func(g Gomega) {
		g.Expect(botPods(g, ns, "auto")).To(HaveLen(4))
		g.Expect(getBot(g, ns, "auto").Status.Resharding).To(BeNil())
	}, wait, tick).Should(Succeed())
}

func TestShardingRequiredHaltsAFixedShardCount(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	fake := discordtest.NewServer(discordtest.Options{Token: testToken, RecommendedShards: 3})
	defer fake.Close()

	ns := newNamespace(t)
	createTokenSecret(t, ns, "fixed-token", "token")
	bot := newBot(ns, "fixed", 1, 1)
	bot.Spec.Gateway = &shardkeeperv1.GatewaySpec{APIURL: fake.APIURL()}
	g.Expect(k8s.Create(ctx, bot)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, "fixed")).To(HaveLen(1)) }, wait, tick).Should(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(getBot(g, ns, "fixed").Status.Gateway).NotTo(BeNil()) }, wait, tick).Should(Succeed())

	reportShardingRequired(g, botPods(g, ns, "fixed")["fixed-0"], "fixed")
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "fixed")
		g.Expect(b.Status.Halted).NotTo(BeNil())
		g.Expect(b.Status.Halted.Reason).To(Equal(shardkeeperv1.ReasonShardingRequired))
		g.Expect(b.Status.Halted.Message).To(ContainSubstring(`Discord recommends 3 shards: set spec.shards to 3 or to "auto"`))
		g.Expect(botPods(g, ns, "fixed")).To(BeEmpty())
	}, wait, tick).Should(Succeed())
}

// 4011 is about the guilds of one shard: a fixed shard count halts only the shard groups
// told so, and the others keep serving their guilds. A halted group's pod is not started
// again once its process exits; one still running its other shards is left running.
func TestShardingRequiredHaltsOnlyItsShardGroup(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	fake := discordtest.NewServer(discordtest.Options{Token: testToken, RecommendedShards: 4})
	defer fake.Close()

	ns := newNamespace(t)
	createTokenSecret(t, ns, "split-token", "token")
	bot := newBot(ns, "split", 3, 1)
	bot.Spec.Gateway = &shardkeeperv1.GatewaySpec{APIURL: fake.APIURL()}
	g.Expect(k8s.Create(ctx, bot)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, "split")).To(HaveLen(3)) }, wait, tick).Should(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(getBot(g, ns, "split").Status.Gateway).NotTo(BeNil()) }, wait, tick).Should(Succeed())
	before := botPods(g, ns, "split")

	// split-2's process still runs (its other shards would); split-1's exited for it,
	// as botruntime does when no shard of the pod can run, and the kubelet backs off.
	running := before["split-2"]
	running.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "bot", Image: "x", ImageID: "x",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	g.Expect(k8s.Status().Update(ctx, &running)).To(Succeed())
	exited := before["split-1"]
	exited.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "bot", Image: "x", ImageID: "x", RestartCount: 1,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 12,
			Message: "ShardingRequired: Discord requires more shards (close 4011)"}}}}
	g.Expect(k8s.Status().Update(ctx, &exited)).To(Succeed())
	reportShardingRequired(g, exited, "split")
	reportShardingRequired(g, running, "split")

	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "split")
		g.Expect(b.Status.Halted).To(BeNil(), "the whole bot was halted for one shard group's 4011")
		g.Expect(b.Status.HaltedPods).To(HaveLen(2))
		g.Expect(b.Status.HaltedPods[0].Pod).To(Equal("split-1"))
		g.Expect(b.Status.HaltedPods[0].Message).To(ContainSubstring(`Discord recommends 4 shards: set spec.shards to 4 or to "auto"`))
		g.Expect(b.Status.HaltedPods[0].PodStopped).To(BeTrue())
		g.Expect(b.Status.HaltedPods[1].Pod).To(Equal("split-2"))
		g.Expect(b.Status.HaltedPods[1].PodStopped).To(BeFalse())
		ready := meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionReady)
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(shardkeeperv1.ReasonShardingRequired))
		g.Expect(b.Status.Phase).To(Equal(shardkeeperv1.PhaseDegraded))
		g.Expect(b.Status.Problems).To(ContainElement(HaveField("Pod", "split-1")))
		pods := botPods(g, ns, "split")
		g.Expect(pods).To(HaveLen(2))
		g.Expect(pods).To(HaveKeyWithValue("split-0", HaveField("UID", before["split-0"].UID)))
		g.Expect(pods).To(HaveKeyWithValue("split-2", HaveField("UID", before["split-2"].UID)))
	}, wait, tick).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(botPods(g, ns, "split")).NotTo(HaveKey("split-1"))
	}, 2*time.Second, tick).Should(Succeed())

	// A change of the spec lifts the halts: split-1 is started again. split-2's process
	// still runs with its shard stopped, and says so: halted again, as is true.
	updateBot(g, getBot(g, ns, "split"), func(b *shardkeeperv1.DiscordBot) {
		b.Spec.PodTemplate.Metadata.Labels = map[string]string{"fixed": "yes"}
	})
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "split")
		g.Expect(b.Status.HaltedPods).To(ConsistOf(HaveField("Pod", "split-2")))
		g.Expect(b.Status.HaltedPods[0].Generation).To(Equal(b.Generation))
		g.Expect(botPods(g, ns, "split")).To(HaveKey("split-1"))
	}, wait, tick).Should(Succeed())
	g.Expect(eventReasons(g, ns, "split")).To(ContainElements(shardkeeperv1.ReasonShardingRequired, shardkeeperv1.ReasonResumed))
}
