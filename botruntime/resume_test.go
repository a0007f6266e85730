package botruntime

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func TestResumeStoresMergeByShard(t *testing.T) {
	ctx := context.Background()
	stores := map[string]ResumeStore{
		"memory": NewMemoryResumeStore(),
		"file":   FileResumeStore{Path: filepath.Join(t.TempDir(), "resume.json")},
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			now := time.Now().UTC().Truncate(time.Second)
			if err := store.Save(ctx, []ResumeState{{Shard: 0, ShardCount: 4, SessionID: "a", Sequence: 7, SavedAt: now}}); err != nil {
				t.Fatal(err)
			}
			// Another runtime with other shards shares the store.
			if err := store.Save(ctx, []ResumeState{{Shard: 3, ShardCount: 4, SessionID: "b", Sequence: 9, SavedAt: now}}); err != nil {
				t.Fatal(err)
			}
			got, err := store.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].SessionID != "a" || got[3].Sequence != 9 || !got[3].SavedAt.Equal(now) {
				t.Errorf("loaded %+v", got)
			}
		})
	}
}

func TestExpectSeesOnlyLaterEvents(t *testing.T) {
	w := newWaiters(logr.Discard())
	r := &Runtime{waiters: w}
	other := r.Expect(func(Event) bool { return false }) // makes offers queue up
	defer other.Cancel()
	for seq := 1; seq <= 5; seq++ {
		w.offer(Event{Seq: seq})
	}
	mine := r.Expect(func(Event) bool { return true })
	w.offer(Event{Seq: 6})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	w.signal <- struct{}{}
	waitCtx, cancelWait := context.WithTimeout(ctx, 10*time.Second)
	defer cancelWait()
	ev, err := mine.Wait(waitCtx)
	if err != nil || ev.Seq != 6 {
		t.Fatalf("got seq %d (%v); want 6, the first event after Expect", ev.Seq, err)
	}
}

func TestResumeURLsMustBeVouchedForByTheGateway(t *testing.T) {
	tests := []struct {
		name, gateway, resume string
		ok                    bool
	}{
		{"Discord's regional resume host", "wss://gateway.discord.gg", "wss://gateway-us-east1-b.discord.gg", true},
		{"the gateway host itself", "wss://gateway.discord.gg", "wss://gateway.discord.gg/?v=10", true},
		{"a trailing dot and capitals", "wss://gateway.discord.gg", "wss://Gateway-US-East1-b.discord.gg.", true},
		{"an attacker's host", "wss://gateway.discord.gg", "wss://evil.example.com", false},
		{"a look-alike suffix", "wss://gateway.discord.gg", "wss://gateway.evildiscord.gg", false},
		{"the gateway's domain as a prefix", "wss://gateway.discord.gg", "wss://discord.gg.evil.com", false},
		{"plain ws to Discord", "wss://gateway.discord.gg", "ws://gateway-us-east1-b.discord.gg", false},
		{"another port", "wss://gateway.discord.gg", "wss://gateway-us-east1-b.discord.gg:8443", false},
		{"user information", "wss://gateway.discord.gg", "wss://user:pass@gateway.discord.gg", false},
		{"https is not a websocket", "wss://gateway.discord.gg", "https://gateway.discord.gg", false},
		{"a public suffix vouches for no neighbour", "wss://gw.example.co.uk", "wss://evil.co.uk", false},
		{"a public suffix parent: own host only", "wss://gw.example.co.uk", "wss://gw.example.co.uk", true},
		{"a private gateway's region", "wss://gw.example.co.uk", "wss://eu.example.co.uk", true},
		{"the test server", "ws://127.0.0.1:4242", "ws://127.0.0.1:4242", true},
		{"ws to another port", "ws://127.0.0.1:4242", "ws://127.0.0.1:4243", false},
		{"an IP gateway vouches for no other IP", "wss://10.0.0.1", "wss://10.0.0.2", false},
		{"the emulator", "ws://discord-emulator:8080", "ws://discord-emulator:8080", true},
		{"ws to an attacker from a ws gateway", "ws://discord-emulator:8080", "ws://attacker:8080", false},
		{"ws to a sibling of a ws gateway", "ws://gw.emulator.example.com", "ws://evil.emulator.example.com", false},
		{"wss from a ws gateway, same host", "ws://discord-emulator:8080", "wss://discord-emulator:8080", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkResumeURL(tt.gateway, tt.resume)
			if (err == nil) != tt.ok {
				t.Errorf("checkResumeURL(%q, %q) = %v, want ok %v", tt.gateway, tt.resume, err, tt.ok)
			}
		})
	}
}

func TestResumeRefusal(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	good := ResumeState{Shard: 0, ShardCount: 2, SessionID: "s", Sequence: 5, ResumeURL: "wss://gateway-us-east1-b.discord.gg", SavedAt: now.Add(-10 * time.Second)}
	with := func(change func(*ResumeState)) ResumeState { st := good; change(&st); return st }
	tests := []struct {
		name  string
		st    ResumeState
		wants string // "" when the state may be resumed
	}{
		{"fresh state from Discord", good, ""},
		{"no resume URL: resumes at the gateway", with(func(s *ResumeState) { s.ResumeURL = "" }), ""},
		{"a slightly fast clock", with(func(s *ResumeState) { s.SavedAt = now.Add(5 * time.Second) }), ""},
		{"dated in the future", with(func(s *ResumeState) { s.SavedAt = now.Add(time.Hour) }), "in the future"},
		{"just past the skew allowed", with(func(s *ResumeState) { s.SavedAt = now.Add(ResumeClockSkew + time.Second) }), "in the future"},
		{"too old", with(func(s *ResumeState) { s.SavedAt = now.Add(-ResumeMaxAge - time.Second) }), "ago"},
		{"another shard count", with(func(s *ResumeState) { s.ShardCount = 4 }), "shards"},
		{"an attacker's ws host", with(func(s *ResumeState) { s.ResumeURL = "ws://attacker.example:80" }), "resume URL refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resumeRefusal(tt.st, 2, "wss://gateway.discord.gg", now)
			if tt.wants == "" && got != "" || tt.wants != "" && !strings.Contains(got, tt.wants) {
				t.Errorf("resumeRefusal = %q, want %q", got, tt.wants)
			}
		})
	}
}
