package discordtest

import (
	"encoding/json"
	"time"
)

// Interaction types.
const (
	interactionTypeApplicationCommand = 2
	interactionTypeComponent          = 3
)

// interactionRecord remembers an interaction created by SendSlashCommand or
// SendButtonPress, so that its REST callback can be checked.
type interactionRecord struct {
	id      uint64
	token   string
	typ     int
	guildID uint64
	acked   bool
}

// SendMessage dispatches a MESSAGE_CREATE for guildID (routed like Dispatch): a
// default message (type 0) with a new ID, content, the given channel and guild, the
// current time, and the (non-bot) test user TestUserID as author, with a partial
// member object as Discord sends for guild messages. The channel is remembered as the
// guild's: the bot's messages to it come back with that guild_id.
func (s *Server) SendMessage(guildID, channelID uint64, content string) {
	s.SendMessageWithID(guildID, channelID, content)
}

// SendMessageWithID is SendMessage that also returns the new message's ID.
func (s *Server) SendMessageWithID(guildID, channelID uint64, content string) (messageID uint64) {
	now := time.Now()
	s.mu.Lock()
	messageID = s.nextIDLocked()
	s.channelGuilds[channelID] = guildID
	s.mu.Unlock()
	msg := newMessage(messageID, guildID, channelID, testUser(), content, now)
	member := newMember(nil, now.Add(-24*time.Hour))
	msg.Member = &member
	s.Dispatch(guildID, "MESSAGE_CREATE", msg)
	return messageID
}

// SendSlashCommand dispatches an INTERACTION_CREATE of type 2 (application command)
// for the CHAT_INPUT command name, invoked by the test user in the guild's "general"
// channel (ID = guildID). The command ID is the one assigned by a previous
// PUT/POST of a command with that name (guild commands first), or a new one. It
// returns the interaction ID; its token is InteractionToken(id).
func (s *Server) SendSlashCommand(guildID uint64, name string) (interactionID uint64) {
	now := time.Now()
	s.mu.Lock()
	interactionID = s.nextIDLocked()
	commandID := s.commandIDLocked(guildID, name)
	if commandID == 0 {
		commandID = s.nextIDLocked()
	}
	token := "interaction-token-" + randomHex(16)
	s.interactions[interactionID] = &interactionRecord{
		id: interactionID, token: token, typ: interactionTypeApplicationCommand, guildID: guildID,
	}
	s.mu.Unlock()

	data := slashCommandData{ID: jsonID(commandID), Name: name, Type: 1}
	in := s.newInteraction(interactionID, guildID, interactionTypeApplicationCommand, data, token, now)
	s.Dispatch(guildID, "INTERACTION_CREATE", in)
	return interactionID
}

// SendButtonPress dispatches an INTERACTION_CREATE of type 3 (message component) for
// a button (component_type 2) with customID, pressed by the test user on message
// messageID — a message of the bot in the guild's "general" channel carrying that
// button. It returns the interaction ID; its token is InteractionToken(id).
func (s *Server) SendButtonPress(guildID uint64, customID string, messageID uint64) (interactionID uint64) {
	now := time.Now()
	s.mu.Lock()
	interactionID = s.nextIDLocked()
	token := "interaction-token-" + randomHex(16)
	s.interactions[interactionID] = &interactionRecord{
		id: interactionID, token: token, typ: interactionTypeComponent, guildID: guildID,
	}
	bot := s.botUser()
	s.mu.Unlock()

	msg := newMessage(messageID, guildID, guildID, bot, "", now)
	msg.Components = []any{map[string]any{
		"type": 1, // action row
		"id":   1,
		"components": []any{map[string]any{
			"type":      2, // button
			"id":        2,
			"style":     1,
			"label":     "button",
			"custom_id": customID,
		}},
	}}
	msg.ApplicationID = sfPtr(s.opts.ApplicationID)
	data := buttonData{CustomID: customID, ComponentType: 2}
	in := s.newInteraction(interactionID, guildID, interactionTypeComponent, data, token, now)
	in.Message = &msg
	s.Dispatch(guildID, "INTERACTION_CREATE", in)
	return interactionID
}

// InteractionToken returns the token of an interaction created by SendSlashCommand
// or SendButtonPress ("" if unknown).
func (s *Server) InteractionToken(interactionID uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.interactions[interactionID]; ok {
		return in.token
	}
	return ""
}

// commandIDLocked finds the ID of a registered command by name: the guild's commands
// first, then the global ones. s.mu must be held.
func (s *Server) commandIDLocked(guildID uint64, name string) uint64 {
	for _, key := range []uint64{guildID, 0} {
		for _, raw := range s.commands[key] {
			var c struct {
				ID   jsonID `json:"id"`
				Name string `json:"name"`
			}
			if json.Unmarshal(raw, &c) == nil && c.Name == name {
				return uint64(c.ID)
			}
		}
	}
	return 0
}
