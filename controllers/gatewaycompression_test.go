package controllers

import (
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/util/intstr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// spec.gateway.compression reaches the bot container as SHARDKEEPER_GATEWAY_COMPRESSION
// (the only way to set it: users may not set SHARDKEEPER_ env), and only when set, so that
// a bot that names none keeps its image's default and its pods.
func TestGatewayCompressionIsTheBotsEnvAndPartOfTheRevision(t *testing.T) {
	bot := &shardkeeperv1.DiscordBot{Spec: shardkeeperv1.DiscordBotSpec{
		TokenSecretRef: shardkeeperv1.SecretKeySelector{Name: "t", Key: "token"},
		Shards:         intstr.FromInt32(1), ShardsPerPod: 1,
	}}
	topo := topology{shards: 1, shardsPerPod: 1}
	build := func(gw *shardkeeperv1.GatewaySpec) podBuilder {
		b := bot.DeepCopy()
		b.Spec.Gateway = gw
		return newPodBuilder(b, podDefaults{image: "img:1"}, topo, 1)
	}
	unset := build(nil)
	if _, ok := envOf(unset.build(0).Spec.Containers[0])[shardkeeperv1.EnvGatewayCompression]; ok {
		t.Errorf("a bot without spec.gateway.compression gets %s", shardkeeperv1.EnvGatewayCompression)
	}
	// A bot that had a spec.gateway before compression existed keeps its pods: the
	// revision hashes spec.gateway as JSON, which must not change when compression is unset.
	if b, _ := json.Marshal(shardkeeperv1.GatewaySpec{URL: "wss://gateway.example"}); string(b) != `{"url":"wss://gateway.example"}` {
		t.Errorf("spec.gateway without compression hashes as %s: every proxied bot would roll on upgrade", b)
	}

	seen := map[string]shardkeeperv1.GatewayCompression{unset.revision: ""}
	for _, c := range []shardkeeperv1.GatewayCompression{
		shardkeeperv1.GatewayCompressionZstdStream, shardkeeperv1.GatewayCompressionZlibStream, shardkeeperv1.GatewayCompressionNone,
	} {
		b := build(&shardkeeperv1.GatewaySpec{Compression: c})
		if got := envOf(b.build(0).Spec.Containers[0])[shardkeeperv1.EnvGatewayCompression].Value; got != string(c) {
			t.Errorf("compression %s: env %s=%q", c, shardkeeperv1.EnvGatewayCompression, got)
		}
		if other, ok := seen[b.revision]; ok {
			t.Errorf("compression %q and %q have the same revision: changing it would not roll the pods", c, other)
		}
		seen[b.revision] = c
	}
}

func TestChangingGatewayCompressionRollsThePods(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ns, bot := startedBot(t, g, "squeezy", 2, 1, 2)
	markAllReady(g, ns, "squeezy")
	oldRevision := botPods(g, ns, "squeezy")["squeezy-0"].Labels[shardkeeperv1.LabelRevision]
	for _, p := range botPods(g, ns, "squeezy") {
		g.Expect(envOf(p.Spec.Containers[0])).NotTo(HaveKey(shardkeeperv1.EnvGatewayCompression))
	}

	updateBot(g, bot, func(b *shardkeeperv1.DiscordBot) {
		b.Spec.Gateway = &shardkeeperv1.GatewaySpec{Compression: shardkeeperv1.GatewayCompressionZlibStream}
	})
	g.Eventually(func(g Gomega) {
		markAllReady(g, ns, "squeezy")
		pods := botPods(g, ns, "squeezy")
		g.Expect(pods).To(HaveLen(2))
		for name, p := range pods {
			g.Expect(p.Labels[shardkeeperv1.LabelRevision]).NotTo(Equal(oldRevision), "pod %s not replaced", name)
			g.Expect(envOf(p.Spec.Containers[0])[shardkeeperv1.EnvGatewayCompression].Value).To(Equal("zlib-stream"))
		}
		g.Expect(getBot(g, ns, "squeezy").Status.UpdatedPods).To(Equal(int32(2)))
	}, wait, tick).Should(Succeed())
	g.Expect(eventReasons(g, ns, "squeezy")).To(ContainElement(shardkeeperv1.ReasonPodReplaced))
}
