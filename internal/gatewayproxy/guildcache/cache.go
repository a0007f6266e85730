package guildcache

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
)

// Options configures a Cache.
type Options struct {
	// Presences keeps members' presences (GUILD_CREATE's presences, PRESENCE_UPDATE,
	// GUILD_MEMBERS_CHUNK's presences). Set it only when the shard identifies with the
	// GUILD_PRESENCES intent: without it Discord sends none worth keeping.
	Presences bool
}

// Cache is one shard's guilds. It is safe for concurrent use; Reset and Apply must be
// called in gateway order.
type Cache struct {
	opts Options

	mu     sync.RWMutex
	guilds *guildSet
}

// Guild is a guild of the shard as listed in READY.
type Guild struct {
	ID          string
	Unavailable bool
}

// Stats tells how much the cache holds.
type Stats struct {
	Guilds      int
	Unavailable int
	// Bytes approximates the memory held: the JSON kept plus a fixed overhead per
	// guild and per list element.
	Bytes int64
}

// New returns an empty cache.
func New(opts Options) *Cache {
	return &Cache{opts: opts, guilds: newGuildSet()}
}

// Reset starts over from a READY's "d": its guilds, all unavailable until their
// GUILD_CREATE arrives.
func (c *Cache) Reset(ready json.RawMessage) error {
	o, err := parseObject(ready)
	if err != nil {
		return fmt.Errorf("READY: %w", err)
	}
	stubs, err := parseArray(o["guilds"])
	if err != nil {
		return fmt.Errorf("READY guilds: %w", err)
	}
	set := newGuildSet()
	for _, raw := range stubs {
		g, err := parseGuild(raw, false)
		if err != nil {
			return fmt.Errorf("READY guild: %w", err)
		}
		// READY lists every guild unavailable, whatever it says.
		set.put(&guild{id: g.id, unavailable: true})
	}
	c.mu.Lock()
	c.guilds = set
	c.mu.Unlock()
	return nil
}

// Apply updates the cache from one dispatch. Unknown event types, and events for
// guilds the cache does not hold or holds as unavailable, are ignored. Data that does
// not decode as Discord sends it is an error, and the cache is left as it was.
func (c *Cache) Apply(eventType string, data json.RawMessage) error {
	h, ok := handlers[eventType]
	if !ok {
		return nil
	}
	if err := h(c, data); err != nil {
		return fmt.Errorf("%s: %w", eventType, err)
	}
	return nil
}

// Guilds lists the shard's guilds in the order READY (then GUILD_CREATE) gave them.
func (c *Cache) Guilds() []Guild {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Guild, 0, c.guilds.len())
	c.guilds.each(func(g *guild) {
		out = append(out, Guild{ID: strconv.FormatUint(g.id, 10), Unavailable: g.unavailable})
	})
	return out
}

// GuildCreate returns the GUILD_CREATE "d" for the guild as cached now:
// {"id":...,"unavailable":true} for an unavailable guild, false for a guild not held.
func (c *Cache) GuildCreate(id string) (json.RawMessage, bool) {
	key, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return nil, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	g, ok := c.guilds.get(key)
	if !ok {
		return nil, false
	}
	return g.guildCreate(), true
}

// Stats returns what the cache holds.
func (c *Cache) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var st Stats
	c.guilds.each(func(g *guild) {
		st.Guilds++
		if g.unavailable {
			st.Unavailable++
		}
		st.Bytes += int64(g.bytes())
	})
	return st
}

// guildSet is the shard's guilds in arrival order.
type guildSet struct {
	order *collection // keys only: the order
	byID  map[uint64]*guild
}

func newGuildSet() *guildSet {
	return &guildSet{order: newCollection(0), byID: map[uint64]*guild{}}
}

var present = []byte{}

func (s *guildSet) put(g *guild) {
	if _, ok := s.byID[g.id]; !ok {
		s.order.put(g.id, present)
	}
	s.byID[g.id] = g
}

func (s *guildSet) get(id uint64) (*guild, bool) { g, ok := s.byID[id]; return g, ok }

func (s *guildSet) remove(id uint64) {
	delete(s.byID, id)
	s.order.remove(id)
}

func (s *guildSet) len() int { return len(s.byID) }

func (s *guildSet) each(fn func(*guild)) {
	s.order.each(func(key uint64, _ []byte) []byte {
		fn(s.byID[key])
		return nil
	})
}
