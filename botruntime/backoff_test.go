package botruntime_test

import (
	"testing"
	"time"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// A shard whose connection keeps dropping waits longer each time, between half and all of
// 1 s, 2 s, 4 s, 8 s...; a connection that stayed up a minute starts the backoff over.
func TestReconnectBackoffGrowsAndStartsOverAfterAHealthyConnection(t *testing.T) {
	clk := fakeClock()
	// Heartbeats an hour apart: the steps below send one at most, ACKed at once.
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour})
	defer srv.Close()
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk))
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })

	// lose has the server close the connection the way a gateway in trouble does (4000:
	// resumable, and not asked for by the bot), and checks the shard waits at least floor
	// and at most ceiling before it connects again.
	lose := func(floor, ceiling time.Duration) {
		t.Helper()
		conns := srv.Stats().Connections
		srv.CloseWith(0, 4000, "unknown error")
		waitingOnlyFor(t, rt, clk)
		clk.Step(floor - time.Millisecond)
		if !stillWaiting(rt, clk) {
			t.Fatalf("reconnected within %s; the backoff is at least %s", floor-time.Millisecond, floor)
		}
		clk.Step(ceiling - floor + time.Millisecond)
		eventually(t, "reconnected after the backoff", func() bool {
			return srv.Stats().Connections == conns+1 && allReady(rt)
		})
	}
	lose(500*time.Millisecond, time.Second)
	lose(time.Second, 2*time.Second)
	lose(2*time.Second, 4*time.Second)
	lose(4*time.Second, 8*time.Second)

	clk.Step(time.Minute) // up a minute: healthy again
	lose(500*time.Millisecond, time.Second)

	if st := srv.Stats().PerShard[0]; st.Identifies != 1 || st.Resumes != 5 {
		t.Errorf("identifies %d, resumes %d; want 1 and 5: every drop resumes", st.Identifies, st.Resumes)
	}
}
