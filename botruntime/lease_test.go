package botruntime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clocktesting "k8s.io/utils/clock/testing"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

var (
	kubeOnce sync.Once
	kubeEnv  *testenv.Env
	kube     kubernetes.Interface
	kubeErr  error
	podCount int
	podMu    sync.Mutex
)

// TestMain stops the control plane the Lease tests started: its processes would outlive
// the test binary.
func TestMain(m *testing.M) {
	code := m.Run()
	if kubeEnv != nil {
		if err := kubeEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
			code = max(code, 1)
		}
	}
	os.Exit(code)
}

// kubeClient starts one envtest control plane for the Lease tests of this package.
func kubeClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	if testing.Short() {
		t.Skip("needs envtest")
	}
	kubeOnce.Do(func() {
		env, err := testenv.Start()
		if err != nil {
			kubeErr = err
			return
		}
		kubeEnv = env // TestMain stops it when every test is done
		kube, kubeErr = kubernetes.NewForConfig(env.Config)
	})
	if kubeErr != nil {
		t.Fatal(kubeErr)
	}
	return kube
}

// botPod creates a pod object for the runtime to own its Lease (envtest runs no kubelet).
func botPod(t *testing.T, c kubernetes.Interface) *corev1.Pod {
	t.Helper()
	podMu.Lock()
	podCount++
	name := "bot-" + string(rune('a'+podCount))
	podMu.Unlock()
	pod, err := c.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "bot", Image: "bot"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

func leaseRuntime(t *testing.T, srv *discordtest.Server, c kubernetes.Interface, pod *corev1.Pod, opts ...botruntime.Option) *botruntime.Runtime {
	t.Helper()
	return newRuntimeWithConfig(t, srv, discordtest.DefaultToken, []int{0}, 1, func(cfg *botruntime.Config) {
		cfg.LeaseName, cfg.Namespace, cfg.PodName, cfg.PodUID = pod.Name, pod.Namespace, pod.Name, string(pod.UID)
		cfg.LeaseDuration = 4 * time.Second
		// A bot of its own: the identify bucket Leases it shares with nobody carry no
		// times of other tests' clocks.
		cfg.BotName = pod.Name
	}, append(opts, botruntime.WithKubernetes(c))...)
}

func getLease(t *testing.T, c kubernetes.Interface, name string) *coordinationv1.Lease {
	t.Helper()
	lease, err := c.CoordinationV1().Leases("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return lease
}

func renewTime(l *coordinationv1.Lease) time.Time {
	if l == nil || l.Spec.RenewTime == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Time
}

func shardStates(t *testing.T, l *coordinationv1.Lease) []shardkeeperv1.LeaseShardState {
	t.Helper()
	var out []shardkeeperv1.LeaseShardState
	if err := json.Unmarshal([]byte(l.Annotations[shardkeeperv1.AnnotationShards]), &out); err != nil {
		t.Fatalf("shards annotation: %v", err)
	}
	return out
}

// leaseSettled waits for the two beats rt's Lease heartbeat makes before a fake clock
// moves: its first, and the one its shard asks for on getting ready. After them it only
// waits on the clock (a beat on the way could miss the next step).
func leaseSettled(t *testing.T, rt *botruntime.Runtime) {
	t.Helper()
	eventually(t, "the first two beats", func() bool {
		return metric(t, rt, "shardkeeper_lease_renewals_total") == "shardkeeper_lease_renewals_total 2"
	})
}

// renewedOnTheClock steps clk past the next beat of a 4 s Lease (one a second, plus
// jitter) once timers timers are set on it (every goroutine waiting on it waits), and
// waits for the Lease to be renewed at the clock's time.
func renewedOnTheClock(t *testing.T, c kubernetes.Interface, name string, clk *clocktesting.FakeClock, timers int) {
	t.Helper()
	waitForTimers(t, clk, timers)
	clk.Step(2 * time.Second)
	eventually(t, "a renewal at the clock's time", func() bool { return renewTime(getLease(t, c, name)).Equal(clk.Now()) })
}

func TestLeaseIsRenewedAndCarriesShardAndResumeState(t *testing.T) {
	c := kubeClient(t)
	clk := fakeClock()
	// Heartbeats an hour apart: a step of the clock sends one at most, ACKed at once.
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour, Guilds: []uint64{guildOnShard(1, 0, 1)}})
	defer srv.Close()
	pod := botPod(t, c)
	rt := leaseRuntime(t, srv, c, pod, botruntime.WithClock(clk))
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })
	leaseSettled(t, rt)
	if first := renewTime(getLease(t, c, pod.Name)); !first.Equal(clk.Now()) {
		t.Errorf("renewTime %s, want the clock's %s", first, clk.Now())
	}
	renewedOnTheClock(t, c, pod.Name, clk, 2)

	lease := getLease(t, c, pod.Name)
	if *lease.Spec.HolderIdentity != pod.Name || *lease.Spec.LeaseDurationSeconds != 4 {
		t.Errorf("holder %q, duration %d", *lease.Spec.HolderIdentity, *lease.Spec.LeaseDurationSeconds)
	}
	if lease.Labels[shardkeeperv1.LabelBot] != pod.Name {
		t.Errorf("labels %v: the operator's cache selects bot Leases by label", lease.Labels)
	}
	// Not owned by the pod (the garbage collector would take it with the pod, and the
	// replacement could not resume); the pod that wrote it is an annotation.
	if len(lease.OwnerReferences) != 0 || lease.Annotations[shardkeeperv1.AnnotationPodUID] != string(pod.UID) {
		t.Errorf("owner references %+v, pod UID annotation %q", lease.OwnerReferences, lease.Annotations[shardkeeperv1.AnnotationPodUID])
	}
	eventually(t, "shard state on the Lease", func() bool {
		st := shardStates(t, getLease(t, c, pod.Name))
		return len(st) == 1 && st[0].State == "Ready" && st[0].Guilds == 1
	})
	resume := getLease(t, c, pod.Name).Annotations[shardkeeperv1.AnnotationResume]
	if !strings.Contains(resume, srv.Stats().PerShard[0].SessionID) {
		t.Errorf("resume annotation %s lacks the session ID", resume)
	}
	for k, v := range getLease(t, c, pod.Name).Annotations {
		if strings.Contains(v, discordtest.DefaultToken) {
			t.Errorf("annotation %s holds the token", k)
		}
	}
}

// gatewaySwitch stands between a runtime and the fake gateway like a network that can be
// partitioned: switched off, it cuts the connections through it and turns new ones away
// (it accepts and closes them, so dials fail at once).
type gatewaySwitch struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	off    bool
	open   map[net.Conn]struct{}
}

func newGatewaySwitch(t *testing.T, srv *discordtest.Server) *gatewaySwitch {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	g := &gatewaySwitch{ln: ln, target: target.Host, open: map[net.Conn]struct{}{}}
	go g.serve()
	t.Cleanup(func() { _ = ln.Close(); g.set(false) })
	return g
}

// URL is the gateway URL through the switch.
func (g *gatewaySwitch) URL() string { return "ws://" + g.ln.Addr().String() }

func (g *gatewaySwitch) serve() {
	for {
		down, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		var up net.Conn
		if !g.off {
			up, err = net.Dial("tcp", g.target)
		}
		if g.off || err != nil {
			g.mu.Unlock()
			_ = down.Close()
			continue
		}
		g.open[down], g.open[up] = struct{}{}, struct{}{}
		g.mu.Unlock()
		pipe := func(to, from net.Conn) { _, _ = io.Copy(to, from); _ = to.Close(); _ = from.Close() }
		go pipe(up, down)
		go pipe(down, up)
	}
}

// set switches the way to the gateway on or off.
func (g *gatewaySwitch) set(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.off = !on
	if !on {
		for c := range g.open {
			_ = c.Close()
		}
		clear(g.open)
	}
}

// The node-lease rule, on the runtime's clock: a pod renews its Lease while every shard is
// connected or has been down for at most the recovery bound, stops once one has been down
// longer, and renews again as soon as it reconnects. With 4 s leases a beat falls due every
// second (plus jitter), so every step of 2 s is one beat, checked on the Lease.
//
// Two goroutines wait on the clock: the Lease heartbeat, and the shard (its heartbeat while
// connected, its backoff while not). Each step waits until both are waiting again.
func TestLeaseRenewalStopsPastTheRecoveryBoundAndResumesOnReconnect(t *testing.T) {
	const bound, step = 10 * time.Second, 2 * time.Second
	c := kubeClient(t)
	clk := fakeClock()
	// Heartbeats an hour apart: the steps below send one at most, ACKed at once.
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour})
	defer srv.Close()
	network := newGatewaySwitch(t, srv)
	pod := botPod(t, c)
	rt := newRuntimeWithConfig(t, srv, discordtest.DefaultToken, []int{0}, 1, func(cfg *botruntime.Config) {
		cfg.LeaseName, cfg.Namespace, cfg.PodName, cfg.PodUID = pod.Name, pod.Namespace, pod.Name, string(pod.UID)
		cfg.LeaseDuration, cfg.BotName = 4*time.Second, pod.Name
		cfg.GatewayURL = network.URL()
	}, botruntime.WithKubernetes(c), botruntime.WithClock(clk), botruntime.WithRecoveryBound(bound))
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })
	// Two beats before the clock moves: the first, and the one the shard asked for when it
	// became ready. After them the heartbeat only waits on the clock.
	eventually(t, "the first two beats", func() bool {
		return metric(t, rt, "shardkeeper_lease_renewals_total") == "shardkeeper_lease_renewals_total 2"
	})

	// beat steps the clock to the next beat and says whether the Lease was renewed at it;
	// a beat that does not renew says how long the shard has been down (from downAt).
	var downAt time.Time
	beat := func() (renewed bool) {
		t.Helper()
		waitForTimers(t, clk, 2)
		clk.Step(step)
		now := clk.Now()
		held := fmt.Sprintf(" for %s", now.Sub(downAt).Round(time.Second))
		eventually(t, fmt.Sprintf("the beat at %s on the Lease", now.Format(time.TimeOnly)), func() bool {
			l := getLease(t, c, pod.Name)
			renewed = renewTime(l).Equal(now)
			return renewed || (!downAt.IsZero() && strings.HasSuffix(l.Annotations[shardkeeperv1.AnnotationRenewalHeld], held))
		})
		return renewed
	}
	if !beat() {
		t.Fatal("a connected pod did not renew its Lease")
	}

	// The way to Discord is cut: the shard reconnects, and keeps failing.
	network.set(false)
	eventually(t, "the shard down", func() bool { return rt.Shards()[0].State == botruntime.StateReconnecting })
	downAt = clk.Now()
	for down := step; down <= bound+2*step; down += step {
		if renewed, want := beat(), down <= bound; renewed != want {
			t.Fatalf("shard down for %s of a %s bound: renewed %v, want %v", down, bound, renewed, want)
		}
	}
	l := getLease(t, c, pod.Name)
	if why := l.Annotations[shardkeeperv1.AnnotationRenewalHeld]; !strings.HasPrefix(why, "shard 0 has been ") {
		t.Errorf("renewal-held reason %q", why)
	}
	if st := shardStates(t, l)[0].State; st == "Ready" || st == "Resumed" {
		t.Errorf("the Lease says %s", st)
	}

	// The way is back: the clock runs until the shard's backoff (a minute at most) ends
	// and it connects; then it stands still while the shard gets ready.
	network.set(true)
	for waited := time.Duration(0); !allReady(rt); {
		waitForTimers(t, clk, 2)
		if rt.Shards()[0].State != botruntime.StateReconnecting {
			eventually(t, "ready, or down again", func() bool {
				return allReady(rt) || rt.Shards()[0].State == botruntime.StateReconnecting
			})
			continue
		}
		if waited > 2*time.Minute {
			t.Fatalf("the shard did not reconnect within %s of the network coming back", waited)
		}
		clk.Step(step)
		waited += step
	}
	// The shard asks for a beat as it becomes ready: renewed at once, at the clock's time.
	eventually(t, "renewed as soon as the shard reconnected", func() bool {
		l := getLease(t, c, pod.Name)
		_, held := l.Annotations[shardkeeperv1.AnnotationRenewalHeld]
		return renewTime(l).Equal(clk.Now()) && !held
	})
	if !beat() {
		t.Fatal("not renewing at the next beat after the shard reconnected")
	}
}

func TestLeaseIsNotRenewedWhileHandlersAreStuck(t *testing.T) {
	c := kubeClient(t)
	g := guildOnShard(1, 0, 1)
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour, Guilds: []uint64{g}})
	defer srv.Close()
	pod := botPod(t, c)
	stuck, entered := make(chan struct{}), make(chan struct{}, 2)
	defer close(stuck)
	clk := fakeClock()
	rt := leaseRuntime(t, srv, c, pod, botruntime.WithRecoveryBound(time.Second), botruntime.WithWorkers(1),
		botruntime.WithShutdownTimeout(100*time.Millisecond), botruntime.WithClock(clk))
	_ = rt.Handle(func(ctx context.Context, ev botruntime.Event) {
		if ev.Type == "MESSAGE_CREATE" {
			entered <- struct{}{}
			select { // a deadlocked handler
			case <-stuck:
			case <-ctx.Done():
			}
		}
	})
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })
	leaseSettled(t, rt)
	srv.SendMessage(g, 1, "one")
	srv.SendMessage(g, 1, "two")
	select {
	case <-entered:
	case <-time.After(waitLimit):
		t.Fatal("the handler never ran")
	}
	// Stuck for 2 s of a 1 s bound at the next beat.
	waitForTimers(t, clk, 2)
	clk.Step(2 * time.Second)
	eventually(t, "renewal held back", func() bool {
		return strings.Contains(metric(t, rt, "shardkeeper_lease_renewal_held"), " 1")
	})
	if renewed := renewTime(getLease(t, c, pod.Name)); renewed.Equal(clk.Now()) {
		t.Error("renewed while a handler was stuck past the bound")
	}
	// The Lease says which worker and guild hold the pod up.
	eventually(t, "the reason on the Lease", func() bool {
		why := getLease(t, c, pod.Name).Annotations[shardkeeperv1.AnnotationRenewalHeld]
		return strings.Contains(why, "dispatcher worker 0 is stuck") && strings.Contains(why, fmt.Sprintf("guild %d", g))
	})
	// The gateway is fine all along: heartbeats are not what stopped.
	if ok, _ := rt.Live(); !ok {
		t.Error("not live")
	}
}

func TestLeaseIsRenewedWhileABotsOwnLivenessCheckFails(t *testing.T) {
	c := kubeClient(t)
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour})
	defer srv.Close()
	pod := botPod(t, c)
	clk := fakeClock()
	rt := leaseRuntime(t, srv, c, pod, botruntime.WithClock(clk),
		botruntime.WithLivenessCheck("wedged", func(context.Context) error { return fmt.Errorf("on purpose") }))
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })
	leaseSettled(t, rt)
	// The shards are connected: the Lease says so, and the kubelet (not the operator) acts
	// on the failing check.
	renewedOnTheClock(t, c, pod.Name, clk, 2)
	if ok, why := rt.Live(); ok || !strings.Contains(why, "check wedged: on purpose") {
		t.Errorf("Live() = %v, %q", ok, why)
	}
}

func TestReplacementPodResumesFromTheLease(t *testing.T) {
	c := kubeClient(t)
	g := guildOnShard(1, 0, 1)
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond, Guilds: []uint64{g}})
	defer srv.Close()
	pod := botPod(t, c)
	rt1 := leaseRuntime(t, srv, c, pod)
	stop, _ := running(t, rt1)
	eventually(t, "ready", func() bool { return allReady(rt1) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	srv.SendMessage(g, 1, "while the pod is replaced")

	// The replacement has the same name, so the same Lease.
	rec := newRecorder(0)
	rt2 := leaseRuntime(t, srv, c, pod)
	_ = rt2.Handle(rec.handle)
	running(t, rt2)
	eventually(t, "resumed", func() bool { return srv.Stats().PerShard[0].Resumes == 1 })
	eventually(t, "the missed event replayed", func() bool { return rec.count() == 1 })
	if n := srv.Stats().Identifies; n != 1 {
		t.Errorf("%d identifies; the replacement should resume", n)
	}
}

// podProcess is a runtime of the shard group whose pod is named name, as the pod with
// that UID: a force-deleted pod and its replacement share the name, never the UID.
func podProcess(t *testing.T, srv *discordtest.Server, c kubernetes.Interface, name, uid string, opts ...botruntime.Option) *botruntime.Runtime {
	t.Helper()
	return newRuntimeWithConfig(t, srv, discordtest.DefaultToken, []int{0}, 1, func(cfg *botruntime.Config) {
		cfg.LeaseName, cfg.Namespace, cfg.PodName, cfg.PodUID = name, "default", name, uid
		cfg.LeaseDuration = 4 * time.Second
		cfg.BotName = name // a bot of its own (see leaseRuntime)
	}, append(opts, botruntime.WithKubernetes(c))...)
}

func TestAReplacedPodStopsItsShardsAndItsReplacementRuns(t *testing.T) {
	c := kubeClient(t)
	g := guildOnShard(1, 0, 1)
	clk := fakeClock() // both processes' clock
	// Heartbeats an hour apart: a step of the clock sends one at most, ACKed at once.
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour, Guilds: []uint64{g}})
	defer srv.Close()
	name := botPod(t, c).Name

	// The old pod runs; then it is force-deleted and a new pod of the same name starts
	// while the old process still runs (a partitioned node).
	oldRec, newRec := newRecorder(0), newRecorder(0)
	old := podProcess(t, srv, c, name, "uid-old", botruntime.WithShutdownTimeout(100*time.Millisecond), botruntime.WithClock(clk))
	_ = old.Handle(oldRec.handle)
	_, oldResult := running(t, old)
	eventually(t, "the old pod ready", func() bool { return allReady(old) })
	leaseSettled(t, old)
	if uid := getLease(t, c, name).Annotations[shardkeeperv1.AnnotationPodUID]; uid != "uid-old" {
		t.Fatalf("the Lease says pod UID %q, want the old pod's", uid)
	}
	replacement := podProcess(t, srv, c, name, "uid-new", botruntime.WithClock(clk))
	_ = replacement.Handle(newRec.handle)
	running(t, replacement)
	eventually(t, "the replacement ready", func() bool { return allReady(replacement) })
	leaseSettled(t, replacement)

	// The old process finds out at its next beat: it stops its shards and returns, saying
	// why. Each process waits on the clock for its Lease heartbeat and its shard.
	waitForTimers(t, clk, 4)
	clk.Step(2 * time.Second)
	var replaced *botruntime.ReplacedError
	if err := oldResult(); !errors.As(err, &replaced) || replaced.ByUID != "uid-new" || replaced.OwnUID != "uid-old" {
		t.Fatalf("the old process returned %v; want a *ReplacedError by uid-new", err)
	}
	if replaced.ExitCode() != botruntime.ExitReplaced {
		t.Errorf("exit code %d", replaced.ExitCode())
	}
	for _, st := range old.Shards() {
		if st.State != botruntime.StateStopped {
			t.Errorf("old process: shard %d is %s", st.ID, st.State)
		}
	}

	// The replacement keeps the Lease and keeps renewing it, and alone handles events.
	renewedOnTheClock(t, c, name, clk, 2)
	lease := getLease(t, c, name)
	if uid := lease.Annotations[shardkeeperv1.AnnotationPodUID]; uid != "uid-new" {
		t.Errorf("the Lease says pod UID %q", uid)
	}
	if got := lease.Annotations[shardkeeperv1.AnnotationReplacedPodUIDs]; got != "uid-old" {
		t.Errorf("replaced pod UIDs %q", got)
	}
	oldSeen := oldRec.count()
	srv.SendMessage(g, 1, "after the old pod stopped")
	eventually(t, "the replacement handles the event", func() bool { return newRec.count() >= 1 })
	if n := oldRec.count(); n != oldSeen {
		t.Errorf("the stopped process handled %d more events", n-oldSeen)
	}
	for _, st := range replacement.Shards() {
		if st.State != botruntime.StateReady && st.State != botruntime.StateResumed {
			t.Errorf("replacement: shard %d is %s", st.ID, st.State)
		}
	}

	// The old pod's kubelet restarts its container: the new process stops before it
	// connects anything.
	before := srv.Stats()
	restarted := podProcess(t, srv, c, name, "uid-old")
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := restarted.Run(ctx); !errors.As(err, &replaced) {
		t.Fatalf("the restarted old process returned %v; want a *ReplacedError", err)
	}
	if after := srv.Stats(); after.Identifies != before.Identifies || after.PerShard[0].Resumes != before.PerShard[0].Resumes {
		t.Errorf("the restarted old process connected: identifies %d -> %d, resumes %d -> %d",
			before.Identifies, after.Identifies, before.PerShard[0].Resumes, after.PerShard[0].Resumes)
	}
}

func TestAReplacementAfterItsPredecessorIsGoneKeepsRunning(t *testing.T) {
	c := kubeClient(t)
	clk := fakeClock()
	// Heartbeats an hour apart: a step of the clock sends one at most, ACKed at once.
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour})
	defer srv.Close()
	name := botPod(t, c).Name
	first := podProcess(t, srv, c, name, "uid-first", botruntime.WithClock(clk))
	stop, _ := running(t, first)
	eventually(t, "ready", func() bool { return allReady(first) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The predecessor's UID on the Lease is what a normal replacement reads first.
	next := podProcess(t, srv, c, name, "uid-next", botruntime.WithClock(clk))
	running(t, next)
	eventually(t, "resumed", func() bool { return srv.Stats().PerShard[0].Resumes == 1 })
	leaseSettled(t, next)
	if uid := getLease(t, c, name).Annotations[shardkeeperv1.AnnotationPodUID]; uid != "uid-next" {
		t.Fatalf("the Lease says pod UID %q", uid)
	}
	renewedOnTheClock(t, c, name, clk, 2)
	renewedOnTheClock(t, c, name, clk, 2)
	for _, st := range next.Shards() {
		if st.State != botruntime.StateResumed && st.State != botruntime.StateReady {
			t.Errorf("shard %d is %s", st.ID, st.State)
		}
	}
}
