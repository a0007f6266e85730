package botruntime_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// readyBound is the documented wait for READY after Identify (docs/botruntime.md).
const readyBound = 30 * time.Second

const readyTimeouts = `shardkeeper_gateway_ready_timeouts_total{shard="0"}`

// A gateway that never answers Identify: the shard gives up readyBound after sending it,
// backs off as after any connection that never got up (longer each time: every identify
// costs a session start), and identifies again on a fresh connection.
func TestAnUnansweredIdentifyGivesUpWithinTheBoundAndBacksOff(t *testing.T) {
	clk := fakeClock()
	// Heartbeats an hour apart: the steps below send one at most, ACKed at once.
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour})
	defer srv.Close()
	srv.SetIdentifyAnswer(0, discordtest.IdentifyUnanswered)
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk))
	running(t, rt)

	unanswered := func(n int) {
		t.Helper()
		eventually(t, "the Identify sent and left unanswered", func() bool {
			return srv.Stats().PerShard[0].IdentifiesUnanswered == n && rt.Shards()[0].State == botruntime.StateIdentifying
		})
		waitForTimers(t, clk, 2) // the heartbeat's and the wait for READY
	}
	unanswered(1)
	if code := get(t, rt, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d while the shard is Identifying, want 503", code)
	}
	clk.Step(readyBound - time.Millisecond)
	if st := rt.Shards()[0]; st.State != botruntime.StateIdentifying {
		t.Fatalf("state %s %s after the Identify; the wait is %s", st.State, readyBound-time.Millisecond, readyBound)
	}
	if m := metric(t, rt, readyTimeouts); m != readyTimeouts+" 0" {
		t.Fatalf("before the bound: %q", m)
	}
	clk.Step(time.Millisecond)
	eventually(t, "the unanswered connection dropped", func() bool {
		return metric(t, rt, readyTimeouts) == readyTimeouts+" 1" && rt.Shards()[0].State == botruntime.StateReconnecting
	})
	if m := metric(t, rt, `shardkeeper_gateway_reconnects_total{reason="ready_timeout",shard="0"}`); m == "" {
		t.Error("the reconnect is not counted with reason ready_timeout")
	}

	// The first backoff (0.5-1 s), a second Identify, unanswered too.
	waitingOnlyFor(t, rt, clk)
	clk.Step(time.Second)
	unanswered(2)
	clk.Step(readyBound)
	eventually(t, "the second unanswered connection dropped", func() bool {
		return metric(t, rt, readyTimeouts) == readyTimeouts+" 2"
	})
	// The second backoff is longer (1-2 s): no tight loop spending session starts.
	waitingOnlyFor(t, rt, clk)
	clk.Step(time.Second - time.Millisecond)
	if !stillWaiting(rt, clk) {
		t.Fatalf("identified again %s after the second timeout; want a backoff of at least 1 s", time.Second-time.Millisecond)
	}

	srv.SetIdentifyAnswer(0, discordtest.IdentifyAnswered)
	clk.Step(time.Second + time.Millisecond)
	eventually(t, "identified", func() bool { return srv.Stats().PerShard[0].Identifies == 1 && allReady(rt) })
	st := srv.Stats().PerShard[0]
	if st.IdentifiesUnanswered != 2 || st.Connections != 3 {
		t.Errorf("unanswered %d, connections %d; want 2, 3", st.IdentifiesUnanswered, st.Connections)
	}
	// The unanswered connections were closed with 1000: any session Discord started on
	// them is of no use and ends.
	if len(st.ClientCloseCodes) != 2 || st.ClientCloseCodes[0] != websocket.CloseNormalClosure || st.ClientCloseCodes[1] != websocket.CloseNormalClosure {
		t.Errorf("client close codes %v; want both unanswered connections closed with 1000", st.ClientCloseCodes)
	}
	if m := metric(t, rt, readyTimeouts); m != readyTimeouts+" 2" {
		t.Errorf("after READY: %q", m)
	}
}
