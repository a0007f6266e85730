package guildcache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// handler applies one event type's "d". It decodes everything it needs before taking
// the lock, so that bad data leaves the cache as it was.
type handler func(c *Cache, data json.RawMessage) error

var handlers = map[string]handler{
	"GUILD_CREATE":          (*Cache).guildCreate,
	"GUILD_UPDATE":          (*Cache).guildUpdate,
	"GUILD_DELETE":          (*Cache).guildDelete,
	"GUILD_EMOJIS_UPDATE":   replaceList(emojis, "emojis"),
	"GUILD_STICKERS_UPDATE": replaceList(stickers, "stickers"),

	"CHANNEL_CREATE": upsert(channels, outsideGuildsIgnored),
	"CHANNEL_UPDATE": upsert(channels, outsideGuildsIgnored),
	"CHANNEL_DELETE": (*Cache).channelDelete,

	"THREAD_CREATE":         (*Cache).threadUpsert,
	"THREAD_UPDATE":         (*Cache).threadUpsert,
	"THREAD_DELETE":         remove(threads, "id"),
	"THREAD_LIST_SYNC":      (*Cache).threadListSync,
	"THREAD_MEMBER_UPDATE":  (*Cache).threadMemberUpdate,
	"THREAD_MEMBERS_UPDATE": (*Cache).threadMembersUpdate,

	"GUILD_ROLE_CREATE": wrapped(roles, "role"),
	"GUILD_ROLE_UPDATE": wrapped(roles, "role"),
	"GUILD_ROLE_DELETE": (*Cache).roleDelete,

	"GUILD_MEMBER_ADD":    (*Cache).memberAdd,
	"GUILD_MEMBER_UPDATE": upsert(members, guildRequired),
	"GUILD_MEMBER_REMOVE": (*Cache).memberRemove,
	"GUILD_MEMBERS_CHUNK": (*Cache).membersChunk,

	"VOICE_STATE_UPDATE": (*Cache).voiceStateUpdate,
	"PRESENCE_UPDATE":    (*Cache).presenceUpdate,

	"STAGE_INSTANCE_CREATE": upsert(stageInstances, guildRequired),
	"STAGE_INSTANCE_UPDATE": upsert(stageInstances, guildRequired),
	"STAGE_INSTANCE_DELETE": remove(stageInstances, "id"),

	"GUILD_SCHEDULED_EVENT_CREATE": upsert(scheduledEvents, guildRequired),
	"GUILD_SCHEDULED_EVENT_UPDATE": upsert(scheduledEvents, guildRequired),
	"GUILD_SCHEDULED_EVENT_DELETE": remove(scheduledEvents, "id"),
}

// Whether an event without guild_id is a guild event gone wrong or one outside guilds
// (a DM channel, a call's voice state).
const (
	guildRequired        = false
	outsideGuildsIgnored = true
)

var errNoGuild = errors.New("no guild_id")

// guildOf reads the event's guild_id; ok is false (with no error) for an event outside
// guilds when that is allowed.
func guildOf(o object, optional bool) (id uint64, ok bool, err error) {
	if o.isNull("guild_id") {
		if optional {
			return 0, false, nil
		}
		return 0, false, errNoGuild
	}
	id, err = o.snowflake("guild_id")
	return id, err == nil, err
}

// guildEvent parses an event's data and reads its guild_id; ok is false, with err saying
// why, for data that does not decode or names no guild.
func guildEvent(data json.RawMessage) (o object, gid uint64, ok bool, err error) {
	if o, err = parseObject(data); err != nil {
		return nil, 0, false, err
	}
	gid, ok, err = guildOf(o, guildRequired)
	return o, gid, ok, err
}

// inGuild runs fn on the guild under the write lock, if the guild is held and available.
func (c *Cache) inGuild(id uint64, fn func(g *guild)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g, ok := c.guilds.get(id); ok && !g.unavailable {
		fn(g)
	}
}

func (c *Cache) guildCreate(data json.RawMessage) error {
	g, err := parseGuild(data, c.opts.Presences)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.guilds.put(g)
	return nil
}

// guildUpdate merges a GUILD_UPDATE: the fields it has replace the cached ones, the
// GUILD_CREATE-only ones it lacks (channels, members, joined_at, ...) stay. A list it
// carries (roles, emojis, stickers) is the whole list and replaces the cached one.
func (c *Cache) guildUpdate(data json.RawMessage) error {
	o, err := parseObject(data)
	if err != nil {
		return err
	}
	id, err := o.snowflake("id")
	if err != nil {
		return err
	}
	var replaced [numLists]*collection
	for l, spec := range lists {
		v, ok := o[spec.field]
		if !ok {
			continue
		}
		delete(o, spec.field)
		if list(l) == presences && !c.opts.Presences {
			continue
		}
		els, err := prepareList(list(l), v)
		if err != nil {
			return err
		}
		replaced[l] = collectionOf(els)
	}
	var count int64
	countRaw, hasCount := o["member_count"]
	if hasCount {
		delete(o, "member_count")
		if err := json.Unmarshal(countRaw, &count); err != nil {
			return fmt.Errorf("member_count: %w", err)
		}
	}
	delete(o, "unavailable") // an update never makes a guild available or not
	c.inGuild(id, func(g *guild) {
		g.base = merge(g.base, o)
		for l, r := range replaced {
			if r != nil {
				g.lists[l] = r
			}
		}
		if hasCount {
			g.memberCount, g.hasCount = count, true
		}
	})
	return nil
}

// guildDelete: with "unavailable": true the guild is in an outage and stays, as a
// stub, until its GUILD_CREATE; without it the bot left the guild.
func (c *Cache) guildDelete(data json.RawMessage) error {
	o, err := parseObject(data)
	if err != nil {
		return err
	}
	id, err := o.snowflake("id")
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.guilds.get(id); !ok {
		return nil
	}
	if o.isTrue("unavailable") {
		c.guilds.put(&guild{id: id, unavailable: true})
	} else {
		c.guilds.remove(id)
	}
	return nil
}

// upsert handles events whose "d" is a list element with guild_id: a new element is
// added, a known one has the event's fields merged into it.
func upsert(l list, optionalGuild bool) handler {
	return func(c *Cache, data json.RawMessage) error {
		o, err := parseObject(data)
		if err != nil {
			return err
		}
		gid, ok, err := guildOf(o, optionalGuild)
		if !ok {
			return err
		}
		el, err := prepareObject(l, o, data)
		if err != nil {
			return err
		}
		c.inGuild(gid, func(g *guild) { upsertLocked(g.list(l), el, o, l) })
		return nil
	}
}

// upsertLocked adds el, or merges the event's fields o into the element held.
func upsertLocked(c *collection, el element, o object, l list) {
	old, ok := c.get(el.key)
	if !ok {
		c.put(el.key, el.raw)
		return
	}
	if lists[l].stripGuildID {
		delete(o, "guild_id")
	}
	c.put(el.key, merge(old, o))
}

// remove handles events that name a list element to drop by the field idField.
func remove(l list, idField string) handler {
	return func(c *Cache, data json.RawMessage) error {
		o, err := parseObject(data)
		if err != nil {
			return err
		}
		gid, ok, err := guildOf(o, guildRequired)
		if !ok {
			return err
		}
		id, err := o.snowflake(idField)
		if err != nil {
			return err
		}
		c.inGuild(gid, func(g *guild) { g.list(l).remove(id) })
		return nil
	}
}

// replaceList handles events that carry a whole list (GUILD_EMOJIS_UPDATE).
func replaceList(l list, field string) handler {
	return func(c *Cache, data json.RawMessage) error {
		o, err := parseObject(data)
		if err != nil {
			return err
		}
		gid, ok, err := guildOf(o, guildRequired)
		if !ok {
			return err
		}
		v, ok := o[field]
		if !ok {
			return fmt.Errorf("no %q", field)
		}
		els, err := prepareList(l, v)
		if err != nil {
			return err
		}
		c.inGuild(gid, func(g *guild) { g.lists[l] = collectionOf(els) })
		return nil
	}
}

// wrapped handles events whose element sits in a field beside guild_id (a role).
func wrapped(l list, field string) handler {
	return func(c *Cache, data json.RawMessage) error {
		o, err := parseObject(data)
		if err != nil {
			return err
		}
		gid, ok, err := guildOf(o, guildRequired)
		if !ok {
			return err
		}
		inner, err := parseObject(o[field])
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		el, err := prepareObject(l, inner, o[field])
		if err != nil {
			return err
		}
		c.inGuild(gid, func(g *guild) { upsertLocked(g.list(l), el, inner, l) })
		return nil
	}
}

// channelDelete drops the channel and its threads: Discord deletes them with it.
func (c *Cache) channelDelete(data json.RawMessage) error {
	o, err := parseObject(data)
	if err != nil {
		return err
	}
	gid, ok, err := guildOf(o, outsideGuildsIgnored)
	if !ok {
		return err
	}
	id, err := o.snowflake("id")
	if err != nil {
		return err
	}
	c.inGuild(gid, func(g *guild) {
		g.list(channels).remove(id)
		dropThreadsLocked(g.list(threads), func(parent uint64) bool { return parent == id })
	})
	return nil
}

// dropThreadsLocked removes the threads whose parent_id matches.
func dropThreadsLocked(ts *collection, match func(parent uint64) bool) {
	var drop []uint64
	ts.each(func(key uint64, raw []byte) []byte {
		o, err := parseObject(raw)
		if err != nil {
			return nil
		}
		if parent, err := o.snowflake("parent_id"); err == nil && match(parent) {
			drop = append(drop, key)
		}
		return nil
	})
	for _, key := range drop {
		ts.remove(key)
	}
}

// threadUpsert handles THREAD_CREATE and THREAD_UPDATE. GUILD_CREATE lists only
// active threads, so an archived thread leaves the cache (and comes back when
// unarchived); newly_created belongs to the event, not the thread.
func (c *Cache) threadUpsert(data json.RawMessage) error {
	o, gid, ok, err := guildEvent(data)
	if !ok {
		return err
	}
	archived, err := isArchived(o)
	if err != nil {
		return err
	}
	if _, ok := o["newly_created"]; ok {
		delete(o, "newly_created")
		data = o.encode()
	}
	el, err := prepareObject(threads, o, data)
	if err != nil {
		return err
	}
	c.inGuild(gid, func(g *guild) {
		if archived {
			g.list(threads).remove(el.key)
			return
		}
		upsertLocked(g.list(threads), el, o, threads)
	})
	return nil
}

func isArchived(thread object) (bool, error) {
	raw, ok := thread["thread_metadata"]
	if !ok {
		return false, nil
	}
	meta, err := parseObject(raw)
	if err != nil {
		return false, fmt.Errorf("thread_metadata: %w", err)
	}
	return meta.isTrue("archived"), nil
}

// threadListSync replaces the active threads of the channels it names (of the whole
// guild without channel_ids) and sets the bot's thread member entries.
func (c *Cache) threadListSync(data json.RawMessage) error {
	o, gid, ok, err := guildEvent(data)
	if !ok {
		return err
	}
	wholeGuild := o.isNull("channel_ids")
	parents := map[uint64]bool{}
	if !wholeGuild {
		ids, err := parseArray(o["channel_ids"])
		if err != nil {
			return fmt.Errorf("channel_ids: %w", err)
		}
		for _, raw := range ids {
			id, err := parseSnowflake(raw)
			if err != nil {
				return fmt.Errorf("channel_ids: %w", err)
			}
			parents[id] = true
		}
	}
	synced, err := prepareList(threads, o["threads"])
	if err != nil {
		return err
	}
	memberOf := map[uint64]json.RawMessage{}
	if !o.isNull("members") {
		ms, err := parseArray(o["members"])
		if err != nil {
			return fmt.Errorf("members: %w", err)
		}
		for _, raw := range ms {
			m, err := parseObject(raw)
			if err != nil {
				return fmt.Errorf("members: %w", err)
			}
			id, err := m.snowflake("id")
			if err != nil {
				return fmt.Errorf("members: %w", err)
			}
			memberOf[id] = raw
		}
	}
	c.inGuild(gid, func(g *guild) {
		ts := g.list(threads)
		dropThreadsLocked(ts, func(parent uint64) bool { return wholeGuild || parents[parent] })
		for _, el := range synced {
			raw := el.raw
			if m, ok := memberOf[el.key]; ok {
				raw = merge(raw, object{"member": m})
			}
			ts.put(el.key, raw)
		}
	})
	return nil
}

// threadMemberUpdate: the bot's own thread member entry changed.
func (c *Cache) threadMemberUpdate(data json.RawMessage) error {
	o, gid, ok, err := guildEvent(data)
	if !ok {
		return err
	}
	id, err := o.snowflake("id")
	if err != nil {
		return err
	}
	delete(o, "guild_id")
	member := json.RawMessage(o.encode())
	c.updateThread(gid, id, object{"member": member})
	return nil
}

// threadMembersUpdate keeps a thread's member_count.
func (c *Cache) threadMembersUpdate(data json.RawMessage) error {
	o, gid, ok, err := guildEvent(data)
	if !ok {
		return err
	}
	id, err := o.snowflake("id")
	if err != nil {
		return err
	}
	count, ok := o["member_count"]
	if !ok {
		return nil
	}
	c.updateThread(gid, id, object{"member_count": count})
	return nil
}

// updateThread merges fields into a thread the guild's cache holds; one it does not hold
// (archived, or not yet seen) stays out.
func (c *Cache) updateThread(gid, id uint64, fields object) {
	c.inGuild(gid, func(g *guild) {
		ts := g.list(threads)
		if old, ok := ts.get(id); ok {
			ts.put(id, merge(old, fields))
		}
	})
}

// roleDelete drops the role, and takes it off every member that had it, as Discord
// does (without a GUILD_MEMBER_UPDATE per member).
func (c *Cache) roleDelete(data json.RawMessage) error {
	o, gid, ok, err := guildEvent(data)
	if !ok {
		return err
	}
	id, err := o.snowflake("role_id")
	if err != nil {
		return err
	}
	quoted := []byte(`"` + strconv.FormatUint(id, 10) + `"`)
	c.inGuild(gid, func(g *guild) {
		g.list(roles).remove(id)
		g.list(members).each(func(_ uint64, raw []byte) []byte {
			if !bytes.Contains(raw, quoted) {
				return nil // the common case: no need to decode the member
			}
			return withoutRole(raw, id)
		})
	})
	return nil
}

// withoutRole returns the member without the role in its roles, or nil if it lacked it.
func withoutRole(member []byte, role uint64) []byte {
	m, err := parseObject(member)
	if err != nil {
		return nil
	}
	ids, err := parseArray(m["roles"])
	if err != nil {
		return nil
	}
	kept := ids[:0]
	for _, raw := range ids {
		if id, err := parseSnowflake(raw); err != nil || id != role {
			kept = append(kept, raw)
		}
	}
	if len(kept) == len(ids) {
		return nil
	}
	rolesJSON, _ := json.Marshal(kept)
	m["roles"] = rolesJSON
	return m.encode()
}

func (c *Cache) memberAdd(data json.RawMessage) error {
	o, gid, ok, err := guildEvent(data)
	if !ok {
		return err
	}
	el, err := prepareObject(members, o, data)
	if err != nil {
		return err
	}
	c.inGuild(gid, func(g *guild) {
		g.list(members).put(el.key, el.raw)
		g.memberCount++
	})
	return nil
}

func (c *Cache) memberRemove(data json.RawMessage) error {
	o, gid, ok, err := guildEvent(data)
	if !ok {
		return err
	}
	user, err := o.userID()
	if err != nil {
		return err
	}
	c.inGuild(gid, func(g *guild) {
		g.list(members).remove(user)
		if g.memberCount > 0 {
			g.memberCount--
		}
	})
	return nil
}

// membersChunk adds the members (and their presences, when kept) that a Request Guild
// Members answer brings.
func (c *Cache) membersChunk(data json.RawMessage) error {
	o, gid, ok, err := guildEvent(data)
	if !ok {
		return err
	}
	ms, err := prepareList(members, o["members"])
	if err != nil {
		return err
	}
	var ps []element
	if c.opts.Presences && !o.isNull("presences") {
		if ps, err = prepareList(presences, o["presences"]); err != nil {
			return err
		}
	}
	c.inGuild(gid, func(g *guild) {
		for _, el := range ms {
			g.list(members).put(el.key, el.raw)
		}
		for _, el := range ps {
			g.list(presences).put(el.key, el.raw)
		}
	})
	return nil
}

// voiceStateUpdate: a user joined, moved in or left (channel_id null) a voice channel.
func (c *Cache) voiceStateUpdate(data json.RawMessage) error {
	o, err := parseObject(data)
	if err != nil {
		return err
	}
	gid, ok, err := guildOf(o, outsideGuildsIgnored)
	if !ok {
		return err
	}
	el, err := prepareObject(voiceStates, o, data)
	if err != nil {
		return err
	}
	left := o.isNull("channel_id")
	c.inGuild(gid, func(g *guild) {
		if left {
			g.list(voiceStates).remove(el.key)
			return
		}
		g.list(voiceStates).put(el.key, el.raw)
	})
	return nil
}

func (c *Cache) presenceUpdate(data json.RawMessage) error {
	if !c.opts.Presences {
		return nil
	}
	o, gid, ok, err := guildEvent(data)
	if !ok {
		return err
	}
	el, err := prepareObject(presences, o, data)
	if err != nil {
		return err
	}
	c.inGuild(gid, func(g *guild) { g.list(presences).put(el.key, el.raw) })
	return nil
}
