package botruntime

import (
	"encoding/json"
	"testing"

	"github.com/disgoorg/disgo/gateway"
)

// A MESSAGE_CREATE of ordinary size, as a busy guild sends them.
var benchMessage = []byte(`{"id":"1575661296907452416","channel_id":"1","guild_id":"4194305","author":{"id":"42","username":"someone","discriminator":"0","global_name":"Someone","avatar":null,"bot":false},"member":{"roles":[],"joined_at":"2026-01-01T00:00:00Z","deaf":false,"mute":false},"content":"hello there, this is a message of ordinary length for a busy guild","timestamp":"2026-11-26T23:55:22.899622124Z","edited_timestamp":null,"tts":false,"mention_everyone":false,"mentions":[],"mention_roles":[],"attachments":[],"embeds":[],"pinned":false,"type":0,"flags":0}`)

// The read loop's decoding of one message: before, the event and then a second scan of the
// payload for its guild; now, the guild is read from the decoded event.
func BenchmarkDecodeMessage(b *testing.B) {
	b.Run("decode+scan", func(b *testing.B) {
		for b.Loop() {
			if _, err := gateway.UnmarshalEventData(benchMessage, gateway.EventTypeMessageCreate); err != nil {
				b.Fatal(err)
			}
			var ids guildOnly
			_ = json.Unmarshal(benchMessage, &ids)
		}
	})
	b.Run("decode+eventIDs", func(b *testing.B) {
		for b.Loop() {
			data, err := gateway.UnmarshalEventData(benchMessage, gateway.EventTypeMessageCreate)
			if err != nil {
				b.Fatal(err)
			}
			_ = eventIDs(data, benchMessage)
		}
	})
}

// eventIDs must find the same guild as scanning the payload, for every event it reads
// from the decoded form, with and without a guild.
func TestEventIDsMatchTheScan(t *testing.T) {
	payloads := map[gateway.EventType][]string{
		gateway.EventTypeMessageCreate:      {string(benchMessage), `{"id":"7","channel_id":"1","content":"in a DM","author":{"id":"42","username":"u"}}`},
		gateway.EventTypeMessageUpdate:      {`{"id":"7","channel_id":"1","guild_id":"99","content":"edited","author":{"id":"42","username":"u"}}`},
		gateway.EventTypeMessageDelete:      {`{"id":"7","channel_id":"1","guild_id":"99"}`, `{"id":"7","channel_id":"1"}`},
		gateway.EventTypeMessageReactionAdd: {`{"user_id":"5","channel_id":"1","message_id":"7","guild_id":"99","emoji":{"name":"x"}}`},
		gateway.EventTypeTypingStart:        {`{"channel_id":"1","guild_id":"99","user_id":"5","timestamp":1700000000}`},
		gateway.EventTypeInteractionCreate:  {`{"id":"8","application_id":"2","type":2,"guild_id":"99","channel_id":"1","token":"t","version":1,"data":{"id":"3","name":"ping","type":1},"member":{"user":{"id":"5","username":"u"},"roles":[],"joined_at":"2026-01-01T00:00:00Z"}}`},
		gateway.EventTypeGuildCreate:        {`{"id":"99","name":"g"}`},
	}
	for typ, list := range payloads {
		for _, raw := range list {
			data, err := gateway.UnmarshalEventData([]byte(raw), typ)
			if err != nil {
				t.Fatalf("%s %s: %v", typ, raw, err)
			}
			var scanned guildOnly
			if err := json.Unmarshal([]byte(raw), &scanned); err != nil {
				t.Fatal(err)
			}
			if got := eventIDs(data, []byte(raw)); got.GuildID != scanned.GuildID || (got.ID != 0 && got.ID != scanned.ID) {
				t.Errorf("%s %s: eventIDs = %+v, the scan finds %+v", typ, raw, got, scanned)
			}
		}
	}
}
