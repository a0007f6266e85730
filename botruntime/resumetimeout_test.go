package botruntime_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// resumeBound is the documented wait for an answer to Resume (docs/botruntime.md).
const resumeBound = 30 * time.Second

const resumeTimeouts = `shardkeeper_gateway_resume_timeouts_total{shard="0"}`

// A peer that never answers Resume: the shard gives up resumeBound after sending it,
// identifies on a fresh connection, and /readyz says it is not ready all the while.
func TestAnUnansweredResumeGivesUpWithinTheBoundAndIdentifies(t *testing.T) {
	clk := fakeClock()
	// Heartbeats an hour apart: the steps below send one at most, ACKed at once.
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour})
	defer srv.Close()
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk))
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })

	srv.SetResumeAnswer(0, discordtest.ResumeUnanswered)
	srv.Cut(0)
	waitingOnlyFor(t, rt, clk)
	clk.Step(time.Second) // the first backoff's longest
	eventually(t, "the Resume sent and left unanswered", func() bool {
		return srv.Stats().PerShard[0].ResumesUnanswered == 1 && rt.Shards()[0].State == botruntime.StateResuming
	})
	waitForTimers(t, clk, 2) // the heartbeat's and the wait for RESUMED
	if code := get(t, rt, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d while the shard is Resuming, want 503", code)
	}
	if code := get(t, rt, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while the shard is Resuming; it recovers on its own", code)
	}

	clk.Step(resumeBound - time.Millisecond)
	if st := rt.Shards()[0]; st.State != botruntime.StateResuming {
		t.Fatalf("state %s %s after the Resume; the wait is %s", st.State, resumeBound-time.Millisecond, resumeBound)
	}
	if m := metric(t, rt, resumeTimeouts); m != resumeTimeouts+" 0" {
		t.Fatalf("before the bound: %q", m)
	}
	clk.Step(time.Millisecond)
	eventually(t, "the unanswered connection dropped", func() bool {
		return metric(t, rt, resumeTimeouts) == resumeTimeouts+" 1" && rt.Shards()[0].State == botruntime.StateReconnecting
	})
	if code := get(t, rt, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d while the shard reconnects, want 503", code)
	}
	if m := metric(t, rt, `shardkeeper_gateway_reconnects_total{reason="resume_timeout",shard="0"}`); m == "" {
		t.Error("the reconnect is not counted with reason resume_timeout")
	}

	// A connection that never got up backs off (1-2 s), then a fresh one identifies.
	waitingOnlyFor(t, rt, clk)
	clk.Step(2 * time.Second)
	eventually(t, "identified anew", func() bool { return srv.Stats().PerShard[0].Identifies == 2 && allReady(rt) })
	if code := get(t, rt, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d once the new session is Ready", code)
	}
	st := srv.Stats().PerShard[0]
	if st.Resumes != 0 || st.ResumesUnanswered != 1 || st.Connections != 3 {
		t.Errorf("resumes %d, unanswered %d, connections %d; want 0, 1, 3: one Resume, then an identify", st.Resumes, st.ResumesUnanswered, st.Connections)
	}
	// Cut (no close frame), then the abandoned session's connection: closed with 1000,
	// which tells Discord to end the session.
	if len(st.ClientCloseCodes) < 2 || st.ClientCloseCodes[1] != websocket.CloseNormalClosure {
		t.Errorf("client close codes %v; want the unanswered connection closed with 1000", st.ClientCloseCodes)
	}
	if got := rt.Shards()[0].State; got != botruntime.StateReady {
		t.Errorf("state %s, want Ready (a new session)", got)
	}
}

// A replay still coming in is an answer on its way: every replayed event starts the wait
// over, and it runs out only resumeBound after the last one.
func TestAResumeWhoseReplayKeepsComingIsWaitedFor(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	clk := fakeClock()
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour, Guilds: []uint64{g}})
	defer srv.Close()
	rec := newRecorder(0)
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk))
	_ = rt.Handle(rec.handle)
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })

	srv.SetResumeAnswer(0, discordtest.ResumeWithoutResumed)
	srv.Cut(0)
	waitingOnlyFor(t, rt, clk)
	clk.Step(time.Second)
	eventually(t, "the Resume sent, RESUMED withheld", func() bool {
		return srv.Stats().PerShard[0].ResumesUnanswered == 1 && rt.Shards()[0].State == botruntime.StateResuming
	})
	waitForTimers(t, clk, 2)

	clk.Step(resumeBound - 10*time.Second)
	srv.SendMessage(g, 1, "replayed late") // before RESUMED, as a replay is
	eventually(t, "the event handled", func() bool { return rec.count() == 1 })
	clk.Step(20 * time.Second) // 40 s after the Resume, 20 s after the event
	waitForTimers(t, clk, 2)   // the wait, set again for what is left of it
	if st := rt.Shards()[0]; st.State != botruntime.StateResuming || metric(t, rt, resumeTimeouts) != resumeTimeouts+" 0" {
		t.Fatalf("gave up %s after a replayed event (state %s); the wait starts over with each", 20*time.Second, st.State)
	}
	clk.Step(10 * time.Second) // resumeBound after the event
	eventually(t, "gave up once the replay stopped", func() bool {
		return metric(t, rt, resumeTimeouts) == resumeTimeouts+" 1"
	})
}
