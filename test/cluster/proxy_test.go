package cluster

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/emulatorapi"
)

// The Python demo's emulator has 4 guilds and the bot one shard: every guild is its. The
// emulator's guilds have one text channel, whose ID is the guild's: discord.js drops
// messages in channels it was not told of.
const pythonGuild = 1<<22 | 1

// The gateway proxy's container in a bot pod (a native sidecar: an init container).
const proxyContainer = "gateway-proxy"

// TestPythonBotBehindTheProxy runs examples/python-bot (discord.py from Debian, in an
// image of Debian's packages) behind the gateway proxy, against an emulator enforcing
// heartbeats, and does to it what costs a plain discord.py bot its session: an event
// loop blocked for three heartbeat intervals, then the whole process frozen.
func TestPythonBotBehindTheProxy(t *testing.T) {
	ctx := suite(t)
	const (
		upstreamHeartbeat = 4 * time.Second
		// config/demo-python: the bot's process heartbeats the proxy every 10 s and may
		// miss 3 intervals before the kubelet restarts it.
		clientTolerance = 30 * time.Second
	)
	d := newPythonDemo(ctx, t, func(m string) string {
		return strings.Replace(m, "--heartbeat-interval=5s", "--heartbeat-interval="+upstreamHeartbeat.String(), 1)
	})
	start := time.Now()
	d.waitReady(ctx, t, 3*time.Minute)
	t.Logf("Ready %s after kubectl apply", time.Since(start).Round(100*time.Millisecond))
	out := mustKubectl(ctx, t, nil, "get", "discordbots", "--namespace", d.ns)
	if !strings.Contains(out, d.botName) || !strings.Contains(out, "1/1") {
		t.Errorf("kubectl get discordbots does not show the bot with 1/1 shards:\n%s", out)
	}
	pod := d.onlyPod(ctx, t)
	if len(pod.Spec.InitContainers) != 1 || pod.Spec.InitContainers[0].Name != proxyContainer {
		t.Fatalf("pod %s has init containers %v, want the gateway proxy as a native sidecar", pod.Name, pod.Spec.InitContainers)
	}

	t.Run("!ping and /ping answered", func(t *testing.T) {
		d.sayAndWait(ctx, t, "!ping", 30*time.Second)
		d.slashPing(ctx, t)
	})

	t.Run("the event loop blocked for 3 heartbeat intervals", func(t *testing.T) {
		before := d.stats(ctx, t)
		block := 3 * upstreamHeartbeat
		d.say(ctx, t, "!block "+strconv.Itoa(int(block.Seconds())))
		// The !ping comes while the loop is blocked (the bot reads nothing meanwhile);
		// its pong can only come after the block.
		time.Sleep(2 * time.Second)
		pingAt := time.Now()
		d.sayAndWait(ctx, t, "!ping", block+30*time.Second)
		if waited := time.Since(pingAt); waited < block-3*time.Second {
			t.Errorf("the !ping sent during the block was answered after %s: was the loop blocked?", waited)
		} else {
			t.Logf("the !ping sent during a %s block answered %s later", block, waited.Round(100*time.Millisecond))
		}
		sameUpstreamSession(t, before, d.stats(ctx, t))
	})

	t.Run("the bot process frozen past the client tolerance", func(t *testing.T) {
		pod := d.onlyPod(ctx, t)
		restarts := containerRestarts(pod, "bot")
		before := d.stats(ctx, t)
		if _, err := k.Ctr(ctx, "tasks", "kill", "--signal", "SIGSTOP", containerID(t, pod)); err != nil {
			t.Fatal(err)
		}
		frozenAt := time.Now()
		ping := d.say(ctx, t, "!ping")
		// The proxy's liveness probe fails after the tolerance (+ 2 probes of 5 s); the
		// kubelet stops the container (30 s of grace: the frozen process ignores SIGTERM).
		var restartedAt time.Time
		waitFor(ctx, t, "the bot container restarted", clientTolerance+10*time.Second+30*time.Second+30*time.Second, func() (bool, string) {
			p := d.onlyPod(ctx, t)
			if p.UID != pod.UID {
				t.Fatalf("pod %s replaced (uid %s -> %s): only its bot container should have been restarted", pod.Name, pod.UID, p.UID)
			}
			n := containerRestarts(p, "bot")
			if n > restarts {
				restartedAt = time.Now()
				return true, ""
			}
			return false, "bot container restarts " + itoa(int(n))
		})
		t.Logf("bot container restarted %s after the freeze (client tolerance %s)", restartedAt.Sub(frozenAt).Round(time.Second), clientTolerance)
		d.waitAnswer(ctx, t, "the !ping sent while the bot was frozen", ping, 2*time.Minute)
		t.Logf("the !ping sent while frozen answered %s after the container restarted", time.Since(restartedAt).Round(100*time.Millisecond))
		if p := d.onlyPod(ctx, t); p.UID != pod.UID || containerRestarts(p, proxyContainer) != containerRestarts(pod, proxyContainer) {
			t.Errorf("pod uid %s -> %s, proxy restarts %d -> %d: want the same pod and proxy", pod.UID, p.UID,
				containerRestarts(pod, proxyContainer), containerRestarts(p, proxyContainer))
		}
		sameUpstreamSession(t, before, d.stats(ctx, t))
		d.waitReady(ctx, t, time.Minute)
		// The restarted process is given again what the proxy sent the frozen one after
		// its last heartbeat: at-least-once, so a message handled just before the freeze
		// may be answered twice (docs/gateway-proxy.md).
		t.Logf("messages answered more than once over the test: %d", d.answeredTwice(ctx, t))
	})
}

// answeredTwice counts the messages and interactions the bot answered more than once.
func (d demo) answeredTwice(ctx context.Context, t *testing.T) int {
	t.Helper()
	replies, err := d.emulator.Replies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen, twice := map[string]int{}, 0
	for _, r := range replies {
		if id := r.InReplyTo(); id != "" {
			if seen[id]++; seen[id] == 2 {
				twice++
			}
		}
	}
	return twice
}

// TestPythonBotProxyFrozen freezes the gateway proxy of a Python bot: its Lease goes
// stale, the operator replaces the pod, and the new pod's proxy resumes the Discord
// session. The emulator polices heartbeats at Discord's own pace (41.25 s): a session
// whose process is frozen for longer is closed (4009) and cannot be resumed, by Discord
// as by the emulator, so the replacement must come sooner, as it does with a 10 s Lease.
func TestPythonBotProxyFrozen(t *testing.T) {
	ctx := suite(t)
	const leaseSeconds = 10
	d := newPythonDemo(ctx, t, func(m string) string {
		m = strings.Replace(m, "--heartbeat-interval=5s", "--heartbeat-interval=41.25s", 1)
		return strings.Replace(m, "leaseDurationSeconds: 20", "leaseDurationSeconds: "+strconv.Itoa(leaseSeconds), 1)
	})
	d.waitReady(ctx, t, 3*time.Minute)
	d.sayAndWait(ctx, t, "!ping", 30*time.Second)
	// The proxy keeps its resume state on its Lease, as botruntime does; wait until it is there.
	pod := d.onlyPod(ctx, t)
	waitFor(ctx, t, "resume state on the Lease of "+pod.Name, time.Minute, func() (bool, string) {
		out, err := k.Kubectl(ctx, nil, "get", "lease", pod.Name, "--namespace", d.ns, "-o", "jsonpath={.metadata.annotations.shardkeeper\\.dev/resume}")
		return err == nil && strings.Contains(out, "session"), out
	})
	before := d.stats(ctx, t)
	restartsBefore := d.bot(ctx, t).Status.Restarts
	if _, err := k.Ctr(ctx, "tasks", "kill", "--signal", "SIGSTOP", initContainerID(t, pod, proxyContainer)); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	// Said while the proxy is frozen: Discord replays it to the resumed session, and the
	// new proxy hands it to the new pod's bot process.
	ping := d.say(ctx, t, "!ping")
	bound := time.Duration(leaseSeconds)*time.Second + 10*time.Second + 30*time.Second + 60*time.Second
	waitFor(ctx, t, "the pod replaced by a Ready one", bound, func() (bool, string) {
		for _, p := range d.pods(ctx, t) {
			if p.UID != pod.UID && p.DeletionTimestamp == nil {
				return podReady(p), "replacement " + string(p.Status.Phase)
			}
		}
		return false, "the frozen pod is still there"
	})
	t.Logf("replacement Ready %s after the proxy froze (lease %d s)", time.Since(frozenAt).Round(100*time.Millisecond), leaseSeconds)
	waitFor(ctx, t, "the session resumed", 30*time.Second, func() (bool, string) {
		st := d.stats(ctx, t)
		return st.Resumes > before.Resumes, "resumes " + itoa(st.Resumes)
	})
	// Then one identify: the new proxy never saw the session's READY and guilds, which
	// its bot process needs, and only a new session sends them (docs/gateway-proxy.md).
	waitFor(ctx, t, "a new session after the resume", 30*time.Second, func() (bool, string) {
		st := d.stats(ctx, t)
		return st.Identifies == before.Identifies+1, "identifies " + itoa(st.Identifies)
	})
	d.waitAnswer(ctx, t, "the !ping said while the proxy was frozen", ping, 30*time.Second)
	bot := d.waitReady(ctx, t, time.Minute)
	if bot.Status.Restarts <= restartsBefore || bot.Status.LastRestartReason != shardkeeperv1.ReasonLeaseStale {
		t.Errorf("status restarts %d -> %d, last reason %q; want the LeaseStale restart counted", restartsBefore, bot.Status.Restarts, bot.Status.LastRestartReason)
	}
	d.sayAndWait(ctx, t, "!ping", 30*time.Second)
}

// TestNodeBotBehindTheProxy runs examples/node-bot (discord.js, on Debian's Node) in the
// Python demo's place.
func TestNodeBotBehindTheProxy(t *testing.T) {
	ctx := suite(t)
	d := newPythonDemo(ctx, t, func(m string) string {
		return strings.Replace(m, "/python-bot:", "/node-bot:", 1)
	})
	start := time.Now()
	d.waitReady(ctx, t, 3*time.Minute)
	t.Logf("Ready %s after kubectl apply", time.Since(start).Round(100*time.Millisecond))
	if img := d.onlyPod(ctx, t).Spec.Containers[0].Image; !strings.Contains(img, "/node-bot:") {
		t.Fatalf("bot container runs %s, want the node bot", img)
	}
	d.sayAndWait(ctx, t, "!ping", 30*time.Second)
	d.slashPing(ctx, t)
}

// say has a user say content in the demo's guild and returns the message's ID.
func (d demo) say(ctx context.Context, t *testing.T, content string) string {
	t.Helper()
	id, err := d.emulator.SendMessage(ctx, pythonGuild, pythonGuild, content)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// sayAndWait has a user say content and waits for the bot's "pong" to that message.
func (d demo) sayAndWait(ctx context.Context, t *testing.T, content string, timeout time.Duration) {
	t.Helper()
	d.waitAnswer(ctx, t, "the answer to "+content, d.say(ctx, t, content), timeout)
}

// slashPing runs /ping and waits for its "pong".
func (d demo) slashPing(ctx context.Context, t *testing.T) {
	t.Helper()
	id, err := d.emulator.SendSlashCommand(ctx, pythonGuild, "ping")
	if err != nil {
		t.Fatal(err)
	}
	d.waitAnswer(ctx, t, "the answer to /ping", id, 30*time.Second)
}

// waitAnswer waits until the bot answered the message or interaction id with "pong", and
// fails if it answered it more than once: nothing the proxy replays may be handled twice.
func (d demo) waitAnswer(ctx context.Context, t *testing.T, what, id string, timeout time.Duration) {
	t.Helper()
	var answers []string
	waitFor(ctx, t, what+" ("+id+")", timeout, func() (bool, string) {
		replies, err := d.emulator.Replies(ctx)
		if err != nil {
			return false, err.Error()
		}
		answers = answers[:0]
		for _, r := range replies {
			if r.InReplyTo() == id {
				answers = append(answers, r.Content())
			}
		}
		return len(answers) > 0, strconv.Itoa(len(replies)) + " replies, none to it"
	})
	if len(answers) != 1 || answers[0] != "pong" {
		t.Errorf("%s: answered %q, want one pong", what, answers)
	}
}

// onlyPod is the bot's one pod (the demo has one shard), not the one being deleted.
func (d demo) onlyPod(ctx context.Context, t *testing.T) corev1.Pod {
	t.Helper()
	var live []corev1.Pod
	for _, p := range d.pods(ctx, t) {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		t.Fatalf("%d bot pods, want 1", len(live))
	}
	return live[0]
}

// sameUpstreamSession fails unless the emulator saw no new connection, identify or
// server close between two readings: the gateway proxy kept its Discord session.
func sameUpstreamSession(t *testing.T, before, after emulatorapi.Stats) {
	t.Helper()
	if after.Connections != before.Connections || after.Identifies != before.Identifies || after.Resumes != before.Resumes {
		t.Errorf("emulator connections %d -> %d, identifies %d -> %d, resumes %d -> %d: want the proxy's session untouched",
			before.Connections, after.Connections, before.Identifies, after.Identifies, before.Resumes, after.Resumes)
	}
	if after.ServerCloseCodes[4009] != before.ServerCloseCodes[4009] {
		t.Errorf("the emulator closed %d sessions for missed heartbeats (4009)", after.ServerCloseCodes[4009]-before.ServerCloseCodes[4009])
	}
}

func containerRestarts(p corev1.Pod, name string) int32 {
	for _, c := range append(p.Status.ContainerStatuses, p.Status.InitContainerStatuses...) {
		if c.Name == name {
			return c.RestartCount
		}
	}
	return -1
}

// initContainerID is the containerd ID of a running init container (a native sidecar).
func initContainerID(t *testing.T, p corev1.Pod, name string) string {
	t.Helper()
	for _, c := range p.Status.InitContainerStatuses {
		if id, ok := strings.CutPrefix(c.ContainerID, "containerd://"); ok && c.Name == name && c.State.Running != nil {
			return id
		}
	}
	t.Fatalf("pod %s has no running init container %s", p.Name, name)
	return ""
}
