package botruntime

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/clock"
)

// TestFastACKIsNotAZombie: an ACK that arrives while the heartbeat write is still returning
// (a loopback fast path) must count. disgo v0.19.6 records the send time after the write
// and calls such a connection a zombie.
func TestFastACKIsNotAZombie(t *testing.T) {
	var zombie atomic.Bool
	var sent atomic.Int32
	var hb *heartbeater
	hb = &heartbeater{
		clock:    clock.RealClock{},
		interval: 10 * time.Millisecond,
		write: func() error {
			sent.Add(1)
			hb.ack(time.Now()) // the ACK is read before write() returns
			return nil
		},
		onZombie: func() { zombie.Store(true) },
		onRTT:    func(time.Duration) {},
		onLate:   func(time.Duration) {},
		touch:    func() {},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hb.run(ctx); close(done) }()
	for sent.Load() < 20 && !zombie.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if zombie.Load() {
		t.Fatalf("false zombie after %d heartbeats with instant ACKs", sent.Load())
	}
}

func TestMissingACKIsAZombieAtTheNextBeat(t *testing.T) {
	zombie := make(chan int32, 1)
	var sent atomic.Int32
	hb := &heartbeater{
		clock:    clock.RealClock{},
		interval: 20 * time.Millisecond,
		write:    func() error { sent.Add(1); return nil },
		onZombie: func() { zombie <- sent.Load() },
		onRTT:    func(time.Duration) {},
		onLate:   func(time.Duration) {},
		touch:    func() {},
	}
	go hb.run(context.Background())
	select {
	case n := <-zombie:
		if n != 1 {
			t.Errorf("zombie declared after %d unanswered heartbeats, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no zombie detected")
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
