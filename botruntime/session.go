package botruntime

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	"github.com/go-logr/logr"
	"github.com/gorilla/websocket"
	"k8s.io/utils/clock"

	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
)

// ShardState is where a shard is in its life.
type ShardState string

const (
	StateConnecting   ShardState = "Connecting"
	StateIdentifying  ShardState = "Identifying"
	StateResuming     ShardState = "Resuming"
	StateReady        ShardState = "Ready"
	StateResumed      ShardState = "Resumed"
	StateReconnecting ShardState = "Reconnecting"
	StateStopped      ShardState = "Stopped"
	StateFailed       ShardState = "Failed"
)

// StateWaitingToIdentify is a connected shard waiting for its turn in its identify bucket;
// it counts as recovering while the queue moves (see queueAllows).
const StateWaitingToIdentify ShardState = "WaitingToIdentify"

var allStates = []ShardState{StateConnecting, StateWaitingToIdentify, StateIdentifying, StateResuming, StateReady, StateResumed, StateReconnecting, StateStopped, StateFailed}

// Gateway protocol constants.
const (
	gatewayVersion = 10
	// closeResumable is the close code we send when we mean to come back: anything but
	// 1000/1001 keeps the session resumable, and 4000 is what Discord's docs use.
	closeResumable = 4000

	dialTimeout  = 30 * time.Second
	closeGrace   = time.Second
	helloTimeout = 30 * time.Second
	// maxResumeDialFailures failed dials to a resume URL make the shard identify anew.
	maxResumeDialFailures = 2
	writeTimeout          = 10 * time.Second

	backoffBase = time.Second
	backoffMax  = 60 * time.Second
	// healthyAfter is how long a connection must stay up for the backoff to start over.
	healthyAfter = 60 * time.Second
)

// ShardStatus is a snapshot of one shard, for health checks, metrics and resume state.
type ShardStatus struct {
	ID           int           `json:"id"`
	State        ShardState    `json:"state"`
	SessionID    string        `json:"-"`
	Sequence     int           `json:"sequence"`
	ResumeURL    string        `json:"-"`
	Latency      time.Duration `json:"latencyNanos"`
	Guilds       int           `json:"guilds"`
	LastEvent    time.Time     `json:"lastEvent,omitzero"`
	LastProgress time.Time     `json:"lastProgress"`
	Fatal        *FatalReason  `json:"fatal,omitempty"`
	Reconnects   int           `json:"reconnects"`
	// SessionSeenAt is when the session last proved alive; resume state carries it.
	SessionSeenAt time.Time `json:"-"`
}

// session runs one shard: it connects, identifies or resumes, keeps the heartbeat, feeds
// events to the dispatcher and reconnects until its context ends or a fatal close code
// stops it. Exactly one goroutine (run) drives it; a reconnect is a turn of its loop, never
// a new goroutine, so nothing can start a second session for the same shard.
type session struct {
	shard, shardCount int
	token             string
	intents           int64
	gatewayURL        string
	transport         transport
	dispatcher        *dispatcher
	limiter           IdentifyLimiter
	metrics           *metrics
	log               logr.Logger
	// clock times progress, backoff and how long sessions stay up; the websocket's own
	// deadlines are wall times (see conn).
	clock clock.Clock
	// onSettled is told when the shard becomes Ready, Resumed or Failed.
	onSettled func()
	// rawEvents: events carry their payload as sent (WithRawEvents).
	rawEvents bool

	mu           sync.Mutex
	state        ShardState
	sessionID    string
	resumeURL    string
	seq          int
	latency      time.Duration
	guilds       map[snowflake.ID]struct{}
	lastEvent    time.Time
	lastProgress time.Time
	readySince   time.Time
	fatal        *FatalReason
	reconnects   int
	// seenAt is when the current session last proved alive (a frame read on it); saved
	// resume state carries it, so stale state never looks fresh.
	seenAt time.Time
	// downSince is when the shard last stopped being connected (zero while it is).
	downSince time.Time
	// generation counts sessions identified by this process (see Event.session).
	generation uint64
	// resumeDialFailures counts failed dials to the resume URL in a row (supervisor only).
	resumeDialFailures int
	// turn is the wait for an identify turn, while there is one.
	turn identifyWait
	// answerWait is the wait for READY or RESUMED while an Identify or a Resume is
	// unanswered.
	answerWait *answerWait
	// link is the connection the bot's commands go out on: the latest to authenticate.
	link commandLink
}

// outcome is how one connection ended and what to do next.
type outcome struct {
	reason string       // metric label: reconnect_requested, zombie, connection_lost, ...
	fatal  *FatalReason // stop for good
	resume bool         // keep the session and resume it
	delay  time.Duration
	asked  bool // set by the side that closed on purpose
}

func (s *session) status() ShardStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ShardStatus{
		ID: s.shard, State: s.state, SessionID: s.sessionID, Sequence: s.seq, ResumeURL: s.resumeURL,
		Latency: s.latency, Guilds: len(s.guilds), LastEvent: s.lastEvent, LastProgress: s.lastProgress,
		Fatal: s.fatal, Reconnects: s.reconnects, SessionSeenAt: s.seenAt,
	}
}

func (s *session) setState(st ShardState) {
	s.mu.Lock()
	s.state = st
	s.lastProgress = s.clock.Now()
	if st == StateReady || st == StateResumed {
		s.downSince = time.Time{}
	} else if s.downSince.IsZero() {
		s.downSince = s.lastProgress
	}
	s.mu.Unlock()
	label := shardLabel(s.shard)
	for _, other := range allStates {
		v := 0.0
		if other == st {
			v = 1
		}
		s.metrics.shardState.WithLabelValues(label, string(other)).Set(v)
	}
	if s.onSettled != nil && (st == StateReady || st == StateResumed || st == StateFailed) {
		s.onSettled()
	}
}

// downSinceTime is when the shard stopped being connected (now if it is connected).
func (s *session) downSinceTime() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.downSince.IsZero() {
		return s.clock.Now()
	}
	return s.downSince
}

// touchFrame records a frame read: the connection, and the session on it, are alive.
func (s *session) touchFrame() {
	s.mu.Lock()
	now := s.clock.Now()
	s.lastProgress = now
	if s.sessionID != "" {
		s.seenAt = now
	}
	s.mu.Unlock()
}

func (s *session) touch() {
	s.mu.Lock()
	s.lastProgress = s.clock.Now()
	s.mu.Unlock()
}

// run is the shard's supervisor loop.
func (s *session) run(ctx context.Context) {
	log := s.log.WithValues("shard", s.shard)
	// At zero from the start: a counter born at its first increase hides it from increase().
	s.metrics.resumeTimeouts.WithLabelValues(shardLabel(s.shard))
	s.metrics.readyTimeouts.WithLabelValues(shardLabel(s.shard))
	attempt := 0
	for {
		if ctx.Err() != nil {
			s.setState(StateStopped)
			return
		}
		out, wasUp, upFor := s.connect(ctx)
		if out.fatal != nil {
			s.mu.Lock()
			s.fatal = out.fatal
			s.mu.Unlock()
			s.setState(StateFailed)
			s.metrics.fatal.WithLabelValues(shardLabel(s.shard), out.fatal.Reason, strconv.Itoa(out.fatal.CloseCode)).Set(1)
			log.Error(nil, "shard stopped for good", "reason", out.fatal.Reason, "closeCode", out.fatal.CloseCode, "detail", out.fatal.Message)
			return
		}
		// Forget a dead session before anything else, so a shutdown never saves it.
		if !out.resume {
			s.forgetSession()
		}
		if out.reason == "dial_failed" && out.resume {
			s.resumeDialFailures++
			if s.resumeDialFailures >= maxResumeDialFailures {
				// The resume URL is unreachable (egress rules, a host gone): start over
				// through the main gateway URL rather than retry it forever.
				log.Info("cannot reach the resume URL; identifying through the gateway URL instead", "failures", s.resumeDialFailures)
				s.forgetSession()
			}
		} else {
			s.resumeDialFailures = 0
		}
		if ctx.Err() != nil {
			s.setState(StateStopped)
			return
		}
		if wasUp && upFor >= healthyAfter {
			attempt = 0
		}
		// Discord asked us to reconnect (op 7, op 9) on a session that was up: go at once
		// (op 9's own 1-5 s wait aside). Anything else, or a connection that never got to
		// READY/RESUMED, backs off, so no path can loop tight or burn session starts.
		delay := out.delay
		if !out.asked || !wasUp {
			delay = max(delay, backoff(attempt))
			attempt++
		}
		s.mu.Lock()
		s.reconnects++
		s.mu.Unlock()
		s.metrics.reconnects.WithLabelValues(shardLabel(s.shard), out.reason).Inc()
		log.Info("reconnecting", "reason", out.reason, "resume", out.resume, "after", delay)
		s.setState(StateReconnecting)
		if !sleep(ctx, s.clock, delay) {
			s.setState(StateStopped)
			return
		}
	}
}

// backoff is jittered exponential: between half and all of min(base*2^attempt, max).
func backoff(attempt int) time.Duration {
	d := backoffMax
	if attempt < 6 {
		d = min(backoffBase<<attempt, backoffMax)
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// sleep waits d on clk, or until ctx ends; it says whether the wait ran its course.
func sleep(ctx context.Context, clk clock.Clock, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

func (s *session) forgetSession() {
	s.mu.Lock()
	s.sessionID, s.resumeURL, s.seq, s.seenAt = "", "", 0, time.Time{}
	s.mu.Unlock()
}

// conn is one websocket connection and the single place that decides how it ended. Its
// deadlines are read from the wall clock, never the session's: net.Conn deadlines are
// absolute wall times, and a fake clock's time would be hours off or long past.
type conn struct {
	ws      *websocket.Conn
	writeMu sync.Mutex
	endOnce sync.Once
	ended   chan struct{}
	out     outcome
	// sends keeps the connection under Discord's send limit; set at Hello, before
	// anything is sent.
	sends *sendLimiter
}

func (c *conn) writeJSON(v any) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteJSON(v)
}

// end closes the connection on purpose with a close code; the first caller's outcome wins.
func (c *conn) end(code int, text string, out outcome) {
	c.endOnce.Do(func() {
		out.asked = true
		c.out = out
		close(c.ended)
		// Close the websocket way: send our close frame and let the read loop see the
		// server's answer (or give up after closeGrace). Dropping the socket at once can
		// reset the connection before the server reads the code that keeps the session.
		err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
		if err != nil {
			_ = c.ws.Close()
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(closeGrace))
	})
}

func (c *conn) endedOnPurpose() (outcome, bool) {
	select {
	case <-c.ended:
		return c.out, true
	default:
		return outcome{}, false
	}
}

// envelope is a gateway payload before its data is decoded.
type envelope struct {
	Op gateway.Opcode  `json:"op"`
	S  int             `json:"s"`
	T  string          `json:"t"`
	D  json.RawMessage `json:"d"`
}

// connect runs one connection from dial to close and says how it ended, whether the
// session got up on it (READY or RESUMED) and for how long.
func (s *session) connect(ctx context.Context) (outcome, bool, time.Duration) {
	log := s.log.WithValues("shard", s.shard)
	s.mu.Lock()
	base, resuming := s.gatewayURL, s.sessionID != ""
	if resuming && s.resumeURL != "" {
		base = s.resumeURL
	}
	s.mu.Unlock()
	s.setState(StateConnecting)

	// A network deadline: wall clock.
	dialCtx, cancelDial := context.WithTimeout(ctx, dialTimeout)
	ws, _, err := websocket.DefaultDialer.DialContext(dialCtx, gatewayAddress(base, s.transport.compression), nil)
	cancelDial()
	if err != nil {
		log.Info("cannot connect to the gateway", "error", err.Error())
		return outcome{reason: "dial_failed", resume: resuming}, false, 0
	}
	c := &conn{ws: ws, ended: make(chan struct{})}
	frames := s.transport.reader(ws, s.shard, s.metrics, log)
	connCtx, cancelConn := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer func() {
		cancelConn()
		_ = ws.Close()
		background.Wait()
		frames.close()
	}()

	// Shutdown closes with a resumable code, so the next process can resume.
	background.Add(1)
	go func() {
		defer background.Done()
		<-connCtx.Done()
		if ctx.Err() != nil {
			c.end(closeResumable, "shutting down, will resume", outcome{reason: "shutdown", resume: true})
		}
	}()

	// A server that upgrades and never says Hello must not hold the shard forever. A
	// net.Conn deadline: wall clock.
	_ = ws.SetReadDeadline(time.Now().Add(helloTimeout))
	var hb *heartbeater
	for {
		data, err := frames.next()
		var bad *badFrameError
		if errors.As(err, &bad) {
			c.end(closeResumable, "bad frame", outcome{reason: bad.reason, resume: true})
			continue // read on until the close handshake ends the connection
		}
		if err != nil {
			wasUp, upFor := s.upFor()
			if out, ok := c.endedOnPurpose(); ok {
				return out, wasUp, upFor
			}
			return s.classifyReadError(err), wasUp, upFor
		}
		s.touchFrame()
		var env envelope
		if err := json.Unmarshal(data, &env); err != nil {
			log.Error(err, "undecodable gateway payload; ignoring it")
			continue
		}
		switch env.Op {
		case gateway.OpcodeHello:
			var hello gateway.MessageDataHello
			if err := json.Unmarshal(env.D, &hello); err != nil || hello.HeartbeatInterval <= 0 {
				c.end(closeResumable, "bad hello", outcome{reason: "bad_hello", resume: true})
				continue
			}
			if hb != nil {
				continue // a second Hello on one connection: keep the first heartbeat
			}
			_ = ws.SetReadDeadline(time.Time{})
			interval := time.Duration(hello.HeartbeatInterval) * time.Millisecond
			c.sends = newSendLimiter(s.clock, interval)
			hb = s.newHeartbeater(c, interval)
			background.Add(2)
			go func() { defer background.Done(); hb.run(connCtx) }()
			go func() { defer background.Done(); s.authenticate(connCtx, c, log) }()

		case gateway.OpcodeHeartbeatACK:
			if hb != nil {
				hb.ack(s.clock.Now())
			}

		case gateway.OpcodeHeartbeat:
			if hb != nil {
				hb.request() // the heartbeat goroutine writes it; the read loop never writes
			}

		case gateway.OpcodeReconnect:
			c.end(closeResumable, "reconnect requested", outcome{reason: "reconnect_requested", resume: true})

		case gateway.OpcodeInvalidSession:
			var resumable bool
			_ = json.Unmarshal(env.D, &resumable)
			// Discord asks for a random 1-5 s wait before the next identify or resume.
			wait := time.Second + time.Duration(rand.Int64N(int64(4*time.Second)))
			c.end(closeResumable, "invalid session", outcome{reason: "invalid_session", resume: resumable, delay: wait})

		case gateway.OpcodeDispatch:
			s.dispatch(env, log)
		}
	}
}

// upFor says whether the session got up on the connection that ends, and for how long.
// Up for no time at all (a fake clock that did not move) is still up.
func (s *session) upFor() (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readySince.IsZero() {
		return false, 0
	}
	d := s.clock.Since(s.readySince)
	s.readySince = time.Time{}
	return true, d
}

// classifyReadError turns the end of a connection we did not close into an outcome.
func (s *session) classifyReadError(err error) outcome {
	if errors.Is(err, websocket.ErrReadLimit) {
		return outcome{reason: "frame_too_large", resume: true}
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		return outcome{reason: "connection_lost", resume: true}
	}
	if fatal, ok := fatalFor(ce.Code); ok {
		return outcome{reason: "fatal", fatal: &fatal}
	}
	switch ce.Code {
	case 4007, 4009: // invalid seq, session timed out: the session is gone
		return outcome{reason: "session_invalidated", resume: false}
	case websocket.CloseNormalClosure, websocket.CloseGoingAway:
		return outcome{reason: "closed_by_server", resume: false}
	}
	return outcome{reason: "closed_" + strconv.Itoa(ce.Code), resume: true}
}

func (s *session) newHeartbeater(c *conn, interval time.Duration) *heartbeater {
	label := shardLabel(s.shard)
	hb := &heartbeater{
		clock:     s.clock,
		requested: make(chan struct{}, 1),
		interval:  interval,
		write: func() error {
			s.mu.Lock()
			seq := s.seq
			s.mu.Unlock()
			var d any // null before the first dispatch
			if seq > 0 {
				d = seq
			}
			return c.writeOwn(map[string]any{"op": gateway.OpcodeHeartbeat, "d": d})
		},
		onZombie: func() {
			s.metrics.zombies.WithLabelValues(label).Inc()
			s.log.Info("heartbeat was not acknowledged in time; closing the zombie connection to resume", "shard", s.shard, "interval", interval)
			c.end(closeResumable, "heartbeat ACK missing", outcome{reason: "zombie", resume: true})
		},
		onRTT: func(rtt time.Duration) {
			s.mu.Lock()
			s.latency = rtt
			s.mu.Unlock()
			s.metrics.heartbeatRTT.WithLabelValues(label).Observe(rtt.Seconds())
		},
		onLate: func(late time.Duration) { s.metrics.heartbeatLate.WithLabelValues(label).Observe(late.Seconds()) },
		onWriteError: func(err error) {
			c.end(closeResumable, "heartbeat write failed", outcome{reason: "heartbeat_write_failed", resume: true})
		},
		touch: s.touch,
	}
	return hb
}

// authenticate resumes the session if there is one, or identifies through the identify
// limiter. It runs beside the read loop so that waiting for an identify slot never stops
// heartbeat ACKs from being read.
func (s *session) authenticate(ctx context.Context, c *conn, log logr.Logger) {
	s.mu.Lock()
	sessionID, seq := s.sessionID, s.seq
	s.link = commandLink{c: c, gone: ctx.Done()}
	s.mu.Unlock()
	if sessionID != "" {
		s.setState(StateResuming)
		wait := s.expectAnswer(gateway.EventTypeResumed)
		err := c.writeOwn(map[string]any{"op": gateway.OpcodeResume, "d": gateway.MessageDataResume{
			Token: s.token, SessionID: sessionID, Seq: seq,
		}})
		if err != nil {
			log.Info("sending resume failed", "error", err.Error())
			return
		}
		s.awaitAnswer(ctx, c, wait, s.metrics.resumeTimeouts, "resume_timeout", log)
		return
	}
	if err := s.waitIdentifyTurn(ctx); err != nil {
		return // the connection ended while waiting
	}
	s.setState(StateIdentifying)
	wait := s.expectAnswer(gateway.EventTypeReady)
	shard := [2]int{s.shard, s.shardCount}
	err := c.writeOwn(map[string]any{"op": gateway.OpcodeIdentify, "d": gateway.MessageDataIdentify{
		Token: s.token,
		Properties: gateway.IdentifyCommandDataProperties{
			OS: "linux", Browser: "shardkeeper", Device: "shardkeeper",
		},
		Shard:   &shard,
		Intents: gateway.Intents(s.intents),
	}})
	if err != nil {
		log.Info("sending identify failed", "error", err.Error())
		return
	}
	s.metrics.identifies.WithLabelValues(shardLabel(s.shard)).Inc()
	s.awaitAnswer(ctx, c, wait, s.metrics.readyTimeouts, "ready_timeout", log)
}

// guildOnly reads the guild ID of an event without decoding all of it.
type guildOnly struct {
	GuildID snowflake.ID `json:"guild_id"`
	ID      snowflake.ID `json:"id"`
}

// eventIDs is an event's guild_id (and id), taken from the decoded event for the events a
// busy bot sees most, so that their payload is not scanned a second time on the read loop
// (a quarter of the decoding cost of a message); other events' payloads are scanned.
func eventIDs(data gateway.EventData, raw json.RawMessage) guildOnly {
	deref := func(id *snowflake.ID) snowflake.ID {
		if id == nil {
			return 0
		}
		return *id
	}
	switch ev := data.(type) {
	case gateway.EventMessageCreate:
		return guildOnly{GuildID: deref(ev.GuildID), ID: ev.ID}
	case gateway.EventMessageUpdate:
		return guildOnly{GuildID: deref(ev.GuildID), ID: ev.ID}
	case gateway.EventMessageDelete:
		return guildOnly{GuildID: deref(ev.GuildID), ID: ev.ID}
	case gateway.EventMessageReactionAdd:
		return guildOnly{GuildID: deref(ev.GuildID)}
	case gateway.EventTypingStart:
		return guildOnly{GuildID: deref(ev.GuildID)}
	case gateway.EventInteractionCreate:
		return guildOnly{GuildID: deref(ev.GuildID()), ID: ev.ID()}
	}
	var ids guildOnly
	_ = json.Unmarshal(raw, &ids)
	return ids
}

// dispatch records an event's sequence and hands it to the dispatcher. It never blocks.
func (s *session) dispatch(env envelope, log logr.Logger) {
	now := s.clock.Now()
	data, err := gateway.UnmarshalEventData(env.D, gateway.EventType(env.T))
	if err != nil {
		if s.rawEvents {
			log.Error(err, "undecodable event; it is handed on raw", "type", env.T, "seq", env.S)
		} else {
			log.Error(err, "undecodable event; it is skipped", "type", env.T, "seq", env.S)
		}
	}
	ids := eventIDs(data, env.D)
	guildID := ids.GuildID

	var resumeURL string
	if ready, ok := data.(gateway.EventReady); ok && ready.ResumeGatewayURL != "" {
		resumeURL = ready.ResumeGatewayURL
		if err := checkResumeURL(s.gatewayURL, resumeURL); err != nil {
			// The session is real (our gateway started it): resume it at the gateway URL.
			log.Info("READY's resume_gateway_url is not trusted; this session will resume at the gateway URL", "why", err.Error())
			resumeURL = ""
		}
	}

	s.mu.Lock()
	if env.S > 0 {
		s.seq = env.S
	}
	s.lastEvent = now
	s.noteEventLocked(gateway.EventType(env.T), now)
	switch ev := data.(type) {
	case gateway.EventReady:
		s.sessionID, s.resumeURL, s.seenAt = ev.SessionID, resumeURL, now
		s.generation++
		s.guilds = make(map[snowflake.ID]struct{}, len(ev.Guilds))
		for _, g := range ev.Guilds {
			s.guilds[g.ID] = struct{}{}
		}
		s.readySince = now
	case gateway.EventResumed:
		s.readySince = now
	case gateway.EventGuildCreate:
		guildID = ids.ID
		if s.guilds == nil {
			s.guilds = map[snowflake.ID]struct{}{}
		}
		s.guilds[ids.ID] = struct{}{}
	case gateway.EventGuildUpdate:
		guildID = ids.ID
	case gateway.EventGuildDelete:
		guildID = ids.ID
		if !ev.Unavailable {
			delete(s.guilds, ids.ID)
		}
	}
	guilds, generation := len(s.guilds), s.generation
	s.mu.Unlock()

	switch data.(type) {
	case gateway.EventReady:
		s.setState(StateReady)
		log.Info("identified: shard is ready", "guilds", guilds)
	case gateway.EventResumed:
		s.setState(StateResumed)
		s.metrics.resumes.WithLabelValues(shardLabel(s.shard)).Inc()
		log.Info("session resumed")
	}
	s.metrics.guilds.WithLabelValues(shardLabel(s.shard)).Set(float64(guilds))
	s.metrics.events.WithLabelValues(env.T).Inc()
	ev := Event{Shard: s.shard, Type: gateway.EventType(env.T), Seq: env.S, GuildID: guildID, Data: data, Received: now, session: generation}
	if s.rawEvents {
		ev.Raw = env.D
	} else if data == nil {
		return
	}
	s.dispatcher.enqueue(ev)
}

// gatewayAddress adds the version, the encoding and the transport compression to a
// gateway URL (a resume URL too: the new connection must ask for the same).
func gatewayAddress(base string, compression gatewaycompress.Mode) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	q := u.Query()
	q.Set("v", strconv.Itoa(gatewayVersion))
	q.Set("encoding", "json")
	if c := compression.Query(); c != "" {
		q.Set("compress", c)
	} else {
		q.Del("compress")
	}
	u.RawQuery = q.Encode()
	return u.String()
}
