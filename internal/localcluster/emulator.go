package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/emulatorapi"
)

// Emulator is a client of cmd/discord-emulator's control API: it plays a Discord user.
type Emulator struct {
	// URL is the control API's base, e.g. http://10.97.0.12:8090.
	URL    string
	Client *http.Client
}

// EmulatorReply is one entry of GET /control/replies: something a bot sent.
type EmulatorReply struct {
	Kind   string          `json:"kind"`
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body"`
	At     time.Time       `json:"at"`
}

// Content is the message text of a reply, when it has one.
func (r EmulatorReply) Content() string {
	var m struct {
		Content string `json:"content"`
		Data    struct {
			Content string `json:"content"`
		} `json:"data"`
	}
	_ = json.Unmarshal(r.Body, &m)
	if m.Content != "" {
		return m.Content
	}
	return m.Data.Content
}

// InReplyTo is the ID of what a reply answers: the message it references, or the
// interaction whose callback it is; "" when it answers nothing.
func (r EmulatorReply) InReplyTo() string {
	var m struct {
		Reference struct {
			// A snowflake: discord.js sends a string, discord.py a number.
			MessageID json.Number `json:"message_id"`
		} `json:"message_reference"`
	}
	_ = json.Unmarshal(r.Body, &m)
	if m.Reference.MessageID != "" {
		return m.Reference.MessageID.String()
	}
	if rest, ok := strings.CutPrefix(r.Path, "/interactions/"); ok {
		id, _, _ := strings.Cut(rest, "/")
		return id
	}
	return ""
}

// SendMessage makes a user post content in a guild's channel and returns the message's
// ID, which a reply to it names (EmulatorReply.InReplyTo).
func (e Emulator) SendMessage(ctx context.Context, guild, channel uint64, content string) (string, error) {
	body, _ := json.Marshal(map[string]any{"guild": guild, "channel": channel, "content": content})
	return e.created(ctx, "/control/messages", body)
}

// SendSlashCommand makes a user run a slash command (its name, without the slash) in a
// guild's "general" channel and returns the interaction's ID; the bot's answer shows up
// in Replies, its Content the interaction response's data.content.
func (e Emulator) SendSlashCommand(ctx context.Context, guild uint64, command string) (string, error) {
	body, _ := json.Marshal(map[string]any{"guild": guild, "command": command})
	return e.created(ctx, "/control/interactions", body)
}

// created posts to a control endpoint that answers {"id": ...} (a number or a string).
func (e Emulator) created(ctx context.Context, path string, body []byte) (string, error) {
	var out struct {
		ID json.Number `json:"id"`
	}
	if err := e.do(ctx, http.MethodPost, path, body, &out); err != nil {
		return "", err
	}
	return out.ID.String(), nil
}

// Replies lists what bots sent, oldest first.
func (e Emulator) Replies(ctx context.Context) ([]EmulatorReply, error) {
	var out []EmulatorReply
	return out, e.do(ctx, http.MethodGet, "/control/replies", nil, &out)
}

// Stats reads the emulator's counters.
func (e Emulator) Stats(ctx context.Context) (emulatorapi.Stats, error) {
	var out emulatorapi.Stats
	return out, e.do(ctx, http.MethodGet, "/control/stats", nil, &out)
}

func (e Emulator) do(ctx context.Context, method, path string, body []byte, out any) error {
	client := e.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, method, e.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}
