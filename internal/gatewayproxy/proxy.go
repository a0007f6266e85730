// Package gatewayproxy serves a bot written in any language a Discord-compatible gateway
// and REST API on localhost, while the pod's real gateway sessions stay upstream in
// botruntime: a client that blocks its event loop, freezes or restarts costs nothing
// upstream. See docs/gateway-proxy.md.
package gatewayproxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/guildcache"
)

// Upstream is what the proxy needs of the runtime that holds the pod's sessions
// (*botruntime.Runtime).
type Upstream interface {
	SendRawCommand(ctx context.Context, shard int, op gateway.Opcode, d json.RawMessage) error
	Shards() []botruntime.ShardStatus
	StartNewSession(shard int) error
}

// Cache is one shard's guild state, kept from its dispatches: *guildcache.Cache.
type Cache interface {
	// Reset starts over from a READY's data.
	Reset(ready json.RawMessage) error
	// Apply takes one dispatch.
	Apply(eventType string, data json.RawMessage) error
	// Guilds lists the shard's guilds, and GuildCreate gives one's GUILD_CREATE data.
	Guilds() []guildcache.Guild
	GuildCreate(id string) (json.RawMessage, bool)
}

// Defaults of Options.
const (
	DefaultHeartbeatInterval = 41250 * time.Millisecond
	DefaultClientTolerance   = 3
	DefaultStartupBound      = 2 * time.Minute
	DefaultReplayEvents      = 10000
	DefaultReplayBytes       = 64 << 20
	// sessionsKept bounds the detached client sessions kept for resuming.
	sessionsKept = 64
	// maxNonces bounds the member requests waiting for their chunks.
	maxNonces = 4096
)

// Options configure a Proxy.
type Options struct {
	// ShardIDs are the pod's shards, ShardCount the bot's total.
	ShardIDs   []int
	ShardCount int
	// ClientToken is the placeholder token the client must present (identify, resume
	// and REST); RealToken replaces it upstream.
	ClientToken, RealToken string
	// APIURL is Discord's REST API, with its version (botruntime.Config.APIURL).
	APIURL string
	// HeartbeatInterval is told to clients in Hello (default DefaultHeartbeatInterval).
	HeartbeatInterval time.Duration
	// ClientTolerance is how many heartbeat intervals a connected client may go without
	// heartbeating before the client probe fails (default DefaultClientTolerance).
	ClientTolerance int
	// StartupBound is how long the client probe passes with no client connected, after
	// the proxy starts or a client leaves (default DefaultStartupBound).
	StartupBound time.Duration
	// ReplayEvents and ReplayBytes bound each shard's replay buffer.
	ReplayEvents, ReplayBytes int
	// ClientQueue is how many entries a connected client may be behind before it is
	// disconnected to resume (default half of ReplayEvents).
	ClientQueue int
	// NewCache makes a shard's guild cache.
	NewCache func(shard int) Cache
	Clock    clock.Clock
	Log      logr.Logger
	// Transport makes the REST calls upstream (default http.DefaultTransport). Requests
	// end when the client's own request does.
	Transport http.RoundTripper
}

// Proxy is the gateway and REST API a bot's own process connects to.
type Proxy struct {
	opts    Options
	up      Upstream
	hub     *hub
	log     logr.Logger
	clock   clock.Clock
	metrics *metrics
	started time.Time

	// stateMu orders the cache and the buffers: an event is applied and buffered under
	// it, and a new client's GUILD_CREATEs and place are read under it.
	stateMu sync.Mutex
	caches  map[int]Cache
	ready   map[int]json.RawMessage // each shard's last upstream READY data
	// readyChanged is closed, and replaced, when a shard gets a READY.
	readyChanged chan struct{}
	// held are, per shard, the events Discord replayed when this process resumed a
	// session a previous one started, then the live events of the new session until its
	// guilds are in: they reach the buffer after its GUILD_CREATEs, so that no client
	// gets an event before its guild's GUILD_CREATE (heldEvents).
	held map[int]*heldEvents

	mu       sync.Mutex
	sessions map[string]*clientSession
	order    []string // session IDs, oldest first
	// beats is the last heartbeat of a client on each shard; attachedTo counts the
	// connections attached per shard; leftAt is when a shard's last one went away.
	beats      map[int]time.Time
	attachedTo map[int]int
	leftAt     map[int]time.Time
	nonces     map[string]*clientSession
}

// New builds a proxy. Give it its upstream with SetUpstream and feed it the upstream's
// events with HandleEvent (a runtime built WithRawEvents and WithWorkers(1), so they come
// in order) before serving clients.
func New(opts Options) (*Proxy, error) {
	if len(opts.ShardIDs) == 0 || opts.ShardCount < 1 {
		return nil, errors.New("gatewayproxy: no shards")
	}
	if opts.ClientToken == "" || opts.RealToken == "" {
		return nil, errors.New("gatewayproxy: the client token and the real token are both needed")
	}
	if opts.ClientToken == opts.RealToken {
		return nil, errors.New("gatewayproxy: the client token must not be the real token")
	}
	if opts.NewCache == nil {
		return nil, errors.New("gatewayproxy: no guild cache")
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.ClientTolerance <= 0 {
		opts.ClientTolerance = DefaultClientTolerance
	}
	if opts.StartupBound <= 0 {
		opts.StartupBound = DefaultStartupBound
	}
	if opts.ReplayEvents <= 0 {
		opts.ReplayEvents = DefaultReplayEvents
	}
	if opts.ReplayBytes <= 0 {
		opts.ReplayBytes = DefaultReplayBytes
	}
	if opts.ClientQueue <= 0 || opts.ClientQueue >= opts.ReplayEvents {
		opts.ClientQueue = max(opts.ReplayEvents/2, 1)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	p := &Proxy{
		opts: opts, hub: newHub(opts.ShardIDs, opts.ReplayEvents, opts.ReplayBytes),
		log: opts.Log, clock: opts.Clock, metrics: newMetrics(), started: opts.Clock.Now(),
		caches: map[int]Cache{}, ready: map[int]json.RawMessage{}, readyChanged: make(chan struct{}), held: map[int]*heldEvents{},
		sessions: map[string]*clientSession{}, beats: map[int]time.Time{}, attachedTo: map[int]int{},
		leftAt: map[int]time.Time{}, nonces: map[string]*clientSession{},
	}
	for _, id := range opts.ShardIDs {
		p.caches[id] = opts.NewCache(id)
	}
	p.metrics.buffers = p.hub.stats
	return p, nil
}

// SetUpstream gives the proxy the runtime that holds the sessions. The runtime is built
// after the proxy, so that it can serve the proxy's metrics (Collectors) and probes.
func (p *Proxy) SetUpstream(up Upstream) { p.up = up }

// HandleEvent takes one upstream event (a botruntime.Handler).
func (p *Proxy) HandleEvent(_ context.Context, ev botruntime.Event) {
	t := string(ev.Type)
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	cache := p.caches[ev.Shard]
	if cache == nil {
		return
	}
	switch t {
	case string(gateway.EventTypeReady):
		// The client gets a READY of its own; the upstream one is kept to build it.
		before := cache.Guilds()
		if err := cache.Reset(ev.Raw); err != nil {
			p.log.Error(err, "upstream READY not cached", "shard", ev.Shard)
		}
		if p.ready[ev.Shard] != nil {
			p.newUpstreamSession(ev.Shard, before, cache.Guilds())
		}
		p.ready[ev.Shard] = ev.Raw
		close(p.readyChanged)
		p.readyChanged = make(chan struct{})
		if h := p.held[ev.Shard]; h != nil {
			// A guild that stays unavailable (an outage) must not hold the rest forever.
			go func(after <-chan time.Time) {
				<-after
				p.stateMu.Lock()
				defer p.stateMu.Unlock()
				if p.held[ev.Shard] == h {
					p.releaseHeld(ev.Shard)
				}
			}(p.clock.After(heldBound))
		}
		p.releaseHeldOnceGuildsAreIn(ev.Shard, cache)
		return
	case string(gateway.EventTypeResumed):
		// The upstream resume is the proxy's business only. One of a session that a
		// previous process (the pod this one replaces) started leaves this process without
		// the session's READY and guilds, which no client can do without: what Discord
		// replayed is kept for the client, and a new session brings the guilds.
		if p.ready[ev.Shard] == nil && p.up != nil {
			p.log.Info("resumed the previous process's session; starting a new one for its guilds, the replayed events kept", "shard", ev.Shard)
			go func(up Upstream, shard int) {
				switch err := up.StartNewSession(shard); {
				case errors.Is(err, botruntime.ErrNotResumedSession):
					// Gone already, or identified anew: a READY is on its way.
				case err != nil:
					p.log.Error(err, "cannot start a new upstream session; the client waits for the next READY", "shard", shard)
				}
			}(p.up, ev.Shard)
		}
		return
	}
	// Before a READY there is no state to update: these are events Discord replayed on
	// resuming a previous process's session, and the new session's guilds will be current.
	if p.ready[ev.Shard] != nil {
		if err := cache.Apply(t, ev.Raw); err != nil {
			p.metrics.cacheErrors.Inc()
			p.log.Error(err, "event not cached; it is passed on", "shard", ev.Shard, "type", t)
		}
	}
	e := entry{shard: ev.Shard, t: t, d: ev.Raw}
	switch t {
	case string(gateway.EventTypeGuildCreate):
		var g struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(ev.Raw, &g)
		e.guild = g.ID
	case string(gateway.EventTypeGuildMembersChunk):
		var c struct {
			Nonce      string `json:"nonce"`
			ChunkIndex int    `json:"chunk_index"`
			ChunkCount int    `json:"chunk_count"`
		}
		_ = json.Unmarshal(ev.Raw, &c)
		if c.Nonce != "" {
			e.asker = p.nonceOwner(c.Nonce)
			if c.ChunkIndex >= c.ChunkCount-1 {
				p.forgetNonce(c.Nonce)
			}
		}
	}
	if p.ready[ev.Shard] == nil {
		h := p.held[ev.Shard]
		if h == nil {
			h = &heldEvents{}
			p.held[ev.Shard] = h
		}
		// GUILD_CREATE and GUILD_DELETE Discord replays are superseded by the new
		// session's READY and GUILD_CREATEs; the rest is what the bot missed.
		if t != string(gateway.EventTypeGuildCreate) && t != string(gateway.EventTypeGuildDelete) {
			h.replayed = append(h.replayed, e)
		}
		return
	}
	if h := p.held[ev.Shard]; h != nil && t != string(gateway.EventTypeGuildCreate) {
		h.live = append(h.live, e) // after what was replayed, and after the guilds
		if len(h.live) >= p.opts.ReplayEvents {
			p.releaseHeld(ev.Shard)
		}
		return
	}
	p.hub.add(e)
	if t == string(gateway.EventTypeGuildCreate) {
		p.releaseHeldOnceGuildsAreIn(ev.Shard, cache)
	}
	p.evictLagging(ev.Shard)
}

// heldBound is how long held events wait for the new session's guilds at most.
const heldBound = 30 * time.Second

// heldEvents are a shard's events kept back while this process, having resumed the
// session a previous one started, waits for a new session's READY and GUILD_CREATEs.
type heldEvents struct {
	replayed []entry // what Discord replayed on the resume
	live     []entry // the new session's events, but its GUILD_CREATEs, until its guilds are in
}

// releaseHeldOnceGuildsAreIn buffers the shard's held events once none of its guilds
// waits for its GUILD_CREATE.
func (p *Proxy) releaseHeldOnceGuildsAreIn(shard int, cache Cache) {
	if p.held[shard] == nil || slices.ContainsFunc(cache.Guilds(), func(g guildcache.Guild) bool { return g.Unavailable }) {
		return
	}
	p.releaseHeld(shard)
}

func (p *Proxy) releaseHeld(shard int) {
	h := p.held[shard]
	if h == nil {
		return
	}
	for _, e := range append(h.replayed, h.live...) {
		p.hub.add(e)
	}
	delete(p.held, shard)
	p.evictLagging(shard)
}

// evictLagging disconnects the clients of the shard that are more than ClientQueue
// entries behind: a client that reads slowly, or not at all, never holds the upstream
// back and never makes the buffer drop what it still needs. It resumes and gets the rest.
func (p *Proxy) evictLagging(shard int) {
	type attached struct {
		s *clientSession
		c *clientConn
	}
	p.mu.Lock()
	var candidates []attached
	for _, s := range p.sessions {
		if c := s.conn; c != nil && !c.evicting.Load() && s.covers(shard) {
			candidates = append(candidates, attached{s, c})
		}
	}
	p.mu.Unlock()
	for _, a := range candidates {
		if !p.tooFarBehind(a.s) || !a.c.evicting.CompareAndSwap(false, true) {
			continue
		}
		c := a.c
		p.metrics.slowClients.Inc()
		c.log.Info("the client fell too far behind; it is disconnected to resume", "queue", p.opts.ClientQueue)
		// The close frame may wait behind a full socket: not on the event path.
		go c.shutdown(closeUnknownError, "The client fell too far behind; resume to get the rest.")
	}
}

// newUpstreamSession: the shard lost its session and identified anew. Its clients keep
// theirs; the new session's GUILD_CREATEs reach them as updates, and the guilds the bot
// left in between are announced with a GUILD_DELETE, as Discord would have.
func (p *Proxy) newUpstreamSession(shard int, before, now []guildcache.Guild) {
	p.metrics.upstreamSessions.Inc()
	still := make(map[string]bool, len(now))
	for _, g := range now {
		still[g.ID] = true
	}
	for _, g := range before {
		if !still[g.ID] {
			d, _ := json.Marshal(map[string]string{"id": g.ID})
			p.hub.add(entry{shard: shard, t: string(gateway.EventTypeGuildDelete), d: d})
		}
	}
}

// shardsFor maps an identify's shard to the pod's shards: none or [0, 1] is all of them in
// one stream; [id, count] with the bot's count is that shard when the pod runs it; [i, n]
// with n the pod's own number of shards is the pod's i-th (what a client told
// /gateway/bot's "shards" asks for).
func (p *Proxy) shardsFor(shard []int) ([]int, error) {
	ids := p.opts.ShardIDs
	switch {
	case shard == nil, len(shard) == 2 && shard[0] == 0 && shard[1] == 1:
		return slices.Clone(ids), nil
	case len(shard) != 2 || shard[0] < 0 || shard[0] >= shard[1]:
		return nil, fmt.Errorf("invalid shard %v", shard)
	case shard[1] == p.opts.ShardCount && slices.Contains(ids, shard[0]):
		return []int{shard[0]}, nil
	case shard[1] == len(ids):
		return []int{ids[shard[0]]}, nil
	}
	return nil, fmt.Errorf("invalid shard %v: this proxy runs shards %v of %d", shard, ids, p.opts.ShardCount)
}

func (p *Proxy) tokenOK(token string) bool { return tokenMatches(token, p.opts.ClientToken) }

// newSession waits until the upstream shards have a READY, then makes a client session
// and its first payloads: READY, then a GUILD_CREATE per available guild from the cache.
// Events the shards got after the last client are sent after those.
func (p *Proxy) newSession(ctx context.Context, owner *clientConn, shards []int, clientShard []int, resumeURL string) (*clientSession, [][]byte, error) {
	for {
		p.stateMu.Lock()
		missing := slices.IndexFunc(shards, func(id int) bool { return p.ready[id] == nil })
		if missing < 0 {
			break
		}
		changed := p.readyChanged
		p.stateMu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	defer p.stateMu.Unlock()

	var ready map[string]json.RawMessage
	if err := json.Unmarshal(p.ready[shards[0]], &ready); err != nil {
		ready = map[string]json.RawMessage{}
	}
	var upstreamID string
	_ = json.Unmarshal(ready["session_id"], &upstreamID)
	s := &clientSession{
		id: p.sessionID(upstreamID), shards: shards, clientShard: clientShard, owner: owner,
		floor: p.hub.deliveredUpTo(shards), burstGuilds: map[string]bool{},
	}
	s.burstG, _ = p.hub.position()

	type stub struct {
		ID          string `json:"id"`
		Unavailable bool   `json:"unavailable"`
	}
	var stubs []stub
	var creates [][]byte
	for _, id := range shards {
		cache := p.caches[id]
		for _, g := range cache.Guilds() {
			stubs = append(stubs, stub{g.ID, true})
			if g.Unavailable {
				continue // its GUILD_CREATE comes when Discord sends it
			}
			if d, ok := cache.GuildCreate(g.ID); ok {
				creates = append(creates, d)
				s.burstGuilds[g.ID] = true
			}
		}
	}
	set := func(k string, v any) {
		b, _ := json.Marshal(v)
		ready[k] = b
	}
	set("session_id", s.id)
	set("resume_gateway_url", resumeURL)
	if stubs == nil {
		stubs = []stub{}
	}
	set("guilds", stubs)
	if clientShard != nil {
		set("shard", clientShard)
	} else {
		delete(ready, "shard")
	}
	if _, ok := ready["private_channels"]; !ok {
		set("private_channels", []any{})
	}
	readyData, _ := json.Marshal(ready)
	burst := append([][]byte{readyData}, creates...)

	p.mu.Lock()
	p.sessions[s.id] = s
	p.order = append(p.order, s.id)
	p.forgetOldSessionsLocked()
	p.mu.Unlock()
	return s, burst, nil
}

// sessionID is the upstream session's ID, so that voice connections made with it work,
// unless another client session has it already.
func (p *Proxy) sessionID(upstream string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, taken := p.sessions[upstream]; upstream != "" && !taken {
		return upstream
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	if upstream == "" {
		return hex.EncodeToString(b)
	}
	return upstream + "-" + hex.EncodeToString(b)
}

// forgetOldSessionsLocked drops the oldest detached sessions past sessionsKept; attached
// ones are never dropped.
func (p *Proxy) forgetOldSessionsLocked() {
	over := len(p.sessions) - sessionsKept
	if over <= 0 {
		return
	}
	kept := p.order[:0]
	newest := p.order[len(p.order)-1] // not attached yet: its writer is about to
	for _, id := range p.order {
		if s := p.sessions[id]; over > 0 && s != nil && s.conn == nil && id != newest {
			delete(p.sessions, id)
			p.forgetNoncesLocked(s)
			over--
			continue
		}
		kept = append(kept, id)
	}
	p.order = kept
}

func (p *Proxy) forgetNoncesLocked(s *clientSession) {
	for n, owner := range p.nonces {
		if owner == s {
			delete(p.nonces, n)
		}
	}
}

// resumeSession finds a session for a client's resume and rewinds it to seq. It gives the
// place up to which the client gets what it missed before RESUMED.
func (p *Proxy) resumeSession(id string, seq int, c *clientConn) (*clientSession, uint64, bool) {
	p.mu.Lock()
	s := p.sessions[id]
	p.mu.Unlock()
	if s == nil {
		return nil, 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.rewindLocked(seq) || !p.hub.holds(s.shards, s.fromLocked()) {
		return nil, 0, false
	}
	s.owner = c
	upTo, _ := p.hub.position()
	return s, upTo, true
}

// attach makes c the session's connection; an older one is closed (the client is back on
// a new connection and the old one is dead or about to be).
func (p *Proxy) attach(s *clientSession, c *clientConn) {
	p.mu.Lock()
	old := s.conn
	s.conn = c
	now := p.clock.Now()
	for _, id := range s.shards {
		if old == nil {
			p.attachedTo[id]++
		}
		p.beats[id] = now
	}
	p.mu.Unlock()
	if old != nil && old != c {
		go old.shutdown(closeUnknownError, "The session resumed on another connection.")
	}
	s.mu.Lock()
	s.lastBeat = now
	s.mu.Unlock()
	p.metrics.attached.Set(float64(p.attachedCount()))
}

// detach notes that a connection ended.
func (p *Proxy) detach(c *clientConn) {
	c.mu.Lock()
	s := c.session
	c.mu.Unlock()
	if s == nil {
		return
	}
	now := p.clock.Now()
	p.mu.Lock()
	left := s.conn == c
	if left {
		s.conn = nil
		s.detachedAt = now
		for _, id := range s.shards {
			p.attachedTo[id]--
			if p.attachedTo[id] == 0 {
				p.leftAt[id] = now
			}
		}
	}
	p.mu.Unlock()
	if !left {
		return
	}
	// A client that had stopped heartbeating (frozen, or its loop blocked) may never have
	// read what went out since its last heartbeat: that goes to the next client.
	s.mu.Lock()
	silent := now.Sub(s.lastBeat) > p.opts.HeartbeatInterval*3/2
	acked, known := s.gOfLocked(s.acked)
	floor := maps.Clone(s.floor)
	s.mu.Unlock()
	if silent && known {
		for _, id := range s.shards {
			p.hub.undeliver(id, max(acked, floor[id]))
		}
	}
	p.metrics.attached.Set(float64(p.attachedCount()))
}

func (p *Proxy) attachedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.sessions {
		if s.conn != nil {
			n++
		}
	}
	return n
}

// heartbeat notes a client's heartbeat on its session's shards, and the sequence number
// it says it got.
func (p *Proxy) heartbeat(s *clientSession, seq int) {
	now := p.clock.Now()
	s.mu.Lock()
	if seq > s.acked && seq <= s.seq {
		s.acked = seq
	}
	s.lastBeat = now
	s.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range s.shards {
		p.beats[id] = now
	}
}

// tooFarBehind: the session's connection, once it had caught up with what it was handed
// at identify or resume, has more entries waiting than ClientQueue per shard it gets.
func (p *Proxy) tooFarBehind(s *clientSession) bool {
	s.mu.Lock()
	from, caughtUp := s.fromLocked(), s.caughtUp
	s.mu.Unlock()
	return caughtUp && p.hub.pending(s.shards, from) > p.opts.ClientQueue*len(s.shards)
}

// forgetNonce drops a member request's nonce once its last chunk came (the chunks carry
// their asker from the moment they are buffered).
func (p *Proxy) forgetNonce(nonce string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nonces[nonce] != nil {
		delete(p.nonces, nonce)
	}
}

// nonceOwner is the session that asked for the members chunks with this nonce, if any.
func (p *Proxy) nonceOwner(nonce string) *clientSession {
	if nonce == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nonces[nonce]
}

// route decides where one of the client's gateway commands goes upstream: a guild's
// command to the shard of the guild, a presence update to every shard of the session, a
// soundboard request split by its guilds' shards. It returns the data per shard; commands
// that go nowhere are counted here.
func (p *Proxy) route(s *clientSession, cmd command) map[int]json.RawMessage {
	op := strconv.Itoa(int(cmd.op))
	// sends is what goes upstream: the data per shard.
	sends := map[int]json.RawMessage{}
	switch {
	case cmd.op == gateway.OpcodeRequestSoundboardSounds:
		// guild_ids may name guilds of several shards: each gets its own.
		var req struct {
			GuildIDs []snowflake.ID `json:"guild_ids"`
		}
		_ = json.Unmarshal(cmd.d, &req)
		byShard := map[int][]snowflake.ID{}
		for _, g := range req.GuildIDs {
			if shard := p.shardOf(g); s.covers(shard) {
				byShard[shard] = append(byShard[shard], g)
			} else {
				p.metrics.commands.WithLabelValues(op, "not_this_pod").Inc()
			}
		}
		for shard, ids := range byShard {
			sends[shard], _ = json.Marshal(map[string]any{"guild_ids": ids})
		}
	case cmd.op == gateway.OpcodePresenceUpdate:
		for _, shard := range s.shards {
			sends[shard] = cmd.d
		}
	default:
		g, ok := guildOf(cmd.d)
		if !ok {
			p.metrics.commands.WithLabelValues(op, "no_guild").Inc()
			return nil
		}
		shard := p.shardOf(g)
		if !s.covers(shard) {
			p.metrics.commands.WithLabelValues(op, "not_this_pod").Inc()
			p.log.Info("a client's command is for a guild of a shard it does not get; dropped", "op", cmd.op, "guild", g, "shard", shard)
			return nil
		}
		sends[shard] = cmd.d
	}
	if len(sends) == 0 {
		p.metrics.commands.WithLabelValues(op, "no_guild").Inc()
		return nil
	}
	if cmd.op == gateway.OpcodeRequestGuildMembers {
		var n struct {
			Nonce string `json:"nonce"`
		}
		if json.Unmarshal(cmd.d, &n) == nil && n.Nonce != "" {
			p.mu.Lock()
			if len(p.nonces) >= maxNonces { // requests whose last chunk never came
				clear(p.nonces)
			}
			p.nonces[n.Nonce] = s
			p.mu.Unlock()
		}
	}
	return sends
}

// send passes one command upstream to one shard, through its send limiter.
func (p *Proxy) send(ctx context.Context, shard int, op gateway.Opcode, d json.RawMessage) {
	result := "sent"
	if err := p.up.SendRawCommand(ctx, shard, op, d); err != nil {
		result = "failed"
		p.log.Info("a client's command did not go upstream", "op", op, "shard", shard, "why", err.Error())
	}
	p.metrics.commands.WithLabelValues(strconv.Itoa(int(op)), result).Inc()
}

// shardOf is the shard Discord routes a guild to.
func (p *Proxy) shardOf(g snowflake.ID) int {
	return int((uint64(g) >> 22) % uint64(p.opts.ShardCount))
}

// ClientLive is the bot container's liveness: every shard has a client that heartbeats
// within the tolerance, or had none for less than the startup bound.
func (p *Proxy) ClientLive() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	tolerance := time.Duration(p.opts.ClientTolerance) * p.opts.HeartbeatInterval
	for _, id := range p.opts.ShardIDs {
		if p.attachedTo[id] > 0 {
			if since := now.Sub(p.beats[id]); since > tolerance {
				return false, fmt.Sprintf("the client of shard %d has not heartbeated for %s (tolerance %s)", id, since.Round(time.Second), tolerance)
			}
			continue
		}
		gone := p.started
		if p.leftAt[id].After(gone) {
			gone = p.leftAt[id]
		}
		if since := now.Sub(gone); since > p.opts.StartupBound {
			return false, fmt.Sprintf("no client has been connected for shard %d for %s (bound %s)", id, since.Round(time.Second), p.opts.StartupBound)
		}
	}
	return true, ""
}

// ClientReady is the bot container's readiness: every shard is up upstream and has a
// client connected.
func (p *Proxy) ClientReady() (bool, string) {
	for _, st := range p.up.Shards() {
		if st.State != botruntime.StateReady && st.State != botruntime.StateResumed {
			return false, fmt.Sprintf("shard %d is %s upstream", st.ID, st.State)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range p.opts.ShardIDs {
		if p.attachedTo[id] == 0 {
			return false, fmt.Sprintf("no client is connected for shard %d", id)
		}
	}
	return true, ""
}

// ProbeHandler serves the client probes: /client/healthz and /client/readyz.
func (p *Proxy) ProbeHandler() http.Handler {
	mux := http.NewServeMux()
	report := func(check func() (bool, string)) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			ok, problem := check()
			w.Header().Set("Content-Type", "application/json")
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": ok, "problem": problem})
		}
	}
	mux.Handle("/client/healthz", report(p.ClientLive))
	mux.Handle("/client/readyz", report(p.ClientReady))
	return mux
}

// ServeHTTP is the client's one port: a websocket upgrade is the gateway, /api/... the
// REST API.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		p.serveGateway(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/api" {
		p.serveREST(w, r)
		return
	}
	http.NotFound(w, r)
}
