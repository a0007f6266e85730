package gatewayproxy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	"github.com/go-logr/logr"
	"github.com/gorilla/websocket"

	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
)

// Close codes the proxy sends its client, Discord's own.
const (
	closeUnknownError         = 4000
	closeUnknownOpcode        = 4001
	closeDecodeError          = 4002
	closeNotAuthenticated     = 4003
	closeAuthenticationFailed = 4004
	closeAlreadyAuthenticated = 4005
	closeRateLimited          = 4008
	closeInvalidShard         = 4010
	closeInvalidAPIVersion    = 4012
)

const (
	// maxClientPayload bounds what a client may send: Discord closes with 4002 past
	// 4096 bytes; the proxy is a little kinder.
	maxClientPayload = 16 << 10
	// writeBatch is how many entries a writer takes from the buffers at once.
	writeBatch = 64
	// commandQueue is how many gateway commands of one connection may wait for room
	// in the upstream send limit; past it the client is closed with 4008, as Discord does.
	commandQueue       = 128
	clientWriteTimeout = 10 * time.Second
	closeGrace         = time.Second
)

// clientConn is one websocket connection of a client.
type clientConn struct {
	p           *Proxy
	ws          *websocket.Conn
	compression gatewaycompress.Mode
	enc         *gatewaycompress.Encoder
	// url is where the client reached the proxy: its READY's resume_gateway_url.
	url string
	log logr.Logger

	// ctrl carries what the writer sends before any event: ACKs, the hello, op 9, the
	// start of a session. It is served first.
	ctrl chan ctrlMsg
	// commands go upstream one at a time, in the order the client sent them.
	commands chan command
	done     chan struct{}
	closeMu  sync.Mutex
	closed   bool
	// evicting is set once the connection is being closed for falling behind.
	evicting atomic.Bool

	mu      sync.Mutex
	session *clientSession // set once identified or resumed
	pending bool           // an identify or resume is being worked on
}

type ctrlMsg struct {
	frame []byte
	// start attaches a session: a fresh one (burst) or a resumed one.
	start *clientSession
	burst [][]byte // READY and GUILD_CREATE payloads ("d") for a fresh session
	// presence is the identify's, sent upstream once the session is attached.
	presence json.RawMessage
	// resume: replay up to resumeUpTo, then RESUMED.
	resume     bool
	resumeUpTo uint64
	// closeCode ends the connection after the frames before it.
	closeCode   int
	closeReason string
}

// errTakenOver ends a writer whose session resumed on another connection.
var errTakenOver = errors.New("the session resumed on another connection")

type command struct {
	op gateway.Opcode
	d  json.RawMessage
}

// serveGateway upgrades a client's request and runs its connection until it ends.
func (p *Proxy) serveGateway(w http.ResponseWriter, r *http.Request) {
	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	q := r.URL.Query()
	mode, modeOK := gatewaycompress.Parse(q.Get("compress"))
	if !modeOK {
		mode = gatewaycompress.None
	}
	c := &clientConn{
		p: p, ws: ws, compression: mode, enc: gatewaycompress.NewEncoder(mode),
		log: p.log.WithValues("client", r.RemoteAddr), url: "ws://" + r.Host,
		ctrl: make(chan ctrlMsg, 64), commands: make(chan command, commandQueue), done: make(chan struct{}),
	}
	ws.SetReadLimit(maxClientPayload)
	p.metrics.connections.Inc()
	c.ctrl <- ctrlMsg{frame: helloFrame(p.opts.HeartbeatInterval)}
	switch {
	case q.Get("v") != "" && q.Get("v") != "10":
		c.ctrl <- ctrlMsg{closeCode: closeInvalidAPIVersion, closeReason: "Invalid API version: the proxy speaks v10."}
	case q.Get("encoding") != "" && q.Get("encoding") != "json":
		c.ctrl <- ctrlMsg{closeCode: closeDecodeError, closeReason: "Only encoding=json is supported."}
	case !modeOK:
		c.ctrl <- ctrlMsg{closeCode: closeDecodeError, closeReason: "Invalid compress: want zlib-stream or zstd-stream."}
	}
	go c.writeLoop()
	go c.commandLoop()
	c.readLoop()
}

func helloFrame(interval time.Duration) []byte {
	return fmt.Appendf(nil, `{"op":10,"d":{"heartbeat_interval":%d},"s":null,"t":null}`, interval.Milliseconds())
}

// dispatchFrame is a dispatch with the client's sequence number, its data as received.
func dispatchFrame(t string, seq int, d json.RawMessage) []byte {
	b := make([]byte, 0, len(d)+len(t)+40)
	b = append(b, `{"op":0,"t":`...)
	b = strconv.AppendQuote(b, t)
	b = append(b, `,"s":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"d":`...)
	b = append(b, d...)
	return append(b, '}')
}

// shutdown ends the connection with a close frame (code 0: none) and detaches its session.
func (c *clientConn) shutdown(code int, reason string) {
	c.closeMu.Lock()
	if c.closed {
		c.closeMu.Unlock()
		return
	}
	c.closed = true
	close(c.done)
	c.closeMu.Unlock()
	if code != 0 {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	}
	_ = c.ws.Close()
	c.p.detach(c)
}

func (c *clientConn) readLoop() {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.shutdown(closeDecodeError, "Payload too large.")
			}
			// The client is gone: stop writing to it at once, so that nothing more
			// counts as delivered.
			c.shutdown(0, "")
			return
		}
		var msg struct {
			Op gateway.Opcode  `json:"op"`
			D  json.RawMessage `json:"d"`
		}
		if err := json.Unmarshal(data, &msg); err != nil {
			c.shutdown(closeDecodeError, "Error while decoding payload.")
			return
		}
		if !c.handle(msg.Op, msg.D) {
			// A close queued for the writer goes out after what it has; give it a moment.
			select {
			case <-c.done:
			case <-time.After(closeGrace):
			}
			c.shutdown(0, "")
			return
		}
	}
}

// closeWith queues a close behind what the writer already has.
func (c *clientConn) closeWith(code int, reason string) {
	select {
	case c.ctrl <- ctrlMsg{closeCode: code, closeReason: reason}:
	default:
		c.shutdown(code, reason)
	}
}

// handle acts on one payload of the client; false ends the read loop.
func (c *clientConn) handle(op gateway.Opcode, d json.RawMessage) bool {
	c.mu.Lock()
	session, pending := c.session, c.pending
	c.mu.Unlock()
	switch op {
	case gateway.OpcodeHeartbeat:
		if session != nil {
			var seq int
			_ = json.Unmarshal(d, &seq) // null before the first dispatch
			c.p.heartbeat(session, seq)
		}
		select {
		case c.ctrl <- ctrlMsg{frame: []byte(`{"op":11,"d":null}`)}:
		default: // the writer is far behind already; the client will see an ACK missing
		}
		return true
	case gateway.OpcodeIdentify, gateway.OpcodeResume:
		if session != nil || pending {
			c.closeWith(closeAlreadyAuthenticated, "You sent more than one identify payload.")
			return false
		}
		c.mu.Lock()
		c.pending = true
		c.mu.Unlock()
		if op == gateway.OpcodeIdentify {
			go c.identify(d)
		} else {
			go c.resume(d)
		}
		return true
	case gateway.OpcodePresenceUpdate, gateway.OpcodeVoiceStateUpdate, gateway.OpcodeRequestGuildMembers, gateway.OpcodeRequestSoundboardSounds:
		if session == nil {
			c.closeWith(closeNotAuthenticated, "You sent a payload prior to identifying.")
			return false
		}
		select {
		case c.commands <- command{op: op, d: d}:
			return true
		default:
			c.p.metrics.commands.WithLabelValues(strconv.Itoa(int(op)), "rate_limited").Inc()
			c.closeWith(closeRateLimited, "You are being rate limited.")
			return false
		}
	}
	c.closeWith(closeUnknownOpcode, "Unknown opcode.")
	return false
}

// identifyData is the part of an identify the proxy reads.
type identifyData struct {
	Token    string          `json:"token"`
	Shard    []int           `json:"shard"`
	Presence json.RawMessage `json:"presence"`
}

func (c *clientConn) identify(d json.RawMessage) {
	var id identifyData
	if err := json.Unmarshal(d, &id); err != nil {
		c.closeWith(closeDecodeError, "Error while decoding identify.")
		return
	}
	if !c.p.tokenOK(id.Token) {
		c.p.metrics.identifies.WithLabelValues("authentication_failed").Inc()
		c.closeWith(closeAuthenticationFailed, "Authentication failed.")
		return
	}
	shards, err := c.p.shardsFor(id.Shard)
	if err != nil {
		c.p.metrics.identifies.WithLabelValues("invalid_shard").Inc()
		c.closeWith(closeInvalidShard, err.Error())
		return
	}
	start, burst, err := c.p.newSession(c.ctx(), c, shards, id.Shard, c.url)
	if err != nil {
		return // the connection ended while the upstream was not ready
	}
	c.p.metrics.identifies.WithLabelValues("ok").Inc()
	m := ctrlMsg{start: start, burst: burst}
	// The identify's presence is the client's first presence update.
	if p := bytes.TrimSpace(id.Presence); len(p) > 0 && p[0] == '{' {
		m.presence = id.Presence
	}
	c.queue(m)
}

func (c *clientConn) resume(d json.RawMessage) {
	var rd struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       int    `json:"seq"`
	}
	if err := json.Unmarshal(d, &rd); err != nil {
		c.closeWith(closeDecodeError, "Error while decoding resume.")
		return
	}
	if !c.p.tokenOK(rd.Token) {
		c.closeWith(closeAuthenticationFailed, "Authentication failed.")
		return
	}
	session, upTo, ok := c.p.resumeSession(rd.SessionID, rd.Seq, c)
	if !ok {
		c.p.metrics.resumes.WithLabelValues("invalid").Inc()
		c.mu.Lock()
		c.pending = false
		c.mu.Unlock()
		c.queue(ctrlMsg{frame: []byte(`{"op":9,"d":false,"s":null,"t":null}`)})
		return
	}
	c.p.metrics.resumes.WithLabelValues("ok").Inc()
	c.queue(ctrlMsg{start: session, resume: true, resumeUpTo: upTo})
}

// queue hands the writer a control message, unless the connection ends first.
func (c *clientConn) queue(m ctrlMsg) {
	select {
	case c.ctrl <- m:
	case <-c.done:
	}
}

// ctx ends with the connection.
func (c *clientConn) ctx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-c.done; cancel() }()
	return ctx
}

func (c *clientConn) write(frame []byte) error {
	mt := websocket.TextMessage
	if c.compression != gatewaycompress.None {
		var err error
		if frame, err = c.enc.Encode(frame); err != nil {
			return err
		}
		mt = websocket.BinaryMessage
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(clientWriteTimeout))
	return c.ws.WriteMessage(mt, frame)
}

func (c *clientConn) writeLoop() {
	if c.enc != nil { // nil without compression
		defer c.enc.Close()
	}
	var session *clientSession
	// A resumed session is sent what it missed up to replayUpTo, then RESUMED.
	var replayUpTo uint64
	resumed := true
	fail := func(err error) {
		c.log.V(1).Info("client connection ended", "why", err.Error())
		c.shutdown(0, "")
	}
	for {
		// Control first: ACKs never wait behind events.
		select {
		case m := <-c.ctrl:
			if !c.control(m, &session, &replayUpTo, &resumed, fail) {
				return
			}
			continue
		case <-c.done:
			return
		default:
		}
		var more <-chan struct{}
		if session != nil {
			_, more = c.p.hub.position() // before reading, so no entry is missed
			upTo := uint64(math.MaxUint64)
			if !resumed {
				upTo = replayUpTo
			}
			n, err := c.sendEntries(session, upTo)
			if err != nil {
				fail(err)
				return
			}
			if n == 0 {
				session.mu.Lock()
				session.caughtUp = true
				session.mu.Unlock()
			}
			if !resumed && n == 0 {
				if err := c.sendSynthetic(session, "RESUMED", json.RawMessage(`{}`)); err != nil {
					fail(err)
					return
				}
				resumed = true
				continue
			}
			if n > 0 {
				continue
			}
		}
		select {
		case m := <-c.ctrl:
			if !c.control(m, &session, &replayUpTo, &resumed, fail) {
				return
			}
		case <-more:
		case <-c.done:
			return
		}
	}
}

// control acts on one control message; false ends the writer.
func (c *clientConn) control(m ctrlMsg, session **clientSession, replayUpTo *uint64, resumed *bool, fail func(error)) bool {
	if m.frame != nil {
		if err := c.write(m.frame); err != nil {
			fail(err)
			return false
		}
	}
	if m.start != nil {
		s := m.start
		c.p.attach(s, c)
		c.mu.Lock()
		c.session, c.pending = s, false
		c.mu.Unlock()
		*session = s
		if m.presence != nil {
			select {
			case c.commands <- command{op: gateway.OpcodePresenceUpdate, d: m.presence}:
			default:
			}
		}
		if m.resume {
			*replayUpTo, *resumed = m.resumeUpTo, false
		} else {
			// A resume from inside the burst cannot be served (the replay does not hold
			// it): it is refused from the first payload on, whatever happens to the rest.
			s.mu.Lock()
			s.burstEnd = s.seq + len(m.burst)
			s.mu.Unlock()
			for i, d := range m.burst {
				t := "GUILD_CREATE"
				if i == 0 {
					t = "READY"
				}
				if err := c.sendSynthetic(s, t, d); err != nil {
					fail(err)
					return false
				}
			}

		}
	}
	if m.closeCode != 0 {
		c.shutdown(m.closeCode, m.closeReason)
		return false
	}
	return true
}

// sendSynthetic sends an event the proxy made (READY, the cache's GUILD_CREATEs,
// RESUMED): it takes a sequence number but stands for no buffered entry.
func (c *clientConn) sendSynthetic(s *clientSession, t string, d json.RawMessage) error {
	s.mu.Lock()
	if s.owner != c {
		s.mu.Unlock()
		return errTakenOver
	}
	seq := s.seq + 1
	last := uint64(0)
	if len(s.sent) > 0 && t == "RESUMED" {
		last = s.sent[len(s.sent)-1]
	}
	s.recordLocked(seq, last, c.p.opts.ReplayEvents*len(s.shards))
	s.mu.Unlock()
	return c.write(dispatchFrame(t, seq, d))
}

// sendEntries writes the next batch of the session's entries, up to entry upTo, and says
// how many it went through (sent or skipped as not the session's).
func (c *clientConn) sendEntries(s *clientSession, upTo uint64) (int, error) {
	s.mu.Lock()
	from := s.fromLocked()
	s.mu.Unlock()
	entries := c.p.hub.after(s.shards, from, writeBatch)
	sent := 0
	// The batch is written by the session's owner only; a resume elsewhere stops it, and
	// nothing this connection writes after that counts for the session.
	for _, e := range entries {
		if e.g > upTo {
			break
		}
		s.mu.Lock()
		if s.owner != c {
			s.mu.Unlock()
			return sent, errTakenOver
		}
		skip := (e.t == "GUILD_CREATE" && e.g <= s.burstG && s.burstGuilds[e.guild]) ||
			(e.asker != nil && e.asker != s)
		seq := s.seq
		if !skip {
			seq++
		}
		s.mu.Unlock()
		if !skip {
			select {
			case <-c.done:
				return sent, errors.New("the connection ended")
			default:
			}
			if err := c.write(dispatchFrame(e.t, seq, e.d)); err != nil {
				return sent, err
			}
			c.p.metrics.eventsSent.Inc()
		}
		s.mu.Lock()
		if s.owner != c {
			s.mu.Unlock()
			return sent, errTakenOver
		}
		if skip {
			// Nothing went out, but the place moves past it.
			if len(s.sent) > 0 {
				s.sent[len(s.sent)-1] = max(s.sent[len(s.sent)-1], e.g)
			} else {
				for _, id := range s.shards {
					s.floor[id] = max(s.floor[id], e.g)
				}
			}
		} else {
			s.recordLocked(seq, e.g, c.p.opts.ReplayEvents*len(s.shards))
		}
		s.mu.Unlock()
		c.p.hub.markDelivered(e.shard, e.g)
		sent++
	}
	return sent, nil
}

// commandLoop routes the client's gateway commands to a queue per upstream shard, so
// that a shard waiting for room in its send limit holds up only its own commands; each
// shard's go out in the order the client sent them.
func (c *clientConn) commandLoop() {
	ctx := c.ctx()
	queues := map[int]chan command{}
	for {
		select {
		case cmd := <-c.commands:
			c.mu.Lock()
			s := c.session
			c.mu.Unlock()
			for shard, d := range c.p.route(s, cmd) {
				q := queues[shard]
				if q == nil {
					q = make(chan command, commandQueue)
					queues[shard] = q
					go c.shardCommands(ctx, shard, q)
				}
				select {
				case q <- command{op: cmd.op, d: d}:
				default:
					c.p.metrics.commands.WithLabelValues(strconv.Itoa(int(cmd.op)), "rate_limited").Inc()
					c.closeWith(closeRateLimited, "You are being rate limited.")
				}
			}
		case <-c.done:
			c.dropQueued(c.commands)
			return
		}
	}
}

// shardCommands sends one shard's commands of the connection, one at a time.
func (c *clientConn) shardCommands(ctx context.Context, shard int, q chan command) {
	for {
		select {
		case cmd := <-q:
			c.p.send(ctx, shard, cmd.op, cmd.d)
		case <-c.done:
			c.dropQueued(q)
			return
		}
	}
}

// dropQueued counts the commands still queued when the connection ended: they die with
// it, as on Discord.
func (c *clientConn) dropQueued(q chan command) {
	for {
		select {
		case cmd := <-q:
			c.p.metrics.commands.WithLabelValues(strconv.Itoa(int(cmd.op)), "connection_ended").Inc()
		default:
			return
		}
	}
}

// guildOf reads a command's guild_id.
func guildOf(d json.RawMessage) (snowflake.ID, bool) {
	var g struct {
		GuildID snowflake.ID `json:"guild_id"`
	}
	if err := json.Unmarshal(d, &g); err != nil || g.GuildID == 0 {
		return 0, false
	}
	return g.GuildID, true
}

// tokenMatches compares a client's token with the placeholder in constant time; a "Bot "
// prefix is allowed, as libraries differ.
func tokenMatches(got, want string) bool {
	got = strings.TrimPrefix(strings.TrimSpace(got), "Bot ")
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
