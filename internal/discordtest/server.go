package discordtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Privileged gateway intents (see Options.AllowedIntents).
const (
	IntentGuildMembers   int64 = 1 << 1
	IntentGuildPresences int64 = 1 << 8
	IntentMessageContent int64 = 1 << 15

	// PrivilegedIntents is the set of all privileged intents.
	PrivilegedIntents = IntentGuildMembers | IntentGuildPresences | IntentMessageContent

	// NoPrivilegedIntents, used as Options.AllowedIntents, allows no privileged intent.
	NoPrivilegedIntents int64 = -1

	// ValidIntents is every intent bit Discord accepts (0-16, 20, 21, 24, 25); any other
	// bit in an identify closes the connection with 4013.
	ValidIntents int64 = (1<<17 - 1) | 1<<20 | 1<<21 | 1<<24 | 1<<25
)

// Default option values.
const (
	DefaultToken             = "test-token"
	DefaultApplicationID     = 1000
	DefaultHeartbeatInterval = 41250 * time.Millisecond
	DefaultIdentifyInterval  = 5 * time.Second
	DefaultResumeWindow      = time.Minute
	DefaultSessionStartTotal = 1000
	DefaultSessionStartReset = 24 * time.Hour
	DefaultBotUsername       = "testbot"
)

// Fixed identities used in the payloads built by SendMessage, SendSlashCommand and
// SendButtonPress.
const (
	// TestUserID is the ID of the (non-bot) user who "sends" injected messages and
	// interactions.
	TestUserID uint64 = 2000
	// TestUsername is that user's username.
	TestUsername = "tester"
	// GuildOwnerID is the owner_id of every fake guild.
	GuildOwnerID uint64 = 3000
)

// ErrClosed is returned by the Wait methods when the server has been closed.
var ErrClosed = errors.New("discordtest: server closed")

// Options configures a Server. The zero value of every field means its documented
// default.
type Options struct {
	// Token is the valid bot token; identifies or resumes with any other token are
	// closed with 4004 and REST calls without "Authorization: Bot <Token>" get 401.
	// Default "test-token".
	Token string
	// ApplicationID is the bot's application ID. Default 1000.
	ApplicationID uint64
	// BotUserID is the bot user's ID. Default: ApplicationID (as on Discord).
	BotUserID uint64
	// BotUsername is the bot user's username. Default "testbot".
	BotUsername string
	// HeartbeatInterval is sent in Hello (in whole milliseconds, at least 1).
	// Default 41250ms; tests typically use e.g. 100*time.Millisecond.
	HeartbeatInterval time.Duration
	// EnforceHeartbeats makes the server close a connection with 4009 (and end its
	// session) when the client sent no heartbeat for 2*HeartbeatInterval + 1s.
	// Off by default.
	EnforceHeartbeats bool
	// EnforceSendLimit makes the server close a connection with 4008 (Rate limited; the
	// session stays resumable) on the client's payload that is one more than SendLimit
	// (120) within SendLimitWindow (60 s), counting every payload it sent (heartbeats,
	// identify, resume, commands), as Discord does. Off by default: tests of a client's
	// own limiter may run it on a fake clock the server does not share.
	EnforceSendLimit bool
	// Guilds are the guild IDs the bot is in. After READY each one that routes to the
	// identifying shard is sent as GUILD_CREATE.
	Guilds []uint64
	// RecommendedShards is returned by GET /gateway/bot. Default 1.
	RecommendedShards int
	// RequiredShards, if > 0, makes identifying with a shard count below it close with
	// 4011.
	RequiredShards int
	// MaxConcurrency is the number of identify buckets (bucket = shard_id %
	// MaxConcurrency), also returned by GET /gateway/bot. Default 1.
	MaxConcurrency int
	// IdentifyInterval is the minimum gap between two identifies in one bucket; closer
	// identifies are counted in Stats.BucketViolations (never rejected). Default 5s.
	IdentifyInterval time.Duration
	// SessionStartTotal is session_start_limit.total of GET /gateway/bot. Default 1000.
	SessionStartTotal int
	// SessionStartRemaining is the initial session_start_limit.remaining; each accepted
	// identify decrements it, not below 0. 0 means SessionStartTotal; a negative value
	// means an exhausted budget (0).
	SessionStartRemaining int
	// SessionStartResetAfter is session_start_limit.reset_after. Default 24h.
	SessionStartResetAfter time.Duration
	// AllowedIntents is the mask of privileged intents (IntentGuildMembers,
	// IntentGuildPresences, IntentMessageContent) the bot may use; identifying with a
	// privileged intent outside it closes with 4014. 0 allows all privileged intents;
	// NoPrivilegedIntents (any negative value) allows none. Non-privileged bits are
	// ignored.
	AllowedIntents int64
	// ResumeWindow is how long a session whose connection ended stays resumable.
	// Default 1 minute.
	ResumeWindow time.Duration
	// ListenAddr is where the server listens, e.g. ":8080" in a pod. Default: a random
	// port on 127.0.0.1.
	ListenAddr string
	// GlobalRateLimit is how many REST requests per second the bot may make across all
	// routes (interaction endpoints excepted) before getting a global 429, as on Discord.
	// Default DefaultGlobalRateLimit (50); a negative value turns the limit off.
	GlobalRateLimit int
	// RouteRateLimits sets the bucket of routes, keyed as in Stats.RESTRequests
	// ("POST /channels/{channel.id}/messages"); each bucket counts per top-level resource
	// (channel, guild, webhook). Routes not listed keep the defaults: 5 per 5s for
	// POST /channels/{channel.id}/messages, 10 per second for any other.
	RouteRateLimits map[string]RateLimit
	// PublicHost is the host:port clients reach the server at (a Service's name in a
	// cluster), for the URLs it hands out: GET /gateway and resume_gateway_url. Default:
	// the listener's address.
	PublicHost string
}

func (o Options) withDefaults() Options {
	if o.Token == "" {
		o.Token = DefaultToken
	}
	if o.ApplicationID == 0 {
		o.ApplicationID = DefaultApplicationID
	}
	if o.BotUserID == 0 {
		o.BotUserID = o.ApplicationID
	}
	if o.BotUsername == "" {
		o.BotUsername = DefaultBotUsername
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.HeartbeatInterval < time.Millisecond {
		o.HeartbeatInterval = time.Millisecond
	}
	if o.RecommendedShards <= 0 {
		o.RecommendedShards = 1
	}
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = 1
	}
	if o.IdentifyInterval <= 0 {
		o.IdentifyInterval = DefaultIdentifyInterval
	}
	if o.SessionStartTotal <= 0 {
		o.SessionStartTotal = DefaultSessionStartTotal
	}
	switch {
	case o.SessionStartRemaining == 0:
		o.SessionStartRemaining = o.SessionStartTotal
	case o.SessionStartRemaining < 0:
		o.SessionStartRemaining = 0
	}
	if o.SessionStartResetAfter <= 0 {
		o.SessionStartResetAfter = DefaultSessionStartReset
	}
	switch {
	case o.AllowedIntents == 0:
		o.AllowedIntents = PrivilegedIntents
	case o.AllowedIntents < 0:
		o.AllowedIntents = 0
	default:
		o.AllowedIntents &= PrivilegedIntents
	}
	if o.ResumeWindow <= 0 {
		o.ResumeWindow = DefaultResumeWindow
	}
	if o.GlobalRateLimit == 0 {
		o.GlobalRateLimit = DefaultGlobalRateLimit
	}
	o.Guilds = append([]uint64(nil), o.Guilds...)
	o.RouteRateLimits = maps.Clone(o.RouteRateLimits)
	return o
}

// Stats is a snapshot of what the server observed. It is a deep copy: the caller may
// keep and modify it.
type Stats struct {
	// Identifies is the number of accepted identifies (each created a session).
	Identifies int
	// Resumes is the number of successful resumes.
	Resumes int
	// ResumeFailures is the number of resumes answered with op 9 d=false (unknown,
	// ended or expired session).
	ResumeFailures int
	// Connections is the number of websocket connections accepted so far.
	Connections int
	// ConnectionsByCompression counts the accepted connections by the transport
	// compression they asked for (a connection refused for an unknown compress value
	// counts as CompressionNone: it got a plain Hello and a plain close).
	ConnectionsByCompression map[Compression]int
	// OpenConnections is the number of websocket connections currently open.
	OpenConnections int
	// PerShard holds per-shard counters, keyed by shard ID. A shard appears once a
	// connection authenticated (identify or resume) as that shard.
	PerShard map[int]ShardStats
	// IdentifyLog has one record per accepted identify, in order.
	IdentifyLog []IdentifyRecord
	// BucketViolations counts identifies (answered or not, SetIdentifyAnswer) that came
	// less than Options.IdentifyInterval after the previous identify of the same bucket.
	BucketViolations int
	// SessionStartRemaining is the current session_start_limit.remaining.
	SessionStartRemaining int
	// ServerCloseCodes counts the close frames the server sent, by code, on every
	// connection (those that never authenticated included, e.g. 4002 for an unknown
	// compress value or 4004 for a bad token).
	ServerCloseCodes map[int]int
	// BytesSent is the number of websocket message bytes the server wrote, after
	// transport compression (frame headers and close frames not included).
	BytesSent int64
	// RESTRequests counts REST requests by route, e.g. "GET /gateway/bot",
	// "POST /channels/{channel.id}/messages" (including rejected ones); numeric
	// segments of paths no route matched read {id}.
	RESTRequests map[string]int
	// RESTRateLimited counts the requests answered 429 by their route's bucket, by route.
	RESTRateLimited map[string]int
	// RESTGlobalRateLimited counts the requests answered 429 by the global limit.
	RESTGlobalRateLimited int
}

// IdentifyRecord describes one accepted identify.
type IdentifyRecord struct {
	Shard      int
	Bucket     int // Shard % Options.MaxConcurrency
	At         time.Time
	ShardCount int
	Intents    int64
	SessionID  string
	// Violation is true if this identify counted as a bucket violation.
	Violation bool
}

// ShardStats are the counters of one shard ID, across all its connections.
type ShardStats struct {
	// Connections is the number of websocket connections that authenticated (identify
	// or resume) as this shard.
	Connections int
	// Compression is the transport compression of the shard's latest connection.
	Compression Compression
	// Compressions has one entry per connection of this shard, in order: the transport
	// compression it used.
	Compressions []Compression
	Identifies   int
	// IdentifiesUnanswered counts identifies of this shard that got no READY because
	// SetIdentifyAnswer said so; they are not in Identifies.
	IdentifiesUnanswered int
	Resumes              int
	// ResumeFailures counts resumes of this shard's sessions answered with op 9 d=false
	// or closed with 4007. A resume naming a session the server never had has no shard
	// and is only in Stats.ResumeFailures.
	ResumeFailures int
	// ResumesUnanswered counts resumes of this shard's sessions that got no RESUMED
	// because SetResumeAnswer said so; they are not in Resumes.
	ResumesUnanswered int
	// Heartbeats is the number of op 1 heartbeats received (including those received
	// on the connection before it identified/resumed).
	Heartbeats int
	// ACKs is the number of op 11 heartbeat ACKs sent.
	ACKs int
	// EventsSent counts dispatches written to the client, including replays, excluding
	// READY and RESUMED.
	EventsSent int
	// Replayed counts dispatches re-sent because of a resume.
	Replayed int
	// HeartbeatTimes is when each heartbeat arrived.
	HeartbeatTimes []time.Time
	// LastCloseCode is the close code the client sent in its close frame when the
	// shard's last connection ended (0 if it sent none, e.g. the connection was cut).
	LastCloseCode int
	// ClientCloseCodes has one entry per ended connection of this shard: the close code
	// the client sent, or 0.
	ClientCloseCodes []int
	// ServerCloseCodes has one entry per close frame the server sent on a connection of
	// this shard (after it authenticated): its code.
	ServerCloseCodes []int
	// BytesSent is the number of websocket message bytes written on this shard's
	// connections once they authenticated, after transport compression.
	BytesSent int64
	// OpsReceived has one entry per connection of this shard, in order: the payloads the
	// client sent on it, by opcode (heartbeats, identify, resume, presence updates, ...),
	// counting those sent before the connection authenticated. Discord allows 120 per
	// connection every 60 s.
	OpsReceived []map[int]int
	// SessionID is the ID of the shard's most recent session (from identify or resume).
	SessionID string
	// LastSeq is the last sequence number of that session.
	LastSeq int
}

func (st ShardStats) clone() ShardStats {
	st.HeartbeatTimes = append([]time.Time(nil), st.HeartbeatTimes...)
	st.ClientCloseCodes = append([]int(nil), st.ClientCloseCodes...)
	st.ServerCloseCodes = append([]int(nil), st.ServerCloseCodes...)
	st.Compressions = append([]Compression(nil), st.Compressions...)
	if st.OpsReceived != nil {
		ops := make([]map[int]int, len(st.OpsReceived))
		for i, m := range st.OpsReceived {
			ops[i] = maps.Clone(m)
		}
		st.OpsReceived = ops
	}
	return st
}

// Server is the fake Discord gateway and REST API. Create it with NewServer and stop
// it with Close.
type Server struct {
	opts   Options
	http   *httptest.Server
	wsURL  string
	apiURL string

	wg sync.WaitGroup // websocket handlers and their helper goroutines

	mu      sync.Mutex
	closed  bool
	changed chan struct{} // closed and replaced on every state change (see notifyLocked)
	lastID  uint64

	conns    map[*wsConn]struct{}
	sessions map[string]*session
	shards   map[int]*shardState

	identifyLog      []IdentifyRecord
	lastIdentify     map[int]time.Time // bucket -> last identify
	bucketViolations int
	identifies       int
	resumes          int
	resumeFailures   int
	connections      int
	sessionRemaining int
	sessionResetAt   time.Time // when sessionRemaining goes back to SessionStartTotal
	restRequests     map[string]int

	// REST rate limits (ratelimit.go): windows by bucket hash and major parameter.
	rateBuckets           map[string]*rateWindow
	globalWindow          rateWindow
	restRateLimited       map[string]int
	restGlobalRateLimited int

	connectionsByCompression map[Compression]int
	serverCloseCodes         map[int]int
	bytesSent                int64

	resumeAnswers   map[int]ResumeAnswer   // by shard (SetResumeAnswer); none: ResumeAnswered
	identifyAnswers map[int]IdentifyAnswer // by shard (SetIdentifyAnswer); none: IdentifyAnswered

	// guilds is the state of every guild the bot is in (guilds.go); guildOrder lists
	// them in the order READY does.
	guilds     map[uint64]*guildState
	guildOrder []uint64

	commands      map[uint64][]json.RawMessage // guild ID (0 = global) -> commands
	channelGuilds map[uint64]uint64            // channel ID -> guild ID, from SendMessage
	replies       []Reply
	interactions  map[uint64]*interactionRecord

	// Guild coverage (coverage.go); coverageDirty is set when a session gains or loses
	// its connection.
	coverageDirty  bool
	everCovered    map[uint64]bool
	uncoveredSince map[uint64]time.Time
	gaps           []CoverageGap
}

type shardState struct {
	stats ShardStats
	conn  *wsConn // connection most recently authenticated as this shard; nil once it ended
}

// NewServer starts a fake Discord server listening on 127.0.0.1 with a random port.
func NewServer(opts Options) *Server {
	s := &Server{
		opts:          opts.withDefaults(),
		changed:       make(chan struct{}),
		conns:         map[*wsConn]struct{}{},
		sessions:      map[string]*session{},
		shards:        map[int]*shardState{},
		lastIdentify:  map[int]time.Time{},
		restRequests:  map[string]int{},
		commands:      map[uint64][]json.RawMessage{},
		interactions:  map[uint64]*interactionRecord{},
		channelGuilds: map[uint64]uint64{},

		connectionsByCompression: map[Compression]int{},
		serverCloseCodes:         map[int]int{},
		rateBuckets:              map[string]*rateWindow{},
		restRateLimited:          map[string]int{},
	}
	s.guilds = make(map[uint64]*guildState, len(s.opts.Guilds))
	joined := time.Now()
	for _, id := range s.opts.Guilds {
		if _, dup := s.guilds[id]; !dup {
			s.guilds[id] = s.newGuildState(id, joined)
			s.guildOrder = append(s.guildOrder, id)
		}
	}
	s.sessionRemaining = s.opts.SessionStartRemaining
	s.sessionResetAt = time.Now().Add(s.opts.SessionStartResetAfter)
	// The URLs are set before the server starts serving: handlers read them, and a
	// client in another process gives the race detector no happens-before edge.
	s.http = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	if s.opts.ListenAddr != "" {
		l, err := net.Listen("tcp", s.opts.ListenAddr)
		if err != nil {
			panic(fmt.Sprintf("discordtest: listening on %s: %v", s.opts.ListenAddr, err))
		}
		_ = s.http.Listener.Close()
		s.http.Listener = l
	}
	addr := s.http.Listener.Addr().String()
	if s.opts.PublicHost != "" {
		addr = s.opts.PublicHost
	}
	s.wsURL = "ws://" + addr
	s.apiURL = "http://" + addr + "/api/v10"
	s.http.Start()
	return s
}

// Options returns the effective options (defaults applied).
func (s *Server) Options() Options {
	o := s.opts
	if o.GlobalRateLimit == 0 {
		o.GlobalRateLimit = DefaultGlobalRateLimit
	}
	o.Guilds = append([]uint64(nil), o.Guilds...)
	o.RouteRateLimits = maps.Clone(o.RouteRateLimits)
	return o
}

// URL is the gateway base URL, "ws://127.0.0.1:PORT". Clients append
// "?v=10&encoding=json". It is also the resume_gateway_url of every READY.
func (s *Server) URL() string { return s.wsURL }

// APIURL is the REST base URL, "http://127.0.0.1:PORT/api/v10".
func (s *Server) APIURL() string { return s.apiURL }

// Close closes every websocket connection abruptly, stops the listener and waits for
// all of the server's goroutines to exit. Wait methods blocked on the server return
// ErrClosed. Close is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closed = true
	for c := range s.conns {
		c.closing = true
		_ = c.ws.Close()
	}
	s.notifyLocked()
	s.mu.Unlock()

	s.http.Close()
	s.wg.Wait()
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		s.serveREST(w, r)
		return
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.serveGateway(w, r)
		return
	}
	writeJSON(w, http.StatusNotFound, apiError{Message: "404: Not Found"})
}

// notifyLocked wakes every waiter. s.mu must be held.
func (s *Server) notifyLocked() {
	if s.coverageDirty {
		s.coverageDirty = false
		s.coverageLocked(time.Now())
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitFor blocks until cond (called with s.mu held) returns true, the context is done
// or the server is closed.
func (s *Server) waitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		if cond() {
			s.mu.Unlock()
			return nil
		}
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// shardLocked returns the state of a shard ID, creating it. s.mu must be held.
func (s *Server) shardLocked(shard int) *shardState {
	st, ok := s.shards[shard]
	if !ok {
		st = &shardState{}
		s.shards[shard] = st
	}
	return st
}

// currentConnLocked is the shard's current connection or nil. s.mu must be held.
func (s *Server) currentConnLocked(shard int) *wsConn {
	st, ok := s.shards[shard]
	if !ok || st.conn == nil || st.conn.closing {
		return nil
	}
	return st.conn
}

// nextIDLocked returns a new, unique snowflake with the current time. s.mu must be
// held.
func (s *Server) nextIDLocked() uint64 {
	const discordEpoch = 1420070400000
	id := uint64(time.Now().UnixMilli()-discordEpoch) << 22
	if id <= s.lastID {
		id = s.lastID + 1
	}
	s.lastID = id
	return id
}

// NewID returns a new unique snowflake (with the current time in its upper bits).
func (s *Server) NewID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextIDLocked()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand.Read panics rather than erring)
	return hex.EncodeToString(b)
}

// ShardForGuild returns the shard a guild routes to with numShards shards:
// (guildID >> 22) % numShards.
func ShardForGuild(guildID uint64, numShards int) int {
	if numShards < 1 {
		return 0
	}
	return int((guildID >> 22) % uint64(numShards))
}

// ---- hooks ----

// SetACKs stops (enabled=false) or resumes replying op 11 to the heartbeats of the
// shard's current connection. The setting belongs to that connection: a new
// connection of the shard always gets ACKs. No-op if the shard is not connected.
func (s *Server) SetACKs(shard int, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.currentConnLocked(shard); c != nil {
		c.acks = enabled
	}
}

// Cut drops the shard's current TCP connection abruptly, without a close frame. The
// session stays resumable for Options.ResumeWindow; dispatches meanwhile are buffered.
// No-op if the shard is not connected.
func (s *Server) Cut(shard int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.currentConnLocked(shard)
	if c == nil {
		return
	}
	c.closing = true
	s.detachLocked(c)
	_ = c.ws.Close()
	s.notifyLocked()
}

// nonResumableCloseCodes end the session when the server closes with them (Discord:
// "reconnect and start a new session" or "do not reconnect").
var nonResumableCloseCodes = map[int]bool{
	4004: true, 4007: true, 4009: true, 4010: true, 4011: true, 4012: true, 4013: true, 4014: true,
}

// CloseWith sends a close frame with code and reason on the shard's current
// connection, then closes it (after the client's close frame or a short grace
// period). The session stays resumable unless code is one after which Discord
// requires a new session or no reconnect (4004, 4007, 4009, 4010-4014). No-op if the
// shard is not connected.
func (s *Server) CloseWith(shard int, code int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.currentConnLocked(shard)
	if c == nil {
		return
	}
	if nonResumableCloseCodes[code] && c.sess != nil {
		s.discardLocked(c.sess)
	}
	s.closeConnLocked(c, code, reason)
}

// Reconnect sends op 7 (Reconnect) on the shard's current connection. The server does
// not close the connection itself; the client is expected to. No-op if the shard is
// not connected.
func (s *Server) Reconnect(shard int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.currentConnLocked(shard); c != nil {
		c.enqueueLocked(outFrame{data: mustFrame(opReconnect, nil, 0, "")})
	}
}

// InvalidSession sends op 9 with d=resumable on the shard's current connection. The
// connection stays open but is no longer attached to the session (it may identify or
// resume again); dispatches meanwhile are buffered. If !resumable the session is
// ended server-side and can no longer be resumed. No-op if the shard is not connected.
func (s *Server) InvalidSession(shard int, resumable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.currentConnLocked(shard)
	if c == nil {
		return
	}
	sess := c.sess
	s.detachLocked(c)
	if !resumable && sess != nil {
		s.discardLocked(sess)
	}
	c.enqueueLocked(outFrame{data: invalidSessionFrame(resumable)})
	s.notifyLocked()
}

// Dispatch sends a dispatch event for a guild. It goes to every live session whose
// shard the guild routes to ((guildID >> 22) % shard count of the session); each such
// session gives it its next seq and stores it for replay; it is written at once if the
// session is connected and buffered otherwise. Without such a session the event is
// dropped. data is marshalled with encoding/json (pass a json.RawMessage for raw JSON).
// It panics if data cannot be marshalled.
func (s *Server) Dispatch(guildID uint64, eventType string, data any) {
	raw := mustMarshal(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dispatchGuildLocked(guildID, eventType, raw)
}

// DispatchToShard is Dispatch for events that belong to no guild (e.g. direct
// messages): it goes to every live session of the shard ID.
func (s *Server) DispatchToShard(shard int, eventType string, data any) {
	raw := mustMarshal(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.liveSessionsLocked() {
		if sess.shard == shard {
			s.dispatchLocked(sess, eventType, raw, true, true)
		}
	}
	s.notifyLocked()
}

// WaitConnected blocks until the shard has a session that completed READY or RESUMED
// on a connection that is still open, the context is done or the server is closed.
// "Completed" means the server has processed the identify/resume and queued READY or
// RESUMED (and any replay) on the connection; anything dispatched afterwards reaches
// the client after them.
func (s *Server) WaitConnected(ctx context.Context, shard int) error {
	return s.waitFor(ctx, func() bool { return s.connectedLocked(shard) })
}

// Connected reports whether the shard has a session that completed READY or RESUMED
// on a connection that is still open.
func (s *Server) Connected(shard int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connectedLocked(shard)
}

func (s *Server) connectedLocked(shard int) bool {
	for _, sess := range s.sessions {
		if sess.shard == shard && sess.conn != nil && !sess.conn.closing {
			return true
		}
	}
	return false
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

func (s *Server) statsLocked() Stats {
	st := Stats{
		Identifies:            s.identifies,
		Resumes:               s.resumes,
		ResumeFailures:        s.resumeFailures,
		Connections:           s.connections,
		OpenConnections:       len(s.conns),
		PerShard:              make(map[int]ShardStats, len(s.shards)),
		IdentifyLog:           append([]IdentifyRecord(nil), s.identifyLog...),
		BucketViolations:      s.bucketViolations,
		SessionStartRemaining: s.sessionRemainingLocked(),
		RESTRequests:          make(map[string]int, len(s.restRequests)),

		ConnectionsByCompression: make(map[Compression]int, len(s.connectionsByCompression)),
		ServerCloseCodes:         make(map[int]int, len(s.serverCloseCodes)),
		BytesSent:                s.bytesSent,
		RESTRateLimited:          maps.Clone(s.restRateLimited),
		RESTGlobalRateLimited:    s.restGlobalRateLimited,
	}
	for k, v := range s.connectionsByCompression {
		st.ConnectionsByCompression[k] = v
	}
	for k, v := range s.serverCloseCodes {
		st.ServerCloseCodes[k] = v
	}
	for id, sh := range s.shards {
		ss := sh.stats.clone()
		if sess, ok := s.sessions[ss.SessionID]; ok {
			ss.LastSeq = sess.seq
		}
		st.PerShard[id] = ss
	}
	for k, v := range s.restRequests {
		st.RESTRequests[k] = v
	}
	return st
}

// WaitStats blocks until cond returns true for the current Stats (it is evaluated on
// every state change), the context is done or the server is closed. It returns the
// Stats that satisfied cond, or the last one seen with the error. cond runs with the
// server's lock held: it must not call the Server's methods.
func (s *Server) WaitStats(ctx context.Context, cond func(Stats) bool) (Stats, error) {
	var last Stats
	err := s.waitFor(ctx, func() bool {
		last = s.statsLocked()
		return cond(last)
	})
	return last, err
}
