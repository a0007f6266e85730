package discordtest

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/rest"
	"github.com/disgoorg/snowflake/v2"
)

func mustUnmarshal(t *testing.T, data string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(data), v); err != nil {
		t.Fatalf("unmarshal %s: %v", data, err)
	}
}

func TestRESTAuthAndGatewayBot(t *testing.T) {
	srv := newTestServer(t, Options{
		Token: "secret", RecommendedShards: 4, MaxConcurrency: 2,
		SessionStartTotal: 100, SessionStartRemaining: 50, SessionStartResetAfter: time.Hour,
	})
	api := srv.APIURL()
	if !strings.HasPrefix(api, "http://127.0.0.1:") || !strings.HasSuffix(api, "/api/v10") {
		t.Fatalf("APIURL %q", api)
	}

	for _, auth := range []string{"", "secret", "Bot wrong", "Bearer secret"} {
		status, body := do(t, "GET", api+"/gateway/bot", auth, "")
		if status != 401 || string(body) != `{"message":"401: Unauthorized","code":0}` {
			t.Fatalf("auth %q: %d %s", auth, status, body)
		}
	}

	status, body := do(t, "GET", api+"/gateway/bot", "Bot secret", "")
	if status != 200 {
		t.Fatalf("GET /gateway/bot: %d %s", status, body)
	}
	var gb discord.GatewayBot
	mustUnmarshal(t, string(body), &gb)
	// reset_after counts down from the server's start.
	if gb.SessionStartLimit.ResetAfter > 3600000 || gb.SessionStartLimit.ResetAfter < 3600000-int(testTimeout.Milliseconds()) {
		t.Fatalf("reset_after %d, want just under 3600000", gb.SessionStartLimit.ResetAfter)
	}
	gb.SessionStartLimit.ResetAfter = 0
	want := discord.GatewayBot{URL: srv.URL(), Shards: 4, SessionStartLimit: discord.SessionStartLimit{
		Total: 100, Remaining: 50, MaxConcurrency: 2,
	}}
	if gb != want {
		t.Fatalf("gateway/bot %+v, want %+v", gb, want)
	}

	status, body = do(t, "GET", api+"/gateway", "", "")
	if status != 200 || !strings.Contains(string(body), srv.URL()) {
		t.Fatalf("GET /gateway: %d %s", status, body)
	}

	status, body = do(t, "GET", api+"/users/@me", "Bot secret", "")
	var me discord.User
	mustUnmarshal(t, string(body), &me)
	if status != 200 || uint64(me.ID) != DefaultApplicationID || !me.Bot || me.Discriminator != "0000" || me.Username != DefaultBotUsername {
		t.Fatalf("GET /users/@me: %d %s", status, body)
	}

	status, body = do(t, "GET", api+"/applications/@me", "Bot secret", "")
	var app discord.Application
	mustUnmarshal(t, string(body), &app)
	if status != 200 || uint64(app.ID) != DefaultApplicationID || app.Name == "" || app.Bot == nil || !app.Bot.Bot {
		t.Fatalf("GET /applications/@me: %d %s", status, body)
	}

	if status, _ := do(t, "GET", api+"/nothing/here", "Bot secret", ""); status != 404 {
		t.Fatalf("unknown route: %d", status)
	}
	if status, _ := do(t, "DELETE", api+"/gateway/bot", "Bot secret", ""); status != 405 {
		t.Fatalf("wrong method: %d", status)
	}

	st := srv.Stats()
	if st.RESTRequests["GET /gateway/bot"] != 5 || st.RESTRequests["GET /users/@me"] != 1 {
		t.Fatalf("REST counts %v", st.RESTRequests)
	}
}

func TestRESTCommands(t *testing.T) {
	srv := newTestServer(t, Options{})
	api := srv.APIURL()
	auth := "Bot " + DefaultToken

	status, body := do(t, "PUT", api+"/applications/1000/commands", auth,
		`[{"name":"ping","description":"Ping!"},{"name":"User Info","type":2}]`)
	if status != 200 {
		t.Fatalf("PUT: %d %s", status, body)
	}
	var cmds []struct {
		ID            jsonID `json:"id"`
		ApplicationID jsonID `json:"application_id"`
		Name          string `json:"name"`
		Type          int    `json:"type"`
	}
	mustUnmarshal(t, string(body), &cmds)
	if len(cmds) != 2 || cmds[0].ID == 0 || cmds[0].ID == cmds[1].ID || cmds[0].Type != 1 || cmds[1].Type != 2 ||
		cmds[0].ApplicationID != DefaultApplicationID || cmds[0].Name != "ping" {
		t.Fatalf("PUT echo %s", body)
	}
	firstID := cmds[0].ID

	// GET returns the stored list; Commands() too.
	status, body2 := do(t, "GET", api+"/applications/1000/commands", auth, "")
	if status != 200 || !bytes.Equal(body, body2) {
		t.Fatalf("GET: %d %s, want %s", status, body2, body)
	}
	if len(srv.Commands()) != 2 {
		t.Fatalf("Commands() %s", srv.Commands())
	}

	// Overwriting keeps the ID of a command with the same name.
	_, body = do(t, "PUT", api+"/applications/1000/commands", auth, `[{"name":"ping","description":"v2"}]`)
	mustUnmarshal(t, string(body), &cmds)
	if len(cmds) != 1 || cmds[0].ID != firstID {
		t.Fatalf("re-PUT %s", body)
	}

	// Guild commands are separate.
	status, _ = do(t, "PUT", api+"/applications/1000/guilds/77/commands", auth, `[{"name":"admin","description":"x"}]`)
	if status != 200 || len(srv.GuildCommands(77)) != 1 || len(srv.Commands()) != 1 {
		t.Fatalf("guild commands: %d %s", status, srv.GuildCommands(77))
	}

	// Errors.
	if status, _ := do(t, "PUT", api+"/applications/999/commands", auth, `[]`); status != 404 {
		t.Fatalf("wrong app: %d", status)
	}
	if status, _ := do(t, "PUT", api+"/applications/1000/commands", auth, `{"name":"x"}`); status != 400 {
		t.Fatalf("not a list: %d", status)
	}
	if status, _ := do(t, "PUT", api+"/applications/1000/commands", auth, `[{"name":`); status != 400 {
		t.Fatalf("bad JSON: %d", status)
	}
	if status, _ := do(t, "PUT", api+"/applications/1000/commands", "", `[]`); status != 401 {
		t.Fatalf("no auth: %d", status)
	}
}

func TestRESTRepliesRecorded(t *testing.T) {
	g := guildID(9)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	api := srv.APIURL()

	iid := srv.SendSlashCommand(g, "ping") // no session: the event is dropped, the interaction exists
	token := srv.InteractionToken(iid)
	cbPath := "/interactions/" + jsonIDString(iid) + "/" + token + "/callback"

	// Interaction endpoints need no bot token.
	status, body := do(t, "POST", api+cbPath, "", `{"type":5}`)
	if status != 204 || len(body) != 0 {
		t.Fatalf("callback: %d %s", status, body)
	}
	status, body = do(t, "POST", api+cbPath, "", `{"type":4,"data":{"content":"again"}}`)
	if status != 400 || !strings.Contains(string(body), "40060") {
		t.Fatalf("second callback: %d %s", status, body)
	}
	status, _ = do(t, "POST", api+"/interactions/"+jsonIDString(iid)+"/wrong-token/callback", "", `{"type":4}`)
	if status != 404 {
		t.Fatalf("wrong token: %d", status)
	}

	status, body = do(t, "PATCH", api+"/webhooks/1000/"+token+"/messages/@original", "", `{"content":"pong"}`)
	var msg discord.Message
	mustUnmarshal(t, string(body), &msg)
	if status != 200 || msg.Content != "pong" || msg.ID == 0 || !msg.Author.Bot {
		t.Fatalf("edit original: %d %s", status, body)
	}

	status, body = do(t, "POST", api+"/channels/"+jsonIDString(g)+"/messages", "Bot "+DefaultToken, `{"content":"hi"}`)
	mustUnmarshal(t, string(body), &msg)
	if status != 200 || msg.Content != "hi" || msg.ID == 0 || uint64(msg.ChannelID) != g || msg.GuildID == nil {
		t.Fatalf("channel message: %d %s", status, body)
	}
	if status, _ := do(t, "POST", api+"/channels/5/messages", "", `{"content":"hi"}`); status != 401 {
		t.Fatalf("channel message without auth: %d", status)
	}

	replies := srv.Replies()
	if len(replies) != 3 {
		t.Fatalf("replies %+v", replies)
	}
	kinds := []string{ReplyInteractionCallback, ReplyFollowupEdit, ReplyChannelMessage}
	for i, r := range replies {
		if r.Kind != kinds[i] || r.At.IsZero() || !json.Valid(r.Body) {
			t.Fatalf("reply %d: %+v", i, r)
		}
	}
	if replies[0].Path != cbPath || string(replies[0].Body) != `{"type":5}` || replies[0].Method != "POST" {
		t.Fatalf("callback reply %+v", replies[0])
	}

	r, err := srv.WaitReply(testCtx(t), func(r Reply) bool {
		return r.Kind == ReplyFollowupEdit && strings.Contains(string(r.Body), "pong")
	})
	if err != nil || r.Path != "/webhooks/1000/"+token+"/messages/@original" {
		t.Fatalf("WaitReply: %+v %v", r, err)
	}

	// WaitReply also waits for replies still to come.
	got := make(chan Reply, 1)
	go func() {
		r, err := srv.WaitReply(testCtx(t), func(r Reply) bool { return strings.Contains(string(r.Body), "later") })
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	do(t, "POST", api+"/channels/5/messages", "Bot "+DefaultToken, `{"content":"later"}`)
	if r := <-got; r.Kind != ReplyChannelMessage {
		t.Fatalf("late reply %+v", r)
	}
}

func TestRESTMultipartBody(t *testing.T) {
	srv := newTestServer(t, Options{})
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("payload_json", `{"content":"with file"}`)
	fw, _ := mw.CreateFormFile("files[0]", "a.txt")
	_, _ = fw.Write([]byte("file content"))
	_ = mw.Close()
	req, _ := http.NewRequest("POST", srv.APIURL()+"/channels/5/messages", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bot "+DefaultToken)
	client := &http.Client{Timeout: testTimeout}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if r := srv.Replies(); len(r) != 1 || string(r[0].Body) != `{"content":"with file"}` {
		t.Fatalf("replies %+v", r)
	}
}

// TestDisgoRESTClient runs disgo's own REST client against the fake.
func TestDisgoRESTClient(t *testing.T) {
	g := guildID(9)
	srv := newTestServer(t, Options{Guilds: []uint64{g}, RecommendedShards: 2})
	client := rest.NewClient(DefaultToken, rest.WithURL(srv.APIURL()))
	t.Cleanup(func() { client.Close(testCtx(t)) })
	r := rest.New(client)

	gb, err := r.GetGatewayBot()
	if err != nil || gb.URL != srv.URL() || gb.Shards != 2 || gb.SessionStartLimit.MaxConcurrency != 1 {
		t.Fatalf("GetGatewayBot: %+v %v", gb, err)
	}
	app, err := r.GetCurrentApplication()
	if err != nil || uint64(app.ID) != DefaultApplicationID {
		t.Fatalf("GetCurrentApplication: %+v %v", app, err)
	}

	appID := snowflake.ID(DefaultApplicationID)
	cmds, err := r.SetGlobalCommands(appID, []discord.ApplicationCommandCreate{
		discord.SlashCommandCreate{Name: "ping", Description: "Ping!"},
		discord.UserCommandCreate{Name: "Info"},
	})
	if err != nil || len(cmds) != 2 || cmds[0].Name() != "ping" || cmds[0].ID() == 0 || cmds[1].Type() != discord.ApplicationCommandTypeUser {
		t.Fatalf("SetGlobalCommands: %+v %v", cmds, err)
	}
	got, err := r.GetGlobalCommands(appID, false)
	if err != nil || len(got) != 2 || got[0].ID() != cmds[0].ID() {
		t.Fatalf("GetGlobalCommands: %+v %v", got, err)
	}
	one, err := r.CreateGuildCommand(appID, snowflake.ID(g), discord.SlashCommandCreate{Name: "admin", Description: "x"})
	if err != nil || one.Name() != "admin" || one.GuildID() == nil || uint64(*one.GuildID()) != g {
		t.Fatalf("CreateGuildCommand: %+v %v", one, err)
	}

	iid := srv.SendSlashCommand(g, "ping")
	token := srv.InteractionToken(iid)
	if err := r.CreateInteractionResponse(snowflake.ID(iid), token, discord.InteractionResponse{
		Type: discord.InteractionResponseTypeDeferredCreateMessage,
	}); err != nil {
		t.Fatalf("CreateInteractionResponse: %v", err)
	}
	pong := "pong"
	msg, err := r.UpdateInteractionResponse(appID, token, discord.MessageUpdate{Content: &pong})
	if err != nil || msg.Content != "pong" {
		t.Fatalf("UpdateInteractionResponse: %+v %v", msg, err)
	}
	fu, err := r.CreateFollowupMessage(appID, token, discord.MessageCreate{Content: "follow"})
	if err != nil || fu.Content != "follow" {
		t.Fatalf("CreateFollowupMessage: %+v %v", fu, err)
	}

	bid := srv.SendButtonPress(g, "b", 5)
	cb, err := r.CreateInteractionResponseWithCallback(snowflake.ID(bid), srv.InteractionToken(bid), discord.InteractionResponse{
		Type: discord.InteractionResponseTypeCreateMessage,
		Data: discord.MessageCreate{Content: "clicked", Components: []discord.LayoutComponent{
			discord.NewActionRow(discord.NewPrimaryButton("again", "b2")),
		}},
	})
	if err != nil || uint64(cb.Interaction.ID) != bid || cb.Resource == nil || cb.Resource.Message == nil ||
		cb.Resource.Message.Content != "clicked" || len(cb.Resource.Message.Components) != 1 {
		t.Fatalf("CreateInteractionResponseWithCallback: %+v %v", cb, err)
	}

	m, err := r.CreateMessage(snowflake.ID(g), discord.MessageCreate{Content: "hello", Embeds: []discord.Embed{{Title: "t"}}})
	if err != nil || m.Content != "hello" || len(m.Embeds) != 1 || m.Embeds[0].Title != "t" {
		t.Fatalf("CreateMessage: %+v %v", m, err)
	}

	var kinds []string
	for _, r := range srv.Replies() {
		kinds = append(kinds, r.Kind)
	}
	want := []string{ReplyInteractionCallback, ReplyFollowupEdit, ReplyFollowupCreate, ReplyInteractionCallback, ReplyChannelMessage}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("reply kinds %v, want %v", kinds, want)
	}
}

func jsonIDString(id uint64) string {
	b, _ := jsonID(id).MarshalJSON()
	return strings.Trim(string(b), `"`)
}
