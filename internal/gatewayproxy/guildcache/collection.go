package guildcache

// collection holds one of a guild's lists (channels, roles, members, ...) keyed by
// snowflake, each element as its JSON. Elements keep the order they were first added
// in, so a rebuilt GUILD_CREATE lists them as Discord did; put and remove are O(1),
// with removed slots reclaimed once they are half the list.
type collection struct {
	pos     map[uint64]int32
	entries []entry
	dead    int
	size    int // bytes of JSON held
}

type entry struct {
	key uint64
	raw []byte // nil once removed
}

func newCollection(n int) *collection {
	return &collection{pos: make(map[uint64]int32, n), entries: make([]entry, 0, n)}
}

func (c *collection) get(key uint64) ([]byte, bool) {
	i, ok := c.pos[key]
	if !ok {
		return nil, false
	}
	return c.entries[i].raw, true
}

// put adds the element or replaces it in place.
func (c *collection) put(key uint64, raw []byte) {
	if i, ok := c.pos[key]; ok {
		c.size += len(raw) - len(c.entries[i].raw)
		c.entries[i].raw = raw
		return
	}
	c.pos[key] = int32(len(c.entries))
	c.entries = append(c.entries, entry{key: key, raw: raw})
	c.size += len(raw)
}

func (c *collection) remove(key uint64) bool {
	i, ok := c.pos[key]
	if !ok {
		return false
	}
	delete(c.pos, key)
	c.size -= len(c.entries[i].raw)
	c.entries[i].raw = nil
	c.dead++
	if c.dead > 16 && c.dead*2 > len(c.entries) {
		c.compact()
	}
	return true
}

func (c *collection) compact() {
	live := c.entries[:0]
	for _, e := range c.entries {
		if e.raw != nil {
			c.pos[e.key] = int32(len(live))
			live = append(live, e)
		}
	}
	clear(c.entries[len(live):])
	c.entries = live
	c.dead = 0
}

// each calls fn for every element in order; fn may replace the element it is given
// through the returned value (nil keeps it).
func (c *collection) each(fn func(key uint64, raw []byte) (replacement []byte)) {
	for i := range c.entries {
		e := &c.entries[i]
		if e.raw == nil {
			continue
		}
		if r := fn(e.key, e.raw); r != nil {
			c.size += len(r) - len(e.raw)
			e.raw = r
		}
	}
}

// appendJSON appends the elements as a JSON array.
func (c *collection) appendJSON(buf []byte) []byte {
	buf = append(buf, '[')
	first := true
	for _, e := range c.entries {
		if e.raw == nil {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, e.raw...)
	}
	return append(buf, ']')
}

// entryOverhead approximates what an element costs beyond its JSON: its slot in the
// index map and in the entries slice, and the allocation's header.
const entryOverhead = 64

func (c *collection) bytes() int {
	return c.size + len(c.entries)*entryOverhead
}
