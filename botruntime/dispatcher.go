package botruntime

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	"github.com/go-logr/logr"
)

// Event is one gateway dispatch, as handlers and WaitFor see it.
type Event struct {
	Shard    int
	Type     gateway.EventType
	Seq      int
	GuildID  snowflake.ID // 0 for events outside a guild
	Data     gateway.EventData
	Received time.Time

	// session numbers the shard's sessions in this process, so bookkeeping of a hung
	// handler from an old session never touches the new one.
	session uint64
}

// Handler handles one event. It runs on a dispatcher worker, never on a gateway read loop,
// so it may take its time; events of one guild reach handlers one at a time, in order.
// ctx ends when the runtime gives up draining at shutdown.
type Handler func(ctx context.Context, ev Event)

// Overload policy. Past SoftBacklog queued events the runtime reports not ready (so the
// operator and dashboards see it) but keeps every event. Past HardBacklog it drops new
// events, counts them in shardkeeper_dispatcher_dropped_events_total and logs once per
// episode: memory stays bounded and heartbeats keep flowing whatever handlers do.
const (
	DefaultWorkers     = 16
	DefaultSoftBacklog = 10_000
	DefaultHardBacklog = 100_000
)

// dispatcher hands events to handlers on a pool of workers. Each guild maps to one worker,
// which keeps that guild's events in order. enqueue never blocks.
type dispatcher struct {
	handlers    []Handler
	queues      []*eventQueue
	softBacklog int64
	hardBacklog int64
	depth       atomic.Int64
	closed      atomic.Bool
	lastHandled atomic.Int64 // unix nanoseconds of the last handled event
	dropping    atomic.Bool
	metrics     *metrics
	log         logr.Logger
	waiters     *waiters

	// handlerCtx is cancelled when draining gives up; handlers see it.
	handlerCtx    context.Context
	cancelHandler context.CancelFunc
	workersDone   sync.WaitGroup

	// inflight holds, per shard, the sequence numbers accepted and not yet handled, so a
	// shutdown that cannot drain everything resumes from the first unhandled event.
	inflightMu sync.Mutex
	inflight   map[int]*inflightSet
}

// inflightSet is one shard's accepted-but-unhandled sequence numbers, for its current session.
type inflightSet struct {
	session uint64
	seqs    map[int]struct{}
}

type eventQueue struct {
	mu     sync.Mutex
	items  []Event
	signal chan struct{}
}

func newDispatcher(workers int, soft, hard int, m *metrics, log logr.Logger, w *waiters) *dispatcher {
	if workers < 1 {
		workers = DefaultWorkers
	}
	d := &dispatcher{
		softBacklog: int64(soft),
		hardBacklog: int64(hard),
		metrics:     m,
		log:         log,
		waiters:     w,
		inflight:    map[int]*inflightSet{},
	}
	for range workers {
		d.queues = append(d.queues, &eventQueue{signal: make(chan struct{}, 1)})
	}
	return d
}

// start runs the workers. They stop once closed and drained, or when drain gives up.
func (d *dispatcher) start() {
	d.handlerCtx, d.cancelHandler = context.WithCancel(context.Background())
	d.lastHandled.Store(time.Now().UnixNano())
	for _, q := range d.queues {
		d.workersDone.Add(1)
		go d.work(q)
	}
}

// enqueue accepts an event for the handlers. It never blocks; it returns false when the
// event was not accepted (closed, or dropped past the hard backlog).
func (d *dispatcher) enqueue(ev Event) bool {
	d.waiters.offer(ev)
	if d.closed.Load() {
		return false
	}
	if d.depth.Load() >= d.hardBacklog {
		d.metrics.droppedEvents.Inc()
		if !d.dropping.Swap(true) {
			d.log.Error(nil, "dispatcher backlog is full, dropping events until handlers catch up",
				"backlog", d.depth.Load(), "hardLimit", d.hardBacklog)
		}
		return false
	}
	d.dropping.Store(false)
	if len(d.handlers) == 0 {
		return true
	}
	d.inflightMu.Lock()
	set := d.inflight[ev.Shard]
	if set == nil || set.session != ev.session {
		set = &inflightSet{session: ev.session, seqs: map[int]struct{}{}}
		d.inflight[ev.Shard] = set
	}
	set.seqs[ev.Seq] = struct{}{}
	d.inflightMu.Unlock()

	d.metrics.queueDepth.Set(float64(d.depth.Add(1)))
	q := d.queues[d.partition(ev)]
	q.mu.Lock()
	q.items = append(q.items, ev)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
	return true
}

// partition keeps one guild on one worker; guild-less events stay with their shard's worker.
func (d *dispatcher) partition(ev Event) int {
	key := uint64(ev.GuildID)
	if key == 0 {
		key = uint64(ev.Shard)
	} else {
		key = key>>22 ^ key
	}
	return int(key % uint64(len(d.queues)))
}

// stalled reports whether events wait while no handler finished anything for window: the
// workers are deadlocked or stuck, not merely busy.
func (d *dispatcher) stalled(window time.Duration) bool {
	return d.depth.Load() > 0 && time.Since(time.Unix(0, d.lastHandled.Load())) > window
}

// overloaded reports whether the backlog is over its soft bound.
func (d *dispatcher) overloaded() bool { return d.depth.Load() > d.softBacklog }

func (d *dispatcher) work(q *eventQueue) {
	defer d.workersDone.Done()
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.items = q.items[:0:0] // let a burst's backing array go
			q.mu.Unlock()
			if d.closed.Load() {
				return
			}
			select {
			case <-q.signal:
				continue
			case <-d.handlerCtx.Done():
				return
			}
		}
		ev := q.items[0]
		q.items[0] = Event{}
		q.items = q.items[1:]
		q.mu.Unlock()

		if d.handlerCtx.Err() != nil {
			return
		}
		d.handle(ev)
	}
}

func (d *dispatcher) handle(ev Event) {
	start := time.Now()
	for _, h := range d.handlers {
		d.callHandler(h, ev)
	}
	d.metrics.handlerDuration.Observe(time.Since(start).Seconds())
	d.lastHandled.Store(time.Now().UnixNano())
	d.metrics.queueDepth.Set(float64(d.depth.Add(-1)))
	d.inflightMu.Lock()
	if set := d.inflight[ev.Shard]; set != nil && set.session == ev.session {
		delete(set.seqs, ev.Seq)
	}
	d.inflightMu.Unlock()
}

func (d *dispatcher) callHandler(h Handler, ev Event) {
	defer func() {
		if p := recover(); p != nil {
			d.metrics.handlerPanics.Inc()
			d.log.Error(fmt.Errorf("panic: %v", p), "handler panicked; the event is dropped, the runtime goes on",
				"shard", ev.Shard, "type", ev.Type, "seq", ev.Seq, "stack", string(debug.Stack()))
		}
	}()
	h(d.handlerCtx, ev)
}

// drain stops accepting events and waits for queued ones to be handled until ctx ends; then
// it cancels the handlers' context. It returns, per shard, the last sequence number whose
// event and every earlier one were handled (absent when everything was handled).
func (d *dispatcher) drain(ctx context.Context) map[int]int {
	d.closed.Store(true)
	for _, q := range d.queues {
		select {
		case q.signal <- struct{}{}:
		default:
		}
	}
	done := make(chan struct{})
	go func() { d.workersDone.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		d.log.Info("shutdown deadline reached with events unhandled; the saved resume point is before the first of them, so a process that resumes gets them again",
			"backlog", d.depth.Load())
	}
	d.cancelHandler()
	return d.resumePoints()
}

// resumePoints returns, per shard with events in flight, the sequence number before its
// first unhandled event: resuming from there replays what handlers have not finished.
func (d *dispatcher) resumePoints() map[int]int {
	d.inflightMu.Lock()
	defer d.inflightMu.Unlock()
	unhandled := map[int]int{}
	for shard, set := range d.inflight {
		first := -1
		for seq := range set.seqs {
			if first < 0 || seq < first {
				first = seq
			}
		}
		if first > 0 {
			unhandled[shard] = first - 1
		}
	}
	return unhandled
}
