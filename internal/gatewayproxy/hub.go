package gatewayproxy

import (
	"encoding/json"
	"sort"
	"sync"
)

// entry is one upstream dispatch kept for the clients.
type entry struct {
	// g numbers the dispatches of every shard in the order the proxy took them; a
	// client's place in the stream is the g of the last entry it was sent.
	g     uint64
	shard int
	t     string
	d     json.RawMessage
	// guild is the guild a GUILD_CREATE is about (a new client already got it from the
	// cache); asker is the session whose member request a GUILD_MEMBERS_CHUNK answers
	// (nil: every session gets it).
	guild string
	asker *clientSession
}

func (e entry) size() int { return len(e.d) + len(e.t) + 64 }

// shardLog is one upstream shard's replay buffer, bounded by count and bytes.
type shardLog struct {
	// entries[head:] are held, oldest first; the dropped prefix is reclaimed once it is
	// the larger half, so an add costs O(1) however full the buffer.
	entries []entry
	head    int
	bytes   int
	// evictedUpTo is the g of the newest entry ever dropped for room: a client whose
	// place is older has lost events and cannot resume.
	evictedUpTo uint64
	// delivered is the g of the newest entry sent to any client of the shard; a client
	// that identifies gets what came after it (events that arrived while no client was
	// connected).
	delivered uint64
}

// held is the entries still in the buffer, oldest first.
func (l *shardLog) held() []entry { return l.entries[l.head:] }

// from is the index in held() of the first entry after g.
func (l *shardLog) from(g uint64) int {
	held := l.held()
	return sort.Search(len(held), func(i int) bool { return held[i].g > g })
}

// hub holds every shard's replay buffer and tells writers when there is more.
type hub struct {
	maxEvents, maxBytes int

	mu     sync.Mutex
	g      uint64
	shards map[int]*shardLog
	// more is closed, and replaced, whenever an entry is added.
	more    chan struct{}
	dropped map[int]uint64 // entries dropped for room, by shard
}

func newHub(shardIDs []int, maxEvents, maxBytes int) *hub {
	h := &hub{maxEvents: maxEvents, maxBytes: maxBytes, shards: map[int]*shardLog{}, more: make(chan struct{}), dropped: map[int]uint64{}}
	for _, id := range shardIDs {
		h.shards[id] = &shardLog{}
	}
	return h
}

// add appends an upstream dispatch to its shard's buffer, evicting the oldest entries past
// the bounds, and wakes the writers.
func (h *hub) add(e entry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	log := h.shards[e.shard]
	if log == nil {
		return
	}
	h.g++
	e.g = h.g
	log.entries = append(log.entries, e)
	log.bytes += e.size()
	for n := len(log.entries) - log.head; n > 1 && (n > h.maxEvents || log.bytes > h.maxBytes); n-- {
		old := &log.entries[log.head]
		log.bytes -= old.size()
		log.evictedUpTo = old.g
		*old = entry{} // its payload can go now
		log.head++
		h.dropped[e.shard]++
	}
	if log.head > len(log.entries)/2 && log.head > 64 {
		log.entries = append(make([]entry, 0, 2*(len(log.entries)-log.head)+16), log.held()...)
		log.head = 0
	}
	close(h.more)
	h.more = make(chan struct{})
}

// position is where the stream is now, and the channel closed at the next entry.
func (h *hub) position() (uint64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.g, h.more
}

// after returns up to max entries of the given shards with g above from[shard], oldest
// first (a merge of the shards' buffers that stops at max).
func (h *hub) after(shards []int, from map[int]uint64, max int) []entry {
	h.mu.Lock()
	defer h.mu.Unlock()
	type cursor struct {
		held []entry
		i    int
	}
	cursors := make([]cursor, 0, len(shards))
	for _, id := range shards {
		if log := h.shards[id]; log != nil {
			cursors = append(cursors, cursor{log.held(), log.from(from[id])})
		}
	}
	var out []entry
	for len(out) < max {
		next := -1
		for k, c := range cursors {
			if c.i < len(c.held) && (next < 0 || c.held[c.i].g < cursors[next].held[cursors[next].i].g) {
				next = k
			}
		}
		if next < 0 {
			break
		}
		out = append(out, cursors[next].held[cursors[next].i])
		cursors[next].i++
	}
	return out
}

// pending counts the entries of the given shards past the given places.
func (h *hub) pending(shards []int, from map[int]uint64) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, id := range shards {
		if log := h.shards[id]; log != nil {
			n += len(log.held()) - log.from(from[id])
		}
	}
	return n
}

// markDelivered records that a client was sent the shard's entries up to g.
func (h *hub) markDelivered(shard int, g uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if log := h.shards[shard]; log != nil && g > log.delivered {
		log.delivered = g
	}
}

// undeliver takes back what was sent to a client after g on a shard: the client stopped
// answering, so what went out since its last word may never have been read.
func (h *hub) undeliver(shard int, g uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if log := h.shards[shard]; log != nil && g < log.delivered {
		log.delivered = g
	}
}

// deliveredUpTo is, per shard, the newest entry sent to any client.
func (h *hub) deliveredUpTo(shards []int) map[int]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[int]uint64, len(shards))
	for _, id := range shards {
		if log := h.shards[id]; log != nil {
			out[id] = log.delivered
		}
	}
	return out
}

// holds reports whether every entry of the shards after the given places is still held.
func (h *hub) holds(shards []int, from map[int]uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range shards {
		if log := h.shards[id]; log != nil && log.evictedUpTo > from[id] {
			return false
		}
	}
	return true
}

// bufferStats is one shard's buffer, for metrics.
type bufferStats struct {
	Events, Bytes int
	Dropped       uint64
}

func (h *hub) stats() map[int]bufferStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[int]bufferStats, len(h.shards))
	for id, log := range h.shards {
		out[id] = bufferStats{Events: len(log.held()), Bytes: log.bytes, Dropped: h.dropped[id]}
	}
	return out
}
