package discordtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
)

// Gateway opcodes.
const (
	opDispatch                = 0
	opHeartbeat               = 1
	opIdentify                = 2
	opPresenceUpdate          = 3
	opVoiceStateUpdate        = 4
	opResume                  = 6
	opReconnect               = 7
	opRequestGuildMembers     = 8
	opInvalidSession          = 9
	opHello                   = 10
	opHeartbeatACK            = 11
	opRequestSoundboardSounds = 31
)

// Gateway close codes sent by the server.
const (
	CloseUnknownError         = 4000
	CloseUnknownOpcode        = 4001
	CloseDecodeError          = 4002
	CloseNotAuthenticated     = 4003
	CloseAuthenticationFailed = 4004
	CloseAlreadyAuthenticated = 4005
	CloseInvalidSeq           = 4007
	CloseRateLimited          = 4008
	CloseSessionTimedOut      = 4009
	CloseInvalidShard         = 4010
	CloseShardingRequired     = 4011
	CloseInvalidAPIVersion    = 4012
	CloseInvalidIntents       = 4013
	CloseDisallowedIntents    = 4014
)

const (
	writeTimeout = 10 * time.Second
	// closeGrace is how long the server waits for the client's close frame after
	// sending its own before dropping the TCP connection.
	closeGrace = 2 * time.Second
)

// session is a gateway session. All fields are guarded by Server.mu.
type session struct {
	id         string
	shard      int
	shardCount int
	intents    int64
	seq        int           // last seq used
	events     []storedEvent // stored dispatches, for replay
	conn       *wsConn       // attached connection (READY/RESUMED sent on it), nil if detached
	detachedAt time.Time     // when conn became nil
	discarded  bool          // ended: can no longer be resumed
}

type storedEvent struct {
	seq   int
	frame []byte
}

// outFrame is one frame queued for a connection's writer goroutine.
type outFrame struct {
	data []byte

	close  bool // a close frame with code and reason; the writer then ends the connection
	code   int
	reason string

	event  bool // a dispatch counted in ShardStats.EventsSent once written
	replay bool // ... and in ShardStats.Replayed
	shard  int
}

// wsConn is one gateway websocket connection. The reader runs on the HTTP handler's
// goroutine, the writer on its own goroutine (gorilla/websocket allows one concurrent
// writer; close frames from the reader use WriteControl, which is concurrency-safe).
// All fields below ws are guarded by Server.mu.
type wsConn struct {
	srv *Server
	ws  *websocket.Conn
	// compression is the connection's transport compression, fixed at connect; the
	// compressor (nil for CompressionNone) belongs to the writer goroutine.
	compression Compression
	compressor  *gatewaycompress.Encoder

	shard       int      // shard ID once authenticated (kept after detaching, for stats); -1 before
	counted     bool     // counted in its shard's ShardStats.Connections
	sess        *session // attached session; nil while not authenticated
	acks        bool     // reply op 11 to heartbeats
	closing     bool     // the server is ending this connection: ignore further input
	serverClose bool     // the server sent a close frame
	dead        bool     // torn down
	lastBeat    time.Time
	earlyBeats  []time.Time // heartbeats before the shard was known
	earlyACKs   int
	// opsReceived counts the client's payloads by opcode; its shard's
	// ShardStats.OpsReceived shares the map once the connection is counted.
	opsReceived map[int]int
	// sends is the client's payloads within the send limit's window (EnforceSendLimit).
	sends sendLimitWindow

	outbox []outFrame
	wake   chan struct{} // capacity 1: outbox has frames
	done   chan struct{} // closed on teardown
}

func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade already replied with an HTTP error
	}

	q := r.URL.Query()
	compression, compressionOK := gatewaycompress.Parse(q.Get("compress"))
	if !compressionOK {
		compression = CompressionNone // Hello and the close frame go out as plain TEXT
	}
	c := &wsConn{
		srv:         s,
		ws:          ws,
		compression: compression,
		compressor:  gatewaycompress.NewEncoder(compression),
		shard:       -1,
		acks:        true,
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if c.compressor != nil {
			c.compressor.Close()
		}
		_ = ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.connections++
	s.connectionsByCompression[compression]++
	c.lastBeat = time.Now()
	c.enqueueLocked(outFrame{data: helloFrame(s.opts.HeartbeatInterval)})
	switch {
	case q.Get("v") != "10":
		s.closeConnLocked(c, CloseInvalidAPIVersion, "Invalid API version.")
	case q.Get("encoding") != "" && q.Get("encoding") != "json":
		s.closeConnLocked(c, CloseDecodeError, "discordtest: only encoding=json is supported")
	case !compressionOK:
		// Discord's docs accept only zlib-stream and zstd-stream and do not say what
		// happens otherwise; Spacebar, the open reimplementation of Discord's server,
		// closes with 4002 (src/gateway/events/Connection.ts), and so does the fake.
		s.closeConnLocked(c, CloseDecodeError, "Invalid compress: want zlib-stream or zstd-stream.")
	}
	s.notifyLocked()
	s.mu.Unlock()

	s.wg.Add(1)
	go c.writeLoop()
	if s.opts.EnforceHeartbeats {
		s.wg.Add(1)
		go c.heartbeatWatch()
	}
	c.readLoop()
}

// enqueueLocked queues a frame for the writer. Frames queued after the connection
// started closing are dropped. Server.mu must be held.
func (c *wsConn) enqueueLocked(f outFrame) {
	if c.dead || c.closing {
		return
	}
	c.outbox = append(c.outbox, f)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *wsConn) readLoop() {
	s := c.srv
	// The client's close frame is accounted for (LastCloseCode, session ended on
	// 1000/1001) before the server echoes it, so a client that completes the close
	// handshake sees the result in Stats as soon as its close returns.
	c.ws.SetCloseHandler(func(code int, _ string) error {
		if code == websocket.CloseNoStatusReceived {
			code = 0
		}
		s.mu.Lock()
		s.teardownLocked(c, code)
		s.mu.Unlock()
		echo := websocket.FormatCloseMessage(code, "")
		if code == 0 {
			echo = websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		}
		_ = c.ws.WriteControl(websocket.CloseMessage, echo, time.Now().Add(time.Second))
		return nil
	})
	closeCode := 0
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			// gorilla reports a close frame without a code as 1005 and a connection
			// that ended without a close frame as 1006: neither was sent by the client.
			if errors.As(err, &ce) && ce.Code != websocket.CloseNoStatusReceived && ce.Code != websocket.CloseAbnormalClosure {
				closeCode = ce.Code
			}
			break
		}
		s.mu.Lock()
		if !c.closing {
			s.handleLocked(c, mt, data)
			s.notifyLocked()
		}
		s.mu.Unlock()
	}

	s.mu.Lock()
	s.teardownLocked(c, closeCode)
	s.mu.Unlock()
	_ = c.ws.Close()
}

func (c *wsConn) writeLoop() {
	s := c.srv
	defer s.wg.Done()
	if c.compressor != nil {
		defer c.compressor.Close()
	}
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		s.mu.Lock()
		frames := c.outbox
		c.outbox = nil
		s.mu.Unlock()

		for _, f := range frames {
			if f.close {
				_ = c.ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(f.code, f.reason), time.Now().Add(writeTimeout))
				// Wait for the client's close frame (the reader then tears down) so that
				// the client reliably reads our close frame before the TCP connection goes.
				t := time.NewTimer(closeGrace)
				select {
				case <-c.done:
				case <-t.C:
				}
				t.Stop()
				_ = c.ws.Close()
				return
			}
			messageType, payload := websocket.TextMessage, f.data
			if c.compressor != nil {
				compressed, err := c.compressor.Encode(f.data)
				if err != nil {
					_ = c.ws.Close()
					return
				}
				messageType, payload = websocket.BinaryMessage, compressed
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.ws.WriteMessage(messageType, payload); err != nil {
				_ = c.ws.Close()
				return
			}
			s.mu.Lock()
			s.bytesSent += int64(len(payload))
			if c.shard >= 0 {
				s.shardLocked(c.shard).stats.BytesSent += int64(len(payload))
			}
			if f.event {
				st := s.shardLocked(f.shard)
				st.stats.EventsSent++
				if f.replay {
					st.stats.Replayed++
				}
				s.notifyLocked()
			}
			s.mu.Unlock()
		}
	}
}

// heartbeatWatch closes the connection with 4009 when the client sends no heartbeat
// for 2*HeartbeatInterval + 1s (only with Options.EnforceHeartbeats).
func (c *wsConn) heartbeatWatch() {
	s := c.srv
	defer s.wg.Done()
	limit := 2*s.opts.HeartbeatInterval + time.Second
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-timer.C:
		}
		s.mu.Lock()
		if c.dead || c.closing {
			s.mu.Unlock()
			return
		}
		wait := time.Until(c.lastBeat.Add(limit))
		if wait <= 0 {
			if c.sess != nil {
				s.discardLocked(c.sess)
			}
			s.closeConnLocked(c, CloseSessionTimedOut, "Session timed out.")
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		timer.Reset(wait)
	}
}

// teardownLocked forgets a connection whose reader ended. clientCode is the close
// code the client sent (0 if none). Server.mu must be held.
func (s *Server) teardownLocked(c *wsConn, clientCode int) {
	if c.dead {
		return
	}
	sess := c.sess
	s.detachLocked(c)
	// As on Discord, a client closing with 1000/1001 ends its session.
	if sess != nil && !c.serverClose && (clientCode == websocket.CloseNormalClosure || clientCode == websocket.CloseGoingAway) {
		s.discardLocked(sess)
	}
	c.dead = true
	c.closing = true
	c.outbox = nil
	close(c.done)
	delete(s.conns, c)
	if c.shard >= 0 {
		st := s.shardLocked(c.shard)
		st.stats.LastCloseCode = clientCode
		st.stats.ClientCloseCodes = append(st.stats.ClientCloseCodes, clientCode)
		if st.conn == c {
			st.conn = nil
		}
	}
	s.notifyLocked()
}

// closeConnLocked sends a close frame and ends the connection; its session (if any)
// is detached but stays resumable. Server.mu must be held.
func (s *Server) closeConnLocked(c *wsConn, code int, reason string) {
	if c.closing || c.dead {
		return
	}
	c.enqueueLocked(outFrame{close: true, code: code, reason: reason})
	s.countServerCloseLocked(c, code)
	c.closing = true
	c.serverClose = true
	s.detachLocked(c)
	s.notifyLocked()
}

// detachLocked separates a connection from its session; the session is then
// resumable for ResumeWindow. Server.mu must be held.
func (s *Server) detachLocked(c *wsConn) {
	s.coverageDirty = true
	if c.sess == nil {
		return
	}
	if c.sess.conn == c {
		c.sess.conn = nil
		c.sess.detachedAt = time.Now()
	}
	c.sess = nil
}

// discardLocked ends a session: it can no longer be resumed and gets no more events.
// Server.mu must be held.
func (s *Server) discardLocked(sess *session) {
	s.coverageDirty = true
	sess.discarded = true
	sess.events = nil
	if sess.conn != nil {
		sess.conn.sess = nil
		sess.conn = nil
		sess.detachedAt = time.Now()
	}
}

// liveSessionsLocked returns the sessions that are not ended, ending those whose
// resume window passed. Server.mu must be held.
func (s *Server) liveSessionsLocked() []*session {
	now := time.Now()
	var out []*session
	for _, sess := range s.sessions {
		if s.expireLocked(sess, now) {
			continue
		}
		out = append(out, sess)
	}
	return out
}

// expireLocked ends the session if its resume window passed and reports whether it
// is ended. Server.mu must be held.
func (s *Server) expireLocked(sess *session, now time.Time) bool {
	if sess.discarded {
		return true
	}
	if sess.conn == nil && now.Sub(sess.detachedAt) > s.opts.ResumeWindow {
		s.discardLocked(sess)
		return true
	}
	return false
}

// attachLocked authenticates the connection as the session's. Server.mu must be held.
func (s *Server) attachLocked(c *wsConn, sess *session) {
	s.coverageDirty = true
	c.sess = sess
	sess.conn = c
	st := s.claimLocked(c, sess.shard)
	st.stats.SessionID = sess.id
}

// claimLocked makes the connection the shard's current one and counts it in the shard's
// stats, with what it carried before the shard was known. Server.mu must be held.
func (s *Server) claimLocked(c *wsConn, shard int) *shardState {
	st := s.shardLocked(shard)
	if c.shard < 0 {
		// Heartbeats that arrived before the shard was known.
		st.stats.Heartbeats += len(c.earlyBeats)
		st.stats.HeartbeatTimes = append(st.stats.HeartbeatTimes, c.earlyBeats...)
		st.stats.ACKs += c.earlyACKs
		c.earlyBeats, c.earlyACKs = nil, 0
	}
	c.shard = shard
	if !c.counted {
		c.counted = true
		st.stats.Connections++
		st.stats.Compression = c.compression
		st.stats.Compressions = append(st.stats.Compressions, c.compression)
		if c.opsReceived == nil {
			c.opsReceived = map[int]int{}
		}
		st.stats.OpsReceived = append(st.stats.OpsReceived, c.opsReceived)
	}
	st.conn = c
	return st
}

// countServerCloseLocked records a close frame the server sends on c. Server.mu must be
// held.
func (s *Server) countServerCloseLocked(c *wsConn, code int) {
	s.serverCloseCodes[code]++
	if c.shard >= 0 {
		st := s.shardLocked(c.shard)
		st.stats.ServerCloseCodes = append(st.stats.ServerCloseCodes, code)
	}
}

// dispatchLocked gives an event the session's next seq, stores it for replay if store
// and writes it if the session is connected. countEvent marks it for
// ShardStats.EventsSent. Server.mu must be held.
func (s *Server) dispatchLocked(sess *session, eventType string, data json.RawMessage, store, countEvent bool) {
	sess.seq++
	fr := mustFrame(opDispatch, data, sess.seq, eventType)
	if store {
		sess.events = append(sess.events, storedEvent{seq: sess.seq, frame: fr})
	}
	if sess.conn != nil {
		sess.conn.enqueueLocked(outFrame{data: fr, event: countEvent, shard: sess.shard})
	}
}

// handleLocked processes one client frame. Server.mu must be held.
func (s *Server) handleLocked(c *wsConn, mt int, data []byte) {
	if mt != websocket.TextMessage {
		s.closeConnLocked(c, CloseDecodeError, "Error while decoding payload.")
		return
	}
	var p struct {
		Op *int            `json:"op"`
		D  json.RawMessage `json:"d"`
	}
	if err := json.Unmarshal(data, &p); err != nil || p.Op == nil {
		s.closeConnLocked(c, CloseDecodeError, "Error while decoding payload.")
		return
	}
	if c.opsReceived == nil {
		c.opsReceived = map[int]int{}
	}
	c.opsReceived[*p.Op]++
	if s.opts.EnforceSendLimit && c.sends.overLimit(time.Now()) {
		s.closeConnLocked(c, CloseRateLimited, "You are being rate limited.")
		return
	}
	switch *p.Op {
	case opHeartbeat:
		s.handleHeartbeatLocked(c)
	case opIdentify:
		s.handleIdentifyLocked(c, p.D)
	case opResume:
		s.handleResumeLocked(c, p.D)
	case opPresenceUpdate, opVoiceStateUpdate, opRequestGuildMembers, opRequestSoundboardSounds:
		if c.sess == nil {
			s.closeConnLocked(c, CloseNotAuthenticated, "Not authenticated.")
			return
		}
		if *p.Op == opRequestGuildMembers {
			s.answerMembersLocked(c.sess, p.D)
		}
		// The others are accepted and otherwise ignored.
	default:
		s.closeConnLocked(c, CloseUnknownOpcode, "Unknown opcode.")
	}
}

func (s *Server) handleHeartbeatLocked(c *wsConn) {
	now := time.Now()
	c.lastBeat = now
	var st *shardState
	if c.shard >= 0 {
		st = s.shardLocked(c.shard)
		st.stats.Heartbeats++
		st.stats.HeartbeatTimes = append(st.stats.HeartbeatTimes, now)
	} else {
		c.earlyBeats = append(c.earlyBeats, now)
	}
	if !c.acks {
		return
	}
	c.enqueueLocked(outFrame{data: mustFrame(opHeartbeatACK, nil, 0, "")})
	if st != nil {
		st.stats.ACKs++
	} else {
		c.earlyACKs++
	}
}

type identifyData struct {
	Token   string  `json:"token"`
	Intents *int64  `json:"intents"`
	Shard   *[2]int `json:"shard"`
}

func (s *Server) handleIdentifyLocked(c *wsConn, d json.RawMessage) {
	if c.sess != nil {
		s.closeConnLocked(c, CloseAlreadyAuthenticated, "Already authenticated.")
		return
	}
	var id identifyData
	if err := json.Unmarshal(d, &id); err != nil {
		s.closeConnLocked(c, CloseDecodeError, "Error while decoding payload.")
		return
	}
	if id.Token != s.opts.Token {
		s.closeConnLocked(c, CloseAuthenticationFailed, "Authentication failed.")
		return
	}
	shard, count := 0, 1
	if id.Shard != nil {
		shard, count = id.Shard[0], id.Shard[1]
	}
	if count < 1 || shard < 0 || shard >= count {
		s.closeConnLocked(c, CloseInvalidShard, "Invalid shard.")
		return
	}
	if s.opts.RequiredShards > 0 && count < s.opts.RequiredShards {
		s.closeConnLocked(c, CloseShardingRequired, "Sharding required.")
		return
	}
	if id.Intents == nil || *id.Intents < 0 || *id.Intents&^ValidIntents != 0 {
		s.closeConnLocked(c, CloseInvalidIntents, "Invalid intent(s).")
		return
	}
	intents := *id.Intents
	if intents&PrivilegedIntents&^s.opts.AllowedIntents != 0 {
		s.closeConnLocked(c, CloseDisallowedIntents, "Disallowed intent(s).")
		return
	}

	now := time.Now()
	bucket := shard % s.opts.MaxConcurrency
	violation := false
	if last, ok := s.lastIdentify[bucket]; ok && now.Sub(last) < s.opts.IdentifyInterval {
		violation = true
		s.bucketViolations++
	}
	s.lastIdentify[bucket] = now
	s.refillSessionStartsLocked(now)
	if s.sessionRemaining > 0 {
		s.sessionRemaining--
	}
	if s.identifyAnswers[shard] == IdentifyUnanswered {
		// Read and forgotten: the connection stays unauthenticated, its heartbeats ACKed.
		s.claimLocked(c, shard).stats.IdentifiesUnanswered++
		return
	}

	sess := &session{id: randomHex(16), shard: shard, shardCount: count, intents: intents}
	s.sessions[sess.id] = sess
	s.identifies++
	s.identifyLog = append(s.identifyLog, IdentifyRecord{
		Shard: shard, Bucket: bucket, At: now, ShardCount: count, Intents: intents,
		SessionID: sess.id, Violation: violation,
	})
	s.shardLocked(shard).stats.Identifies++

	s.attachLocked(c, sess)
	s.dispatchLocked(sess, "READY", mustMarshal(s.readyPayload(sess)), false, false)
	for _, id := range s.guildOrder {
		// A guild in an outage stays unavailable: its GUILD_CREATE comes when it is back.
		if g := s.guilds[id]; ShardForGuild(id, count) == shard && !g.unavailable {
			s.dispatchLocked(sess, "GUILD_CREATE", mustMarshal(g.object(s)), true, true)
		}
	}
}

type resumeData struct {
	Token     string `json:"token"`
	SessionID string `json:"session_id"`
	Seq       *int   `json:"seq"`
}

func (s *Server) handleResumeLocked(c *wsConn, d json.RawMessage) {
	if c.sess != nil {
		s.closeConnLocked(c, CloseAlreadyAuthenticated, "Already authenticated.")
		return
	}
	var r resumeData
	if err := json.Unmarshal(d, &r); err != nil {
		s.closeConnLocked(c, CloseDecodeError, "Error while decoding payload.")
		return
	}
	if r.Token != s.opts.Token {
		s.closeConnLocked(c, CloseAuthenticationFailed, "Authentication failed.")
		return
	}
	sess := s.sessions[r.SessionID]
	if sess == nil || s.expireLocked(sess, time.Now()) {
		s.resumeFailures++
		if sess != nil {
			s.shardLocked(sess.shard).stats.ResumeFailures++
		}
		c.enqueueLocked(outFrame{data: invalidSessionFrame(false)})
		return
	}
	seq := 0
	if r.Seq != nil {
		seq = *r.Seq
	}
	if seq < 0 || seq > sess.seq {
		s.resumeFailures++
		s.shardLocked(sess.shard).stats.ResumeFailures++
		s.discardLocked(sess)
		s.closeConnLocked(c, CloseInvalidSeq, "Invalid seq.")
		return
	}
	answer := s.resumeAnswers[sess.shard]
	if answer == ResumeUnanswered {
		// Read and forgotten: the connection stays unauthenticated, its heartbeats ACKed.
		s.claimLocked(c, sess.shard).stats.ResumesUnanswered++
		return
	}
	if old := sess.conn; old != nil && old != c {
		// The session moves to the new connection; the old one is closed.
		s.closeConnLocked(old, CloseSessionTimedOut, "Session resumed on another connection.")
	}

	s.attachLocked(c, sess)
	for _, ev := range sess.events {
		if ev.seq > seq {
			c.enqueueLocked(outFrame{data: ev.frame, event: true, replay: true, shard: sess.shard})
		}
	}
	if answer == ResumeWithoutResumed {
		s.shardLocked(sess.shard).stats.ResumesUnanswered++
		return
	}
	s.resumes++
	s.shardLocked(sess.shard).stats.Resumes++
	s.dispatchLocked(sess, "RESUMED", json.RawMessage(`{}`), false, false)
}

// ---- frames ----

type frame struct {
	Op int             `json:"op"`
	D  json.RawMessage `json:"d"`
	S  *int            `json:"s"`
	T  *string         `json:"t"`
}

// mustFrame builds a gateway payload. s and t are only set for dispatches (op 0);
// other payloads carry "s":null,"t":null like Discord's.
func mustFrame(op int, d json.RawMessage, seq int, eventType string) []byte {
	f := frame{Op: op, D: d}
	if op == opDispatch {
		f.S = &seq
		f.T = &eventType
	}
	b, err := json.Marshal(f)
	if err != nil {
		panic(fmt.Sprintf("discordtest: marshal frame: %v", err))
	}
	return b
}

func helloFrame(interval time.Duration) []byte {
	ms := interval.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return mustFrame(opHello, mustMarshal(map[string]int64{"heartbeat_interval": ms}), 0, "")
}

func invalidSessionFrame(resumable bool) []byte {
	return mustFrame(opInvalidSession, mustMarshal(resumable), 0, "")
}

func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("discordtest: marshal %T: %v", v, err))
	}
	return b
}
