package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/emulatorapi"
)

func TestParseRejectsBadFlags(t *testing.T) {
	tests := map[string][]string{
		"negative guilds":            {"--guilds", "-1"},
		"zero shards":                {"--recommended-shards", "0"},
		"zero buckets":               {"--max-concurrency", "0"},
		"empty token":                {"--token", " "},
		"not a duration":             {"--heartbeat-interval", "soon"},
		"unknown flag":               {"--shards", "2"},
		"negative global rate limit": {"--global-rate-limit", "-1"},
		"not a bool":                 {"--enforce-heartbeats=maybe"},
		"send limit not a bool":      {"--enforce-send-limit=often"},
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

// TestASlashCommandReachesTheBotAndItsAnswerIsListed: POST /control/interactions
// dispatches an INTERACTION_CREATE for the command the bot registered, answers with the
// interaction's ID, and the bot's callback shows up in GET /control/replies.
func TestASlashCommandReachesTheBotAndItsAnswerIsListed(t *testing.T) {
	guild := uint64(1)<<22 | 1
	srv, control := startEmulator(t, "--guilds", "1")
	ws := dialGateway(t, srv)
	identifyShard0(t, ws)
	if err := srv.WaitConnected(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	app := srv.Options().ApplicationID
	registered := restCall(t, srv, http.MethodPut, fmt.Sprintf("/applications/%d/commands", app), `[{"name": "ping", "description": "pong"}]`)
	var commands []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(registered, &commands); err != nil || len(commands) != 1 {
		t.Fatalf("registering /ping: %s, %v", registered, err)
	}

	resp, err := http.Post(control+"/control/interactions", "application/json", strings.NewReader(`{"guild": `+jsonNumber(guild)+`, "command": "ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID uint64 `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated || created.ID == 0 {
		t.Fatalf("POST /control/interactions: %s, id %d, %v", resp.Status, created.ID, err)
	}
	_ = resp.Body.Close()

	var interaction struct {
		ID    string `json:"id"`
		Token string `json:"token"`
		Type  int    `json:"type"`
		Data  struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"data"`
		ChannelID string `json:"channel_id"`
	}
	for interaction.ID == "" {
		var f gatewayFrame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("waiting for the interaction: %v", err)
		}
		if f.T == "INTERACTION_CREATE" {
			if err := json.Unmarshal(f.D, &interaction); err != nil {
				t.Fatal(err)
			}
		}
	}
	if interaction.ID != fmt.Sprint(created.ID) || interaction.Type != 2 || interaction.Data.Name != "ping" ||
		interaction.Data.ID != commands[0].ID || interaction.ChannelID != fmt.Sprint(guild) {
		t.Fatalf("INTERACTION_CREATE %+v, want interaction %d of the registered command %s in channel %d", interaction, created.ID, commands[0].ID, guild)
	}

	restCall(t, srv, http.MethodPost, fmt.Sprintf("/interactions/%s/%s/callback", interaction.ID, interaction.Token), `{"type": 4, "data": {"content": "pong"}}`)
	var replies []struct {
		Kind string `json:"kind"`
		Path string `json:"path"`
		Body struct {
			Data struct {
				Content string `json:"content"`
			} `json:"data"`
		} `json:"body"`
	}
	getJSON(t, control+"/control/replies", &replies)
	if len(replies) != 1 || replies[0].Kind != discordtest.ReplyInteractionCallback || replies[0].Body.Data.Content != "pong" ||
		!strings.HasPrefix(replies[0].Path, "/interactions/"+interaction.ID+"/") {
		t.Fatalf("replies %+v, want the interaction's pong", replies)
	}

	// Bad requests say what is wanted.
	for body, want := range map[string]string{
		`{"command": "ping"}`: "guild and command are required",
		`{"guild": ` + jsonNumber(guild) + `, "command": " "}`:                  "guild and command are required",
		`{"guild": 42, "command": "ping"}`:                                      "not in guild 42",
		`{"guild": ` + jsonNumber(guild) + `, "channel": 7, "command": "ping"}`: "general channel",
		`{"guild": "` + jsonNumber(guild) + `"}`:                                "want JSON",
	} {
		resp, err := http.Post(control+"/control/interactions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), want) {
			t.Errorf("POST /control/interactions %s: %s %q, want 400 saying %q", body, resp.Status, msg, want)
		}
	}
}

// restCall makes a REST request as the bot and returns the answer's body; it fails the
// test on anything but 2xx.
func restCall(t *testing.T, srv *discordtest.Server, method, path, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, srv.APIURL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bot "+discordtest.DefaultToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, out)
	}
	return out
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
}

func jsonNumber(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func TestFlagsReachTheFake(t *testing.T) {
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := c.options(); o.EnforceHeartbeats || o.EnforceSendLimit || o.GlobalRateLimit != discordtest.DefaultGlobalRateLimit || len(o.Guilds) != 4 {
		t.Fatalf("defaults: enforce heartbeats %v, send limit %v, global rate limit %d, %d guilds", o.EnforceHeartbeats, o.EnforceSendLimit, o.GlobalRateLimit, len(o.Guilds))
	}
	c, err = parse([]string{"--enforce-heartbeats", "--global-rate-limit", "0", "--heartbeat-interval", "2s"})
	if err != nil {
		t.Fatal(err)
	}
	if o := c.options(); !o.EnforceHeartbeats || o.GlobalRateLimit >= 0 || o.HeartbeatInterval != 2*time.Second {
		t.Fatalf("--enforce-heartbeats --global-rate-limit 0: enforce %v, global rate limit %d (want off: negative)", o.EnforceHeartbeats, o.GlobalRateLimit)
	}
}

// startEmulator runs the fake and the control API as main does, with flags.
func startEmulator(t *testing.T, flags ...string) (*discordtest.Server, string) {
	t.Helper()
	c, err := parse(append([]string{"--listen", "127.0.0.1:0"}, flags...))
	if err != nil {
		t.Fatal(err)
	}
	srv := discordtest.NewServer(c.options())
	t.Cleanup(srv.Close)
	control := httptest.NewServer(controlAPI(srv))
	t.Cleanup(control.Close)
	return srv, control.URL
}

func getStats(t *testing.T, controlURL string) (emulatorapi.Stats, map[string]any) {
	t.Helper()
	resp, err := http.Get(controlURL + "/control/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st emulatorapi.Stats
	var raw map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("stats %s: %v", body, err)
	}
	_ = json.Unmarshal(body, &raw)
	return st, raw
}

// TestEnforcedHeartbeatsAndStats: with --enforce-heartbeats a client that stops
// heartbeating is closed with 4009, and /control/stats tells the story per shard.
func TestEnforcedHeartbeatsAndStats(t *testing.T) {
	srv, control := startEmulator(t, "--enforce-heartbeats", "--heartbeat-interval", "100ms", "--guilds", "1")

	// A bot on zstd-stream identifies and then never heartbeats (its frames are not
	// decoded here: only the close matters).
	ws, _, err := websocket.DefaultDialer.Dial(srv.URL()+"?v=10&encoding=json&compress=zstd-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	identifyShard0(t, ws)
	start := time.Now()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var closeErr *websocket.CloseError
	for {
		mt, _, err := ws.ReadMessage()
		if err != nil {
			if !errors.As(err, &closeErr) {
				t.Fatalf("connection ended with %v, want a close frame", err)
			}
			break
		}
		if mt != websocket.BinaryMessage {
			t.Fatalf("frame type %d on a zstd-stream connection", mt)
		}
	}
	if closeErr.Code != discordtest.CloseSessionTimedOut || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("closed with %d after %v, want 4009 after 2 heartbeat intervals + 1s", closeErr.Code, time.Since(start))
	}

	st, raw := getStats(t, control)
	shard, ok := st.Shards[0]
	if !ok {
		t.Fatalf("no shard 0 in %+v", st)
	}
	if shard.Connections != 1 || shard.Identifies != 1 || shard.Connected || shard.Compression != string(discordtest.CompressionZstdStream) ||
		len(shard.Compressions) != 1 || shard.EventsDelivered != 1 || shard.CloseCodes.Server[4009] != 1 || shard.BytesSent == 0 {
		t.Fatalf("shard 0 stats %+v", shard)
	}
	if st.ServerCloseCodes[4009] != 1 || st.ConnectionsByCompression[string(discordtest.CompressionZstdStream)] != 1 || st.Identifies != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The JSON keys are the documented ones.
	server := raw["shards"].(map[string]any)["0"].(map[string]any)["closeCodes"].(map[string]any)["server"].(map[string]any)
	if server["4009"] != 1.0 {
		t.Fatalf("shards.0.closeCodes.server = %v", server)
	}
}

func TestGlobalRateLimitFlag(t *testing.T) {
	srv, control := startEmulator(t, "--global-rate-limit", "2")
	var statuses []int
	for range 3 {
		resp, err := http.Get(srv.APIURL() + "/gateway")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != http.StatusTooManyRequests {
		t.Fatalf("3 requests at --global-rate-limit 2: %v", statuses)
	}
	if st, _ := getStats(t, control); st.REST.GlobalRateLimited != 1 || st.REST.Requests["GET /gateway"] != 3 {
		t.Fatalf("rest stats %+v", st.REST)
	}
}

// TestCutDropsTheConnectionAndTheSessionResumes: POST /control/cut ends the shard's
// connection with no close frame; what was sent meanwhile is replayed on resume.
func TestCutDropsTheConnectionAndTheSessionResumes(t *testing.T) {
	guild := uint64(1)<<22 | 1
	srv, control := startEmulator(t, "--guilds", "1")
	cut := func() *http.Response {
		t.Helper()
		resp, err := http.Post(control+"/control/cut", "application/json", strings.NewReader(`{"shard": 0}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	if resp := cut(); resp.StatusCode != http.StatusConflict {
		t.Fatalf("cutting a shard that never connected: %s, want 409", resp.Status)
	}
	if resp, _ := http.Post(control+"/control/cut", "application/json", strings.NewReader(`{}`)); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a cut without a shard: %s, want 400", resp.Status)
	}

	ws := dialGateway(t, srv)
	if err := ws.WriteJSON(map[string]any{"op": 2, "d": map[string]any{
		"token": discordtest.DefaultToken, "intents": 1<<9 | 1<<15, "shard": []int{0, 1},
		"properties": map[string]string{"os": "linux", "browser": "test", "device": "test"},
	}}); err != nil {
		t.Fatal(err)
	}
	sessionID, seq := "", 0
	for sessionID == "" || seq < 2 { // READY, then the guild's GUILD_CREATE
		var f gatewayFrame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatal(err)
		}
		if f.T == "READY" {
			var d struct {
				SessionID string `json:"session_id"`
			}
			_ = json.Unmarshal(f.D, &d)
			sessionID = d.SessionID
		}
		if f.S != nil {
			seq = *f.S
		}
	}

	if resp := cut(); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("cut: %s", resp.Status)
	}
	var closeErr *websocket.CloseError
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if errors.As(err, &closeErr) && closeErr.Code != websocket.CloseAbnormalClosure { // 1006: no close frame
				t.Fatalf("a cut sent a close frame: %v", err)
			}
			break
		}
	}
	srv.SendMessage(guild, guild, "!ping while cut")

	ws = dialGateway(t, srv)
	if err := ws.WriteJSON(map[string]any{"op": 6, "d": map[string]any{"token": discordtest.DefaultToken, "session_id": sessionID, "seq": seq}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		var f gatewayFrame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatalf("after resume, got %v: %v", got, err)
		}
		if f.T != "" {
			got = append(got, f.T)
		}
	}
	if got[0] != "MESSAGE_CREATE" || got[1] != "RESUMED" {
		t.Fatalf("after resume: %v, want the message sent during the cut replayed, then RESUMED", got)
	}
	// The cut connection's end is counted when the emulator's reader of it stops, which
	// may come after the resume on the new one.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := getStats(t, control)
		sh := st.Shards[0]
		if st.Resumes == 1 && sh.CloseCodes.Client[0] == 1 && sh.Replayed == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats after the cut: resumes %d, shard %+v", st.Resumes, sh)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type gatewayFrame struct {
	Op int             `json:"op"`
	S  *int            `json:"s"`
	T  string          `json:"t"`
	D  json.RawMessage `json:"d"`
}

func dialGateway(t *testing.T, srv *discordtest.Server) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(srv.URL()+"?v=10&encoding=json", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	return ws
}

// TestEnforcedSendLimitAndWhatEachConnectionSent: with --enforce-send-limit a client that
// sends more than 120 payloads within 60 s is closed with 4008, and /control/stats lists
// each connection's payloads by opcode and the resumes left unanswered.
func TestEnforcedSendLimitAndWhatEachConnectionSent(t *testing.T) {
	srv, control := startEmulator(t, "--enforce-send-limit", "--guilds", "0")
	ws := dialGateway(t, srv)
	identifyShard0(t, ws)
	var sessionID string
	for sessionID == "" {
		var f gatewayFrame
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatal(err)
		}
		if f.T == "READY" {
			var d struct {
				SessionID string `json:"session_id"`
			}
			_ = json.Unmarshal(f.D, &d)
			sessionID = d.SessionID
		}
	}
	presence := map[string]any{"op": 3, "d": map[string]any{"since": nil, "activities": []any{}, "status": "online", "afk": false}}
	for range 120 { // with the identify, one more than the limit
		if err := ws.WriteJSON(presence); err != nil {
			break
		}
	}
	var closeErr *websocket.CloseError
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !errors.As(err, &closeErr) || closeErr.Code != discordtest.CloseRateLimited {
				t.Fatalf("connection ended with %v, want close 4008", err)
			}
			break
		}
	}

	// A resume the fake is told to leave unanswered.
	srv.SetResumeAnswer(0, discordtest.ResumeUnanswered)
	ws = dialGateway(t, srv)
	if err := ws.WriteJSON(map[string]any{"op": 6, "d": map[string]any{"token": discordtest.DefaultToken, "session_id": sessionID, "seq": 1}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var st emulatorapi.Stats
	var raw map[string]any
	for {
		st, raw = getStats(t, control)
		if st.Shards[0].ResumesUnanswered == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	shard := st.Shards[0]
	if shard.ResumesUnanswered != 1 || shard.CloseCodes.Server[4008] != 1 || st.ServerCloseCodes[4008] != 1 {
		t.Fatalf("shard 0 stats %+v", shard)
	}
	if len(shard.OpsReceived) != 2 || shard.OpsReceived[0][2] != 1 || shard.OpsReceived[0][3] != 120 || shard.OpsReceived[1][6] != 1 {
		t.Fatalf("opsReceived %v, want the identify and 120 presence updates, then the resume", shard.OpsReceived)
	}
	// The JSON keys are the documented ones.
	jsonShard := raw["shards"].(map[string]any)["0"].(map[string]any)
	if jsonShard["resumesUnanswered"] != 1.0 || jsonShard["opsReceived"].([]any)[1].(map[string]any)["6"] != 1.0 {
		t.Fatalf("shards.0 = %v", jsonShard)
	}
}

// identifyShard0 identifies as shard 0 of 1 with the emulator's token.
func identifyShard0(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	if err := ws.WriteJSON(map[string]any{"op": 2, "d": map[string]any{
		"token": discordtest.DefaultToken, "intents": 1, "shard": []int{0, 1},
		"properties": map[string]string{"os": "linux", "browser": "test", "device": "test"},
	}}); err != nil {
		t.Fatal(err)
	}
}
