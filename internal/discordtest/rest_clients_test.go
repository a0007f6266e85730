package discordtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/disgoorg/disgo/discord"
)

// jsonKinds checks that body is an object with each key present and of the JSON kind
// given ("string", "number", "bool", "array", "object", "null", or "string|null").
func jsonKinds(t *testing.T, what string, body []byte, want map[string]string) map[string]json.RawMessage {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatalf("%s: not a JSON object: %v: %s", what, err, body)
	}
	for key, kinds := range want {
		raw, ok := fields[key]
		if !ok {
			t.Errorf("%s: no %q: %s", what, key, body)
			continue
		}
		got := jsonKind(raw)
		okKind := false
		for _, k := range strings.Split(kinds, "|") {
			okKind = okKind || k == got
		}
		if !okKind {
			t.Errorf("%s: %q is %s (%s), want %s", what, key, got, raw, kinds)
		}
	}
	return fields
}

func jsonKind(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "invalid"
	}
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "array"
	}
	return "object"
}

// TestRESTWhatRealClientsCall covers the calls discord.py 2.2.2 and discord.js 14 make
// from login to a first reply, with the fields they read without a default (a missing
// one is a KeyError in discord.py).
func TestRESTWhatRealClientsCall(t *testing.T) {
	g := guildID(9)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	api, auth := srv.APIURL(), "Bot "+DefaultToken

	// discord.py: Client.login -> static_login (GET /users/@me), then application_info
	// (GET /oauth2/applications/@me).
	status, header, body := doFull(t, "GET", api+"/users/@me", auth, "")
	if status != 200 {
		t.Fatalf("GET /users/@me: %d %s", status, body)
	}
	// discord.py's json_or_text parses the body only when Content-Type is exactly this.
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want exactly application/json", ct)
	}
	jsonKinds(t, "GET /users/@me", body, map[string]string{
		"id": "string", "username": "string", "discriminator": "string", "avatar": "string|null", "bot": "bool",
	})

	appKinds := map[string]string{
		"id": "string", "name": "string", "description": "string", "icon": "string|null",
		"rpc_origins": "array", "bot_public": "bool", "bot_require_code_grant": "bool",
		"owner": "object", "verify_key": "string", "flags": "number", "team": "object|null",
	}
	for _, path := range []string{"/oauth2/applications/@me", "/applications/@me"} {
		status, body := do(t, "GET", api+path, auth, "")
		if status != 200 {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		fields := jsonKinds(t, "GET "+path, body, appKinds)
		jsonKinds(t, "GET "+path+" owner", fields["owner"], map[string]string{
			"id": "string", "username": "string", "discriminator": "string", "avatar": "string|null",
		})
		var app discord.Application
		mustUnmarshal(t, string(body), &app)
		if uint64(app.ID) != DefaultApplicationID {
			t.Fatalf("GET %s: application %d", path, app.ID)
		}
		if status, _ := do(t, "GET", api+path, "", ""); status != http.StatusUnauthorized {
			t.Fatalf("GET %s without a token: %d", path, status)
		}
	}

	// Both: typing, then the reply. discord.js's message.reply sends only message_id in
	// the reference, and a nonce; Discord answers with the reference filled in and the
	// nonce echoed.
	channel := uint64(42)
	asked := srv.SendMessageWithID(g, channel, "!ping")
	status, body = do(t, "POST", api+"/channels/42/typing", auth, "")
	if status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("POST typing: %d %s", status, body)
	}
	status, body = do(t, "POST", api+"/channels/42/messages", auth,
		`{"content":"pong","nonce":"1234567890","tts":false,"message_reference":{"message_id":"`+jsonIDString(asked)+`","fail_if_not_exists":true}}`)
	if status != 200 {
		t.Fatalf("POST message: %d %s", status, body)
	}
	fields := jsonKinds(t, "POST message", body, map[string]string{
		"id": "string", "channel_id": "string", "guild_id": "string", "author": "object", "content": "string",
		"timestamp": "string", "edited_timestamp": "null", "tts": "bool", "mention_everyone": "bool",
		"mentions": "array", "mention_roles": "array", "attachments": "array", "embeds": "array",
		"pinned": "bool", "type": "number", "nonce": "string", "message_reference": "object",
	})
	ref := jsonKinds(t, "message_reference", fields["message_reference"], map[string]string{
		"message_id": "string", "channel_id": "string", "guild_id": "string", "type": "number",
	})
	var msg discord.Message
	mustUnmarshal(t, string(body), &msg)
	if msg.GuildID == nil || uint64(*msg.GuildID) != g || uint64(msg.ChannelID) != channel || msg.Content != "pong" {
		t.Fatalf("the reply in channel 42 of guild %d came back as %s", g, body)
	}
	if string(ref["message_id"]) != `"`+jsonIDString(asked)+`"` || string(ref["channel_id"]) != `"42"` {
		t.Fatalf("message_reference %s", fields["message_reference"])
	}
	if r := srv.Replies(); len(r) != 1 || r[0].Kind != ReplyChannelMessage {
		t.Fatalf("replies %+v: typing is not a reply", r)
	}
}
