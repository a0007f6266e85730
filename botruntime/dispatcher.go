package botruntime

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// Event is one gateway dispatch, as handlers and WaitFor see it.
type Event struct {
	Shard   int
	Type    gateway.EventType
	Seq     int
	GuildID snowflake.ID // 0 for events outside a guild
	Data    gateway.EventData
	// Raw is the event's "d" exactly as the gateway sent it, with WithRawEvents only. With
	// it, an event disgo cannot decode still arrives, with Data nil.
	Raw      json.RawMessage
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
// operator and dashboards see it) but keeps every event. HardBacklog is split evenly
// between the workers: a worker whose queue holds its share drops its own new events (the
// other workers keep theirs), counts them in shardkeeper_dispatcher_dropped_events_total
// by worker and logs once per episode. Memory stays bounded, heartbeats keep flowing
// whatever handlers do, and one stuck guild costs only the guilds that share its worker.
const (
	DefaultWorkers     = 16
	DefaultSoftBacklog = 10_000
	DefaultHardBacklog = 100_000
)

// recentDroppedGuilds is how many guilds, per shard, the Lease names as having lost events.
const recentDroppedGuilds = 5

// dispatcher hands events to handlers on a pool of workers. Each guild maps to one worker,
// which keeps that guild's events in order. enqueue never blocks.
type dispatcher struct {
	handlers    []Handler
	queues      []*eventQueue
	softBacklog int64
	// workerBacklog is each worker's share of the hard backlog.
	workerBacklog int
	depth         atomic.Int64
	closed        atomic.Bool
	metrics       *metrics
	log           logr.Logger
	waiters       *waiters
	clock         clock.PassiveClock

	// handlerCtx is cancelled when draining gives up; handlers see it.
	handlerCtx    context.Context
	cancelHandler context.CancelFunc
	workersDone   sync.WaitGroup

	// inflight holds, per shard, the sequence numbers accepted and not yet handled, so a
	// shutdown that cannot drain everything resumes from the first unhandled event.
	// Lock order: an eventQueue's mu before inflightMu.
	inflightMu sync.Mutex
	inflight   map[int]*inflightSet
	drops      map[int]*shardDrops
}

// inflightSet is one shard's accepted-but-unhandled sequence numbers, for its current session.
type inflightSet struct {
	session uint64
	seqs    map[int]struct{}
	// held is, per worker, the first of this shard's events that worker dropped, kept
	// until the worker has handled everything it had accepted before its last drop. Until
	// then the resume point stays before it: a pod replaced because that worker is stuck
	// gets the dropped events replayed. A worker that catches up has lost them for good.
	held map[int]int
}

// shardDrops is what the Lease says about one shard's dropped events.
type shardDrops struct {
	count  int64
	guilds []snowflake.ID // most recent first, distinct, at most recentDroppedGuilds
}

// queuedEvent is an event and when its worker accepted it.
type queuedEvent struct {
	ev Event
	at time.Time
}

type eventQueue struct {
	worker int
	label  string
	signal chan struct{}

	mu    sync.Mutex
	items []queuedEvent
	// current is the event whose handlers run, when handling is set.
	current  queuedEvent
	handling bool
	started  time.Time // when current's handlers started
	// accepted and finished count events over the worker's life; holdUntil is the
	// finished count at which this worker's held drops are released (see inflightSet.held).
	accepted, finished uint64
	holdUntil          uint64
	holding            bool
	dropped            uint64
	dropping           bool // in a drop episode (logged once, until the queue empties)
	// progressAt is when the worker last finished an event, or got work while idle: a
	// worker busy for longer than the recovery bound without finishing anything is stuck.
	// One merely behind (finishing events, with a long queue) is not: replacing its pod
	// would replay the same backlog into the next one.
	progressAt time.Time
}

// unfinished counts the events q accepted and has not finished. q.mu is held.
func (q *eventQueue) unfinished() int {
	if q.handling {
		return len(q.items) + 1
	}
	return len(q.items)
}

// workerStatus is a snapshot of one worker.
type workerStatus struct {
	worker  int
	queued  int
	dropped uint64
	// oldest is the event the worker has had longest without finishing it: the one its
	// handlers run, else the head of its queue. waited is how long since it was accepted,
	// running how long its handlers have run (zero when they have not started).
	oldest  *Event
	waited  time.Duration
	running time.Duration
	// stalled is how long the busy worker has gone without finishing an event.
	stalled time.Duration
}

// String says what holds the worker up, for logs and the Lease.
func (w workerStatus) String() string {
	if w.oldest == nil {
		return fmt.Sprintf("dispatcher worker %d is idle", w.worker)
	}
	what := fmt.Sprintf("event %s #%d of guild %d (shard %d)", w.oldest.Type, w.oldest.Seq, w.oldest.GuildID, w.oldest.Shard)
	if w.running > 0 {
		return fmt.Sprintf("dispatcher worker %d is stuck: the handler of %s has run for %s; %d events wait behind it, %d dropped",
			w.worker, what, w.running.Round(time.Second), w.queued, w.dropped)
	}
	return fmt.Sprintf("dispatcher worker %d is behind: %s has waited %s; %d events wait, %d dropped",
		w.worker, what, w.waited.Round(time.Second), w.queued, w.dropped)
}

func newDispatcher(workers int, soft, hard int, m *metrics, log logr.Logger, w *waiters, clk clock.PassiveClock) *dispatcher {
	if workers < 1 {
		workers = DefaultWorkers
	}
	d := &dispatcher{
		softBacklog: int64(soft),
		// An even share: guilds spread evenly over workers by their ID, and the sum stays
		// within the hard backlog. Letting a worker borrow idle workers' room would let a
		// stuck one take it all again.
		workerBacklog: max((hard+workers-1)/workers, 1),
		metrics:       m,
		log:           log,
		waiters:       w,
		clock:         clk,
		inflight:      map[int]*inflightSet{},
		drops:         map[int]*shardDrops{},
	}
	for i := range workers {
		q := &eventQueue{worker: i, label: strconv.Itoa(i), signal: make(chan struct{}, 1)}
		d.queues = append(d.queues, q)
		m.watchWorker(q.label, func() float64 { return d.worker(q).waited.Seconds() }, func() float64 {
			q.mu.Lock()
			defer q.mu.Unlock()
			return float64(len(q.items))
		})
	}
	return d
}

// start runs the workers. They stop once closed and drained, or when drain gives up.
func (d *dispatcher) start() {
	d.handlerCtx, d.cancelHandler = context.WithCancel(context.Background())
	for _, q := range d.queues {
		d.workersDone.Add(1)
		go d.work(q)
	}
}

// enqueue accepts an event for the handlers. It never blocks; it returns false when the
// event was not accepted (closed, or dropped because its worker's queue is full).
func (d *dispatcher) enqueue(ev Event) bool {
	d.waiters.offer(ev)
	if d.closed.Load() {
		return false
	}
	if len(d.handlers) == 0 {
		return true
	}
	q := d.queues[d.partition(ev)]
	q.mu.Lock()
	if q.unfinished() >= d.workerBacklog {
		d.drop(q, ev)
		q.mu.Unlock()
		return false
	}
	q.accepted++
	if len(q.items) == 0 && !q.handling {
		q.progressAt = d.clock.Now()
	}
	q.items = append(q.items, queuedEvent{ev: ev, at: d.clock.Now()})
	d.inflightMu.Lock()
	d.inflightOf(ev).seqs[ev.Seq] = struct{}{}
	d.inflightMu.Unlock()
	q.mu.Unlock()

	d.metrics.queueDepth.Set(float64(d.depth.Add(1)))
	select {
	case q.signal <- struct{}{}:
	default:
	}
	return true
}

// drop counts an event q has no room for and holds the shard's resume point before it.
// q.mu is held.
func (d *dispatcher) drop(q *eventQueue, ev Event) {
	q.dropped++
	q.holding, q.holdUntil = true, q.accepted
	d.metrics.droppedEvents.WithLabelValues(q.label).Inc()
	d.inflightMu.Lock()
	if set := d.inflightOf(ev); ev.Seq > 0 {
		if _, held := set.held[q.worker]; !held {
			set.held[q.worker] = ev.Seq
		}
	}
	sd := d.drops[ev.Shard]
	if sd == nil {
		sd = &shardDrops{}
		d.drops[ev.Shard] = sd
	}
	sd.count++
	if ev.GuildID != 0 && (len(sd.guilds) == 0 || sd.guilds[0] != ev.GuildID) {
		sd.guilds = slices.Insert(slices.DeleteFunc(sd.guilds, func(g snowflake.ID) bool { return g == ev.GuildID }), 0, ev.GuildID)
		sd.guilds = sd.guilds[:min(len(sd.guilds), recentDroppedGuilds)]
	}
	d.inflightMu.Unlock()
	if !q.dropping {
		q.dropping = true
		d.log.Error(nil, "a dispatcher worker's queue is full: dropping the new events of its guilds until it catches up",
			"worker", q.worker, "unfinished", q.unfinished(), "limit", d.workerBacklog, "guild", ev.GuildID, "shard", ev.Shard,
			"holdingUp", d.workerLocked(q).String())
	}
}

// inflightOf is the set of ev's shard for ev's session. inflightMu is held.
func (d *dispatcher) inflightOf(ev Event) *inflightSet {
	set := d.inflight[ev.Shard]
	if set == nil || set.session != ev.session {
		set = &inflightSet{session: ev.session, seqs: map[int]struct{}{}, held: map[int]int{}}
		d.inflight[ev.Shard] = set
	}
	return set
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

// worker is a snapshot of q.
func (d *dispatcher) worker(q *eventQueue) workerStatus {
	q.mu.Lock()
	defer q.mu.Unlock()
	return d.workerLocked(q)
}

func (d *dispatcher) workerLocked(q *eventQueue) workerStatus {
	w := workerStatus{worker: q.worker, queued: len(q.items), dropped: q.dropped}
	now := d.clock.Now()
	switch {
	case q.handling:
		ev := q.current.ev
		w.oldest, w.waited, w.running = &ev, now.Sub(q.current.at), max(now.Sub(q.started), time.Nanosecond)
	case len(q.items) > 0:
		ev := q.items[0].ev
		w.oldest, w.waited = &ev, now.Sub(q.items[0].at)
	}
	if w.oldest != nil {
		w.stalled = now.Sub(q.progressAt)
	}
	return w
}

// stuckWorker returns the worker that has gone longest without finishing an event while it
// had one, if that is longer than bound: its handler hangs, and the pod had better be
// replaced (the replacement replays what it did not finish, see resumePoints). Other
// workers may be making progress all along; a worker that is behind but finishing events
// is slow, not stuck (readiness and the backlog metrics show it).
func (d *dispatcher) stuckWorker(bound time.Duration) (workerStatus, bool) {
	var worst workerStatus
	for _, q := range d.queues {
		if w := d.worker(q); w.oldest != nil && w.stalled > worst.stalled {
			worst = w
		}
	}
	return worst, worst.oldest != nil && worst.stalled > bound
}

// droppedOf is how many of shard's events were dropped, and the guilds that lost events last.
func (d *dispatcher) droppedOf(shard int) (int64, []snowflake.ID) {
	d.inflightMu.Lock()
	defer d.inflightMu.Unlock()
	sd := d.drops[shard]
	if sd == nil {
		return 0, nil
	}
	return sd.count, slices.Clone(sd.guilds)
}

// overloaded reports whether the backlog is over its soft bound.
func (d *dispatcher) overloaded() bool { return d.depth.Load() > d.softBacklog }

func (d *dispatcher) work(q *eventQueue) {
	defer d.workersDone.Done()
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.items = q.items[:0:0] // let a burst's backing array go
			if q.dropping {
				q.dropping = false
				d.log.Info("dispatcher worker caught up; it accepts events again", "worker", q.worker, "droppedSoFar", q.dropped)
			}
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
		item := q.items[0]
		q.items[0] = queuedEvent{}
		q.items = q.items[1:]
		q.current, q.handling, q.started = item, true, d.clock.Now()
		q.mu.Unlock()

		if d.handlerCtx.Err() != nil {
			return
		}
		d.handle(q, item.ev)
	}
}

func (d *dispatcher) handle(q *eventQueue, ev Event) {
	start := d.clock.Now()
	for _, h := range d.handlers {
		d.callHandler(h, ev)
	}
	d.metrics.handlerDuration.Observe(d.clock.Since(start).Seconds())
	d.metrics.queueDepth.Set(float64(d.depth.Add(-1)))

	q.mu.Lock()
	defer q.mu.Unlock()
	q.current, q.handling = queuedEvent{}, false
	q.finished++
	q.progressAt = d.clock.Now()
	release := q.holding && q.finished >= q.holdUntil
	if release {
		q.holding = false
	}
	d.inflightMu.Lock()
	defer d.inflightMu.Unlock()
	if set := d.inflight[ev.Shard]; set != nil && set.session == ev.session {
		delete(set.seqs, ev.Seq)
	}
	if release {
		for _, set := range d.inflight {
			delete(set.held, q.worker)
		}
	}
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
	// The resume point first: a handler the cancel stops has not handled its event, and
	// once stopped its worker would count it done (and race through the rest).
	left := d.resumePoints()
	d.cancelHandler()
	return left
}

// resumePoints returns, per shard with events in flight, the sequence number before its
// first unhandled event: resuming from there replays what handlers have not finished, and
// what a worker dropped and has not caught up with since.
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
		for _, seq := range set.held {
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
