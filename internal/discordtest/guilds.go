package discordtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Errors of the guild mutations.
var (
	// ErrUnknownGuild: the bot is not in that guild.
	ErrUnknownGuild = errors.New("discordtest: unknown guild")
	// ErrGuildUnavailable: the guild is in an outage (SetGuildUnavailable); Discord
	// sends nothing for it until it is back.
	ErrGuildUnavailable = errors.New("discordtest: guild unavailable")
	// ErrUnknownObject: no channel, thread, role or member with that ID in the guild.
	ErrUnknownObject = errors.New("discordtest: unknown object")
)

// GuildSettings are the fields of a guild that UpdateGuild changes.
type GuildSettings struct {
	Name              string
	Description       *string
	VerificationLevel int
	AFKTimeout        int
	PreferredLocale   string
	Features          []string
	SystemChannelID   uint64 // 0: none
}

// Channel is a guild channel (not a thread).
type Channel struct {
	ID               uint64 // assigned by CreateChannel when 0
	Type             int    // 0 text, 2 voice, 4 category, 5 announcement, 15 forum
	Name             string
	Position         int
	Topic            *string
	NSFW             bool
	ParentID         uint64 // category; 0: none
	RateLimitPerUser int
}

// Thread is a thread channel. Archived threads are kept but, as on Discord, left out
// of GUILD_CREATE, which lists active threads only.
type Thread struct {
	ID                  uint64 // assigned by CreateThread when 0
	ParentID            uint64
	Type                int // 11 public, 12 private; 0 means 11
	Name                string
	OwnerID             uint64
	Archived            bool
	Locked              bool
	AutoArchiveDuration int // minutes; 0 means 1440
	RateLimitPerUser    int
	MessageCount        int
	MemberCount         int
}

// Role is a guild role.
type Role struct {
	ID          uint64 // assigned by CreateRole when 0
	Name        string
	Color       int
	Hoist       bool
	Position    int
	Permissions string // decimal bit set; "" means "0"
	Mentionable bool
}

// Member is a guild member.
type Member struct {
	UserID   uint64 // assigned by AddMember when 0
	Username string // "user-<id>" when empty
	Nick     *string
	Roles    []uint64
	Deaf     bool
	Mute     bool
	Pending  bool
	JoinedAt time.Time // time.Now() when zero
}

// Emoji is a guild's custom emoji.
type Emoji struct {
	ID        uint64 // assigned by SetEmojis when 0
	Name      string
	Roles     []uint64
	Animated  bool
	Available bool
}

// guildState is everything the fake knows of a guild; GUILD_CREATE is built from it.
type guildState struct {
	id          uint64
	settings    GuildSettings
	joinedAt    time.Time
	unavailable bool
	// memberCount counts the test user, who is a member without being listed (as in a
	// large guild, where GUILD_CREATE lists only some members).
	memberCount int
	channels    []Channel
	threads     []Thread
	roles       []Role
	members     []Member
	emojis      []Emoji
}

// newGuildState is a new fake guild: named "guild-<id>", one @everyone role (ID =
// guild ID), one text channel "general" (ID = guild ID), the bot listed as a member and
// the test user counted.
func (s *Server) newGuildState(id uint64, joined time.Time) *guildState {
	return &guildState{
		id: id,
		settings: GuildSettings{
			Name:            "guild-" + strconv.FormatUint(id, 10),
			PreferredLocale: "en-US",
			Features:        []string{},
			SystemChannelID: id,
		},
		joinedAt:    joined,
		memberCount: 2,
		channels:    []Channel{{ID: id, Type: 0, Name: "general"}},
		roles:       []Role{{ID: id, Name: "@everyone", Permissions: memberPermissions}},
		members:     []Member{{UserID: s.opts.BotUserID, Username: s.opts.BotUsername, JoinedAt: joined}},
	}
}

// ---- payloads ----

func (g *guildState) fields() guildFields {
	roles := make([]roleObject, len(g.roles))
	for i, r := range g.roles {
		roles[i] = r.object()
	}
	emojis := make([]emojiObject, len(g.emojis))
	for i, e := range g.emojis {
		emojis[i] = e.object()
	}
	var system *jsonID
	if g.settings.SystemChannelID != 0 {
		system = sfPtr(g.settings.SystemChannelID)
	}
	features := g.settings.Features
	if features == nil {
		features = []string{}
	}
	return guildFields{
		ID:                jsonID(g.id),
		Name:              g.settings.Name,
		OwnerID:           jsonID(GuildOwnerID),
		AfkTimeout:        g.settings.AFKTimeout,
		VerificationLevel: g.settings.VerificationLevel,
		Roles:             roles,
		Emojis:            emojis,
		Stickers:          []empty{},
		Features:          features,
		SystemChannelID:   system,
		MaxMembers:        500000,
		Description:       g.settings.Description,
		PreferredLocale:   g.settings.PreferredLocale,
	}
}

func (g *guildState) object(s *Server) guildObject {
	channels := make([]channelObject, len(g.channels))
	for i, c := range g.channels {
		channels[i] = c.object(g.id)
	}
	threads := []threadObject{}
	for _, t := range g.threads {
		if !t.Archived {
			threads = append(threads, t.object(g.id))
		}
	}
	members := make([]memberObject, len(g.members))
	for i, m := range g.members {
		members[i] = m.object(s)
	}
	return guildObject{
		guildFields:          g.fields(),
		JoinedAt:             timestamp(g.joinedAt),
		MemberCount:          g.memberCount,
		VoiceStates:          []empty{},
		Members:              members,
		Channels:             channels,
		Threads:              threads,
		Presences:            []empty{},
		StageInstances:       []empty{},
		GuildScheduledEvents: []empty{},
		SoundboardSounds:     []empty{},
	}
}

func (r Role) object() roleObject {
	perms := r.Permissions
	if perms == "" {
		perms = "0"
	}
	return roleObject{
		ID: jsonID(r.ID), Name: r.Name, Color: r.Color, Colors: roleColors{PrimaryColor: r.Color},
		Hoist: r.Hoist, Position: r.Position, Permissions: perms, Mentionable: r.Mentionable,
	}
}

func (c Channel) object(guildID uint64) channelObject {
	o := channelObject{
		ID: jsonID(c.ID), Type: c.Type, GuildID: jsonID(guildID), Name: c.Name, Position: c.Position,
		PermissionOverwrites: []empty{}, Topic: c.Topic, NSFW: c.NSFW, RateLimitPerUser: c.RateLimitPerUser,
	}
	if c.ParentID != 0 {
		o.ParentID = sfPtr(c.ParentID)
	}
	return o
}

type emojiObject struct {
	ID            jsonID   `json:"id"`
	Name          string   `json:"name"`
	Roles         []jsonID `json:"roles"`
	RequireColons bool     `json:"require_colons"`
	Managed       bool     `json:"managed"`
	Animated      bool     `json:"animated"`
	Available     bool     `json:"available"`
}

func (e Emoji) object() emojiObject {
	return emojiObject{ID: jsonID(e.ID), Name: e.Name, Roles: ids(e.Roles), RequireColons: true,
		Animated: e.Animated, Available: e.Available}
}

func ids(in []uint64) []jsonID {
	out := make([]jsonID, len(in))
	for i, id := range in {
		out[i] = jsonID(id)
	}
	return out
}

type threadMetadata struct {
	Archived            bool   `json:"archived"`
	AutoArchiveDuration int    `json:"auto_archive_duration"`
	ArchiveTimestamp    string `json:"archive_timestamp"`
	Locked              bool   `json:"locked"`
	CreateTimestamp     string `json:"create_timestamp"`
}

type threadObject struct {
	ID               jsonID         `json:"id"`
	Type             int            `json:"type"`
	GuildID          jsonID         `json:"guild_id"`
	ParentID         jsonID         `json:"parent_id"`
	OwnerID          jsonID         `json:"owner_id"`
	Name             string         `json:"name"`
	LastMessageID    *jsonID        `json:"last_message_id"`
	RateLimitPerUser int            `json:"rate_limit_per_user"`
	MessageCount     int            `json:"message_count"`
	MemberCount      int            `json:"member_count"`
	TotalMessageSent int            `json:"total_message_sent"`
	ThreadMetadata   threadMetadata `json:"thread_metadata"`
	Flags            int            `json:"flags"`
	NewlyCreated     bool           `json:"newly_created,omitempty"`
}

// snowflakeTime is when a snowflake was made.
func snowflakeTime(id uint64) time.Time {
	const discordEpoch = 1420070400000
	return time.UnixMilli(int64(id>>22) + discordEpoch)
}

func (t Thread) object(guildID uint64) threadObject {
	typ, auto := t.Type, t.AutoArchiveDuration
	if typ == 0 {
		typ = 11
	}
	if auto == 0 {
		auto = 1440
	}
	created := timestamp(snowflakeTime(t.ID))
	return threadObject{
		ID: jsonID(t.ID), Type: typ, GuildID: jsonID(guildID), ParentID: jsonID(t.ParentID),
		OwnerID: jsonID(t.OwnerID), Name: t.Name, RateLimitPerUser: t.RateLimitPerUser,
		MessageCount: t.MessageCount, MemberCount: t.MemberCount, TotalMessageSent: t.MessageCount,
		ThreadMetadata: threadMetadata{
			Archived: t.Archived, AutoArchiveDuration: auto, ArchiveTimestamp: created,
			Locked: t.Locked, CreateTimestamp: created,
		},
	}
}

func (m Member) object(s *Server) memberObject {
	name := m.Username
	u := userObject{ID: jsonID(m.UserID), Username: name, Discriminator: "0"}
	if m.UserID == s.opts.BotUserID {
		u = s.botUser()
	} else {
		u.GlobalName = &name
	}
	o := newMember(&u, m.JoinedAt)
	o.Nick, o.Roles, o.Deaf, o.Mute, o.Pending = m.Nick, ids(m.Roles), m.Deaf, m.Mute, m.Pending
	return o
}

// guildMemberEvent is a member with the guild_id GUILD_MEMBER_ADD and _UPDATE add.
type guildMemberEvent struct {
	memberObject
	GuildID jsonID `json:"guild_id"`
}

type guildRoleEvent struct {
	GuildID jsonID     `json:"guild_id"`
	Role    roleObject `json:"role"`
}

// ---- reading ----

// GuildCreate returns the GUILD_CREATE "d" the server would send for the guild now:
// {"id":...,"unavailable":true} during an outage, nil for a guild the bot is not in.
func (s *Server) GuildCreate(guildID uint64) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.guilds[guildID]
	if !ok {
		return nil
	}
	if g.unavailable {
		return mustMarshal(unavailableGuild{ID: jsonID(guildID), Unavailable: true})
	}
	return mustMarshal(g.object(s))
}

// guildCreatePayload is the GUILD_CREATE of a guild as it is now (a new default guild
// if the bot is not in it).
func (s *Server) guildCreatePayload(guildID uint64) guildObject {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.guilds[guildID]; ok {
		return g.object(s)
	}
	return s.newGuildState(guildID, time.Now()).object(s)
}

// ---- mutations ----

// mutate runs change on an available guild and dispatches what it returns, under the
// lock, so that events leave in the order the state changed.
func (s *Server) mutate(guildID uint64, change func(g *guildState) (eventType string, data any, err error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.guilds[guildID]
	if !ok {
		return fmt.Errorf("%w %d", ErrUnknownGuild, guildID)
	}
	if g.unavailable {
		return fmt.Errorf("%w: %d", ErrGuildUnavailable, guildID)
	}
	eventType, data, err := change(g)
	if err != nil {
		return err
	}
	s.dispatchGuildLocked(guildID, eventType, mustMarshal(data))
	return nil
}

// dispatchGuildLocked is Dispatch with s.mu held.
func (s *Server) dispatchGuildLocked(guildID uint64, eventType string, raw json.RawMessage) {
	for _, sess := range s.liveSessionsLocked() {
		if ShardForGuild(guildID, sess.shardCount) == sess.shard {
			s.dispatchLocked(sess, eventType, raw, true, true)
		}
	}
	s.notifyLocked()
}

func unknown(kind string, id uint64) error {
	return fmt.Errorf("%w: %s %d", ErrUnknownObject, kind, id)
}

// UpdateGuild changes the guild's settings and dispatches GUILD_UPDATE (the guild
// without the fields only GUILD_CREATE has).
func (s *Server) UpdateGuild(guildID uint64, change func(*GuildSettings)) error {
	return s.mutate(guildID, func(g *guildState) (string, any, error) {
		change(&g.settings)
		return "GUILD_UPDATE", g.fields(), nil
	})
}

// CreateChannel adds a channel and dispatches CHANNEL_CREATE. It returns the channel's ID.
func (s *Server) CreateChannel(guildID uint64, c Channel) (uint64, error) {
	err := s.mutate(guildID, func(g *guildState) (string, any, error) {
		if c.ID == 0 {
			c.ID = s.nextIDLocked()
		}
		g.channels = append(g.channels, c)
		return "CHANNEL_CREATE", c.object(guildID), nil
	})
	return c.ID, err
}

// UpdateChannel changes a channel (not its ID) and dispatches CHANNEL_UPDATE.
func (s *Server) UpdateChannel(guildID, channelID uint64, change func(*Channel)) error {
	return s.mutate(guildID, func(g *guildState) (string, any, error) {
		i := slices.IndexFunc(g.channels, func(c Channel) bool { return c.ID == channelID })
		if i < 0 {
			return "", nil, unknown("channel", channelID)
		}
		change(&g.channels[i])
		g.channels[i].ID = channelID
		return "CHANNEL_UPDATE", g.channels[i].object(guildID), nil
	})
}

// DeleteChannel removes a channel, and its threads as Discord does (without a
// THREAD_DELETE for them), and dispatches CHANNEL_DELETE.
func (s *Server) DeleteChannel(guildID, channelID uint64) error {
	return s.mutate(guildID, func(g *guildState) (string, any, error) {
		i := slices.IndexFunc(g.channels, func(c Channel) bool { return c.ID == channelID })
		if i < 0 {
			return "", nil, unknown("channel", channelID)
		}
		c := g.channels[i]
		g.channels = slices.Delete(g.channels, i, i+1)
		g.threads = slices.DeleteFunc(g.threads, func(t Thread) bool { return t.ParentID == channelID })
		return "CHANNEL_DELETE", c.object(guildID), nil
	})
}

// CreateThread adds a thread in a channel of the guild and dispatches THREAD_CREATE
// (with newly_created). It returns the thread's ID.
func (s *Server) CreateThread(guildID uint64, t Thread) (uint64, error) {
	err := s.mutate(guildID, func(g *guildState) (string, any, error) {
		if !slices.ContainsFunc(g.channels, func(c Channel) bool { return c.ID == t.ParentID }) {
			return "", nil, unknown("channel", t.ParentID)
		}
		if t.ID == 0 {
			t.ID = s.nextIDLocked()
		}
		g.threads = append(g.threads, t)
		o := t.object(guildID)
		o.NewlyCreated = true
		return "THREAD_CREATE", o, nil
	})
	return t.ID, err
}

// UpdateThread changes a thread (not its ID or parent) and dispatches THREAD_UPDATE.
// Archiving a thread takes it out of GUILD_CREATE; unarchiving puts it back.
func (s *Server) UpdateThread(guildID, threadID uint64, change func(*Thread)) error {
	return s.mutate(guildID, func(g *guildState) (string, any, error) {
		i := slices.IndexFunc(g.threads, func(t Thread) bool { return t.ID == threadID })
		if i < 0 {
			return "", nil, unknown("thread", threadID)
		}
		parent := g.threads[i].ParentID
		change(&g.threads[i])
		g.threads[i].ID, g.threads[i].ParentID = threadID, parent
		return "THREAD_UPDATE", g.threads[i].object(guildID), nil
	})
}

// DeleteThread removes a thread and dispatches THREAD_DELETE.
func (s *Server) DeleteThread(guildID, threadID uint64) error {
	return s.mutate(guildID, func(g *guildState) (string, any, error) {
		i := slices.IndexFunc(g.threads, func(t Thread) bool { return t.ID == threadID })
		if i < 0 {
			return "", nil, unknown("thread", threadID)
		}
		t := g.threads[i].object(guildID)
		g.threads = slices.Delete(g.threads, i, i+1)
		return "THREAD_DELETE", map[string]any{"id": t.ID, "guild_id": t.GuildID, "parent_id": t.ParentID, "type": t.Type}, nil
	})
}

// CreateRole adds a role and dispatches GUILD_ROLE_CREATE. It returns the role's ID.
func (s *Server) CreateRole(guildID uint64, r Role) (uint64, error) {
	err := s.mutate(guildID, func(g *guildState) (string, any, error) {
		if r.ID == 0 {
			r.ID = s.nextIDLocked()
		}
		g.roles = append(g.roles, r)
		return "GUILD_ROLE_CREATE", guildRoleEvent{GuildID: jsonID(guildID), Role: r.object()}, nil
	})
	return r.ID, err
}

// UpdateRole changes a role (not its ID) and dispatches GUILD_ROLE_UPDATE.
func (s *Server) UpdateRole(guildID, roleID uint64, change func(*Role)) error {
	return s.mutate(guildID, func(g *guildState) (string, any, error) {
		i := slices.IndexFunc(g.roles, func(r Role) bool { return r.ID == roleID })
		if i < 0 {
			return "", nil, unknown("role", roleID)
		}
		change(&g.roles[i])
		g.roles[i].ID = roleID
		return "GUILD_ROLE_UPDATE", guildRoleEvent{GuildID: jsonID(guildID), Role: g.roles[i].object()}, nil
	})
}

// DeleteRole removes a role, takes it off every member that had it (Discord sends no
// GUILD_MEMBER_UPDATE for that) and dispatches GUILD_ROLE_DELETE.
func (s *Server) DeleteRole(guildID, roleID uint64) error {
	return s.mutate(guildID, func(g *guildState) (string, any, error) {
		i := slices.IndexFunc(g.roles, func(r Role) bool { return r.ID == roleID })
		if i < 0 {
			return "", nil, unknown("role", roleID)
		}
		g.roles = slices.Delete(g.roles, i, i+1)
		for j := range g.members {
			g.members[j].Roles = slices.DeleteFunc(g.members[j].Roles, func(id uint64) bool { return id == roleID })
		}
		return "GUILD_ROLE_DELETE", map[string]jsonID{"guild_id": jsonID(guildID), "role_id": jsonID(roleID)}, nil
	})
}

// AddMember adds a member (member_count goes up) and dispatches GUILD_MEMBER_ADD. It
// returns the member's user ID.
func (s *Server) AddMember(guildID uint64, m Member) (uint64, error) {
	err := s.mutate(guildID, func(g *guildState) (string, any, error) {
		if m.UserID == 0 {
			m.UserID = s.nextIDLocked()
		}
		if slices.ContainsFunc(g.members, func(o Member) bool { return o.UserID == m.UserID }) {
			return "", nil, fmt.Errorf("discordtest: user %d is already a member of guild %d", m.UserID, guildID)
		}
		if m.Username == "" {
			m.Username = "user-" + strconv.FormatUint(m.UserID, 10)
		}
		if m.JoinedAt.IsZero() {
			m.JoinedAt = time.Now()
		}
		m.Roles = slices.Clone(m.Roles)
		g.members = append(g.members, m)
		g.memberCount++
		return "GUILD_MEMBER_ADD", guildMemberEvent{memberObject: m.object(s), GuildID: jsonID(guildID)}, nil
	})
	return m.UserID, err
}

// UpdateMember changes a member (not its user ID) and dispatches GUILD_MEMBER_UPDATE.
func (s *Server) UpdateMember(guildID, userID uint64, change func(*Member)) error {
	return s.mutate(guildID, func(g *guildState) (string, any, error) {
		i := slices.IndexFunc(g.members, func(m Member) bool { return m.UserID == userID })
		if i < 0 {
			return "", nil, unknown("member", userID)
		}
		change(&g.members[i])
		g.members[i].UserID = userID
		return "GUILD_MEMBER_UPDATE", guildMemberEvent{memberObject: g.members[i].object(s), GuildID: jsonID(guildID)}, nil
	})
}

// RemoveMember removes a member (member_count goes down) and dispatches
// GUILD_MEMBER_REMOVE.
func (s *Server) RemoveMember(guildID, userID uint64) error {
	return s.mutate(guildID, func(g *guildState) (string, any, error) {
		i := slices.IndexFunc(g.members, func(m Member) bool { return m.UserID == userID })
		if i < 0 {
			return "", nil, unknown("member", userID)
		}
		u := g.members[i].object(s).User
		g.members = slices.Delete(g.members, i, i+1)
		g.memberCount--
		return "GUILD_MEMBER_REMOVE", map[string]any{"guild_id": jsonID(guildID), "user": u}, nil
	})
}

// SetEmojis replaces the guild's emojis (those with ID 0 get a new one) and dispatches
// GUILD_EMOJIS_UPDATE.
func (s *Server) SetEmojis(guildID uint64, emojis []Emoji) error {
	return s.mutate(guildID, func(g *guildState) (string, any, error) {
		g.emojis = make([]Emoji, len(emojis))
		objects := make([]emojiObject, len(emojis))
		for i, e := range emojis {
			if e.ID == 0 {
				e.ID = s.nextIDLocked()
			}
			e.Roles = slices.Clone(e.Roles)
			g.emojis[i], objects[i] = e, e.object()
		}
		return "GUILD_EMOJIS_UPDATE", map[string]any{"guild_id": jsonID(guildID), "emojis": objects}, nil
	})
}

// SetGuildUnavailable starts (GUILD_DELETE with unavailable: true) or ends (the
// guild's GUILD_CREATE) an outage of the guild. A no-op if it is already so.
func (s *Server) SetGuildUnavailable(guildID uint64, unavailable bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.guilds[guildID]
	if !ok {
		return fmt.Errorf("%w %d", ErrUnknownGuild, guildID)
	}
	if g.unavailable == unavailable {
		return nil
	}
	g.unavailable = unavailable
	if unavailable {
		s.dispatchGuildLocked(guildID, "GUILD_DELETE", mustMarshal(unavailableGuild{ID: jsonID(guildID), Unavailable: true}))
	} else {
		s.dispatchGuildLocked(guildID, "GUILD_CREATE", mustMarshal(g.object(s)))
	}
	return nil
}

// AddGuild puts the bot in a new default guild (see Options.Guilds) and dispatches its
// GUILD_CREATE. READY lists it from then on.
func (s *Server) AddGuild(guildID uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.guilds[guildID]; ok {
		return fmt.Errorf("discordtest: the bot is already in guild %d", guildID)
	}
	g := s.newGuildState(guildID, time.Now())
	s.guilds[guildID] = g
	s.guildOrder = append(s.guildOrder, guildID)
	s.dispatchGuildLocked(guildID, "GUILD_CREATE", mustMarshal(g.object(s)))
	return nil
}

// RemoveGuild takes the bot out of the guild (kicked, or the guild deleted) and
// dispatches GUILD_DELETE without unavailable.
func (s *Server) RemoveGuild(guildID uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.guilds[guildID]; !ok {
		return fmt.Errorf("%w %d", ErrUnknownGuild, guildID)
	}
	delete(s.guilds, guildID)
	s.guildOrder = slices.DeleteFunc(s.guildOrder, func(id uint64) bool { return id == guildID })
	s.dispatchGuildLocked(guildID, "GUILD_DELETE", mustMarshal(map[string]jsonID{"id": jsonID(guildID)}))
	return nil
}

// membersChunk is GUILD_MEMBERS_CHUNK's data.
type membersChunk struct {
	GuildID    jsonID         `json:"guild_id"`
	Members    []memberObject `json:"members"`
	ChunkIndex int            `json:"chunk_index"`
	ChunkCount int            `json:"chunk_count"`
	NotFound   []jsonID       `json:"not_found,omitempty"`
	Nonce      string         `json:"nonce,omitempty"`
}

// answerMembersLocked answers a Request Guild Members (op 8) on the session that sent it,
// as Discord does: one GUILD_MEMBERS_CHUNK of the guild's members whose username starts
// with query (all for ""), at most limit of them (0: no limit), or those of user_ids with
// the others in not_found; nonce echoed. A request for a guild the fake does not know is
// answered with no members. Server.mu must be held.
func (s *Server) answerMembersLocked(sess *session, data json.RawMessage) {
	var req struct {
		GuildID jsonID   `json:"guild_id"`
		Query   string   `json:"query"`
		Limit   int      `json:"limit"`
		UserIDs []jsonID `json:"user_ids"`
		Nonce   string   `json:"nonce"`
	}
	if sess == nil || json.Unmarshal(data, &req) != nil {
		return
	}
	chunk := membersChunk{GuildID: req.GuildID, Members: []memberObject{}, ChunkCount: 1, Nonce: req.Nonce}
	if g, ok := s.guilds[uint64(req.GuildID)]; ok {
		for _, m := range g.members {
			switch {
			case req.UserIDs != nil:
				if !slices.Contains(req.UserIDs, jsonID(m.UserID)) {
					continue
				}
			case !strings.HasPrefix(strings.ToLower(m.Username), strings.ToLower(req.Query)):
				continue
			}
			if req.Limit > 0 && len(chunk.Members) == req.Limit {
				break
			}
			chunk.Members = append(chunk.Members, m.object(s))
		}
		for _, id := range req.UserIDs {
			if !slices.ContainsFunc(g.members, func(m Member) bool { return jsonID(m.UserID) == id }) {
				chunk.NotFound = append(chunk.NotFound, id)
			}
		}
	}
	s.dispatchLocked(sess, "GUILD_MEMBERS_CHUNK", mustMarshal(chunk), true, true)
}
