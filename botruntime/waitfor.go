package botruntime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// DefaultWaitTimeout bounds a WaitFor whose context has no deadline: an interaction token
// lives 15 minutes, nothing waits longer.
const DefaultWaitTimeout = 15 * time.Minute

// ErrWaitTimeout is returned (wrapped) when WaitFor's deadline passes with no match.
var ErrWaitTimeout = errors.New("no matching event before the deadline")

// waiters runs WaitFor filters on a goroutine of their own: never on a gateway read loop
// (filters are user code) and never on a handler worker (a handler waiting for the next
// event of its own guild would wait behind itself).
type waiters struct {
	count   atomic.Int32
	mu      sync.Mutex
	set     map[*waiter]struct{}
	queue   []offered
	offers  uint64 // events offered while someone waited; orders events against waiters
	dropped int
	signal  chan struct{}
	log     logr.Logger
}

// maxWaiterQueue bounds events waiting for filters: filters must be quick, and a blocked
// one must not make memory grow without end.
const maxWaiterQueue = 10_000

type offered struct {
	ev    Event
	stamp uint64
}

type waiter struct {
	match func(Event) bool
	found chan Event
	// since is the offer count when the waiter was added: it sees only later events.
	since uint64
}

func newWaiters(log logr.Logger) *waiters {
	return &waiters{set: map[*waiter]struct{}{}, signal: make(chan struct{}, 1), log: log}
}

// offer passes an event to the waiters. It never blocks and costs one atomic load when
// nobody waits.
func (w *waiters) offer(ev Event) {
	if w.count.Load() == 0 {
		return
	}
	w.mu.Lock()
	w.offers++
	if len(w.queue) >= maxWaiterQueue {
		w.dropped++
		if w.dropped == 1 {
			w.log.Error(nil, "WaitFor filters are not keeping up (a filter blocks?); events are skipped for waiters", "queued", len(w.queue))
		}
		w.mu.Unlock()
		return
	}
	w.dropped = 0
	w.queue = append(w.queue, offered{ev: ev, stamp: w.offers})
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// run matches offered events against waiters until ctx ends.
func (w *waiters) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.signal:
		}
		for {
			w.mu.Lock()
			if len(w.queue) == 0 {
				w.queue = nil
				w.mu.Unlock()
				break
			}
			next := w.queue[0]
			w.queue = w.queue[1:]
			candidates := make([]*waiter, 0, len(w.set))
			for wt := range w.set {
				if wt.since < next.stamp { // events from before the waiter are not its business
					candidates = append(candidates, wt)
				}
			}
			w.mu.Unlock()
			for _, wt := range candidates {
				if w.matches(wt, next.ev) {
					select {
					case wt.found <- next.ev:
					default: // it already has its event
					}
				}
			}
		}
	}
}

func (w *waiters) matches(wt *waiter, ev Event) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error(fmt.Errorf("panic: %v", p), "WaitFor filter panicked; treating it as no match")
			ok = false
		}
	}()
	return wt.match(ev)
}

func (w *waiters) add(match func(Event) bool) *waiter {
	wt := &waiter{match: match, found: make(chan Event, 1)}
	w.mu.Lock()
	wt.since = w.offers
	w.set[wt] = struct{}{}
	w.count.Add(1) // under the lock: an offer after this line is stamped after since
	w.mu.Unlock()
	return wt
}

func (w *waiters) remove(wt *waiter) {
	w.mu.Lock()
	if _, ok := w.set[wt]; ok {
		delete(w.set, wt)
		w.count.Add(-1)
	}
	w.mu.Unlock()
}

// WaitFor waits for the first event, from any shard, that match accepts, and returns it.
// It may be called from any goroutine, handlers included. It returns when ctx ends (with
// ErrWaitTimeout wrapped if its deadline passed); a ctx without a deadline is bounded by
// DefaultWaitTimeout. Nothing is left behind: the filter is unregistered on return, and no
// goroutine is started.
//
// When the awaited event may come as soon as the bot acts (a button it is about to show),
// use Expect before acting, so the event cannot slip by between acting and waiting.
func (r *Runtime) WaitFor(ctx context.Context, match func(Event) bool) (Event, error) {
	e := r.Expect(match)
	defer e.Cancel()
	return e.Wait(ctx)
}

// Expectation is a registered filter: events it matches from now on are kept for Wait.
type Expectation struct {
	r  *Runtime
	wt *waiter
}

// Expect starts watching for an event now: events received before Expect never match.
// Filters run on one goroutine shared by all waiters, so they must be quick. Call Wait to receive it, and Cancel (or Wait,
// which cancels on return) so that nothing stays registered.
func (r *Runtime) Expect(match func(Event) bool) *Expectation {
	if match == nil {
		match = func(Event) bool { return false }
	}
	return &Expectation{r: r, wt: r.waiters.add(match)}
}

// Cancel unregisters the expectation. It is safe to call more than once.
func (e *Expectation) Cancel() { e.r.waiters.remove(e.wt) }

// Wait returns the first matching event since Expect, or ctx's error (ErrWaitTimeout when
// its deadline passed; without a deadline it waits at most DefaultWaitTimeout). The
// expectation is cancelled when Wait returns.
func (e *Expectation) Wait(ctx context.Context) (Event, error) {
	defer e.Cancel()
	// The default bound is the runtime's, on its clock; a deadline on ctx is the caller's.
	var bound <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		t := e.r.clock.NewTimer(DefaultWaitTimeout)
		defer t.Stop()
		bound = t.C()
	}
	select {
	case ev := <-e.wt.found:
		return ev, nil
	case <-bound:
		return Event{}, fmt.Errorf("WaitFor: %w", ErrWaitTimeout)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Event{}, fmt.Errorf("WaitFor: %w", ErrWaitTimeout)
		}
		return Event{}, fmt.Errorf("WaitFor: %w", ctx.Err())
	}
}
