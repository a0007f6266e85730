package botruntime

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disgoorg/snowflake/v2"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

func newTestDispatcher(workers, soft, hard int) *dispatcher {
	return newDispatcher(workers, soft, hard, newMetrics(), logr.Discard(), newWaiters(logr.Discard()), clock.RealClock{})
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
	r := &Runtime{waiters: newWaiters(logr.Discard()), clock: clock.RealClock{}}
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

// A WaitFor whose context has no deadline gives up after DefaultWaitTimeout on the
// runtime's clock: an interaction token lives no longer.
func TestWaitForWithoutADeadlineGivesUpAfterTheDefaultTimeout(t *testing.T) {
	clk := clocktesting.NewFakeClock(fakeEpoch)
	r := &Runtime{waiters: newWaiters(logr.Discard()), clock: clk}
	done := make(chan error, 1)
	go func() { _, err := r.WaitFor(context.Background(), func(Event) bool { return false }); done <- err }()
	waitForTimers(t, clk, 1)
	clk.Step(DefaultWaitTimeout - time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("WaitFor returned %v before its %s were up", err, DefaultWaitTimeout)
	default:
	}
	if clk.Waiters() != 1 {
		t.Fatalf("WaitFor's bound ended before its %s were up", DefaultWaitTimeout)
	}
	clk.Step(time.Millisecond)
	select {
	case err := <-done:
		if !errors.Is(err, ErrWaitTimeout) {
			t.Errorf("WaitFor = %v, want ErrWaitTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("WaitFor still waits after %s", DefaultWaitTimeout)
	}
	if n := r.waiters.count.Load(); n != 0 {
		t.Errorf("%d waiters left registered", n)
	}
}

// guildOnWorker finds a guild ID after from that the dispatcher puts on worker (or, with
// want false, on any other worker).
func guildOnWorker(d *dispatcher, worker int, want bool, from snowflake.ID) snowflake.ID {
	for g := from + 1; ; g++ {
		if (d.partition(Event{GuildID: g}) == worker) == want {
			return g
		}
	}
}

func TestOneStuckGuildCostsOnlyItsWorker(t *testing.T) {
	const recoverWithin = 3 * time.Minute
	d := newTestDispatcher(4, 1000, 400) // 100 events per worker
	fake := clocktesting.NewFakeClock(time.Now())
	d.clock = fake
	const stuckGuild = snowflake.ID(1)
	stuckWorker := d.partition(Event{GuildID: stuckGuild})
	// Another guild of the stuck worker, on another shard: its events wait behind the stuck one.
	neighbour := guildOnWorker(d, stuckWorker, true, stuckGuild)
	release := make(chan struct{})
	defer close(release)
	var others atomic.Int64
	d.handlers = []Handler{func(ctx context.Context, ev Event) {
		if ev.GuildID == stuckGuild {
			select { // deadlocked
			case <-release:
			case <-ctx.Done():
			}
			return
		}
		if ev.GuildID != neighbour {
			others.Add(1)
		}
	}}
	d.start()
	r := &Runtime{dispatcher: d}

	// Shard 0: guild 1's handler hangs on event 100; 1000 events of it follow.
	for seq := 100; seq < 1100; seq++ {
		d.enqueue(Event{Shard: 0, Seq: seq, GuildID: stuckGuild, Type: "MESSAGE_CREATE"})
	}
	// Shard 1: the neighbour's events find the worker full.
	for seq := 50; seq < 60; seq++ {
		if d.enqueue(Event{Shard: 1, Seq: seq, GuildID: neighbour}) {
			t.Fatalf("event %d of a guild on the full worker was accepted", seq)
		}
	}
	// Every other guild's events are handled, round after round, while the stuck worker's
	// age grows past the recovery bound.
	sent, guild := 0, stuckGuild
	for round := range 4 {
		for range 8 {
			guild = guildOnWorker(d, stuckWorker, false, guild)
			for range 10 {
				sent++
				if !d.enqueue(Event{Shard: 2, Seq: 1000 + sent, GuildID: guild}) {
					t.Fatalf("round %d: an event of guild %d (not on the stuck worker) was dropped", round, guild)
				}
			}
		}
		eventually(t, "other guilds' events handled", func() bool { return others.Load() == int64(sent) })
		if ok, why := r.healthyForLease(recoverWithin); ok != (round < 2) { // 0 and 2 minutes in: within the bound
			t.Errorf("round %d (stuck for %s): healthyForLease = %v, %q", round, time.Duration(round)*2*time.Minute, ok, why)
		}
		fake.Step(2 * time.Minute)
	}

	w := d.worker(d.queues[stuckWorker])
	if w.oldest == nil || w.oldest.GuildID != stuckGuild || w.running != 8*time.Minute {
		t.Errorf("stuck worker: %+v, want guild 1's handler running for 8m", w)
	}
	ok, why := r.healthyForLease(recoverWithin)
	for _, want := range []string{fmt.Sprintf("worker %d is stuck", stuckWorker), "guild 1 (shard 0)", "MESSAGE_CREATE #100"} {
		if ok || !strings.Contains(why, want) {
			t.Errorf("healthyForLease = %v, %q; want a reason naming %q", ok, why, want)
		}
	}
	// Drops are counted for the stuck worker only, and by shard and guild for the Lease.
	for i := range d.queues {
		want := 0.0
		if i == stuckWorker {
			want = 1000 - 100 + 10
		}
		if got := testutil.ToFloat64(d.metrics.droppedEvents.WithLabelValues(strconv.Itoa(i))); got != want {
			t.Errorf("worker %d dropped %v events, want %v", i, got, want)
		}
	}
	if n, guilds := d.droppedOf(1); n != 10 || !slices.Equal(guilds, []snowflake.ID{neighbour}) {
		t.Errorf("shard 1 dropped %d events of guilds %v, want 10 of %d", n, guilds, neighbour)
	}
	if n, _ := d.droppedOf(2); n != 0 {
		t.Errorf("shard 2 dropped %d events", n)
	}
	// A replacement resumes before the stuck event (shard 0) and before the first dropped
	// one (shard 1): both are replayed, not skipped.
	if got := d.resumePoints(); got[0] != 99 || got[1] != 49 {
		t.Errorf("resume points %v, want shard 0 at 99, shard 1 at 49", got)
	}
}

func TestDroppedEventsHoldTheResumePointUntilTheWorkerCatchesUp(t *testing.T) {
	d := newTestDispatcher(1, 100, 2)
	gates := map[int]chan struct{}{11: make(chan struct{}), 12: make(chan struct{})}
	handled := make(chan int, 10)
	d.handlers = []Handler{func(ctx context.Context, ev Event) {
		if g := gates[ev.Seq]; g != nil {
			<-g
		}
		handled <- ev.Seq
	}}
	d.start()
	for seq := 11; seq <= 13; seq++ {
		d.enqueue(Event{Shard: 0, Seq: seq, GuildID: 5})
	}
	d.enqueue(Event{Shard: 1, Seq: 7, GuildID: 5}) // dropped too
	if got := d.resumePoints(); got[0] != 10 || got[1] != 6 {
		t.Fatalf("resume points %v, want shard 0 at 10, shard 1 at 6", got)
	}
	close(gates[11])
	<-handled
	// The handler has returned 11 or is about to; the worker marks it done after that.
	eventually(t, "11 marked done", func() bool { return d.resumePoints()[0] == 11 })
	// 13 was dropped while 12 still waits: had it been accepted, it would not be handled yet.
	if got := d.resumePoints(); got[0] != 11 || got[1] != 6 {
		t.Fatalf("after 11: resume points %v, want shard 0 at 11 (12 waits), shard 1 at 6", got)
	}
	close(gates[12])
	<-handled
	// The worker has done everything it accepted before the drops: they are lost for
	// good, and no longer keep later resumes from moving on.
	eventually(t, "drops released", func() bool { return len(d.resumePoints()) == 0 })
}

// A worker far behind but finishing events is slow, not stuck: its queue's age passing the
// recovery bound must not get the pod replaced (the replacement would replay the same
// backlog and be replaced again). A handler that stops finishing is stuck.
func TestASlowWorkerIsNotAStuckOne(t *testing.T) {
	const bound = 3 * time.Minute
	d := newTestDispatcher(1, 1000, 1000)
	fake := clocktesting.NewFakeClock(time.Now())
	d.clock = fake
	step := make(chan struct{})
	done := make(chan struct{}, 1000)
	d.handlers = []Handler{func(ctx context.Context, ev Event) {
		select {
		case <-step:
		case <-ctx.Done():
		}
		done <- struct{}{}
	}}
	d.start()
	for seq := range 100 {
		d.enqueue(Event{Shard: 0, Seq: seq, GuildID: 1})
	}
	// Each event takes a minute; after ten minutes the queue's head has waited far past the
	// bound, and the worker finished one every minute.
	for range 10 {
		fake.Step(time.Minute)
		step <- struct{}{}
		<-done
	}
	eventually(t, "the tenth event finished", func() bool { w := d.worker(d.queues[0]); return w.stalled < time.Minute })
	if w, stuck := d.stuckWorker(bound); stuck {
		t.Fatalf("a worker finishing an event a minute was called stuck: %s", w)
	}
	if w := d.worker(d.queues[0]); w.waited < 9*time.Minute {
		t.Fatalf("the head waited %s, want the backlog's age past the bound", w.waited)
	}
	// Now the handler hangs: stuck once the bound passes without a finish.
	fake.Step(bound + time.Second)
	if w, stuck := d.stuckWorker(bound); !stuck {
		t.Fatalf("a worker with no finished event for %s was not called stuck: %s", bound+time.Second, w)
	}
	close(step)
}
