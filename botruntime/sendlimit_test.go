package botruntime

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestCommandShareLeavesRoomForTheRuntimesOwnPayloads(t *testing.T) {
	tests := []struct {
		interval time.Duration
		want     int
	}{
		{41250 * time.Millisecond, 115}, // Discord's: 2 beats a window, 2 asked for, identify
		{10 * time.Second, 110},         // 7 beats in 61 s
		{time.Hour, 116},
		{time.Second, 120 - 62 - 3},
		{500 * time.Millisecond, 0}, // heartbeats alone would pass the limit
		{0, 0},
	}
	for _, tt := range tests {
		if got := commandShare(tt.interval); got != tt.want {
			t.Errorf("commandShare(%s) = %d, want %d", tt.interval, got, tt.want)
		}
	}
}

// sendAll starts n commands on l and returns how many were written and a wait for all of
// them to return.
func sendAll(ctx context.Context, l *sendLimiter, gone <-chan struct{}, n int) (*atomic.Int32, func() []error) {
	var written atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.send(ctx, gone, func() error { written.Add(1); return nil })
		}()
	}
	return &written, func() []error { wg.Wait(); return errs }
}

// Commands take their share of a window and wait for the rest; the runtime's own payloads
// go at once and count, and when Discord asked for more of them than the window kept room
// for, commands give way so that the total stays within the limit.
func TestCommandsWaitForTheirShareAndGiveWayToTheRuntimesOwn(t *testing.T) {
	clk := clocktesting.NewFakeClock(fakeEpoch)
	l := newSendLimiter(clk, 10*time.Second) // 110 for commands
	l.sentOwn()                              // identify
	written, wait := sendAll(context.Background(), l, nil, 250)
	eventually(t, "the share written", func() bool { return written.Load() == 110 })
	waitForTimers(t, clk, 1) // the next command waits for the window
	if n := written.Load(); n != 110 {
		t.Fatalf("%d commands in the first window, want 110", n)
	}

	clk.Step(30 * time.Second)
	for range 20 {
		l.sentOwn() // heartbeats Discord asked for: never held back
	}
	clk.Step(31 * time.Second) // the first window's payloads age out; the 20 do not
	eventually(t, "the next share written", func() bool { return written.Load() == 210 })
	waitForTimers(t, clk, 1)
	if n := written.Load(); n != 210 {
		t.Fatalf("%d commands beside 20 of the runtime's own in a window, want 100 more (120 in all)", n-110)
	}
	clk.Step(30 * time.Second) // the 20 age out: commands are held by their share now
	eventually(t, "ten more", func() bool { return written.Load() == 220 })
	clk.Step(31 * time.Second)
	eventually(t, "the rest", func() bool { return written.Load() == 250 })
	for i, err := range wait() {
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
}

func TestWaitingCommandsAreBoundedAndEndWithTheirContextOrConnection(t *testing.T) {
	clk := clocktesting.NewFakeClock(fakeEpoch)
	l := newSendLimiter(clk, time.Hour)
	for range commandShare(time.Hour) {
		if err := l.send(context.Background(), nil, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan struct{})
	half := maxQueuedCommands / 2
	_, waitCanceled := sendAll(ctx, l, nil, half)
	_, waitGone := sendAll(context.Background(), l, gone, maxQueuedCommands-half)
	eventually(t, "the queue full", func() bool { return l.queued.Load() == maxQueuedCommands })

	err := l.send(context.Background(), nil, func() error { t.Error("a command past the bound was written"); return nil })
	if !errors.Is(err, ErrCommandQueueFull) {
		t.Fatalf("a command past %d waiting: %v, want ErrCommandQueueFull", maxQueuedCommands, err)
	}
	cancel()
	for _, err := range waitCanceled() {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("a canceled command returned %v", err)
		}
	}
	close(gone)
	for _, err := range waitGone() {
		if !errors.Is(err, ErrNotConnected) {
			t.Fatalf("a command whose connection ended returned %v, want ErrNotConnected", err)
		}
	}
	if n := l.queued.Load(); n != 0 {
		t.Errorf("%d commands still counted as waiting", n)
	}
}
