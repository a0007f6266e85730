package botruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	"github.com/gorilla/websocket"
)

// ErrNotResumedSession is StartNewSession's answer for a shard that is not up on a session
// a previous process started.
var ErrNotResumedSession = errors.New("botruntime: not on a resumed session of another process")

// ErrNotConnected is returned for a gateway command the shard cannot take now: it is not
// Ready or Resumed (connecting, resuming, reconnecting, stopped), or its connection ended
// before the command went out. The command was not sent; send it again once the shard is
// connected, if it still matters (a new session starts with no presence, and answers no
// request made on the old one).
var ErrNotConnected = errors.New("botruntime: the shard is not connected")

// ErrCommandQueueFull is returned for a gateway command when too many already wait for
// room within the shard's send limit.
var ErrCommandQueueFull = errors.New("botruntime: too many gateway commands waiting on the shard")

// ErrShardNotHere is returned for a gateway command meant for a shard this process does
// not run.
var ErrShardNotHere = errors.New("botruntime: this process does not run the shard")

// errConnectionGone: the connection a command waited on ended.
var errConnectionGone = fmt.Errorf("%w: its connection ended before the command went out", ErrNotConnected)

// commandLink is a connection the bot's commands may go out on, until gone closes.
type commandLink struct {
	c    *conn
	gone <-chan struct{}
}

// SendCommand sends a gateway command on the shard's connection: a presence update
// (gateway.MessageDataPresenceUpdate), a voice state update
// (gateway.MessageDataVoiceStateUpdate), a guild members request
// (gateway.MessageDataRequestGuildMembers) or a soundboard sounds request
// (gateway.MessageDataRequestSoundboardSounds); the opcode follows from the type.
//
// Commands share Discord's send limit (120 payloads per connection every 60 s) with the
// shard's heartbeats, which always go first: commands get what a window leaves (115 of
// 120 with Discord's heartbeat interval) and wait for room beyond that, one at a time, in
// turn. SendCommand returns once the command is written, or with ctx's error, or with
// ErrNotConnected when the shard is not Ready or Resumed or its connection ends while the
// command waits (commands never wait for a connection: they belong to the session they
// are sent on), or with ErrCommandQueueFull when 500 commands already wait on the shard.
// Answers (GUILD_MEMBERS_CHUNK, VOICE_STATE_UPDATE, ...) arrive as events.
func (r *Runtime) SendCommand(ctx context.Context, shard int, data gateway.MessageData) error {
	var op gateway.Opcode
	switch data.(type) {
	case gateway.MessageDataPresenceUpdate:
		op = gateway.OpcodePresenceUpdate
	case gateway.MessageDataVoiceStateUpdate:
		op = gateway.OpcodeVoiceStateUpdate
	case gateway.MessageDataRequestGuildMembers:
		op = gateway.OpcodeRequestGuildMembers
	case gateway.MessageDataRequestSoundboardSounds:
		op = gateway.OpcodeRequestSoundboardSounds
	default:
		return fmt.Errorf("botruntime: %T is not a gateway command a bot sends (presence update, voice state update, request guild members, request soundboard sounds)", data)
	}
	for _, s := range r.sessions {
		if s.shard == shard {
			return s.command(ctx, map[string]any{"op": op, "d": data})
		}
	}
	return fmt.Errorf("%w: shard %d (it runs shards %v of %d)", ErrShardNotHere, shard, r.cfg.ShardIDs, r.cfg.ShardCount)
}

// SendRawCommand is SendCommand for a command already in JSON, such as one a gateway proxy
// passes on from its client: d goes out exactly as given. op must be one of the commands
// SendCommand sends (presence update, voice state update, request guild members, request
// soundboard sounds) and d a JSON object.
func (r *Runtime) SendRawCommand(ctx context.Context, shard int, op gateway.Opcode, d json.RawMessage) error {
	switch op {
	case gateway.OpcodePresenceUpdate, gateway.OpcodeVoiceStateUpdate, gateway.OpcodeRequestGuildMembers, gateway.OpcodeRequestSoundboardSounds:
	default:
		return fmt.Errorf("botruntime: op %d is not a gateway command a bot sends (3, 4, 8 or 31)", op)
	}
	if !json.Valid(d) || len(bytes.TrimSpace(d)) == 0 || bytes.TrimSpace(d)[0] != '{' {
		return fmt.Errorf("botruntime: the data of op %d is not a JSON object", op)
	}
	for _, s := range r.sessions {
		if s.shard == shard {
			return s.command(ctx, rawCommand{Op: op, D: d})
		}
	}
	return fmt.Errorf("%w: shard %d (it runs shards %v of %d)", ErrShardNotHere, shard, r.cfg.ShardIDs, r.cfg.ShardCount)
}

// rawCommand is a command payload whose data is already JSON.
type rawCommand struct {
	Op gateway.Opcode  `json:"op"`
	D  json.RawMessage `json:"d"`
}

// UpdatePresence sets the bot's presence on one shard's session (each session has its
// own; a new session starts without). An empty status is online. See SendCommand.
func (r *Runtime) UpdatePresence(ctx context.Context, shard int, presence gateway.MessageDataPresenceUpdate) error {
	if presence.Status == "" {
		presence.Status = discord.OnlineStatusOnline
	}
	if presence.Activities == nil {
		presence.Activities = []discord.Activity{} // Discord wants a list, not null
	}
	return r.SendCommand(ctx, shard, presence)
}

// RequestGuildMembers asks for a guild's members on the guild's shard; they arrive as
// GUILD_MEMBERS_CHUNK events. See SendCommand.
func (r *Runtime) RequestGuildMembers(ctx context.Context, request gateway.MessageDataRequestGuildMembers) error {
	return r.SendCommand(ctx, r.ShardForGuild(request.GuildID), request)
}

// UpdateVoiceState joins, moves between or leaves (a nil channel) a guild's voice
// channels, on the guild's shard. See SendCommand.
func (r *Runtime) UpdateVoiceState(ctx context.Context, state gateway.MessageDataVoiceStateUpdate) error {
	return r.SendCommand(ctx, r.ShardForGuild(state.GuildID), state)
}

// ShardForGuild is the shard Discord routes a guild to: (guild_id >> 22) % shard count.
func (r *Runtime) ShardForGuild(guildID snowflake.ID) int {
	return int((uint64(guildID) >> 22) % uint64(r.cfg.ShardCount))
}

// command sends one of the bot's gateway commands on the shard's current connection.
func (s *session) command(ctx context.Context, payload any) error {
	s.mu.Lock()
	state, link := s.state, s.link
	s.mu.Unlock()
	if link.c == nil || (state != StateReady && state != StateResumed) {
		return fmt.Errorf("%w: shard %d is %s", ErrNotConnected, s.shard, state)
	}
	return link.c.writeCommand(ctx, link.gone, payload)
}

// StartNewSession ends the shard's session for good and identifies anew, once the
// shard's turn to identify comes. It is for a gateway proxy that resumed a session a
// previous process started: what Discord replayed on the resume has been dispatched, but
// the READY and the guilds that came with the session never reached this process, and
// only a new session sends them again. Closing with 1000 tells Discord the session is
// over. It does that only while the shard is up on a session this process did not
// identify: once it has identified one (after this call, or after Discord refused the
// resume), there is nothing to do, and it says so with ErrNotResumedSession.
func (r *Runtime) StartNewSession(shard int) error {
	for _, s := range r.sessions {
		if s.shard != shard {
			continue
		}
		s.mu.Lock()
		link, state, generation := s.link, s.state, s.generation
		s.mu.Unlock()
		if link.c == nil || state != StateResumed || generation != 0 {
			return fmt.Errorf("%w: shard %d is %s, on a session this process identified: %v", ErrNotResumedSession, shard, state, generation != 0)
		}
		link.c.end(websocket.CloseNormalClosure, "new session", outcome{reason: "new_session"})
		return nil
	}
	return fmt.Errorf("%w: shard %d (it runs shards %v of %d)", ErrShardNotHere, shard, r.cfg.ShardIDs, r.cfg.ShardCount)
}
