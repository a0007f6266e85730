package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

func TestParseRejectsBadFlags(t *testing.T) {
	tests := map[string][]string{
		"negative guilds": {"--guilds", "-1"},
		"zero shards":     {"--recommended-shards", "0"},
		"zero buckets":    {"--max-concurrency", "0"},
		"empty token":     {"--token", " "},
		"not a duration":  {"--heartbeat-interval", "soon"},
		"unknown flag":    {"--shards", "2"},
	}
	for name, args := range tests {
		if _, err := parse(args); err == nil {
			t.Errorf("%s: %v accepted", name, args)
		}
	}
	c, err := parse([]string{"--guilds", "2", "--public-host", "discord-emulator.ns:8080"})
	if err != nil || c.guilds != 2 || c.publicHost != "discord-emulator.ns:8080" || c.token != discordtest.DefaultToken {
		t.Fatalf("parse: %+v, %v", c, err)
	}
}

func TestPublicHostIsWhatTheEmulatorHandsOut(t *testing.T) {
	srv := discordtest.NewServer(discordtest.Options{ListenAddr: "127.0.0.1:0", PublicHost: "discord-emulator.ns:8080"})
	defer srv.Close()
	if srv.URL() != "ws://discord-emulator.ns:8080" || srv.APIURL() != "http://discord-emulator.ns:8080/api/v10" {
		t.Fatalf("URLs %s and %s, want the public host", srv.URL(), srv.APIURL())
	}
}

func TestAUserMessageReachesTheBotAndItsReplyIsListed(t *testing.T) {
	guild := uint64(1)<<22 | 1
	srv := discordtest.NewServer(discordtest.Options{Guilds: []uint64{guild}, HeartbeatInterval: time.Second})
	defer srv.Close()
	control := httptest.NewServer(controlAPI(srv))
	defer control.Close()

	// A bot connects and identifies.
	ws, _, err := websocket.DefaultDialer.Dial(srv.URL()+"?v=10&encoding=json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteJSON(map[string]any{"op": 2, "d": map[string]any{
		"token": discordtest.DefaultToken, "intents": 1<<9 | 1<<15, "shard": []int{0, 1},
		"properties": map[string]string{"os": "linux", "browser": "test", "device": "test"},
	}}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := srv.WaitConnected(ctx, 0); err != nil {
		t.Fatal(err)
	}

	// A user says !ping through the control API; the bot receives it.
	resp, err := http.Post(control.URL+"/control/messages", "application/json", strings.NewReader(`{"guild": `+jsonNumber(guild)+`, "channel": 42, "content": "!ping"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /control/messages: %v %v", resp.Status, err)
	}
	for {
		var frame struct {
			T string          `json:"t"`
			D json.RawMessage `json:"d"`
		}
		if err := ws.ReadJSON(&frame); err != nil {
			t.Fatalf("waiting for the message: %v", err)
		}
		if frame.T == "MESSAGE_CREATE" && bytes.Contains(frame.D, []byte("!ping")) {
			break
		}
	}

	// The bot answers over REST; the control API lists the answer.
	req, _ := http.NewRequest(http.MethodPost, srv.APIURL()+"/channels/42/messages", strings.NewReader(`{"content":"pong"}`))
	req.Header.Set("Authorization", "Bot "+discordtest.DefaultToken)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("bot reply: %v %v", resp, err)
	}
	resp, err = http.Get(control.URL + "/control/replies")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(body, []byte("pong")) || !bytes.Contains(body, []byte("/channels/42/messages")) {
		t.Fatalf("replies %s, want the pong", body)
	}

	// Bad requests say what is wanted.
	resp, _ = http.Post(control.URL+"/control/messages", "application/json", strings.NewReader(`{"content": "hi"}`))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a message without guild and channel: %s", resp.Status)
	}
}

func jsonNumber(n uint64) string { b, _ := json.Marshal(n); return string(b) }
