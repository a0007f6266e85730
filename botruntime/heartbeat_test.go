package botruntime

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// fakeEpoch starts fake clocks far from the wall clock, so a time read from the wall
// clock by mistake cannot pass for the fake one.
var fakeEpoch = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// waitForTimers waits (in real time, briefly) until n timers are set on clk: the code
// under test has reached its wait, and stepping the clock now reaches it.
func waitForTimers(t *testing.T, clk *clocktesting.FakeClock, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for clk.Waiters() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers set on the clock, want %d", clk.Waiters(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFastACKIsNotAZombie: an ACK that arrives while the heartbeat write is still returning
// (a loopback fast path) must count. disgo v0.19.6 records the send time after the write
// and calls such a connection a zombie.
func TestFastACKIsNotAZombie(t *testing.T) {
	const interval = 40 * time.Second
	clk := clocktesting.NewFakeClock(fakeEpoch)
	var zombie atomic.Bool
	var sent atomic.Int32
	var rtts []time.Duration // read after run returns
	var hb *heartbeater
	hb = &heartbeater{
		clock:    clk,
		interval: interval,
		write: func() error {
			sent.Add(1)
			hb.ack(clk.Now()) // the ACK is read before write() returns
			return nil
		},
		onZombie: func() { zombie.Store(true) },
		onRTT:    func(d time.Duration) { rtts = append(rtts, d) },
		onLate:   func(time.Duration) {},
		touch:    func() {},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hb.run(ctx); close(done) }()
	// Every interval is one heartbeat; each is ACKed before its write returns.
	for beat := int32(1); beat <= 20; beat++ {
		waitForTimers(t, clk, 1)
		clk.Step(interval)
		deadline := time.Now().Add(10 * time.Second)
		for sent.Load() < beat && !zombie.Load() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if zombie.Load() {
			t.Fatalf("false zombie at heartbeat %d, with instant ACKs", beat)
		}
		if n := sent.Load(); n != beat {
			t.Fatalf("%d heartbeats after %d intervals", n, beat)
		}
	}
	cancel()
	<-done
	for i, rtt := range rtts {
		if rtt != 0 {
			t.Fatalf("heartbeat %d: RTT %s for an ACK read at the send time; the RTT must be timed on the runtime's clock", i+1, rtt)
		}
	}
	if len(rtts) != 20 {
		t.Errorf("%d RTTs recorded for 20 ACKed heartbeats", len(rtts))
	}
}

func TestMissingACKIsAZombieAtTheNextBeat(t *testing.T) {
	const interval = 40 * time.Second
	clk := clocktesting.NewFakeClock(fakeEpoch)
	zombie := make(chan int32, 1)
	var sent atomic.Int32
	hb := &heartbeater{
		clock:    clk,
		interval: interval,
		write:    func() error { sent.Add(1); return nil },
		onZombie: func() { zombie <- sent.Load() },
		onRTT:    func(time.Duration) {},
		onLate:   func(time.Duration) {},
		touch:    func() {},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go hb.run(ctx)

	// The first heartbeat is due within an interval (Discord's jitter).
	waitForTimers(t, clk, 1)
	clk.Step(interval)
	waitForTimers(t, clk, 1) // sent, and waiting for the next beat
	if n := sent.Load(); n != 1 {
		t.Fatalf("%d heartbeats sent in the first interval, want 1", n)
	}
	// Unanswered, but the next beat is not due: not a zombie yet.
	select {
	case n := <-zombie:
		t.Fatalf("zombie declared after %d heartbeat(s), before the next beat was due", n)
	default:
	}
	clk.Step(interval)
	select {
	case n := <-zombie:
		if n != 1 {
			t.Errorf("zombie declared after %d unanswered heartbeats, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no zombie detected at the beat after a missing ACK")
	}
}

func TestBackoffIsJitteredAndCapped(t *testing.T) {
	for attempt := range 10 {
		d := backoff(attempt)
		ceiling := min(backoffBase<<min(attempt, 6), backoffMax)
		if d < ceiling/2 || d > ceiling {
			t.Errorf("attempt %d: %s outside [%s, %s]", attempt, d, ceiling/2, ceiling)
		}
	}
}
