package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

const testProxyImage = "registry.test/shardkeeper/gateway-proxy:default"

// proxiedBot is a bot of the user's own image behind the gateway proxy, as the CRD
// defaults it.
func proxiedBot(ns, name string, shards, perPod int) *shardkeeperv1.DiscordBot {
	bot := newBot(ns, name, shards, perPod)
	bot.Spec.Image = "registry.test/my-python-bot:1"
	bot.Spec.Health = shardkeeperv1.HealthSpec{Mode: shardkeeperv1.HealthModeLease, LeaseDurationSeconds: 20}
	bot.Spec.GatewayProxy = &shardkeeperv1.GatewayProxySpec{
		Enabled: true, ReplayEvents: 10000, ReplayBytes: ptrTo(resource.MustParse("64Mi")), ClientHeartbeatTolerance: 3,
	}
	return bot
}

func ptrTo[T any](v T) *T { return &v }

// containerNamed finds a container of a pod, init containers included.
func containerNamed(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// mountedVolumes are the volumes a container mounts.
func mountedVolumes(pod *corev1.Pod, c *corev1.Container) map[string]corev1.Volume {
	out := map[string]corev1.Volume{}
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Spec.Volumes {
			if v.Name == m.Name {
				out[m.MountPath] = v
			}
		}
	}
	return out
}

// holdsRealToken says whether a container can read the bot's real token: a mount of the
// token Secret, or an env value or reference of it.
func holdsRealToken(pod *corev1.Pod, c *corev1.Container, tokenSecret string) bool {
	for _, v := range mountedVolumes(pod, c) {
		if v.Secret != nil && v.Secret.SecretName == tokenSecret {
			return true
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && src.Secret.Name == tokenSecret {
					return true
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.Value == testToken || (e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil) {
			return true
		}
	}
	return false
}

// holdsAPIToken says whether a container gets a service account token: mounted by the
// kubelet (automount) or from a projected volume.
func holdsAPIToken(pod *corev1.Pod, c *corev1.Container) bool {
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		return true
	}
	for _, v := range mountedVolumes(pod, c) {
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken != nil {
					return true
				}
			}
		}
	}
	return false
}

func TestTheProxyPodRunsTheProxyAsANativeSidecarAndTheBotBehindIt(t *testing.T) {
	g := NewWithT(t)
	bot := proxiedBot("ns", "py", 5, 2)
	bot.Spec.Gateway = &shardkeeperv1.GatewaySpec{URL: "wss://gateway.example", Compression: shardkeeperv1.GatewayCompressionZlibStream}
	bot.Spec.PodTemplate.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}}
	bot.Spec.PodTemplate.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}
	bot.Spec.GatewayProxy.ReplayBytes = ptrTo(resource.MustParse("2Mi"))
	bot.Spec.GatewayProxy.ClientHeartbeatInterval = &metav1.Duration{Duration: 10 * time.Second}
	bot.Spec.GatewayProxy.ClientStartupBound = &metav1.Duration{Duration: 5 * time.Minute}
	bot.Spec.GatewayProxy.ClientHeartbeatTolerance = 4
	bot.Spec.GatewayProxy.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}
	b := newPodBuilder(bot, podDefaults{image: "registry.test/bot:default", proxyImage: testProxyImage}, topology{shards: 5, shardsPerPod: 2}, 2)

	for group, shardIDs := range map[int32]string{0: "0,1", 1: "2,3", 2: "4"} {
		pod := b.build(group)
		name := pod.Name

		// The proxy: a native sidecar (an init container that always restarts), first.
		g.Expect(pod.Spec.InitContainers).To(HaveLen(1), name)
		proxy := &pod.Spec.InitContainers[0]
		g.Expect(proxy.Name).To(Equal("gateway-proxy"))
		g.Expect(proxy.RestartPolicy).To(Equal(ptrTo(corev1.ContainerRestartPolicyAlways)))
		g.Expect(proxy.Image).To(Equal(testProxyImage))
		g.Expect(proxy.Resources.Limits.Memory().String()).To(Equal("512Mi"))
		env := envOf(*proxy)
		for k, v := range map[string]string{
			shardkeeperv1.EnvShardIDs: shardIDs, shardkeeperv1.EnvShardCount: "5", shardkeeperv1.EnvBotName: "py",
			shardkeeperv1.EnvIntents: "GUILDS,GUILD_MESSAGES", shardkeeperv1.EnvLeaseName: name, shardkeeperv1.EnvLeaseDurationSeconds: "20",
			shardkeeperv1.EnvTokenFile: "/var/run/secrets/shardkeeper/token", shardkeeperv1.EnvHealthPort: "8081",
			shardkeeperv1.EnvGatewayURL: "wss://gateway.example", shardkeeperv1.EnvGatewayCompression: "zlib-stream",
			shardkeeperv1.EnvMaxConcurrency: "2",
			shardkeeperv1.EnvProxyListen:    "127.0.0.1:7878", shardkeeperv1.EnvProxyClientTokenFile: "/var/run/secrets/shardkeeper-client/token",
			shardkeeperv1.EnvProxyReplayEvents: "10000", shardkeeperv1.EnvProxyReplayBytes: "2097152",
			shardkeeperv1.EnvProxyClientHeartbeatInterval: "10s", shardkeeperv1.EnvProxyClientTolerance: "4",
			shardkeeperv1.EnvProxyClientStartupBound: "5m0s",
		} {
			g.Expect(env).To(HaveKeyWithValue(k, HaveField("Value", v)), "%s: proxy env %s", name, k)
		}
		g.Expect(env[shardkeeperv1.EnvPodName].ValueFrom.FieldRef.FieldPath).To(Equal("metadata.name"))
		g.Expect(env).NotTo(HaveKey("LOG_LEVEL"), "the user's env is the bot's")
		g.Expect(proxy.Ports).To(ContainElement(HaveField("Name", "health")))
		for probe, path := range map[*corev1.Probe]string{proxy.StartupProbe: "/healthz", proxy.LivenessProbe: "/healthz", proxy.ReadinessProbe: "/readyz"} {
			g.Expect(probe).NotTo(BeNil(), "%s: proxy probe %s", name, path)
			g.Expect(probe.HTTPGet.Path).To(Equal(path))
			g.Expect(probe.HTTPGet.Port).To(Equal(intstr.FromString("health")))
		}
		g.Expect(holdsRealToken(pod, proxy, "py-token")).To(BeTrue())
		g.Expect(holdsAPIToken(pod, proxy)).To(BeTrue(), "the proxy renews the Lease")
		g.Expect(mountedVolumes(pod, proxy)).To(HaveKey("/var/run/secrets/kubernetes.io/serviceaccount"))
		g.Expect(*proxy.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())

		// The bot: the user's image, told where the proxy is, with the placeholder only.
		g.Expect(pod.Spec.Containers).To(HaveLen(1))
		botc := &pod.Spec.Containers[0]
		g.Expect(botc.Name).To(Equal("bot"))
		g.Expect(botc.Image).To(Equal("registry.test/my-python-bot:1"))
		g.Expect(botc.Resources.Limits.Memory().String()).To(Equal("256Mi"))
		env = envOf(*botc)
		for k, v := range map[string]string{
			"DISCORD_GATEWAY_URL": "ws://127.0.0.1:7878", "DISCORD_API_URL": "http://127.0.0.1:7878/api/v10",
			"DISCORD_TOKEN_FILE":      "/var/run/secrets/shardkeeper-client/token",
			shardkeeperv1.EnvShardIDs: shardIDs, shardkeeperv1.EnvShardCount: "5", shardkeeperv1.EnvIntents: "GUILDS,GUILD_MESSAGES",
			shardkeeperv1.EnvBotName: "py", "LOG_LEVEL": "debug",
		} {
			g.Expect(env).To(HaveKeyWithValue(k, HaveField("Value", v)), "%s: bot env %s", name, k)
		}
		for _, k := range []string{shardkeeperv1.EnvTokenFile, shardkeeperv1.EnvLeaseName, shardkeeperv1.EnvHealthPort, shardkeeperv1.EnvGatewayURL} {
			g.Expect(env).NotTo(HaveKey(k), "%s: the bot container gets the proxy's %s", name, k)
		}
		g.Expect(holdsRealToken(pod, botc, "py-token")).To(BeFalse(), "%s: the bot container can read the real token", name)
		g.Expect(holdsAPIToken(pod, botc)).To(BeFalse(), "%s: the bot container gets a service account token", name)
		g.Expect(botc.Ports).To(BeEmpty(), "the health port is the proxy's")
		g.Expect(botc.StartupProbe).To(BeNil())
		for probe, path := range map[*corev1.Probe]string{botc.LivenessProbe: "/client/healthz", botc.ReadinessProbe: "/client/readyz"} {
			g.Expect(probe).NotTo(BeNil(), "%s: bot probe %s", name, path)
			g.Expect(probe.HTTPGet.Path).To(Equal(path))
			g.Expect(probe.HTTPGet.Port).To(Equal(intstr.FromInt32(8081)), "a port name resolves among the probed container's ports only")
		}

		// The placeholder: this pod's key of the bot's placeholder Secret, in both.
		placeholder := mountedVolumes(pod, botc)["/var/run/secrets/shardkeeper-client"]
		g.Expect(placeholder.Secret).NotTo(BeNil())
		g.Expect(placeholder.Secret.SecretName).To(Equal("shardkeeper-py-proxy"))
		g.Expect(placeholder.Secret.Items).To(Equal([]corev1.KeyToPath{{Key: name, Path: "token"}}))
		g.Expect(mountedVolumes(pod, proxy)["/var/run/secrets/shardkeeper-client"]).To(Equal(placeholder))
		g.Expect(pod.Spec.ServiceAccountName).To(Equal("shardkeeper-py"))
	}
}

func TestExposeRealTokenMountsItIntoTheBotContainer(t *testing.T) {
	g := NewWithT(t)
	bot := proxiedBot("ns", "js", 1, 1)
	bot.Spec.GatewayProxy.ExposeRealToken = true
	pod := newPodBuilder(bot, podDefaults{proxyImage: testProxyImage}, topology{shards: 1, shardsPerPod: 1}, 1).build(0)
	botc := containerNamed(pod, "bot")
	g.Expect(holdsRealToken(pod, botc, "js-token")).To(BeTrue())
	g.Expect(envOf(*botc)[shardkeeperv1.EnvTokenFile].Value).To(Equal("/var/run/secrets/shardkeeper/token"))
	g.Expect(envOf(*botc)["DISCORD_TOKEN_FILE"].Value).To(Equal("/var/run/secrets/shardkeeper-client/token"), "the proxy still takes the placeholder")
	g.Expect(holdsAPIToken(pod, botc)).To(BeFalse())
}

// spec.gatewayProxy is part of the revision: any change of it rolls the pods. A bot that
// has it off, or never had it, keeps its revision (and its pods) across the upgrade.
func TestTheGatewayProxyIsPartOfTheRevision(t *testing.T) {
	topo := topology{shards: 1, shardsPerPod: 1}
	defaults := podDefaults{image: "img:1", proxyImage: testProxyImage}
	revision := func(change func(*shardkeeperv1.DiscordBot)) string {
		bot := proxiedBot("ns", "r", 1, 1)
		change(bot)
		return newPodBuilder(bot, defaults, topo, 1).revision
	}
	none := revision(func(b *shardkeeperv1.DiscordBot) { b.Spec.GatewayProxy = nil })
	if off := revision(func(b *shardkeeperv1.DiscordBot) { b.Spec.GatewayProxy.Enabled = false }); off != none {
		t.Errorf("a bot with the proxy off has another revision than one without it: upgrading would roll it")
	}
	seen := map[string]string{none: "no proxy"}
	for name, change := range map[string]func(*shardkeeperv1.DiscordBot){
		"enabled":       func(*shardkeeperv1.DiscordBot) {},
		"replay events": func(b *shardkeeperv1.DiscordBot) { b.Spec.GatewayProxy.ReplayEvents = 5 },
		"replay bytes":  func(b *shardkeeperv1.DiscordBot) { b.Spec.GatewayProxy.ReplayBytes = ptrTo(resource.MustParse("1Mi")) },
		"tolerance":     func(b *shardkeeperv1.DiscordBot) { b.Spec.GatewayProxy.ClientHeartbeatTolerance = 5 },
		"interval": func(b *shardkeeperv1.DiscordBot) {
			b.Spec.GatewayProxy.ClientHeartbeatInterval = &metav1.Duration{Duration: time.Second}
		},
		"startup bound": func(b *shardkeeperv1.DiscordBot) {
			b.Spec.GatewayProxy.ClientStartupBound = &metav1.Duration{Duration: time.Minute}
		},
		"image":        func(b *shardkeeperv1.DiscordBot) { b.Spec.GatewayProxy.Image = "proxy:2" },
		"expose token": func(b *shardkeeperv1.DiscordBot) { b.Spec.GatewayProxy.ExposeRealToken = true },
		"proxy resources": func(b *shardkeeperv1.DiscordBot) {
			b.Spec.GatewayProxy.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
		},
	} {
		r := revision(change)
		if other, ok := seen[r]; ok {
			t.Errorf("%s has the revision of %s: changing it would not roll the pods", name, other)
		}
		seen[r] = name
	}
	bot := proxiedBot("ns", "r", 1, 1)
	if newPodBuilder(bot, podDefaults{image: "img:1", proxyImage: "proxy:new"}, topo, 1).revision == newPodBuilder(bot, defaults, topo, 1).revision {
		t.Errorf("a new default proxy image does not roll the pods that run it")
	}
}

// Behind the proxy, the pod's sessions are the proxy's: it is the container whose state
// (running, restarts) the health judgement and the halts read; the bot container's
// readiness says its process is connected.
func TestThePodsSessionsAreTheProxysBehindIt(t *testing.T) {
	g := NewWithT(t)
	pod := newPodBuilder(proxiedBot("ns", "r", 1, 1), podDefaults{proxyImage: testProxyImage}, topology{shards: 1, shardsPerPod: 1}, 1).build(0)
	pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "gateway-proxy", RestartCount: 1, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "bot", RestartCount: 7, Ready: true}}
	cs, ok := sessionContainerStatus(pod)
	g.Expect(ok).To(BeTrue())
	g.Expect(cs.Name).To(Equal("gateway-proxy"))
	o := observePod(pod)
	g.Expect(o.running).To(BeTrue(), "the proxy holds the sessions and runs")
	g.Expect(o.clientReady).To(BeTrue())
	g.Expect(containerStatuses(pod)).To(HaveLen(2))
}

// setProxyPodStatus plays the kubelet for a pod behind the proxy: both containers run,
// the proxy ready, the bot container ready or not, restarted so many times.
func setProxyPodStatus(g Gomega, pod corev1.Pod, clientReady bool, proxyRestarts, botRestarts int32) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
	ready := corev1.ConditionFalse
	if clientReady {
		ready = corev1.ConditionTrue
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready, LastTransitionTime: metav1.Now()}}
	pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{
		Name: "gateway-proxy", Image: "x", ImageID: "x", Ready: true, Started: ptrTo(true), RestartCount: proxyRestarts, State: running,
	}}
	bot := corev1.ContainerStatus{Name: "bot", Image: "x", ImageID: "x", Ready: clientReady, RestartCount: botRestarts, State: running}
	if botRestarts > 0 {
		bot.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error"}
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{bot}
	g.Expect(k8s.Status().Update(context.Background(), &pod)).To(Succeed())
}

func TestABotBehindTheProxyGetsItsPlaceholderStatusAndEvents(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createTokenSecret(t, ns, "py-token", "token")
	bot := proxiedBot(ns, "py", 5, 2)
	g.Expect(k8s.Create(ctx, bot)).To(Succeed())

	var pods map[string]corev1.Pod
	g.Eventually(func(g Gomega) {
		pods = botPods(g, ns, "py")
		g.Expect(pods).To(HaveLen(3))
	}, wait, tick).Should(Succeed())
	for name, shardIDs := range map[string]string{"py-0": "0,1", "py-1": "2,3", "py-2": "4"} {
		pod := pods[name]
		proxy, botc := containerNamed(&pod, "gateway-proxy"), containerNamed(&pod, "bot")
		g.Expect(proxy).NotTo(BeNil(), "pod %s has no proxy", name)
		g.Expect(pod.Spec.InitContainers).To(HaveLen(1))
		g.Expect(*proxy.RestartPolicy).To(Equal(corev1.ContainerRestartPolicyAlways))
		g.Expect(proxy.Image).To(Equal(testProxyImage))
		g.Expect(envOf(*proxy)[shardkeeperv1.EnvShardIDs].Value).To(Equal(shardIDs))
		g.Expect(envOf(*botc)[shardkeeperv1.EnvShardIDs].Value).To(Equal(shardIDs))
		g.Expect(envOf(*botc)["DISCORD_GATEWAY_URL"].Value).To(Equal("ws://127.0.0.1:7878"))
		g.Expect(holdsRealToken(&pod, botc, "py-token")).To(BeFalse(), "pod %s: the bot container can read the real token", name)
		g.Expect(holdsAPIToken(&pod, botc)).To(BeFalse(), "pod %s: the bot container gets a service account token", name)
		g.Expect(holdsAPIToken(&pod, proxy)).To(BeTrue())
	}

	// The placeholders: one Secret, owned by the bot, a random key per pod, none the token.
	var placeholders corev1.Secret
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shardkeeper-py-proxy"}, &placeholders)).To(Succeed())
	g.Expect(metav1.IsControlledBy(&placeholders, bot)).To(BeTrue(), "the placeholder Secret is not controlled by its bot")
	g.Expect(placeholders.Labels).To(HaveKeyWithValue(shardkeeperv1.LabelManagedBy, shardkeeperv1.ManagedByValue))
	g.Expect(placeholders.Data).To(HaveLen(3))
	values := map[string]bool{}
	for _, name := range []string{"py-0", "py-1", "py-2"} {
		v := string(placeholders.Data[name])
		g.Expect(len(v)).To(BeNumerically(">=", 32), "placeholder of %s", name)
		g.Expect(v).NotTo(ContainSubstring(testToken))
		values[v] = true
	}
	g.Expect(values).To(HaveLen(3), "pods share a placeholder")
	g.Expect(eventReasons(g, ns, "py")).To(ContainElement(shardkeeperv1.ReasonCreatedSecret))

	// kubectl get -o wide: shards whose bot process is connected (its container ready).
	g.Eventually(func(g Gomega) *int32 { return getBot(g, ns, "py").Status.ClientsConnected }, wait, tick).Should(Equal(ptrTo(int32(0))))
	setProxyPodStatus(g, pods["py-0"], true, 0, 0)
	setProxyPodStatus(g, pods["py-2"], true, 0, 0)
	g.Eventually(func(g Gomega) *int32 { return getBot(g, ns, "py").Status.ClientsConnected }, wait, tick).Should(Equal(ptrTo(int32(3))))

	// The bot container restarts while the proxy runs on: an event says so, and the
	// restart is counted; a restart of the proxy is no such event.
	setProxyPodStatus(g, botPods(g, ns, "py")["py-0"], false, 0, 1)
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "py") }, wait, tick).Should(ContainElement(shardkeeperv1.ReasonBotContainerRestarted))
	g.Eventually(func(g Gomega) int64 { return getBot(g, ns, "py").Status.Restarts }, wait, tick).Should(Equal(int64(1)))
	setProxyPodStatus(g, botPods(g, ns, "py")["py-2"], true, 1, 0)
	g.Eventually(func(g Gomega) int64 { return getBot(g, ns, "py").Status.Restarts }, wait, tick).Should(Equal(int64(2)))
	count := func(g Gomega) int {
		n := 0
		for _, r := range eventReasons(g, ns, "py") {
			if r == shardkeeperv1.ReasonBotContainerRestarted {
				n++
			}
		}
		return n
	}
	g.Consistently(count, time.Second, tick).Should(Equal(1))
	// The connection lost with the restart shows.
	g.Eventually(func(g Gomega) *int32 { return getBot(g, ns, "py").Status.ClientsConnected }, wait, tick).Should(Equal(ptrTo(int32(1))))
}

// Turning the proxy on rolls the pods like any spec change, and a reshard gives each new
// pod's proxy its own shards and its own placeholder.
func TestTheProxyRollsOutAndReshards(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns, bot := startedBot(t, g, "js", 2, 1, 2)
	markAllReady(g, ns, "js")
	g.Eventually(func(g Gomega) shardkeeperv1.BotPhase { return getBot(g, ns, "js").Status.Phase }, wait, tick).Should(Equal(shardkeeperv1.PhaseRunning))
	g.Expect(getBot(g, ns, "js").Status.ClientsConnected).To(BeNil(), "clients counted without the proxy")

	updateBot(g, bot, func(b *shardkeeperv1.DiscordBot) {
		proxied := proxiedBot(ns, "js", 2, 1)
		b.Spec.Image, b.Spec.GatewayProxy = proxied.Spec.Image, proxied.Spec.GatewayProxy
	})
	g.Eventually(func(g Gomega) {
		for name, p := range botPods(g, ns, "js") {
			if !isReady(p) {
				setProxyPodStatus(g, p, true, 0, 0)
			}
			g.Expect(containerNamed(&p, "gateway-proxy")).NotTo(BeNil(), "pod %s runs without the proxy", name)
		}
		g.Expect(getBot(g, ns, "js").Status.UpdatedPods).To(Equal(int32(2)))
	}, 2*wait, tick).Should(Succeed())
	g.Expect(eventReasons(g, ns, "js")).To(ContainElement(shardkeeperv1.ReasonPodReplaced))

	// Reshard to 6 shards of 3 per pod: the new layout's pods start beside the old ones.
	updateBot(g, bot, func(b *shardkeeperv1.DiscordBot) {
		b.Spec.Shards.IntVal = 6
		b.Spec.ShardsPerPod = 3
	})
	g.Eventually(func(g Gomega) {
		pods := botPods(g, ns, "js")
		for name, shardIDs := range map[string]string{"js-0-g1": "0,1,2", "js-1-g1": "3,4,5"} {
			g.Expect(pods).To(HaveKey(name))
			p := pods[name]
			proxy := containerNamed(&p, "gateway-proxy")
			g.Expect(proxy).NotTo(BeNil())
			g.Expect(envOf(*proxy)[shardkeeperv1.EnvShardIDs].Value).To(Equal(shardIDs))
			g.Expect(envOf(*proxy)[shardkeeperv1.EnvLeaseName].Value).To(Equal(name))
			g.Expect(envOf(*containerNamed(&p, "bot"))[shardkeeperv1.EnvShardIDs].Value).To(Equal(shardIDs))
		}
		var placeholders corev1.Secret
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shardkeeper-js-proxy"}, &placeholders)).To(Succeed())
		g.Expect(placeholders.Data).To(HaveKey("js-0-g1"))
		g.Expect(placeholders.Data).To(HaveKey("js-1-g1"))
		g.Expect(placeholders.Data).To(HaveKey("js-0"), "the old layout's pods still run")
	}, wait, tick).Should(Succeed())
	// Once the new pods are ready, the old layout goes, and its placeholders with it.
	g.Eventually(func(g Gomega) {
		for _, p := range botPods(g, ns, "js") {
			if !isReady(p) {
				setProxyPodStatus(g, p, true, 0, 0)
			}
		}
		g.Expect(botPods(g, ns, "js")).To(HaveLen(2))
		var placeholders corev1.Secret
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shardkeeper-js-proxy"}, &placeholders)).To(Succeed())
		g.Expect(placeholders.Data).To(HaveLen(2))
		g.Expect(getBot(g, ns, "js").Status.ClientsConnected).To(Equal(ptrTo(int32(6))))
	}, wait, tick).Should(Succeed())
}
