package discordtest

import (
	"strconv"
	"strings"
	"time"
)

// This file has the JSON shapes the server sends. They are plain structs (rather
// than disgo's types) so that the wire format is exactly Discord's; the tests check
// that each one unmarshals with disgo.

// jsonID is a Discord snowflake ID; like Discord's, it is encoded as a JSON string.
// It decodes from a string or a number (null and "" decode as 0).
type jsonID uint64

func (id jsonID) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatUint(uint64(id), 10)), nil
}

func (id *jsonID) UnmarshalJSON(b []byte) error {
	str := strings.Trim(string(b), `"`)
	if str == "null" || str == "" {
		*id = 0
		return nil
	}
	v, err := strconv.ParseUint(str, 10, 64)
	if err != nil {
		return err
	}
	*id = jsonID(v)
	return nil
}

func sfPtr(id uint64) *jsonID {
	v := jsonID(id)
	return &v
}

// empty is marshalled as an empty JSON array / object element type.
type empty struct{}

// memberPermissions is the permission set of the test user and the bot in every
// guild, as a decimal string like Discord sends it.
const memberPermissions = "2248473465835073"

// timestampLayout is the layout of Discord's ISO8601 timestamps.
const timestampLayout = "2006-01-02T15:04:05.000000-07:00"

func timestamp(t time.Time) string { return t.UTC().Format(timestampLayout) }

type userObject struct {
	ID            jsonID  `json:"id"`
	Username      string  `json:"username"`
	Discriminator string  `json:"discriminator"`
	GlobalName    *string `json:"global_name"`
	Avatar        *string `json:"avatar"`
	Bot           bool    `json:"bot,omitempty"`
	PublicFlags   int     `json:"public_flags"`
}

// readyUser is the user object of READY and GET /users/@me.
type readyUser struct {
	userObject
	MFAEnabled bool    `json:"mfa_enabled"`
	Verified   bool    `json:"verified"`
	Flags      int     `json:"flags"`
	Email      *string `json:"email"`
	Locale     string  `json:"locale,omitempty"`
}

func (s *Server) botUser() userObject {
	return userObject{
		ID:            jsonID(s.opts.BotUserID),
		Username:      s.opts.BotUsername,
		Discriminator: "0000",
		Bot:           true,
	}
}

func (s *Server) botReadyUser() readyUser {
	return readyUser{userObject: s.botUser(), Verified: true}
}

func testUser() userObject {
	name := "Tester"
	return userObject{
		ID:            jsonID(TestUserID),
		Username:      TestUsername,
		Discriminator: "0",
		GlobalName:    &name,
	}
}

type unavailableGuild struct {
	ID          jsonID `json:"id"`
	Unavailable bool   `json:"unavailable"`
}

type partialApplication struct {
	ID    jsonID `json:"id"`
	Flags int    `json:"flags"`
}

type readyPayload struct {
	V                    int                `json:"v"`
	User                 readyUser          `json:"user"`
	Guilds               []unavailableGuild `json:"guilds"`
	SessionID            string             `json:"session_id"`
	SessionType          string             `json:"session_type"`
	ResumeGatewayURL     string             `json:"resume_gateway_url"`
	Shard                [2]int             `json:"shard"`
	Application          partialApplication `json:"application"`
	PrivateChannels      []empty            `json:"private_channels"`
	Relationships        []empty            `json:"relationships"`
	Presences            []empty            `json:"presences"`
	GuildJoinRequests    []empty            `json:"guild_join_requests"`
	GeoOrderedRTCRegions []string           `json:"geo_ordered_rtc_regions"`
	UserSettings         empty              `json:"user_settings"`
}

func (s *Server) readyPayload(sess *session) readyPayload {
	guilds := []unavailableGuild{}
	for _, g := range s.guildOrder {
		if ShardForGuild(g, sess.shardCount) == sess.shard {
			guilds = append(guilds, unavailableGuild{ID: jsonID(g), Unavailable: true})
		}
	}
	return readyPayload{
		V:                    10,
		User:                 s.botReadyUser(),
		Guilds:               guilds,
		SessionID:            sess.id,
		SessionType:          "normal",
		ResumeGatewayURL:     s.wsURL,
		Shard:                [2]int{sess.shard, sess.shardCount},
		Application:          partialApplication{ID: jsonID(s.opts.ApplicationID)},
		PrivateChannels:      []empty{},
		Relationships:        []empty{},
		Presences:            []empty{},
		GuildJoinRequests:    []empty{},
		GeoOrderedRTCRegions: []string{"local"},
	}
}

type roleColors struct {
	PrimaryColor   int  `json:"primary_color"`
	SecondaryColor *int `json:"secondary_color"`
	TertiaryColor  *int `json:"tertiary_color"`
}

type roleObject struct {
	ID           jsonID     `json:"id"`
	Name         string     `json:"name"`
	Color        int        `json:"color"`
	Colors       roleColors `json:"colors"`
	Hoist        bool       `json:"hoist"`
	Icon         *string    `json:"icon"`
	UnicodeEmoji *string    `json:"unicode_emoji"`
	Position     int        `json:"position"`
	Permissions  string     `json:"permissions"`
	Managed      bool       `json:"managed"`
	Mentionable  bool       `json:"mentionable"`
	Flags        int        `json:"flags"`
}

type channelObject struct {
	ID                   jsonID  `json:"id"`
	Type                 int     `json:"type"`
	GuildID              jsonID  `json:"guild_id"`
	Name                 string  `json:"name"`
	Position             int     `json:"position"`
	PermissionOverwrites []empty `json:"permission_overwrites"`
	Topic                *string `json:"topic"`
	NSFW                 bool    `json:"nsfw"`
	LastMessageID        *jsonID `json:"last_message_id"`
	RateLimitPerUser     int     `json:"rate_limit_per_user"`
	ParentID             *jsonID `json:"parent_id"`
	Flags                int     `json:"flags"`
}

// interactionChannel is the channel object of an interaction (it has the invoking
// member's permissions).
type interactionChannel struct {
	channelObject
	Permissions string `json:"permissions"`
}

// generalChannel is the text channel every fake guild has; its ID is the guild ID.
func generalChannel(guildID uint64) channelObject {
	return channelObject{
		ID:                   jsonID(guildID),
		Type:                 0, // GUILD_TEXT
		GuildID:              jsonID(guildID),
		Name:                 "general",
		PermissionOverwrites: []empty{},
	}
}

// memberObject is a guild member. User is omitted where Discord omits it (the member
// of a MESSAGE_CREATE).
type memberObject struct {
	User                       *userObject `json:"user,omitempty"`
	Nick                       *string     `json:"nick"`
	Avatar                     *string     `json:"avatar"`
	Roles                      []jsonID    `json:"roles"`
	JoinedAt                   string      `json:"joined_at"`
	PremiumSince               *string     `json:"premium_since"`
	Deaf                       bool        `json:"deaf"`
	Mute                       bool        `json:"mute"`
	Flags                      int         `json:"flags"`
	Pending                    bool        `json:"pending"`
	CommunicationDisabledUntil *string     `json:"communication_disabled_until"`
	Permissions                string      `json:"permissions,omitempty"`
}

func newMember(u *userObject, joined time.Time) memberObject {
	return memberObject{User: u, Roles: []jsonID{}, JoinedAt: timestamp(joined)}
}

// guildFields are the fields of a guild object that GUILD_UPDATE carries.
type guildFields struct {
	ID                          jsonID        `json:"id"`
	Name                        string        `json:"name"`
	Icon                        *string       `json:"icon"`
	Splash                      *string       `json:"splash"`
	DiscoverySplash             *string       `json:"discovery_splash"`
	OwnerID                     jsonID        `json:"owner_id"`
	AfkChannelID                *jsonID       `json:"afk_channel_id"`
	AfkTimeout                  int           `json:"afk_timeout"`
	VerificationLevel           int           `json:"verification_level"`
	DefaultMessageNotifications int           `json:"default_message_notifications"`
	ExplicitContentFilter       int           `json:"explicit_content_filter"`
	Roles                       []roleObject  `json:"roles"`
	Emojis                      []emojiObject `json:"emojis"`
	Stickers                    []empty       `json:"stickers"`
	Features                    []string      `json:"features"`
	MFALevel                    int           `json:"mfa_level"`
	ApplicationID               *jsonID       `json:"application_id"`
	SystemChannelID             *jsonID       `json:"system_channel_id"`
	SystemChannelFlags          int           `json:"system_channel_flags"`
	RulesChannelID              *jsonID       `json:"rules_channel_id"`
	MaxPresences                *int          `json:"max_presences"`
	MaxMembers                  int           `json:"max_members"`
	VanityURLCode               *string       `json:"vanity_url_code"`
	Description                 *string       `json:"description"`
	Banner                      *string       `json:"banner"`
	PremiumTier                 int           `json:"premium_tier"`
	PremiumSubscriptionCount    int           `json:"premium_subscription_count"`
	PreferredLocale             string        `json:"preferred_locale"`
	PublicUpdatesChannelID      *jsonID       `json:"public_updates_channel_id"`
	NSFWLevel                   int           `json:"nsfw_level"`
	PremiumProgressBarEnabled   bool          `json:"premium_progress_bar_enabled"`
}

// guildObject is the "d" of GUILD_CREATE: the guild and what only GUILD_CREATE has.
// Built from the server's guild state (guilds.go).
type guildObject struct {
	guildFields
	JoinedAt             string          `json:"joined_at"`
	Large                bool            `json:"large"`
	Unavailable          bool            `json:"unavailable"`
	MemberCount          int             `json:"member_count"`
	VoiceStates          []empty         `json:"voice_states"`
	Members              []memberObject  `json:"members"`
	Channels             []channelObject `json:"channels"`
	Threads              []threadObject  `json:"threads"`
	Presences            []empty         `json:"presences"`
	StageInstances       []empty         `json:"stage_instances"`
	GuildScheduledEvents []empty         `json:"guild_scheduled_events"`
	SoundboardSounds     []empty         `json:"soundboard_sounds"`
}

type messageObject struct {
	ID               jsonID         `json:"id"`
	Type             int            `json:"type"`
	ChannelID        jsonID         `json:"channel_id"`
	GuildID          *jsonID        `json:"guild_id,omitempty"`
	Author           userObject     `json:"author"`
	Member           *memberObject  `json:"member,omitempty"`
	Content          string         `json:"content"`
	Nonce            any            `json:"nonce,omitempty"`
	Timestamp        string         `json:"timestamp"`
	EditedTimestamp  *string        `json:"edited_timestamp"`
	TTS              bool           `json:"tts"`
	MentionEveryone  bool           `json:"mention_everyone"`
	Mentions         []userObject   `json:"mentions"`
	MentionRoles     []jsonID       `json:"mention_roles"`
	Attachments      []empty        `json:"attachments"`
	Embeds           []any          `json:"embeds"`
	Components       []any          `json:"components"`
	Pinned           bool           `json:"pinned"`
	Flags            int            `json:"flags"`
	WebhookID        *jsonID        `json:"webhook_id,omitempty"`
	ApplicationID    *jsonID        `json:"application_id,omitempty"`
	MessageReference map[string]any `json:"message_reference,omitempty"`
}

func newMessage(id, guildID, channelID uint64, author userObject, content string, at time.Time) messageObject {
	m := messageObject{
		ID:           jsonID(id),
		ChannelID:    jsonID(channelID),
		Author:       author,
		Content:      content,
		Timestamp:    timestamp(at),
		Mentions:     []userObject{},
		MentionRoles: []jsonID{},
		Attachments:  []empty{},
		Embeds:       []any{},
		Components:   []any{},
	}
	if guildID != 0 {
		m.GuildID = sfPtr(guildID)
	}
	return m
}

type interactionObject struct {
	ID                           jsonID             `json:"id"`
	ApplicationID                jsonID             `json:"application_id"`
	Type                         int                `json:"type"`
	Data                         any                `json:"data"`
	GuildID                      jsonID             `json:"guild_id"`
	Guild                        map[string]any     `json:"guild"`
	Channel                      interactionChannel `json:"channel"`
	ChannelID                    jsonID             `json:"channel_id"`
	Member                       memberObject       `json:"member"`
	Message                      *messageObject     `json:"message,omitempty"`
	Token                        string             `json:"token"`
	Version                      int                `json:"version"`
	AppPermissions               string             `json:"app_permissions"`
	Locale                       string             `json:"locale"`
	GuildLocale                  string             `json:"guild_locale"`
	Entitlements                 []empty            `json:"entitlements"`
	AuthorizingIntegrationOwners map[string]jsonID  `json:"authorizing_integration_owners"`
	Context                      int                `json:"context"`
	AttachmentSizeLimit          int                `json:"attachment_size_limit"`
}

type slashCommandData struct {
	ID      jsonID  `json:"id"`
	Name    string  `json:"name"`
	Type    int     `json:"type"`
	GuildID *jsonID `json:"guild_id,omitempty"`
}

type buttonData struct {
	CustomID      string `json:"custom_id"`
	ComponentType int    `json:"component_type"`
}

func (s *Server) newInteraction(id, guildID uint64, typ int, data any, token string, at time.Time) interactionObject {
	u := testUser()
	member := newMember(&u, at.Add(-24*time.Hour))
	member.Permissions = memberPermissions
	return interactionObject{
		ID:            jsonID(id),
		ApplicationID: jsonID(s.opts.ApplicationID),
		Type:          typ,
		Data:          data,
		GuildID:       jsonID(guildID),
		Guild: map[string]any{
			"id":       jsonID(guildID),
			"locale":   "en-US",
			"features": []string{},
		},
		Channel:                      interactionChannel{channelObject: generalChannel(guildID), Permissions: memberPermissions},
		ChannelID:                    jsonID(guildID),
		Member:                       member,
		Token:                        token,
		Version:                      1,
		AppPermissions:               memberPermissions,
		Locale:                       "en-US",
		GuildLocale:                  "en-US",
		Entitlements:                 []empty{},
		AuthorizingIntegrationOwners: map[string]jsonID{"0": jsonID(guildID)},
		Context:                      0, // GUILD
		AttachmentSizeLimit:          10 << 20,
	}
}
