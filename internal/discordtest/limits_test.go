package discordtest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func gatewayBotInfo(t *testing.T, srv *Server) gatewayBot {
	t.Helper()
	code, body := do(t, http.MethodGet, srv.APIURL()+"/gateway/bot", "Bot "+DefaultToken, "")
	if code != http.StatusOK {
		t.Fatalf("GET /gateway/bot: %d %s", code, body)
	}
	var info gatewayBot
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

func TestSessionStartBudgetRefillsAfterReset(t *testing.T) {
	srv := newTestServer(t, Options{IdentifyInterval: time.Nanosecond, SessionStartTotal: 10})
	srv.SetSessionStartLimit(1, 300*time.Millisecond)
	info := gatewayBotInfo(t, srv)
	if info.SessionStartLimit.Remaining != 1 || info.SessionStartLimit.ResetAfter <= 0 || info.SessionStartLimit.ResetAfter > 300 {
		t.Fatalf("after SetSessionStartLimit: %+v", info.SessionStartLimit)
	}
	c := dial(t, srv, "")
	c.identify(0, 1, 0)
	if got := srv.Stats().SessionStartRemaining; got != 0 {
		t.Fatalf("remaining after one identify = %d, want 0", got)
	}
	time.Sleep(350 * time.Millisecond)
	info = gatewayBotInfo(t, srv)
	if info.SessionStartLimit.Remaining != 10 {
		t.Fatalf("after the reset: remaining %d, want the total 10", info.SessionStartLimit.Remaining)
	}
	if after := time.Duration(info.SessionStartLimit.ResetAfter) * time.Millisecond; after < 23*time.Hour {
		t.Fatalf("a new period of the default 24h should start, reset_after = %v", after)
	}
}

func TestRecommendedAndRequiredShardsChange(t *testing.T) {
	srv := newTestServer(t, Options{})
	srv.SetRecommendedShards(4)
	if got := gatewayBotInfo(t, srv).Shards; got != 4 {
		t.Fatalf("recommended shards = %d, want 4", got)
	}
	srv.SetRequiredShards(4)
	c := dial(t, srv, "")
	c.hello()
	c.send(2, identifyPayload(DefaultToken, 0, 2, 0))
	c.expectClose(CloseShardingRequired)
	c2 := dial(t, srv, "")
	c2.identify(0, 4, 0)
}

func TestCoverageGaps(t *testing.T) {
	g0, g1 := guildID(0), guildID(1) // shard 0 and 1 of 2
	srv := newTestServer(t, Options{Guilds: []uint64{g0, g1}})
	a := dial(t, srv, "")
	a.identify(0, 2, 1)
	if srv.Covered() {
		t.Fatal("guild 1 has no shard yet, but Covered is true")
	}
	b := dial(t, srv, "")
	b.identify(1, 2, 1)
	if !srv.Covered() || len(srv.CoverageGaps()) != 0 {
		t.Fatalf("both shards up: covered %v, gaps %+v", srv.Covered(), srv.CoverageGaps())
	}

	// A second generation with 1 shard covers both guilds; cutting the first generation
	// then leaves no gap.
	c := dial(t, srv, "")
	c.identify(0, 1, 2)
	srv.Cut(1)
	if gaps := srv.CoverageGaps(); len(gaps) != 0 {
		t.Fatalf("the overlap should cover guild 1: gaps %+v", gaps)
	}

	// Cutting the only session of a guild opens a gap; reconnecting closes it.
	c.closeHandshake(4000)
	waitStats(t, srv, "the one-shard session to end", func(st Stats) bool { return st.OpenConnections == 1 })
	gaps := srv.CoverageGaps()
	if len(gaps) != 1 || gaps[0].Guild != g1 || !gaps[0].To.IsZero() {
		t.Fatalf("want one open gap for guild %d, got %+v", g1, gaps)
	}
	d := dial(t, srv, "")
	d.identify(1, 2, 1)
	gaps = srv.CoverageGaps()
	if len(gaps) != 1 || gaps[0].To.IsZero() || !srv.Covered() {
		t.Fatalf("want the gap closed, got %+v", gaps)
	}
}
