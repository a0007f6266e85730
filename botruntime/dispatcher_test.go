package botruntime

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/disgoorg/snowflake/v2"
	"github.com/go-logr/logr"
)

func newTestDispatcher(workers, soft, hard int) *dispatcher {
	return newDispatcher(workers, soft, hard, newMetrics(), logr.Discard(), newWaiters(logr.Discard()))
}

func TestDispatcherKeepsGuildOrderAndNeverBlocks(t *testing.T) {
	d := newTestDispatcher(4, 1000, 100000)
	var mu sync.Mutex
	seen := map[snowflake.ID][]int{}
	release := make(chan struct{})
	d.handlers = []Handler{func(ctx context.Context, ev Event) {
		if ev.GuildID == 1 && ev.Seq == 1 {
			<-release // guild 1's first handler blocks
		}
		mu.Lock()
		seen[ev.GuildID] = append(seen[ev.GuildID], ev.Seq)
		mu.Unlock()
	}}
	d.start()
	start := time.Now()
	for seq := 1; seq <= 300; seq++ {
		d.enqueue(Event{Shard: 0, Seq: seq, GuildID: snowflake.ID(seq%3 + 1)})
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("enqueue blocked for %s behind a blocked handler", took)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if left := d.drain(ctx); len(left) != 0 {
		t.Fatalf("unhandled after drain: %v", left)
	}
	for guild, seqs := range seen {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				t.Fatalf("guild %d handled out of order: %v", guild, seqs)
			}
		}
		if len(seqs) != 100 {
			t.Errorf("guild %d: %d events handled, want 100", guild, len(seqs))
		}
	}
}

func TestDispatcherOverloadPolicy(t *testing.T) {
	d := newTestDispatcher(1, 5, 10)
	release := make(chan struct{})
	d.handlers = []Handler{func(ctx context.Context, ev Event) { <-release }}
	d.start()
	accepted := 0
	for seq := 1; seq <= 20; seq++ {
		if d.enqueue(Event{Seq: seq, GuildID: 7}) {
			accepted++
		}
	}
	if accepted != 10 {
		t.Errorf("accepted %d events past a hard backlog of 10", accepted)
	}
	if !d.overloaded() {
		t.Error("not overloaded at 10 queued with a soft bound of 5")
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.drain(ctx)
	if d.overloaded() {
		t.Error("still overloaded after draining")
	}
}

func TestDrainDeadlineReportsFirstUnhandledEvent(t *testing.T) {
	d := newTestDispatcher(1, 100, 1000)
	block := make(chan struct{})
	defer close(block)
	d.handlers = []Handler{func(ctx context.Context, ev Event) {
		if ev.Seq >= 3 {
			select {
			case <-block:
			case <-ctx.Done(): // the drain deadline cancels handlers
			}
		}
	}}
	d.start()
	for seq := 1; seq <= 6; seq++ {
		d.enqueue(Event{Shard: 2, Seq: seq, GuildID: 9})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	left := d.drain(ctx)
	if left[2] != 2 {
		t.Fatalf("resume point for shard 2 = %d, want 2 (events 3.. unhandled): %v", left[2], left)
	}
}

func TestHandlerPanicDoesNotStopTheWorker(t *testing.T) {
	d := newTestDispatcher(1, 100, 1000)
	var handled sync.WaitGroup
	handled.Add(2)
	d.handlers = []Handler{func(ctx context.Context, ev Event) {
		defer handled.Done()
		if ev.Seq == 1 {
			panic("boom")
		}
	}}
	d.start()
	d.enqueue(Event{Seq: 1})
	d.enqueue(Event{Seq: 2})
	waitGroupOrFail(t, &handled)
}

func waitGroupOrFail(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
}

func TestWaitForTimeoutCancelAndNoLeaks(t *testing.T) {
	r := &Runtime{waiters: newWaiters(logr.Discard())}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go r.waiters.run(ctx)
	before := runtime.NumGoroutine()

	// A match from another goroutine.
	go func() {
		for r.waiters.count.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		r.waiters.offer(Event{Seq: 1, GuildID: 5})
		r.waiters.offer(Event{Seq: 2, GuildID: 6})
	}()
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	ev, err := r.WaitFor(wctx, func(ev Event) bool { return ev.GuildID == 6 })
	cancel()
	if err != nil || ev.Seq != 2 {
		t.Fatalf("WaitFor = %+v, %v", ev, err)
	}

	// Deadline.
	wctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err = r.WaitFor(wctx, func(Event) bool { return false })
	cancel()
	if !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("after the deadline: %v, want ErrWaitTimeout", err)
	}

	// Cancellation.
	wctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	_, err = r.WaitFor(wctx, func(Event) bool { return false })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v, want context.Canceled", err)
	}

	// A panicking filter is no match, and does not stop other waiters.
	wctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err = r.WaitFor(wctx, func(Event) bool { panic("bad filter") })
	cancel()
	if !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("panicking filter: %v", err)
	}

	if n := r.waiters.count.Load(); n != 0 {
		t.Errorf("%d waiters left registered", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines before, %d after: WaitFor leaked", before, n)
	}
}
