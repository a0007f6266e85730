package guildcache

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// list names one of the arrays of a GUILD_CREATE that the cache keeps keyed.
type list int

const (
	channels list = iota
	threads
	roles
	emojis
	stickers
	members
	voiceStates
	presences
	stageInstances
	scheduledEvents
	numLists
)

// listSpec says how a list is named in GUILD_CREATE and how its elements are keyed.
type listSpec struct {
	field string
	key   func(object) (uint64, error)
	// stripGuildID: the elements of this list carry no guild_id in GUILD_CREATE, though
	// the events that add them do ("an extra guild_id key").
	stripGuildID bool
}

func byID(o object) (uint64, error)     { return o.snowflake("id") }
func byUserID(o object) (uint64, error) { return o.snowflake("user_id") }
func byUser(o object) (uint64, error)   { return o.userID() }

var lists = [numLists]listSpec{
	channels:        {field: "channels", key: byID},
	threads:         {field: "threads", key: byID},
	roles:           {field: "roles", key: byID},
	emojis:          {field: "emojis", key: byID},
	stickers:        {field: "stickers", key: byID},
	members:         {field: "members", key: byUser, stripGuildID: true},
	voiceStates:     {field: "voice_states", key: byUserID, stripGuildID: true},
	presences:       {field: "presences", key: byUser, stripGuildID: true},
	stageInstances:  {field: "stage_instances", key: byID},
	scheduledEvents: {field: "guild_scheduled_events", key: byID},
}

// guild is one cached guild. An unavailable guild has only its ID.
type guild struct {
	id          uint64
	unavailable bool
	// base is the GUILD_CREATE object without member_count and the keyed lists.
	base        []byte
	memberCount int64
	hasCount    bool
	// lists[l] is nil when neither GUILD_CREATE nor any event since brought that list.
	lists [numLists]*collection
}

// element is a list element ready to store: its key and its JSON.
type element struct {
	key uint64
	raw []byte
}

// prepare keys an element of list l and drops what the GUILD_CREATE form lacks.
func prepare(l list, raw []byte) (element, error) {
	o, err := parseObject(raw)
	if err != nil {
		return element{}, fmt.Errorf("%s element: %w", lists[l].field, err)
	}
	return prepareObject(l, o, raw)
}

func prepareObject(l list, o object, raw []byte) (element, error) {
	key, err := lists[l].key(o)
	if err != nil {
		return element{}, fmt.Errorf("%s element: %w", lists[l].field, err)
	}
	if lists[l].stripGuildID {
		if _, ok := o["guild_id"]; ok {
			delete(o, "guild_id")
			return element{key: key, raw: o.encode()}, nil
		}
	}
	return element{key: key, raw: append([]byte(nil), raw...)}, nil
}

// prepareList keys every element of a JSON array for list l.
func prepareList(l list, raw json.RawMessage) ([]element, error) {
	arr, err := parseArray(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", lists[l].field, err)
	}
	out := make([]element, 0, len(arr))
	for _, el := range arr {
		e, err := prepare(l, el)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func collectionOf(els []element) *collection {
	c := newCollection(len(els))
	for _, e := range els {
		c.put(e.key, e.raw)
	}
	return c
}

// parseGuild builds a guild from a GUILD_CREATE's "d". Presences are kept only when
// keepPresences is set (the list itself stays, empty, so the client sees the field).
func parseGuild(raw []byte, keepPresences bool) (*guild, error) {
	o, err := parseObject(raw)
	if err != nil {
		return nil, err
	}
	id, err := o.snowflake("id")
	if err != nil {
		return nil, err
	}
	g := &guild{id: id}
	if o.isTrue("unavailable") {
		g.unavailable = true
		return g, nil
	}
	for l, spec := range lists {
		v, ok := o[spec.field]
		if !ok {
			continue
		}
		delete(o, spec.field)
		if list(l) == presences && !keepPresences {
			g.lists[l] = newCollection(0)
			continue
		}
		els, err := prepareList(list(l), v)
		if err != nil {
			return nil, err
		}
		g.lists[l] = collectionOf(els)
	}
	if v, ok := o["member_count"]; ok {
		delete(o, "member_count")
		if err := json.Unmarshal(v, &g.memberCount); err != nil {
			return nil, fmt.Errorf("member_count: %w", err)
		}
		g.hasCount = true
	}
	g.base = o.encode()
	return g, nil
}

// list returns the guild's list l, creating it.
func (g *guild) list(l list) *collection {
	if g.lists[l] == nil {
		g.lists[l] = newCollection(0)
	}
	return g.lists[l]
}

// guildCreate rebuilds the GUILD_CREATE "d".
func (g *guild) guildCreate() json.RawMessage {
	if g.unavailable {
		return unavailableStub(g.id)
	}
	n := len(g.base) + 32
	for _, c := range g.lists {
		if c != nil {
			n += c.size + len(c.entries) + 32
		}
	}
	buf := make([]byte, 0, n)
	buf = append(buf, g.base[:len(g.base)-1]...) // without its closing brace
	sep := func() {
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
	}
	if g.hasCount {
		sep()
		buf = append(buf, `"member_count":`...)
		buf = strconv.AppendInt(buf, g.memberCount, 10)
	}
	for l, c := range g.lists {
		if c == nil {
			continue
		}
		sep()
		buf = strconv.AppendQuote(buf, lists[l].field)
		buf = append(buf, ':')
		buf = c.appendJSON(buf)
	}
	return append(buf, '}')
}

func unavailableStub(id uint64) json.RawMessage {
	return json.RawMessage(`{"id":"` + strconv.FormatUint(id, 10) + `","unavailable":true}`)
}

// guildOverhead approximates a guild's fixed cost: the struct, its map slot, and the
// lists' maps and headers.
const guildOverhead = 1024

func (g *guild) bytes() int {
	n := guildOverhead + len(g.base)
	for _, c := range g.lists {
		if c != nil {
			n += c.bytes()
		}
	}
	return n
}
