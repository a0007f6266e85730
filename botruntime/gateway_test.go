package botruntime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	clocktesting "k8s.io/utils/clock/testing"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// The helpers live in the package's own test files (eventually_test.go).
const waitLimit = botruntime.WaitLimit

var eventually = botruntime.Eventually

// fakeClock is a clock for a runtime under test (WithClock). It starts far from the wall
// clock, so that a time read from the wall clock by mistake cannot pass for its time.
func fakeClock() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC))
}

// waitForTimers waits until n timers are set on clk: the goroutines that wait on it have
// all reached their waits, and a step of the clock now reaches them.
func waitForTimers(t *testing.T, clk *clocktesting.FakeClock, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d timers set on the clock", n), func() bool { return clk.Waiters() == n })
}

// waitingOnlyFor waits until the runtime's shard 0 is Reconnecting with exactly one timer
// set on clk: the wait before it reconnects (its heartbeat stopped with its connection).
func waitingOnlyFor(t *testing.T, rt *botruntime.Runtime, clk *clocktesting.FakeClock) {
	t.Helper()
	eventually(t, "the shard waiting to reconnect", func() bool {
		return rt.Shards()[0].State == botruntime.StateReconnecting && clk.Waiters() == 1
	})
}

// stillWaiting says whether the wait waitingOnlyFor found still runs. Timers fire inside
// FakeClock.Step, so right after a step this is exact: the count is read first, and a shard
// whose timer fired leaves Reconnecting before it can set another.
func stillWaiting(rt *botruntime.Runtime, clk *clocktesting.FakeClock) bool {
	return clk.Waiters() == 1 && rt.Shards()[0].State == botruntime.StateReconnecting
}

// guildOnShard returns a guild ID that Discord routes to shard of count: (id >> 22) % count.
func guildOnShard(n, shard, count int) uint64 { return uint64(n*count+shard) << 22 }

func newRuntime(t *testing.T, srv *discordtest.Server, shards []int, count int, opts ...botruntime.Option) *botruntime.Runtime {
	t.Helper()
	return newRuntimeWithToken(t, srv, discordtest.DefaultToken, shards, count, opts...)
}

func newRuntimeWithToken(t *testing.T, srv *discordtest.Server, token string, shards []int, count int, opts ...botruntime.Option) *botruntime.Runtime {
	t.Helper()
	return newRuntimeWithConfig(t, srv, token, shards, count, nil, opts...)
}

// newRuntimeWithConfig is newRuntimeWithToken with a last word on the Config.
func newRuntimeWithConfig(t *testing.T, srv *discordtest.Server, token string, shards []int, count int,
	adjust func(*botruntime.Config), opts ...botruntime.Option) *botruntime.Runtime {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := botruntime.Config{
		ShardIDs: shards, ShardCount: count, TokenFile: tokenFile,
		Intents:    []shardkeeperv1.Intent{"GUILDS", "GUILD_MESSAGES"},
		GatewayURL: srv.URL(), APIURL: srv.APIURL(), HealthAddr: "127.0.0.1:0",
		MaxConcurrency: 1, IdentifyInterval: 10 * time.Millisecond,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	rt, err := botruntime.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// running starts rt.Run. stop ends it and returns Run's result; result waits for Run to
// return by itself (fatal errors) and gives its result.
func running(t *testing.T, rt *botruntime.Runtime) (stop func() error, result func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = rt.Run(ctx); close(done) }()
	result = func() error {
		select {
		case <-done:
			return runErr
		case <-time.After(waitLimit):
			t.Fatal("Run did not return")
			return nil
		}
	}
	stop = func() error { cancel(); return result() }
	t.Cleanup(func() { _ = stop() })
	return stop, result
}

func allReady(rt *botruntime.Runtime) bool { ok, _ := rt.Ready(); return ok }

// recorder is a handler that remembers every event by guild, in handling order.
type recorder struct {
	mu      sync.Mutex
	byGuild map[snowflake.ID][]int
	seqs    map[int]map[int]int // shard -> seq -> times handled
	block   time.Duration
}

func newRecorder(block time.Duration) *recorder {
	return &recorder{byGuild: map[snowflake.ID][]int{}, seqs: map[int]map[int]int{}, block: block}
}

func (r *recorder) handle(ctx context.Context, ev botruntime.Event) {
	if ev.Type != "MESSAGE_CREATE" {
		return
	}
	if r.block > 0 {
		time.Sleep(r.block) // a handler doing slow, blocking work (file I/O, a slow API)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byGuild[ev.GuildID] = append(r.byGuild[ev.GuildID], ev.Seq)
	if r.seqs[ev.Shard] == nil {
		r.seqs[ev.Shard] = map[int]int{}
	}
	r.seqs[ev.Shard][ev.Seq]++
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.byGuild {
		n += len(s)
	}
	return n
}

func (r *recorder) duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := 0
	for _, seqs := range r.seqs {
		for _, n := range seqs {
			d += n - 1
		}
	}
	return d
}

func TestBlockingHandlersDoNotDelayHeartbeats(t *testing.T) {
	interval := 200 * time.Millisecond
	guilds := []uint64{guildOnShard(1, 0, 1), guildOnShard(2, 0, 1), guildOnShard(3, 0, 1)}
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: interval, Guilds: guilds})
	defer srv.Close()
	rec := newRecorder(10 * interval) // every handler blocks for 10 heartbeat intervals
	rt := newRuntime(t, srv, []int{0}, 1)
	if err := rt.Handle(rec.handle); err != nil {
		t.Fatal(err)
	}
	stop, _ := running(t, rt)
	eventually(t, "shard ready", func() bool { return allReady(rt) })

	for i := range 4 {
		for _, g := range guilds {
			srv.SendMessage(g, 77, "message "+string(rune('a'+i)))
		}
	}
	eventually(t, "all 12 events handled", func() bool { return rec.count() == 12 })
	if m := metric(t, rt, "shardkeeper_gateway_zombie_connections_total"); m != "" {
		t.Errorf("zombie connections reported: %s", m)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	st := srv.Stats().PerShard[0]
	if st.Identifies != 1 || st.Resumes != 0 {
		t.Errorf("identifies %d, resumes %d: the connection was dropped", st.Identifies, st.Resumes)
	}
	if st.ACKs < 5 {
		t.Errorf("only %d heartbeats ACKed over the run", st.ACKs)
	}
	// A heartbeat held up by a handler would come a whole block (10 intervals) late. The
	// bound is half that: a busy machine (this suite runs with -race beside others) has
	// delayed a beat by 2.7 intervals, never by five.
	for i := 1; i < len(st.HeartbeatTimes); i++ {
		if gap := st.HeartbeatTimes[i].Sub(st.HeartbeatTimes[i-1]); gap >= 5*interval {
			t.Errorf("heartbeat %d came %s after the previous one (interval %s)", i, gap, interval)
		}
	}
	for g, seqs := range rec.byGuild {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				t.Errorf("guild %d handled out of order: %v", g, seqs)
			}
		}
	}
}

func TestCutConnectionResumesAndLosesNoEvent(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	clk := fakeClock()
	// Heartbeats an hour apart: the step below sends one at most, ACKed at once.
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour, Guilds: []uint64{g}})
	defer srv.Close()
	rec := newRecorder(0)
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk))
	_ = rt.Handle(rec.handle)
	running(t, rt)
	eventually(t, "shard ready", func() bool { return allReady(rt) })

	for range 10 {
		srv.SendMessage(g, 1, "before")
	}
	eventually(t, "10 events", func() bool { return rec.count() == 10 })
	srv.Cut(0)
	for range 10 {
		srv.SendMessage(g, 1, "while cut") // stored for replay
	}
	waitingOnlyFor(t, rt, clk)
	clk.Step(time.Second) // the first backoff's longest
	eventually(t, "20 events after the resume", func() bool { return rec.count() == 20 })

	st := srv.Stats().PerShard[0]
	if st.Identifies != 1 || st.Resumes != 1 {
		t.Errorf("identifies %d, resumes %d; want 1 and 1", st.Identifies, st.Resumes)
	}
	if d := rec.duplicates(); d != 0 {
		t.Errorf("%d events handled twice", d)
	}
	eventually(t, "state Resumed", func() bool { return rt.Shards()[0].State == botruntime.StateResumed })
}

func TestMissingACKIsAZombieAndResumes(t *testing.T) {
	const interval = time.Minute
	clk := fakeClock()
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: interval})
	defer srv.Close()
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk))
	running(t, rt)
	eventually(t, "shard ready", func() bool { return allReady(rt) })

	// The only timer on the clock is the shard's heartbeat: the first beat goes
	// unanswered, the next finds it so.
	srv.SetACKs(0, false)
	waitForTimers(t, clk, 1)
	clk.Step(interval)
	waitForTimers(t, clk, 1)
	if m := metric(t, rt, "shardkeeper_gateway_zombie_connections_total"); m != "" {
		t.Fatalf("a zombie before the next beat was due: %s", m)
	}
	clk.Step(interval)
	eventually(t, "the zombie connection closed", func() bool {
		return metric(t, rt, "shardkeeper_gateway_zombie_connections_total") != ""
	})
	srv.SetACKs(0, true)
	// Past any backoff; a new connection's first heartbeat is ACKed.
	waitForTimers(t, clk, 1)
	clk.Step(time.Minute)
	eventually(t, "resumed", func() bool { return srv.Stats().PerShard[0].Resumes == 1 })
	if st := srv.Stats().PerShard[0]; st.Identifies != 1 {
		t.Errorf("identified %d times; a zombie must resume, not identify", st.Identifies)
	}
	if code := closeCodeSeen(srv, 0); code == 1000 || code == 1001 {
		t.Errorf("closed the zombie with %d, which ends the session", code)
	}
}

func closeCodeSeen(srv *discordtest.Server, shard int) int {
	return srv.Stats().PerShard[shard].LastCloseCode
}

func TestReconnectAndInvalidSession(t *testing.T) {
	tests := []struct {
		name string
		act  func(*discordtest.Server)
		// The wait Discord asks for before coming back: none after op 7, 1-5 s after op 9.
		minWait, maxWait time.Duration
		wantIdentifies   int
		wantResumes      int
	}{
		{"op 7 reconnect resumes at once", func(s *discordtest.Server) { s.Reconnect(0) }, 0, 0, 1, 1},
		{"op 9 resumable resumes after 1-5 s", func(s *discordtest.Server) { s.InvalidSession(0, true) }, time.Second, 5 * time.Second, 1, 1},
		{"op 9 not resumable identifies again after 1-5 s", func(s *discordtest.Server) { s.InvalidSession(0, false) }, time.Second, 5 * time.Second, 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeClock()
			// Heartbeats an hour apart: the steps below send one at most, ACKed at once.
			srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour})
			defer srv.Close()
			rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk))
			running(t, rt)
			eventually(t, "shard ready", func() bool { return allReady(rt) })
			tc.act(srv)
			// After op 7 the clock never moves: a backoff would hold the shard forever.
			if tc.maxWait > 0 {
				waitingOnlyFor(t, rt, clk)
				clk.Step(tc.minWait - time.Millisecond)
				if !stillWaiting(rt, clk) {
					t.Fatalf("came back within %s; Discord asks for at least %s", tc.minWait-time.Millisecond, tc.minWait)
				}
				clk.Step(tc.maxWait - tc.minWait + time.Millisecond)
			}
			eventually(t, "reconnected", func() bool {
				st := srv.Stats().PerShard[0]
				return st.Identifies == tc.wantIdentifies && st.Resumes == tc.wantResumes && allReady(rt)
			})
			st := srv.Stats().PerShard[0]
			if st.Identifies != tc.wantIdentifies || st.Resumes != tc.wantResumes {
				t.Errorf("identifies %d, resumes %d; want %d, %d", st.Identifies, st.Resumes, tc.wantIdentifies, tc.wantResumes)
			}
		})
	}
}

func TestFatalCloseCodesStopTheShardWithoutRetrying(t *testing.T) {
	for code, want := range map[int]int{
		4004: botruntime.ExitTokenInvalid, 4010: botruntime.ExitInvalidShard, 4011: botruntime.ExitShardingRequired,
		4012: botruntime.ExitInvalidAPIVersion, 4013: botruntime.ExitIntentsInvalid, 4014: botruntime.ExitIntentsDisallowed,
	} {
		t.Run(fmt.Sprintf("close %d", code), func(t *testing.T) {
			srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond})
			defer srv.Close()
			rt := newRuntime(t, srv, []int{0}, 1)
			_, result := running(t, rt)
			eventually(t, "shard ready", func() bool { return allReady(rt) })
			srv.CloseWith(0, code, "fatal")
			err := result()
			var fatal *botruntime.NoShardCanRunError
			if !errors.As(err, &fatal) || fatal.ExitCode() != want || fatal.Reason.CloseCode != code {
				t.Fatalf("Run = %v; want a NoShardCanRunError with exit code %d", err, want)
			}
			if n := srv.Stats().Connections; n != 1 {
				t.Errorf("%d connections: a fatal close code must not be retried", n)
			}
		})
	}
}

func TestInvalidTokenExitsWithItsCode(t *testing.T) {
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond})
	defer srv.Close()
	rt := newRuntimeWithToken(t, srv, "wrong-token", []int{0, 1}, 2)
	_, result := running(t, rt)
	err := result()
	var fatal *botruntime.NoShardCanRunError
	if !errors.As(err, &fatal) || fatal.ExitCode() != botruntime.ExitTokenInvalid {
		t.Fatalf("Run = %v, want exit code %d", err, botruntime.ExitTokenInvalid)
	}
	if strings.Contains(err.Error(), "wrong-token") {
		t.Error("the error shows the token")
	}
	ok, problem := rt.Ready()
	if ok || !strings.Contains(problem, "TokenInvalid") {
		t.Errorf("Ready = %v %q", ok, problem)
	}
}

func TestShutdownHandsTheSessionToTheNextProcess(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond, Guilds: []uint64{g}})
	defer srv.Close()
	store := botruntime.NewMemoryResumeStore()

	first := newRecorder(0)
	rt1 := newRuntime(t, srv, []int{0}, 1, botruntime.WithResumeStore(store))
	_ = rt1.Handle(first.handle)
	stop1, _ := running(t, rt1)
	eventually(t, "first process ready", func() bool { return allReady(rt1) })
	for range 5 {
		srv.SendMessage(g, 1, "to the first process")
	}
	eventually(t, "5 events", func() bool { return first.count() == 5 })
	if err := stop1(); err != nil { // SIGTERM
		t.Fatal(err)
	}
	eventually(t, "the fake saw the close frame", func() bool { return closeCodeSeen(srv, 0) != 0 })
	if code := closeCodeSeen(srv, 0); code != 4000 {
		t.Errorf("closed with %d on shutdown; want 4000, which keeps the session resumable", code)
	}
	for range 5 {
		srv.SendMessage(g, 1, "while no process runs")
	}

	second := newRecorder(0)
	rt2 := newRuntime(t, srv, []int{0}, 1, botruntime.WithResumeStore(store))
	_ = rt2.Handle(second.handle)
	running(t, rt2)
	eventually(t, "second process resumed", func() bool { return allReady(rt2) })
	eventually(t, "the 5 missed events replayed", func() bool { return second.count() == 5 })
	st := srv.Stats().PerShard[0]
	if st.Identifies != 1 || st.Resumes != 1 {
		t.Errorf("identifies %d, resumes %d; want the new process to resume", st.Identifies, st.Resumes)
	}
	if rt2.Shards()[0].State != botruntime.StateResumed {
		t.Errorf("state %s, want Resumed", rt2.Shards()[0].State)
	}
}

func TestHealthEndpoints(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond, Guilds: []uint64{g}})
	defer srv.Close()
	release := make(chan struct{})
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithBacklog(2, 100))
	_ = rt.Handle(func(ctx context.Context, ev botruntime.Event) {
		if ev.Type == "MESSAGE_CREATE" {
			<-release
		}
	})
	running(t, rt)
	eventually(t, "health server", func() bool { return rt.HealthAddr() != "" })
	eventually(t, "ready", func() bool { return get(t, rt, "/readyz") == http.StatusOK })
	if code := get(t, rt, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	eventually(t, "a heartbeat round trip", func() bool {
		return strings.Contains(metric(t, rt, "shardkeeper_heartbeat_rtt_seconds_count"), `shard="0"`)
	})

	// A backlog over its bound turns readiness off, and liveness stays on.
	for range 5 {
		srv.SendMessage(g, 1, "slow")
	}
	eventually(t, "not ready while the backlog is over its bound", func() bool { return get(t, rt, "/readyz") == http.StatusServiceUnavailable })
	if code := get(t, rt, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while handlers are slow; liveness must not depend on handlers", code)
	}
	close(release)
	eventually(t, "ready again", func() bool { return get(t, rt, "/readyz") == http.StatusOK })
}

func TestABotsOwnLivenessCheckFailsHealthzOnly(t *testing.T) {
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond})
	defer srv.Close()
	var wedged atomic.Bool
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithLivenessCheck("workers", func(context.Context) error {
		if wedged.Load() {
			return errors.New("the worker pool is wedged")
		}
		return nil
	}))
	running(t, rt)
	eventually(t, "health server", func() bool { return rt.HealthAddr() != "" })
	eventually(t, "ready", func() bool { return get(t, rt, "/readyz") == http.StatusOK })
	if code := get(t, rt, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d before the check fails", code)
	}
	wedged.Store(true)
	if code := get(t, rt, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz = %d while the bot's check fails, want 503", code)
	}
	if ok, why := rt.Live(); ok || !strings.Contains(why, "check workers: the worker pool is wedged") {
		t.Errorf("Live() = %v, %q; want the check named with its error", ok, why)
	}
	// Readiness is about the shards: they are still connected.
	if code := get(t, rt, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d; the bot's liveness check must not touch readiness", code)
	}
	wedged.Store(false)
	if code := get(t, rt, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d after the check passes again", code)
	}
}

func TestAHangingLivenessCheckFailsAndIsNotPiledUp(t *testing.T) {
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond})
	defer srv.Close()
	release := make(chan struct{})
	var started atomic.Int32
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithLivenessCheck("pool", func(context.Context) error {
		started.Add(1)
		<-release // ignores its context, as a check stuck behind a mutex would
		return nil
	}))
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })
	if ok, why := rt.Live(); ok || !strings.Contains(why, "check pool: no answer within") {
		t.Errorf("Live() = %v, %q; want the hanging check to fail the probe", ok, why)
	}
	for range 3 {
		if ok, why := rt.Live(); ok || !strings.Contains(why, "check pool: still running") {
			t.Errorf("Live() = %v, %q; want later probes to fail while it still runs", ok, why)
		}
	}
	if n := started.Load(); n != 1 {
		t.Errorf("the hanging check was started %d times; later probes must not start it again", n)
	}
	close(release)
	eventually(t, "live once the check returns", func() bool { ok, _ := rt.Live(); return ok })
}

func TestRunOnlyOnce(t *testing.T) {
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond})
	defer srv.Close()
	rt := newRuntime(t, srv, []int{0}, 1)
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })
	if err := rt.Run(context.Background()); !errors.Is(err, botruntime.ErrAlreadyRunning) {
		t.Fatalf("second Run = %v", err)
	}
	if err := rt.Handle(func(context.Context, botruntime.Event) {}); err == nil {
		t.Error("Handle after Run accepted")
	}
	if n := srv.Stats().Connections; n != 1 {
		t.Errorf("%d connections for one shard", n)
	}
}

func TestShardsInOneProcessGetTheirOwnGuilds(t *testing.T) {
	g0, g1 := guildOnShard(1, 0, 2), guildOnShard(1, 1, 2)
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond, Guilds: []uint64{g0, g1}})
	defer srv.Close()
	rec := newRecorder(0)
	rt := newRuntime(t, srv, []int{0, 1}, 2)
	_ = rt.Handle(rec.handle)
	running(t, rt)
	eventually(t, "both shards ready", func() bool { return allReady(rt) })
	srv.SendMessage(g0, 1, "zero")
	srv.SendMessage(g1, 1, "one")
	eventually(t, "both events", func() bool { return rec.count() == 2 })
	for _, st := range rt.Shards() {
		if st.Guilds != 1 {
			t.Errorf("shard %d has %d guilds, want 1", st.ID, st.Guilds)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seqs[0]) != 1 || len(rec.seqs[1]) != 1 {
		t.Errorf("events by shard: %v", rec.seqs)
	}
}

func get(t *testing.T, rt *botruntime.Runtime, path string) int {
	t.Helper()
	resp, err := http.Get("http://" + rt.HealthAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ OK bool }
	if path != "/metrics" {
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("%s: %v: %s", path, err, raw)
		}
	}
	return resp.StatusCode
}

// metric returns the /metrics lines that start with name.
func metric(t *testing.T, rt *botruntime.Runtime, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + rt.HealthAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, name) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// Saved state ages on the runtime's clock: from when its session last proved alive, a
// process resumes it up to ResumeMaxAge later, and identifies afresh after.
func TestSavedResumeStateAgesOnTheRuntimesClock(t *testing.T) {
	tests := []struct {
		name    string
		age     time.Duration
		resumed bool
	}{
		{"at the age limit: resumed", botruntime.ResumeMaxAge, true},
		{"past it: a fresh identify", botruntime.ResumeMaxAge + time.Millisecond, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeClock()
			srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour})
			defer srv.Close()
			store := botruntime.NewMemoryResumeStore()
			first := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk), botruntime.WithResumeStore(store))
			stop, _ := running(t, first)
			eventually(t, "ready", func() bool { return allReady(first) })
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			clk.Step(tc.age) // the session last read a frame when the clock stood at its start
			next := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk), botruntime.WithResumeStore(store))
			running(t, next)
			eventually(t, "ready", func() bool { return allReady(next) })
			st := srv.Stats().PerShard[0]
			if resumed := st.Resumes == 1 && st.Identifies == 1; resumed != tc.resumed || st.Resumes+st.Identifies != 2 {
				t.Errorf("state %s old: resumes %d, identifies %d; want resumed %v", tc.age, st.Resumes, st.Identifies, tc.resumed)
			}
		})
	}
}

func TestUnreachableResumeURLFallsBackToIdentify(t *testing.T) {
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond})
	defer srv.Close()
	store := botruntime.NewMemoryResumeStore()
	_ = store.Save(context.Background(), []botruntime.ResumeState{{
		Shard: 0, ShardCount: 1, SessionID: "lost", Sequence: 3, ResumeURL: "ws://127.0.0.1:1", SavedAt: time.Now(),
	}})
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithResumeStore(store))
	running(t, rt)
	eventually(t, "identified through the gateway URL", func() bool { return allReady(rt) })
	if st := srv.Stats().PerShard[0]; st.Identifies != 1 {
		t.Errorf("identifies %d", st.Identifies)
	}
}

func TestReplyLaterAcknowledgesAtOnceAndRepliesAfterTheWork(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond, Guilds: []uint64{g}})
	defer srv.Close()
	rt := newRuntime(t, srv, []int{0}, 1)
	release := make(chan struct{})
	replied := make(chan error, 1)
	_ = rt.Handle(func(ctx context.Context, ev botruntime.Event) {
		in, ok := ev.Data.(gateway.EventInteractionCreate)
		if !ok {
			return
		}
		replied <- rt.ReplyLater(ctx, in.Interaction, true, func(ctx context.Context) discord.MessageUpdate {
			<-release // slow work, far past Discord's 3 s window in real life
			done := "work done"
			return discord.MessageUpdate{Content: &done}
		})
	})
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })
	srv.SendSlashCommand(g, "slow")

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ack, err := srv.WaitReply(ctx, func(r discordtest.Reply) bool { return r.Kind == discordtest.ReplyInteractionCallback })
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Type int `json:"type"`
		Data struct {
			Flags int `json:"flags"`
		} `json:"data"`
	}
	_ = json.Unmarshal(ack.Body, &body)
	if body.Type != 5 || body.Data.Flags&64 == 0 {
		t.Errorf("acknowledgement %s; want a deferred (type 5) ephemeral (flag 64) response", ack.Body)
	}
	if n := len(srv.Replies()); n != 1 {
		t.Errorf("%d replies before the work finished", n)
	}
	close(release)
	if _, err := srv.WaitReply(ctx, func(r discordtest.Reply) bool {
		return r.Kind == discordtest.ReplyFollowupEdit && strings.Contains(string(r.Body), "work done")
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-replied; err != nil {
		t.Errorf("ReplyLater: %v", err)
	}
}
