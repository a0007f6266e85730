package gatewayproxy_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/proxytest"
)

// More than sessionsKept (64) client sessions attached at once: the next identify must
// still get its READY, and the proxy must keep serving.
func TestManyAttachedSessionsDoNotHangTheProxy(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g}}})
	var clients []*client
	var lastSession string
	for i := range 70 {
		c := dial(t, r.URL(), gatewaycompress.None)
		c.identify(nil)
		done := make(chan struct{})
		go func() { defer close(done); lastSession, _ = c.ready() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("identify %d got no READY: the proxy hangs with %d sessions attached", i+1, i)
		}
		clients = append(clients, c)
	}
	// The newest session resumes on a new connection.
	last := clients[len(clients)-1]
	seq := last.seq
	_ = last.ws.Close()
	c := dial(t, r.URL(), gatewaycompress.None)
	c.seq = seq
	c.send(6, map[string]any{"token": proxytest.ClientToken, "session_id": lastSession, "seq": seq})
	if f := c.nextDispatch(); f.T != "RESUMED" {
		t.Errorf("the 70th session's resume got op %d %s %s, want RESUMED: the proxy forgot it while it was attached", f.Op, f.T, f.D)
	}
	r.Discord.SendMessage(g, 1, "still alive")
	if got := clients[0].messages(1); got[0] != "still alive" {
		t.Fatal(fmt.Sprint(got))
	}
}

// A client resumes from inside its READY burst (its connection ended after READY and one
// GUILD_CREATE, while the proxy was still writing the others): the proxy must either send
// the rest of the burst or refuse with op 9, never RESUMED with guilds missing.
func TestResumeFromInsideTheBurstIsNotServedWithGuildsMissing(t *testing.T) {
	var guilds []uint64
	for i := range 40 {
		guilds = append(guilds, guildOnShard(i+1, 0, 1))
	}
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: guilds}})
	waitUpstreamReady(t, r)
	big := strings.Repeat("d", 500<<10)
	for _, g := range guilds {
		if err := r.Discord.UpdateGuild(g, func(s *discordtest.GuildSettings) { s.Description = &big }); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(waitLimit)
	for metricValue(t, r, "shardkeeper_proxy_buffer_events") < float64(2*len(guilds)) {
		if time.Now().After(deadline) {
			t.Fatal("the proxy did not get the guild updates")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// ~20 MB of GUILD_CREATEs: the writer blocks on the socket after the first few.
	a := dialBuffered(t, r.URL(), gatewaycompress.None, 0)
	a.identify(nil)
	ready := a.nextDispatch()
	var rd struct {
		SessionID string `json:"session_id"`
	}
	_ = json.Unmarshal(ready.D, &rd)
	if gc := a.nextDispatch(); gc.T != "GUILD_CREATE" {
		t.Fatalf("%s after READY", gc.T)
	}
	seq := a.seq // 2: inside the burst

	b := dial(t, r.URL(), gatewaycompress.None)
	b.seq = seq
	b.send(6, map[string]any{"token": proxytest.ClientToken, "session_id": rd.SessionID, "seq": seq})
	creates := 0
	for {
		f := b.next()
		if f.Op == 9 {
			return // refused: the client identifies again and gets every guild
		}
		switch f.T {
		case "GUILD_CREATE":
			creates++
		case "RESUMED":
			if creates < len(guilds)-1 {
				t.Fatalf("RESUMED after %d GUILD_CREATEs; the client resumed at sequence %d of a burst of %d and never gets %d guilds",
					creates, seq, len(guilds)+1, len(guilds)-1-creates)
			}
			return
		}
	}
}

// Events that came while the bot container restarted are the new client's backlog, not a
// sign that it is slow: a client that reads everything must not be disconnected for it.
func TestAFreshClientIsNotEvictedForTheBacklogItWasHanded(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g}}, AdjustProxy: func(o *gatewayproxy.Options) {
		o.ReplayEvents, o.ClientQueue = 10000, 50
	}})
	c := dial(t, r.URL(), gatewaycompress.None)
	c.identify(nil)
	c.ready()
	_ = c.ws.Close()
	waitDetached(t, r)
	big := strings.Repeat("x", 16<<10)
	for i := range 1000 {
		r.Discord.SendMessage(g, 1, fmt.Sprint("while away ", i, big))
	}
	deadline := time.Now().Add(waitLimit)
	for metricValue(t, r, "shardkeeper_proxy_buffer_events") < 1001 {
		if time.Now().After(deadline) {
			t.Fatal("backlog not buffered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c2 := dial(t, r.URL(), gatewaycompress.None) // reads eagerly
	c2.identify(nil)
	for i := range 20 {
		r.Discord.SendMessage(g, 1, fmt.Sprint("live ", i))
		time.Sleep(time.Millisecond)
	}
	if n := metricValue(t, r, "shardkeeper_proxy_slow_client_disconnects_total"); n > 0 {
		t.Fatalf("a client that reads everything was disconnected as slow %v times: the backlog of 1000 it was handed counts against ClientQueue (50)", n)
	}
}
