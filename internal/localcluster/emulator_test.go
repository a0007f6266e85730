package localcluster

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSendSlashCommand: the request is the control API's (docs/discord-emulator.md), and
// the emulator's refusal reaches the caller with its reason.
func TestSendSlashCommand(t *testing.T) {
	var got struct {
		Guild   uint64 `json:"guild"`
		Command string `json:"command"`
	}
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/control/interactions" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if got.Guild != 4194305 {
			http.Error(w, "the bot is not in guild 42", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id": 99}`))
	}))
	defer control.Close()
	e := Emulator{URL: control.URL}

	id, err := e.SendSlashCommand(t.Context(), 4194305, "ping")
	if err != nil || id != "99" {
		t.Fatalf("SendSlashCommand: %q, %v; want the emulator's ID 99", id, err)
	}
	if got.Guild != 4194305 || got.Command != "ping" {
		t.Fatalf("the emulator was sent %+v, want guild 4194305 and command ping", got)
	}
	_, err = e.SendSlashCommand(t.Context(), 42, "ping")
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "not in guild 42") {
		t.Fatalf("a refused command: %v, want the status and the emulator's reason", err)
	}
}

// TestReplyContent: a message's content and an interaction response's data.content are
// both what the bot said.
func TestReplyContent(t *testing.T) {
	for body, want := range map[string]string{
		`{"content": "pong", "message_reference": {"message_id": "1"}}`: "pong",
		`{"type": 4, "data": {"content": "pong"}}`:                      "pong",
		`{"type": 5}`: "",
	} {
		if got := (EmulatorReply{Body: json.RawMessage(body)}).Content(); got != want {
			t.Errorf("Content of %s = %q, want %q", body, got, want)
		}
	}
}

func TestInReplyTo(t *testing.T) {
	for _, tt := range []struct {
		reply EmulatorReply
		want  string
	}{
		{EmulatorReply{Path: "/channels/1/messages", Body: []byte(`{"content":"pong","message_reference":{"message_id":"123"}}`)}, "123"},
		{EmulatorReply{Path: "/channels/1/messages", Body: []byte(`{"content":"pong","message_reference":{"message_id":1577217877365227520}}`)}, "1577217877365227520"},
		{EmulatorReply{Path: "/interactions/456/tok/callback", Body: []byte(`{"type":4,"data":{"content":"pong"}}`)}, "456"},
		{EmulatorReply{Path: "/channels/1/messages", Body: []byte(`{"content":"hello"}`)}, ""},
	} {
		if got := tt.reply.InReplyTo(); got != tt.want {
			t.Errorf("InReplyTo of %s %s = %q, want %q", tt.reply.Path, tt.reply.Body, got, tt.want)
		}
	}
}
