package botruntime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/disgoorg/disgo/rest"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// ErrAlreadyRunning is returned by a second Run: one runtime, one set of sessions.
var ErrAlreadyRunning = errors.New("botruntime: Run was already called on this runtime")

// DefaultShutdownTimeout is how long Run waits for handlers to drain after ctx ends.
// Kubernetes gives a pod 30 s by default between SIGTERM and SIGKILL.
const DefaultShutdownTimeout = 20 * time.Second

// Runtime runs a bot's shards in this process. Create it with New, register handlers with
// Handle, then call Run once.
type Runtime struct {
	cfg             Config
	log             logr.Logger
	metrics         *metrics
	dispatcher      *dispatcher
	waiters         *waiters
	sessions        []*session
	store           ResumeStore
	limiter         IdentifyLimiter
	shutdownTimeout time.Duration
	workers         int
	softBacklog     int
	hardBacklog     int
	maxFrameBytes   int
	maxPayloadBytes int

	rest          rest.Rest
	recoveryBound time.Duration
	kube          kubernetes.Interface
	lease         *leaseHeartbeat

	livenessChecks []*livenessCheck

	// clock is what every time-based decision reads: lease renewal and health, identify
	// buckets, heartbeats, reconnect backoff, resume state ages. Network deadlines do not.
	clock clock.WithTicker

	// rawEvents: see WithRawEvents.
	rawEvents bool
	// extraHealth: see WithHealthHandler.
	extraHealth map[string]http.Handler
	// collectors: see WithCollectors.
	collectors []prometheus.Collector

	started    atomic.Bool
	healthAddr atomic.Value // string, once listening
}

// Option changes how New builds a runtime.
type Option func(*Runtime)

// WithLogger sets the logger (default: discard).
func WithLogger(l logr.Logger) Option { return func(r *Runtime) { r.log = l } }

// WithResumeStore sets where resume state is loaded from at start and saved to at shutdown.
func WithResumeStore(s ResumeStore) Option { return func(r *Runtime) { r.store = s } }

// WithIdentifyLimiter replaces the in-process identify limiter (the lease issue shares
// buckets across pods through it).
func WithIdentifyLimiter(l IdentifyLimiter) Option { return func(r *Runtime) { r.limiter = l } }

// WithWorkers sets the number of dispatcher workers.
func WithWorkers(n int) Option { return func(r *Runtime) { r.workers = n } }

// WithBacklog sets the dispatcher's soft (readiness) and hard (drop) backlog bounds. The hard
// bound is split evenly between the workers: a full worker drops only its own guilds' events.
func WithBacklog(soft, hard int) Option {
	return func(r *Runtime) { r.softBacklog, r.hardBacklog = soft, hard }
}

// WithKubernetes gives the runtime an API client: with Config.LeaseName set, the pod
// renews its heartbeat Lease and keeps its resume state there.
func WithKubernetes(c kubernetes.Interface) Option { return func(r *Runtime) { r.kube = c } }

// WithRecoveryBound sets how long a shard may be reconnecting before the pod stops
// renewing its Lease (default 3 minutes plus 5 s per shard, for identify queues).
func WithRecoveryBound(d time.Duration) Option { return func(r *Runtime) { r.recoveryBound = d } }

// WithLivenessCheck adds a check of the bot's own to /healthz: while it returns an error,
// the pod's liveness probe fails and the kubelet restarts the bot container (the
// replacement resumes its sessions). Use it for a part of the bot that only a restart
// mends, such as a wedged worker pool; not for a dependency that recovers on its own,
// since every restart costs a reconnect. The check runs on every probe, beside the
// shards' own rule, with a context that ends after a second: one that has not returned by
// then fails the probe, and so does every later probe until it returns (it is not started
// again meanwhile). The heartbeat Lease does not follow it: the shards are still
// connected, so the kubelet restarts the container in place and the operator does not
// replace the pod.
func WithLivenessCheck(name string, check func(ctx context.Context) error) Option {
	return func(r *Runtime) {
		r.livenessChecks = append(r.livenessChecks, &livenessCheck{name: name, check: check})
	}
}

// WithClock sets the clock the runtime's time-based decisions run on: lease renewal and
// health, identify buckets, heartbeats, reconnect backoff, resume state ages and WaitFor's
// default bound (default: the real clock). Tests pass a fake one to step through minutes
// of it at once. Network deadlines (websocket reads and writes, API calls, dials) stay on
// the wall clock whatever it is: the kernel and the HTTP client know no other.
func WithClock(c clock.WithTicker) Option { return func(r *Runtime) { r.clock = c } }

// WithRawEvents keeps every event's payload as the gateway sent it (Event.Raw) and hands
// on the events disgo cannot decode too, with Data nil. For code that passes events on
// unchanged, such as a gateway proxy; it costs the payload's bytes per queued event.
func WithRawEvents() Option { return func(r *Runtime) { r.rawEvents = true } }

// WithHealthHandler serves h at path on the health address, beside /healthz, /readyz and
// /metrics (for example a gateway proxy's probe of its client).
func WithHealthHandler(path string, h http.Handler) Option {
	return func(r *Runtime) {
		if r.extraHealth == nil {
			r.extraHealth = map[string]http.Handler{}
		}
		r.extraHealth[path] = h
	}
}

// WithCollectors registers more Prometheus collectors on the runtime's registry, so they
// are served on its /metrics beside the runtime's own.
func WithCollectors(cs ...prometheus.Collector) Option {
	return func(r *Runtime) { r.collectors = append(r.collectors, cs...) }
}

// WithShutdownTimeout sets how long Run drains handlers after its context ends.
func WithShutdownTimeout(d time.Duration) Option { return func(r *Runtime) { r.shutdownTimeout = d } }

// New builds a runtime from a configuration. It reads the token file; a bad configuration
// or token file is an error here, before anything connects.
func New(cfg Config, opts ...Option) (*Runtime, error) {
	r := &Runtime{
		cfg:             cfg,
		log:             logr.Discard(),
		shutdownTimeout: DefaultShutdownTimeout,
		workers:         DefaultWorkers,
		softBacklog:     DefaultSoftBacklog,
		hardBacklog:     DefaultHardBacklog,
		maxFrameBytes:   DefaultMaxFrameBytes,
		maxPayloadBytes: DefaultMaxPayloadBytes,
	}
	for _, o := range opts {
		o(r)
	}
	if r.clock == nil {
		r.clock = clock.RealClock{}
	}
	if len(cfg.ShardIDs) == 0 || cfg.ShardCount < 1 {
		return nil, &ConfigError{Problems: []string{"no shards to run"}}
	}
	token, err := readToken(cfg.TokenFile)
	if err != nil {
		return nil, &ConfigError{Problems: []string{err.Error()}}
	}
	intents, err := shardkeeperv1.IntentMask(cfg.Intents)
	if err != nil {
		return nil, &ConfigError{Problems: []string{err.Error()}}
	}
	if cfg.Compression != "" {
		if _, err := ParseCompression(string(cfg.Compression)); err != nil {
			return nil, &ConfigError{Problems: []string{err.Error()}}
		}
	}
	conns := transport{compression: cfg.Compression.mode(), maxFrame: r.maxFrameBytes, maxPayload: r.maxPayloadBytes}
	if r.kube != nil && cfg.LeaseName != "" {
		if cfg.Namespace == "" || cfg.PodName == "" || cfg.LeaseDuration <= 0 {
			return nil, &ConfigError{Problems: []string{"a heartbeat Lease needs the namespace, the pod name and a lease duration"}}
		}
		r.lease = &leaseHeartbeat{
			client: r.kube, namespace: cfg.Namespace, name: cfg.LeaseName, holder: cfg.PodName, botName: cfg.BotName,
			podUID: types.UID(cfg.PodUID), duration: cfg.LeaseDuration, rt: r, clock: r.clock,
			// Identifies queue at 5 s per bucket: a pod's shards get that long on top.
			recoverWithin: 3*time.Minute + time.Duration(len(cfg.ShardIDs))*5*time.Second,
			nudge:         make(chan struct{}, 1),
			fenced:        make(chan struct{}),
		}
		if r.recoveryBound > 0 {
			r.lease.recoverWithin = r.recoveryBound
		}
	}
	switch {
	case r.store != nil:
	case cfg.ResumeStateFile != "":
		r.store = FileResumeStore{Path: cfg.ResumeStateFile}
	case r.lease != nil:
		r.store = leaseResumeStore{h: r.lease}
	default:
		r.store = NewMemoryResumeStore()
	}
	if r.limiter == nil {
		r.limiter = newIdentifyLimiter(cfg, r.kube, r.log.WithName("identify"), r.clock)
	}
	r.rest = rest.New(rest.NewClient(token, rest.WithURL(cfg.APIURL),
		rest.WithLogger(slog.New(logr.ToSlogHandler(r.log.WithName("rest"))))))
	r.metrics = newMetrics()
	for _, c := range r.collectors {
		if err := r.metrics.registry.Register(c); err != nil {
			return nil, fmt.Errorf("registering a collector: %w", err)
		}
	}
	r.waiters = newWaiters(r.log.WithName("waitfor"))
	r.dispatcher = newDispatcher(r.workers, r.softBacklog, r.hardBacklog, r.metrics, r.log.WithName("dispatcher"), r.waiters, r.clock)
	for _, id := range cfg.ShardIDs {
		r.sessions = append(r.sessions, &session{
			shard: id, shardCount: cfg.ShardCount, token: token, intents: intents,
			gatewayURL: cfg.GatewayURL, transport: conns, dispatcher: r.dispatcher, limiter: r.limiter,
			metrics: r.metrics, log: r.log.WithName("gateway"), clock: r.clock, state: StateConnecting,
			lastProgress: r.clock.Now(), onSettled: r.nudgeLease, rawEvents: r.rawEvents,
		})
	}
	return r, nil
}

// Handle adds a handler for every event. Handlers must be added before Run.
func (r *Runtime) Handle(h Handler) error {
	if r.started.Load() {
		return errors.New("botruntime: Handle after Run")
	}
	r.dispatcher.handlers = append(r.dispatcher.handlers, h)
	return nil
}

// Run connects every shard and runs until ctx ends, then shuts down gracefully: sessions
// close with a resumable code, queued events are handled up to the shutdown timeout, and
// resume state goes to the store. If every shard stops for a fatal reason first, Run
// returns a *NoShardCanRunError. Run may be called once.
func (r *Runtime) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	var fenced <-chan struct{} // nil without a Lease: never ready
	if r.lease != nil {
		if err := r.lease.checkStart(ctx); err != nil {
			r.log.Error(err, "not starting: this pod was replaced by another of the same name, which runs the shards now")
			return err
		}
		fenced = r.lease.fenced
	}
	r.loadResumeState(ctx)

	var health *http.Server
	if r.cfg.HealthAddr != "" {
		ln, err := net.Listen("tcp", r.cfg.HealthAddr)
		if err != nil {
			return fmt.Errorf("health server: %w", err)
		}
		r.healthAddr.Store(ln.Addr().String())
		r.log.Info("serving /healthz, /readyz and /metrics", "addr", ln.Addr().String())
		health = &http.Server{Handler: r.HealthHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := health.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.log.Error(err, "health server stopped")
			}
		}()
	}

	r.dispatcher.start()
	waitCtx, stopWaiters := context.WithCancel(context.Background())
	defer stopWaiters()
	go r.waiters.run(waitCtx)

	sessionCtx, stopSessions := context.WithCancel(ctx)
	defer stopSessions()
	var running sync.WaitGroup
	for _, s := range r.sessions {
		running.Add(1)
		go func() { defer running.Done(); s.run(sessionCtx) }()
	}
	allStopped := make(chan struct{})
	go func() { running.Wait(); close(allStopped) }()

	leaseCtx, stopLease := context.WithCancel(context.Background())
	leaseDone := make(chan struct{})
	if r.lease != nil {
		go func() { defer close(leaseDone); r.lease.run(leaseCtx) }()
	} else {
		close(leaseDone)
	}

	r.log.Info("runtime started", "shards", r.cfg.ShardIDs, "shardCount", r.cfg.ShardCount)
	var replaced *ReplacedError
	select {
	case <-ctx.Done():
		r.log.Info("shutting down: closing sessions resumably, draining handlers", "timeout", r.shutdownTimeout)
	case <-allStopped:
	case <-fenced:
		replaced = r.lease.replaced // set before fenced closed
		r.log.Error(replaced, "stopping every shard and exiting: this pod was replaced by another of the same name, "+
			"and both would handle every event; the replacement keeps the Lease and its resume state")
	}

	// 1. Stop accepting events: sessions close with a resumable code.
	stopSessions()
	<-allStopped
	// 2. Let handlers finish what was accepted, up to the deadline. Wall clock: handlers
	// get this context, and the kubelet's SIGKILL after the grace period is wall time too.
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), r.shutdownTimeout)
	unhandled := r.dispatcher.drain(drainCtx)
	cancelDrain()
	// 3. Hand the resume state on, so the next process resumes instead of identifying.
	stopLease()
	<-leaseDone
	if replaced == nil {
		r.saveResumeState(unhandled) // a replaced pod's state is the replacement's now
	}
	if replaced == nil && r.lease != nil && r.lease.isReplaced() {
		replaced = r.lease.replaced // found out while shutting down
	}

	if health != nil {
		// Network I/O: wall clock.
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = health.Shutdown(shutdownCtx)
		cancel()
	}
	if replaced != nil {
		return replaced
	}
	if fatal := r.allFailed(); fatal != nil {
		return &NoShardCanRunError{Reason: *fatal}
	}
	return nil
}

func (r *Runtime) loadResumeState(ctx context.Context) {
	states, err := r.store.Load(ctx)
	if err != nil {
		r.log.Error(err, "cannot load resume state; identifying fresh")
		return
	}
	now := r.clock.Now()
	for _, s := range r.sessions {
		st, ok := states[s.shard]
		if !ok || st.SessionID == "" {
			continue
		}
		if why := resumeRefusal(st, r.cfg.ShardCount, r.cfg.GatewayURL, now); why != "" {
			r.log.Info("not resuming the saved session; identifying", "shard", s.shard, "why", why)
			continue
		}
		s.mu.Lock()
		s.sessionID, s.seq, s.resumeURL, s.seenAt = st.SessionID, st.Sequence, st.ResumeURL, st.SavedAt
		s.mu.Unlock()
		r.log.Info("will resume the previous process's session", "shard", s.shard, "sequence", st.Sequence)
	}
}

func (r *Runtime) saveResumeState(unhandled map[int]int) {
	states := r.resumeStates(unhandled)
	// A bound on I/O (the API server, a file): wall clock.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.store.Save(ctx, states)
	if replaced := new(ReplacedError); errors.As(err, &replaced) {
		return // Run reports it
	}
	if err != nil {
		r.log.Error(err, "cannot save resume state; the next process will identify")
	}
}

// resumeStates is every live session's resume state; unhandled moves a shard's sequence
// back to before its first unhandled event.
func (r *Runtime) resumeStates(unhandled map[int]int) []ResumeState {
	states := []ResumeState{}
	for _, s := range r.sessions {
		st := s.status()
		if st.SessionID == "" || st.Fatal != nil {
			continue
		}
		seq := st.Sequence
		if first, ok := unhandled[s.shard]; ok && first < seq {
			seq = first // replay what handlers never saw
		}
		// SavedAt is when the session last proved alive, not now: state that never came
		// back to life must age out.
		states = append(states, ResumeState{Shard: s.shard, ShardCount: r.cfg.ShardCount, SessionID: st.SessionID,
			Sequence: seq, ResumeURL: st.ResumeURL, SavedAt: st.SessionSeenAt})
	}
	return states
}

// allFailed returns the first fatal reason if every shard stopped for one.
func (r *Runtime) allFailed() *FatalReason {
	var first *FatalReason
	for _, s := range r.sessions {
		st := s.status()
		if st.Fatal == nil {
			return nil
		}
		if first == nil {
			first = st.Fatal
		}
	}
	return first
}

// Shards returns a snapshot of every shard.
func (r *Runtime) Shards() []ShardStatus {
	out := make([]ShardStatus, 0, len(r.sessions))
	for _, s := range r.sessions {
		out = append(out, s.status())
	}
	return out
}

// HealthAddr is the address the health server listens on, once Run started it.
func (r *Runtime) HealthAddr() string {
	addr, _ := r.healthAddr.Load().(string)
	return addr
}

// nudgeLease asks the Lease heartbeat to write now. It never blocks.
func (r *Runtime) nudgeLease() {
	if r.lease == nil {
		return
	}
	select {
	case r.lease.nudge <- struct{}{}:
	default:
	}
}

// Config returns the runtime's configuration.
func (r *Runtime) Config() Config { return r.cfg }
