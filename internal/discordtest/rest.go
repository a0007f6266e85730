package discordtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Reply kinds (Reply.Kind).
const (
	// ReplyInteractionCallback is POST /interactions/{id}/{token}/callback.
	ReplyInteractionCallback = "interaction_callback"
	// ReplyFollowupEdit is PATCH /webhooks/{app}/{token}/messages/{id} (usually
	// @original: editing the interaction's response).
	ReplyFollowupEdit = "followup_edit"
	// ReplyFollowupCreate is POST /webhooks/{app}/{token} (a follow-up message).
	ReplyFollowupCreate = "followup_create"
	// ReplyFollowupDelete is DELETE /webhooks/{app}/{token}/messages/{id}.
	ReplyFollowupDelete = "followup_delete"
	// ReplyChannelMessage is POST /channels/{id}/messages.
	ReplyChannelMessage = "channel_message"
)

// Reply is a message the bot sent through the REST API.
type Reply struct {
	// Kind is one of the Reply* constants.
	Kind string
	// Method is the HTTP method.
	Method string
	// Path is the request path below APIURL, e.g.
	// "/interactions/123/tok/callback" or "/channels/42/messages".
	Path string
	// Body is the JSON body (for multipart requests: the payload_json part; for
	// bodiless requests: null).
	Body json.RawMessage
	// At is when the request arrived.
	At time.Time
}

// Replies returns every reply recorded so far, in order.
func (s *Server) Replies() []Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Reply, len(s.replies))
	for i, r := range s.replies {
		r.Body = append(json.RawMessage(nil), r.Body...)
		out[i] = r
	}
	return out
}

// WaitReply returns the first recorded reply (including those recorded before the
// call) for which match returns true, waiting for one until the context is done or
// the server is closed. A nil match matches any reply. match runs with the server's
// lock held: it must not call the Server's methods.
func (s *Server) WaitReply(ctx context.Context, match func(Reply) bool) (Reply, error) {
	var found Reply
	err := s.waitFor(ctx, func() bool {
		for _, r := range s.replies {
			if match == nil || match(r) {
				found = r
				found.Body = append(json.RawMessage(nil), r.Body...)
				return true
			}
		}
		return false
	})
	return found, err
}

// Commands returns the global application commands last registered (PUT/POST
// /applications/{app}/commands), as the server stored them (with id,
// application_id, version and type filled in).
func (s *Server) Commands() []json.RawMessage { return s.GuildCommands(0) }

// GuildCommands returns the application commands registered for a guild (guildID 0:
// the global ones).
func (s *Server) GuildCommands(guildID uint64) []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneRaws(s.commands[guildID])
}

func cloneRaws(in []json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(in))
	for i, r := range in {
		out[i] = append(json.RawMessage(nil), r...)
	}
	return out
}

// apiError is Discord's JSON error body.
type apiError struct {
	Message string `json:"message"`
	Code    int    `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"500: Internal Server Error","code":0}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

type restHandler func(w http.ResponseWriter, r *http.Request, params []string, body json.RawMessage)

type restRoute struct {
	method  string
	pattern string // segments in braces are parameters
	botAuth bool   // requires "Authorization: Bot <token>"
	handle  restHandler
}

func (s *Server) restRoutes() []restRoute {
	return []restRoute{
		{"GET", "/gateway", false, s.handleGetGateway},
		{"GET", "/gateway/bot", true, s.handleGetGatewayBot},
		{"GET", "/users/@me", true, s.handleGetMe},
		{"GET", "/applications/@me", true, s.handleGetApplication},
		// discord.py's login asks the older OAuth2 route (http.py application_info).
		{"GET", "/oauth2/applications/@me", true, s.handleGetApplication},
		{"GET", "/applications/{application.id}/commands", true, s.handleGetCommands},
		{"PUT", "/applications/{application.id}/commands", true, s.handlePutCommands},
		{"POST", "/applications/{application.id}/commands", true, s.handlePostCommand},
		{"GET", "/applications/{application.id}/guilds/{guild.id}/commands", true, s.handleGetCommands},
		{"PUT", "/applications/{application.id}/guilds/{guild.id}/commands", true, s.handlePutCommands},
		{"POST", "/applications/{application.id}/guilds/{guild.id}/commands", true, s.handlePostCommand},
		{"POST", "/interactions/{interaction.id}/{interaction.token}/callback", false, s.handleInteractionCallback},
		{"POST", "/webhooks/{application.id}/{interaction.token}", false, s.handleFollowupCreate},
		{"PATCH", "/webhooks/{application.id}/{interaction.token}/messages/{message.id}", false, s.handleFollowupEdit},
		{"DELETE", "/webhooks/{application.id}/{interaction.token}/messages/{message.id}", false, s.handleFollowupDelete},
		{"POST", "/channels/{channel.id}/messages", true, s.handleChannelMessage},
		{"POST", "/channels/{channel.id}/typing", true, s.handleTyping},
	}
}

// matchPattern reports whether path matches pattern and returns the parameters.
func matchPattern(pattern, path string) ([]string, bool) {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	var params []string
	for i, p := range ps {
		if strings.HasPrefix(p, "{") {
			if xs[i] == "" {
				return nil, false
			}
			params = append(params, xs[i])
			continue
		}
		if p != xs[i] {
			return nil, false
		}
	}
	return params, true
}

func (s *Server) serveREST(w http.ResponseWriter, r *http.Request) {
	// Discord's answers come through Google's front end; discord.py takes a 429 without
	// Via for a Cloudflare ban and gives up instead of waiting retry_after.
	w.Header().Set("Via", "1.1 google")
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v10/")
	if !ok {
		if s.admitREST(w, r.Method+" "+templatePath(r.URL.Path), r.URL.Path) {
			writeJSON(w, http.StatusNotFound, apiError{Message: "404: Not Found"})
		}
		return
	}
	path = "/" + path

	var route *restRoute
	var params []string
	pathMatched := false
	for _, rt := range s.restRoutes() {
		p, ok := matchPattern(rt.pattern, path)
		if !ok {
			continue
		}
		pathMatched = true
		if rt.method == r.Method {
			route, params = &rt, p
			break
		}
	}
	if route == nil {
		if !s.admitREST(w, r.Method+" "+templatePath(path), path) {
			return
		}
		if pathMatched {
			writeJSON(w, http.StatusMethodNotAllowed, apiError{Message: "405: Method Not Allowed"})
			return
		}
		writeJSON(w, http.StatusNotFound, apiError{Message: "404: Not Found"})
		return
	}
	if !s.admitREST(w, route.method+" "+route.pattern, path) {
		return
	}

	if route.botAuth && r.Header.Get("Authorization") != "Bot "+s.opts.Token {
		writeJSON(w, http.StatusUnauthorized, apiError{Message: "401: Unauthorized"})
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Message: "The request body contains invalid JSON.", Code: 50109})
		return
	}
	route.handle(w, r, params, body)
}

// templatePath stands {id} for the numeric segments of a path no route matched, so that
// its requests share one counter and one rate limit bucket.
func templatePath(path string) string {
	seg := strings.Split(path, "/")
	for i, p := range seg {
		if p != "" && strings.Trim(p, "0123456789") == "" {
			seg[i] = "{id}"
		}
	}
	return strings.Join(seg, "/")
}

// readBody returns the request's JSON body (for multipart/form-data the payload_json
// part), or nil if there is none. It fails if the body is not valid JSON.
func readBody(r *http.Request) (json.RawMessage, error) {
	const maxBody = 32 << 20
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "multipart/form-data" {
		if err := r.ParseMultipartForm(maxBody); err != nil {
			return nil, err
		}
		payload := r.FormValue("payload_json")
		if payload == "" {
			return nil, nil
		}
		if !json.Valid([]byte(payload)) {
			return nil, errInvalidJSON
		}
		return json.RawMessage(payload), nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	if !json.Valid(b) {
		return nil, errInvalidJSON
	}
	return b, nil
}

type restErr string

func (e restErr) Error() string { return string(e) }

const errInvalidJSON = restErr("invalid JSON body")

func (s *Server) recordReplyLocked(kind string, r *http.Request, body json.RawMessage) {
	if body == nil {
		body = json.RawMessage("null")
	}
	s.replies = append(s.replies, Reply{
		Kind:   kind,
		Method: r.Method,
		Path:   strings.TrimPrefix(r.URL.Path, "/api/v10"),
		Body:   append(json.RawMessage(nil), body...),
		At:     time.Now(),
	})
	s.notifyLocked()
}

// ---- gateway ----

func (s *Server) handleGetGateway(w http.ResponseWriter, _ *http.Request, _ []string, _ json.RawMessage) {
	writeJSON(w, http.StatusOK, map[string]string{"url": s.wsURL})
}

type sessionStartLimit struct {
	Total          int   `json:"total"`
	Remaining      int   `json:"remaining"`
	ResetAfter     int64 `json:"reset_after"`
	MaxConcurrency int   `json:"max_concurrency"`
}

type gatewayBot struct {
	URL               string            `json:"url"`
	Shards            int               `json:"shards"`
	SessionStartLimit sessionStartLimit `json:"session_start_limit"`
}

func (s *Server) handleGetGatewayBot(w http.ResponseWriter, _ *http.Request, _ []string, _ json.RawMessage) {
	s.mu.Lock()
	resetAfter := s.sessionResetAfterLocked(time.Now())
	resp := gatewayBot{
		URL:    s.wsURL,
		Shards: s.opts.RecommendedShards,
		SessionStartLimit: sessionStartLimit{
			Total:          s.opts.SessionStartTotal,
			Remaining:      s.sessionRemaining,
			ResetAfter:     resetAfter.Milliseconds(),
			MaxConcurrency: s.opts.MaxConcurrency,
		},
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

// ---- users / applications ----

func (s *Server) handleGetMe(w http.ResponseWriter, _ *http.Request, _ []string, _ json.RawMessage) {
	writeJSON(w, http.StatusOK, s.botReadyUser())
}

// handleGetApplication answers GET /applications/@me and /oauth2/applications/@me with
// the application object. discord.py's AppInfo reads id, name, description, icon,
// rpc_origins, bot_public, bot_require_code_grant, owner (a user with avatar) and
// verify_key without defaults: they must all be there.
func (s *Server) handleGetApplication(w http.ResponseWriter, _ *http.Request, _ []string, _ json.RawMessage) {
	bot := s.botUser()
	owner := userObject{ID: jsonID(GuildOwnerID), Username: "owner", Discriminator: "0"}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                                jsonID(s.opts.ApplicationID),
		"name":                              s.opts.BotUsername,
		"icon":                              nil,
		"description":                       "",
		"summary":                           "",
		"type":                              nil,
		"hook":                              true,
		"bot_public":                        true,
		"bot_require_code_grant":            false,
		"bot":                               bot,
		"owner":                             owner,
		"verify_key":                        strings.Repeat("0", 64),
		"team":                              nil,
		"flags":                             0,
		"tags":                              []string{},
		"rpc_origins":                       []string{},
		"redirect_uris":                     []string{},
		"interactions_endpoint_url":         nil,
		"role_connections_verification_url": nil,
		"is_monetized":                      false,
		"approximate_guild_count":           len(s.opts.Guilds),
		"integration_types_config":          map[string]any{"0": map[string]any{}},
	})
}

// checkApp verifies the application ID path parameter.
func (s *Server) checkApp(w http.ResponseWriter, param string) bool {
	if param != strconv.FormatUint(s.opts.ApplicationID, 10) {
		writeJSON(w, http.StatusNotFound, apiError{Message: "Unknown Application", Code: 10002})
		return false
	}
	return true
}

// commandsKey is the guild ID of a commands route (0 for the global route).
func commandsKey(params []string) (uint64, bool) {
	if len(params) < 2 {
		return 0, true
	}
	g, err := strconv.ParseUint(params[1], 10, 64)
	return g, err == nil
}

// commandsTarget checks the application in the path and returns the command list's key
// (0 for global commands, else the guild), answering the error itself when there is none.
func (s *Server) commandsTarget(w http.ResponseWriter, params []string) (uint64, bool) {
	if !s.checkApp(w, params[0]) {
		return 0, false
	}
	key, ok := commandsKey(params)
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{Message: "Unknown Guild", Code: 10004})
	}
	return key, ok
}

func (s *Server) handleGetCommands(w http.ResponseWriter, _ *http.Request, params []string, _ json.RawMessage) {
	key, ok := s.commandsTarget(w, params)
	if !ok {
		return
	}
	s.mu.Lock()
	cmds := cloneRaws(s.commands[key])
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, cmds)
}

// normalizeCommandLocked fills in what Discord adds to a registered command: id (kept
// from an existing command of the same name and type), application_id, version,
// type (default 1), guild_id for guild commands and the optional fields a client
// expects. s.mu must be held.
func (s *Server) normalizeCommandLocked(raw json.RawMessage, guildID uint64, existing []json.RawMessage) (json.RawMessage, bool) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, false
	}
	var head struct {
		Name string `json:"name"`
		Type int    `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil || head.Name == "" {
		return nil, false
	}
	if head.Type == 0 {
		head.Type = 1
	}
	var id uint64
	for _, e := range existing {
		var c struct {
			ID   jsonID `json:"id"`
			Name string `json:"name"`
			Type int    `json:"type"`
		}
		if json.Unmarshal(e, &c) == nil && c.Name == head.Name && c.Type == head.Type {
			id = uint64(c.ID)
		}
	}
	if id == 0 {
		id = s.nextIDLocked()
	}
	fields["id"] = mustMarshal(jsonID(id))
	fields["type"] = mustMarshal(head.Type)
	fields["application_id"] = mustMarshal(jsonID(s.opts.ApplicationID))
	fields["version"] = mustMarshal(jsonID(s.nextIDLocked()))
	if guildID != 0 {
		fields["guild_id"] = mustMarshal(jsonID(guildID))
	}
	for k, v := range map[string]string{
		"description":                `""`,
		"default_member_permissions": "null",
		"nsfw":                       "false",
	} {
		if _, ok := fields[k]; !ok {
			fields[k] = json.RawMessage(v)
		}
	}
	return mustMarshal(fields), true
}

func (s *Server) handlePutCommands(w http.ResponseWriter, _ *http.Request, params []string, body json.RawMessage) {
	key, ok := s.commandsTarget(w, params)
	if !ok {
		return
	}
	var list []json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil || body == nil {
		writeJSON(w, http.StatusBadRequest, apiError{Message: "Invalid Form Body", Code: 50035})
		return
	}
	s.mu.Lock()
	out := make([]json.RawMessage, 0, len(list))
	for _, raw := range list {
		cmd, ok := s.normalizeCommandLocked(raw, key, s.commands[key])
		if !ok {
			s.mu.Unlock()
			writeJSON(w, http.StatusBadRequest, apiError{Message: "Invalid Form Body", Code: 50035})
			return
		}
		out = append(out, cmd)
	}
	s.commands[key] = out
	resp := cloneRaws(out)
	s.notifyLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handlePostCommand(w http.ResponseWriter, _ *http.Request, params []string, body json.RawMessage) {
	key, ok := s.commandsTarget(w, params)
	if !ok {
		return
	}
	s.mu.Lock()
	cmd, ok := s.normalizeCommandLocked(body, key, s.commands[key])
	if !ok {
		s.mu.Unlock()
		writeJSON(w, http.StatusBadRequest, apiError{Message: "Invalid Form Body", Code: 50035})
		return
	}
	var c struct {
		ID jsonID `json:"id"`
	}
	_ = json.Unmarshal(cmd, &c)
	status := http.StatusCreated
	cmds := s.commands[key]
	for i, e := range cmds {
		var ec struct {
			ID jsonID `json:"id"`
		}
		if json.Unmarshal(e, &ec) == nil && ec.ID == c.ID {
			cmds[i] = cmd
			status = http.StatusOK
		}
	}
	if status == http.StatusCreated {
		s.commands[key] = append(cmds, cmd)
	}
	s.notifyLocked()
	s.mu.Unlock()
	writeJSON(w, status, json.RawMessage(append([]byte(nil), cmd...)))
}

// ---- interactions and messages ----

// messageBody is what the server reads from a message create/edit body to echo it.
type messageBody struct {
	Content          string            `json:"content"`
	Nonce            json.RawMessage   `json:"nonce"`
	TTS              bool              `json:"tts"`
	Embeds           []json.RawMessage `json:"embeds"`
	Components       []json.RawMessage `json:"components"`
	Flags            int               `json:"flags"`
	MessageReference *struct {
		Type      int     `json:"type"`
		MessageID *jsonID `json:"message_id"`
		ChannelID *jsonID `json:"channel_id"`
		GuildID   *jsonID `json:"guild_id"`
	} `json:"message_reference"`
}

// echoMessageLocked builds the message object returned for a message the bot
// created or edited. s.mu must be held.
func (s *Server) echoMessageLocked(id, guildID, channelID uint64, body json.RawMessage, webhook bool) messageObject {
	var mb messageBody
	if body != nil {
		_ = json.Unmarshal(body, &mb)
	}
	msg := newMessage(id, guildID, channelID, s.botUser(), mb.Content, time.Now())
	msg.Flags = mb.Flags
	msg.TTS = mb.TTS
	if len(mb.Nonce) > 0 && string(mb.Nonce) != "null" {
		msg.Nonce = mb.Nonce
	}
	for _, e := range mb.Embeds {
		msg.Embeds = append(msg.Embeds, e)
	}
	for _, c := range mb.Components {
		msg.Components = append(msg.Components, c)
	}
	if ref := mb.MessageReference; ref != nil {
		// Discord answers with the reference filled in: a reply sent with only
		// message_id (discord.js) comes back with its channel and guild.
		out := map[string]any{"type": ref.Type, "channel_id": jsonID(channelID)}
		if ref.ChannelID != nil {
			out["channel_id"] = *ref.ChannelID
		}
		if ref.MessageID != nil {
			out["message_id"] = *ref.MessageID
		}
		switch {
		case ref.GuildID != nil:
			out["guild_id"] = *ref.GuildID
		case guildID != 0:
			out["guild_id"] = jsonID(guildID)
		}
		msg.MessageReference = out
	}
	if webhook {
		msg.WebhookID = sfPtr(s.opts.ApplicationID)
		msg.ApplicationID = sfPtr(s.opts.ApplicationID)
	}
	return msg
}

func (s *Server) interactionByTokenLocked(token string) *interactionRecord {
	for _, in := range s.interactions {
		if in.token == token {
			return in
		}
	}
	return nil
}

func (s *Server) handleInteractionCallback(w http.ResponseWriter, r *http.Request, params []string, body json.RawMessage) {
	id, err := strconv.ParseUint(params[0], 10, 64)
	if err != nil {
		writeJSON(w, http.StatusNotFound, apiError{Message: "Unknown interaction", Code: 10062})
		return
	}
	var cb struct {
		Type *int `json:"type"`
	}
	if body == nil || json.Unmarshal(body, &cb) != nil || cb.Type == nil {
		writeJSON(w, http.StatusBadRequest, apiError{Message: "Invalid Form Body", Code: 50035})
		return
	}

	s.mu.Lock()
	in := s.interactions[id]
	if in != nil {
		if in.token != params[1] {
			s.mu.Unlock()
			writeJSON(w, http.StatusNotFound, apiError{Message: "Unknown interaction", Code: 10062})
			return
		}
		if in.acked {
			s.mu.Unlock()
			writeJSON(w, http.StatusBadRequest, apiError{Message: "Interaction has already been acknowledged.", Code: 40060})
			return
		}
		in.acked = true
	}
	s.recordReplyLocked(ReplyInteractionCallback, r, body)
	typ, guildID := interactionTypeApplicationCommand, uint64(0)
	if in != nil {
		typ, guildID = in.typ, in.guildID
	}
	var resp map[string]any
	if r.URL.Query().Get("with_response") == "true" {
		msgID := s.nextIDLocked()
		resource := map[string]any{"type": *cb.Type}
		if *cb.Type == 4 || *cb.Type == 7 { // CHANNEL_MESSAGE_WITH_SOURCE, UPDATE_MESSAGE
			var data json.RawMessage
			var full struct {
				Data json.RawMessage `json:"data"`
			}
			if json.Unmarshal(body, &full) == nil {
				data = full.Data
			}
			resource["message"] = s.echoMessageLocked(msgID, guildID, guildID, data, true)
		}
		resp = map[string]any{
			"interaction": map[string]any{
				"id":                         jsonID(id),
				"type":                       typ,
				"response_message_id":        jsonID(msgID),
				"response_message_loading":   *cb.Type == 5,
				"response_message_ephemeral": false,
			},
			"resource": resource,
		}
	}
	s.mu.Unlock()

	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleFollowupCreate(w http.ResponseWriter, r *http.Request, params []string, body json.RawMessage) {
	s.handleWebhookMessage(w, r, params, body, ReplyFollowupCreate)
}

func (s *Server) handleFollowupEdit(w http.ResponseWriter, r *http.Request, params []string, body json.RawMessage) {
	s.handleWebhookMessage(w, r, params, body, ReplyFollowupEdit)
}

func (s *Server) handleWebhookMessage(w http.ResponseWriter, r *http.Request, params []string, body json.RawMessage, kind string) {
	if params[0] != strconv.FormatUint(s.opts.ApplicationID, 10) {
		writeJSON(w, http.StatusNotFound, apiError{Message: "Unknown Webhook", Code: 10015})
		return
	}
	s.mu.Lock()
	s.recordReplyLocked(kind, r, body)
	guildID := uint64(0)
	if in := s.interactionByTokenLocked(params[1]); in != nil {
		guildID = in.guildID
	}
	var msgID uint64
	if len(params) > 2 && params[2] != "@original" {
		msgID, _ = strconv.ParseUint(params[2], 10, 64)
	}
	if msgID == 0 {
		msgID = s.nextIDLocked()
	}
	msg := s.echoMessageLocked(msgID, guildID, guildID, body, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, msg)
}

func (s *Server) handleFollowupDelete(w http.ResponseWriter, r *http.Request, params []string, body json.RawMessage) {
	if params[0] != strconv.FormatUint(s.opts.ApplicationID, 10) {
		writeJSON(w, http.StatusNotFound, apiError{Message: "Unknown Webhook", Code: 10015})
		return
	}
	s.mu.Lock()
	s.recordReplyLocked(ReplyFollowupDelete, r, body)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// handleTyping answers POST /channels/{id}/typing (discord.py's typing(), discord.js's
// sendTyping()) with 204, as Discord does.
func (s *Server) handleTyping(w http.ResponseWriter, _ *http.Request, params []string, _ json.RawMessage) {
	if _, err := strconv.ParseUint(params[0], 10, 64); err != nil {
		writeJSON(w, http.StatusNotFound, apiError{Message: "Unknown Channel", Code: 10003})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleChannelMessage(w http.ResponseWriter, r *http.Request, params []string, body json.RawMessage) {
	channelID, err := strconv.ParseUint(params[0], 10, 64)
	if err != nil {
		writeJSON(w, http.StatusNotFound, apiError{Message: "Unknown Channel", Code: 10003})
		return
	}
	if body == nil {
		writeJSON(w, http.StatusBadRequest, apiError{Message: "Cannot send an empty message", Code: 50006})
		return
	}
	s.mu.Lock()
	s.recordReplyLocked(ReplyChannelMessage, r, body)
	// A guild's "general" channel has the guild's ID; other channels belong to the
	// guild a user's message in them came from.
	guildID := s.channelGuilds[channelID]
	for _, g := range s.opts.Guilds {
		if g == channelID {
			guildID = g
		}
	}
	msg := s.echoMessageLocked(s.nextIDLocked(), guildID, channelID, body, false)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, msg)
}
