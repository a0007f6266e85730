package gatewayproxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/guildcache"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/proxytest"
)

const waitLimit = 20 * time.Second

func guildOnShard(n, shard, count int) uint64 { return uint64(n*count+shard) << 22 }

// client is a raw gateway client of the proxy.
type client struct {
	t    *testing.T
	ws   *proxytest.Conn
	seq  int
	msgs chan frame
	errs chan error
}

type frame struct {
	Op int             `json:"op"`
	T  string          `json:"t"`
	S  *int            `json:"s"`
	D  json.RawMessage `json:"d"`
}

func dial(t *testing.T, url string, mode gatewaycompress.Mode) *client {
	t.Helper()
	return dialBuffered(t, url, mode, 10000)
}

// dialBuffered is dial with room for n frames read ahead of the test: with none, the
// client reads from its socket only as fast as the test takes frames.
func dialBuffered(t *testing.T, url string, mode gatewaycompress.Mode, n int) *client {
	t.Helper()
	ws, err := proxytest.Dial(url, mode)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, ws: ws, msgs: make(chan frame, n), errs: make(chan error, 1)}
	t.Cleanup(func() { _ = ws.Close() })
	go func() {
		for {
			data, err := ws.ReadPayload()
			if err != nil {
				c.errs <- err
				return
			}
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				c.errs <- fmt.Errorf("%w: %s", err, data)
				return
			}
			c.msgs <- f
		}
	}()
	if hello := c.next(); hello.Op != 10 {
		t.Fatalf("first frame %+v, want Hello", hello)
	}
	return c
}

// next is the next frame; it fails the test on a read error.
func (c *client) next() frame {
	c.t.Helper()
	select {
	case f := <-c.msgs:
		if f.Op == 0 && f.S != nil {
			if *f.S != c.seq+1 {
				c.t.Errorf("%s has sequence %d after %d", f.T, *f.S, c.seq)
			}
			c.seq = *f.S
		}
		return f
	case err := <-c.errs:
		c.t.Fatalf("read: %v", err)
	case <-time.After(waitLimit):
		c.t.Fatal("no frame")
	}
	return frame{}
}

// closeCode waits for the connection to end and gives the close code it ended with.
func (c *client) closeCode() int {
	c.t.Helper()
	for {
		select {
		case f := <-c.msgs:
			c.t.Logf("frame before the close: op %d %s", f.Op, f.T)
		case err := <-c.errs:
			if ce, ok := err.(*websocket.CloseError); ok {
				return ce.Code
			}
			return -1
		case <-time.After(waitLimit):
			c.t.Fatal("the connection did not close")
		}
	}
}

// nextDispatch skips ACKs.
func (c *client) nextDispatch() frame {
	c.t.Helper()
	for {
		if f := c.next(); f.Op != 11 {
			return f
		}
	}
}

func (c *client) send(op int, d any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(map[string]any{"op": op, "d": d}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) identify(shard []int) {
	d := map[string]any{"token": proxytest.ClientToken, "intents": 513, "properties": map[string]string{"os": "linux"}}
	if shard != nil {
		d["shard"] = shard
	}
	c.send(2, d)
}

// ready reads READY and the GUILD_CREATEs of the guilds it lists as unavailable.
func (c *client) ready() (sessionID string, guilds []string) {
	c.t.Helper()
	f := c.nextDispatch()
	if f.T != "READY" {
		c.t.Fatalf("first dispatch %s, want READY: %s", f.T, f.D)
	}
	var r struct {
		SessionID        string `json:"session_id"`
		ResumeGatewayURL string `json:"resume_gateway_url"`
		Guilds           []struct {
			ID          string `json:"id"`
			Unavailable bool   `json:"unavailable"`
		} `json:"guilds"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(f.D, &r); err != nil {
		c.t.Fatal(err)
	}
	if r.SessionID == "" || !strings.HasPrefix(r.ResumeGatewayURL, "ws://127.0.0.1:") || r.User.ID == "" {
		c.t.Errorf("READY %s", f.D)
	}
	for range r.Guilds {
		g := c.nextDispatch()
		var id struct{ ID string }
		_ = json.Unmarshal(g.D, &id)
		if g.T != "GUILD_CREATE" {
			c.t.Fatalf("%s after READY, want GUILD_CREATE", g.T)
		}
		guilds = append(guilds, id.ID)
	}
	return r.SessionID, guilds
}

// messageContent reads a MESSAGE_CREATE's content, "" for another event.
func messageContent(f frame) string {
	if f.T != "MESSAGE_CREATE" {
		return ""
	}
	var m struct{ Content string }
	_ = json.Unmarshal(f.D, &m)
	return m.Content
}

// messages reads dispatches until n MESSAGE_CREATEs came and gives their contents.
func (c *client) messages(n int) []string {
	c.t.Helper()
	var out []string
	for len(out) < n {
		f := c.nextDispatch()
		if m := messageContent(f); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// waitDetached waits until the proxy has seen its client go.
func waitDetached(t *testing.T, r *proxytest.Rig) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for ok, _ := r.Proxy.ClientReady(); ok; ok, _ = r.Proxy.ClientReady() {
		if time.Now().After(deadline) {
			t.Fatal("the proxy still counts the client")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitUpstreamReady(t *testing.T, r *proxytest.Rig) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for ok, _ := r.Runtime.Ready(); !ok; ok, _ = r.Runtime.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("upstream not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAClientIdentifiesAndGetsEventsInEveryCompression(t *testing.T) {
	for _, mode := range []gatewaycompress.Mode{gatewaycompress.None, gatewaycompress.ZlibStream, gatewaycompress.ZstdStream} {
		t.Run(string(mode), func(t *testing.T) {
			g := guildOnShard(1, 0, 1)
			r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g}}})
			c := dial(t, r.URL(), mode)
			c.identify(nil)
			_, guilds := c.ready()
			if len(guilds) != 1 || guilds[0] != fmt.Sprint(g) {
				t.Fatalf("guilds %v, want [%d]", guilds, g)
			}
			c.send(1, c.seq)
			if f := c.next(); f.Op != 11 {
				t.Fatalf("%+v after a heartbeat, want an ACK", f)
			}
			r.Discord.SendMessage(g, 1, "hello")
			if got := c.messages(1); got[0] != "hello" {
				t.Fatalf("got %v", got)
			}
			// The client's heartbeats never reach Discord.
			if ops := r.Discord.Stats().PerShard[0].OpsReceived; len(ops) != 1 || ops[0][1] > 0 {
				t.Errorf("upstream ops %v", ops)
			}
		})
	}
}

// A client that goes away and identifies again gets the guilds from the cache and then
// every message sent while it was away, once; Discord sees nothing of it.
func TestMessagesSentWhileNoClientIsConnectedReachTheNextOne(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g}}})
	c := dial(t, r.URL(), gatewaycompress.None)
	c.identify(nil)
	c.ready()
	r.Discord.SendMessage(g, 1, "before")
	c.messages(1)
	c.send(1, c.seq)
	_ = c.ws.Close()
	waitDetached(t, r)

	for i := range 5 {
		r.Discord.SendMessage(g, 1, fmt.Sprint("while away ", i))
	}
	c2 := dial(t, r.URL(), gatewaycompress.None)
	c2.identify(nil)
	_, guilds := c2.ready()
	if len(guilds) != 1 {
		t.Fatalf("guilds %v", guilds)
	}
	got := c2.messages(5)
	for i, m := range got {
		if m != fmt.Sprint("while away ", i) {
			t.Fatalf("messages %v", got)
		}
	}
	r.Discord.SendMessage(g, 1, "live")
	if f := c2.nextDispatch(); messageContent(f) != "live" {
		t.Fatalf("after the backlog: %s %s (a GUILD_CREATE sent twice?)", f.T, f.D)
	}
	st := r.Discord.Stats()
	if st.Identifies != 1 || st.Connections != 1 {
		t.Errorf("upstream identifies %d, connections %d; want 1 and 1", st.Identifies, st.Connections)
	}
}

func TestAClientResumesAndGetsWhatItMissedThenRESUMED(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g}}})
	c := dial(t, r.URL(), gatewaycompress.ZlibStream)
	c.identify(nil)
	session, _ := c.ready()
	r.Discord.SendMessage(g, 1, "seen")
	c.messages(1)
	seq := c.seq
	_ = c.ws.Close()
	for i := range 3 {
		r.Discord.SendMessage(g, 1, fmt.Sprint("missed ", i))
	}
	// The resume must find them in the buffer: the GUILD_CREATE and four messages.
	deadline := time.Now().Add(waitLimit)
	for metricValue(t, r, "shardkeeper_proxy_buffer_events") < 5 {
		if time.Now().After(deadline) {
			t.Fatal("the missed messages never reached the proxy")
		}
		time.Sleep(5 * time.Millisecond)
	}

	c2 := dial(t, r.URL(), gatewaycompress.ZlibStream)
	c2.seq = seq
	c2.send(6, map[string]any{"token": proxytest.ClientToken, "session_id": session, "seq": seq})
	if got := c2.messages(3); got[0] != "missed 0" || got[2] != "missed 2" {
		t.Fatalf("replayed %v", got)
	}
	if f := c2.nextDispatch(); f.T != "RESUMED" {
		t.Fatalf("%s after the replay, want RESUMED", f.T)
	}
	r.Discord.SendMessage(g, 1, "live")
	if got := c2.messages(1); got[0] != "live" {
		t.Fatalf("got %v", got)
	}

	// A resume from a sequence number the session never had, or of a session that
	// never was, is refused with op 9 false.
	for _, bad := range []map[string]any{
		{"token": proxytest.ClientToken, "session_id": "nope", "seq": 1},
		{"token": proxytest.ClientToken, "session_id": session, "seq": c2.seq + 100},
	} {
		c3 := dial(t, r.URL(), gatewaycompress.None)
		c3.send(6, bad)
		if f := c3.next(); f.Op != 9 || string(f.D) != "false" {
			t.Errorf("resume %v: %+v, want op 9 false", bad, f)
		}
	}
	if st := r.Discord.Stats(); st.Identifies != 1 || st.Connections != 1 {
		t.Errorf("upstream identifies %d, connections %d", st.Identifies, st.Connections)
	}
}

func TestWrongClientPayloadsGetDiscordsCloseCodes(t *testing.T) {
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{guildOnShard(1, 0, 2), guildOnShard(1, 1, 2)}}, ShardIDs: []int{0, 1}, ShardCount: 2})
	cases := []struct {
		name string
		send func(c *client)
		code int
	}{
		{"real token is not the client's", func(c *client) {
			c.send(2, map[string]any{"token": discordtest.DefaultToken, "intents": 1, "properties": map[string]string{}})
		}, 4004},
		{"shard the pod does not run", func(c *client) { c.identify([]int{2, 4}) }, 4010},
		{"command before identify", func(c *client) { c.send(3, map[string]any{"status": "online"}) }, 4003},
		{"unknown opcode", func(c *client) { c.send(42, nil) }, 4001},
		{"not JSON", func(c *client) { _ = c.ws.WriteMessage(websocket.TextMessage, []byte("{")) }, 4002},
		{"identify twice", func(c *client) { c.identify(nil); c.identify(nil) }, 4005},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, r.URL(), gatewaycompress.None)
			tc.send(c)
			if code := c.closeCode(); code != tc.code {
				t.Errorf("close code %d, want %d", code, tc.code)
			}
		})
	}
	t.Run("compress the proxy does not know", func(t *testing.T) {
		ws, _, err := websocket.DefaultDialer.Dial(r.URL()+"?v=10&compress=brotli", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 4002 {
					t.Errorf("ended with %v, want 4002", err)
				}
				return
			}
		}
	})
}

// A pod of two shards: a plain client (no shard in its identify) gets both in one stream;
// a client per shard, named by the bot's count or by the pod's, gets its own.
func TestShardsMergedOrOnePerClient(t *testing.T) {
	g0, g1 := guildOnShard(1, 2, 4), guildOnShard(1, 3, 4)
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g0, g1}}, ShardIDs: []int{2, 3}, ShardCount: 4})
	waitUpstreamReady(t, r)

	plain := dial(t, r.URL(), gatewaycompress.None)
	plain.identify(nil)
	if _, guilds := plain.ready(); len(guilds) != 2 {
		t.Fatalf("plain client got guilds %v, want both shards'", guilds)
	}
	byCount := dial(t, r.URL(), gatewaycompress.None)
	byCount.identify([]int{3, 4})
	if _, guilds := byCount.ready(); len(guilds) != 1 || guilds[0] != fmt.Sprint(g1) {
		t.Fatalf("[3, 4] got guilds %v, want [%d]", guilds, g1)
	}
	byPod := dial(t, r.URL(), gatewaycompress.None)
	byPod.identify([]int{0, 2})
	if _, guilds := byPod.ready(); len(guilds) != 1 || guilds[0] != fmt.Sprint(g0) {
		t.Fatalf("[0, 2] got guilds %v, want [%d] (the pod's first shard)", guilds, g0)
	}
	r.Discord.SendMessage(g0, 1, "to shard 2")
	r.Discord.SendMessage(g1, 1, "to shard 3")
	// The shards are two connections upstream: their events come in either order.
	if got := plain.messages(2); !slices.Contains(got, "to shard 2") || !slices.Contains(got, "to shard 3") {
		t.Errorf("plain client got %v", got)
	}
	if got := byCount.messages(1); got[0] != "to shard 3" {
		t.Errorf("[3, 4] got %v", got)
	}
	if got := byPod.messages(1); got[0] != "to shard 2" {
		t.Errorf("[0, 2] got %v", got)
	}
}

func TestClientCommandsGoUpstreamOnTheGuildsShard(t *testing.T) {
	g0, g1 := guildOnShard(1, 0, 2), guildOnShard(1, 1, 2)
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g0, g1}}, ShardIDs: []int{0, 1}, ShardCount: 2})
	c := dial(t, r.URL(), gatewaycompress.None)
	// The identify's presence goes upstream too, as the first presence update.
	c.send(2, map[string]any{"token": proxytest.ClientToken, "intents": 513, "properties": map[string]string{},
		"presence": map[string]any{"since": nil, "activities": []any{}, "status": "dnd", "afk": false}})
	c.ready()
	c.send(8, map[string]any{"guild_id": fmt.Sprint(g1), "query": "", "limit": 0, "nonce": "n1"})
	c.send(3, map[string]any{"since": nil, "activities": []any{}, "status": "idle", "afk": false})
	// Soundboard sounds of guilds on both shards: one request per shard.
	c.send(31, map[string]any{"guild_ids": []string{fmt.Sprint(g0), fmt.Sprint(g1)}})
	deadline := time.Now().Add(waitLimit)
	for {
		st := r.Discord.Stats()
		ops0, ops1 := st.PerShard[0].OpsReceived, st.PerShard[1].OpsReceived
		if len(ops0) == 1 && len(ops1) == 1 && ops1[0][8] == 1 && ops0[0][8] == 0 && ops0[0][3] == 2 && ops1[0][3] == 2 &&
			ops0[0][31] == 1 && ops1[0][31] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream ops: shard 0 %v, shard 1 %v; want op 8 on shard 1 only, two op 3 and one op 31 on both", ops0, ops1)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRESTUsesTheRealTokenAndOnlyForTheClientsPlaceholder(t *testing.T) {
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{guildOnShard(1, 0, 1)}}})
	get := func(path, token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, r.HTTP.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bot "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, body := get("/api/v10/users/@me", proxytest.ClientToken); code != 200 || body["id"] == nil {
		t.Errorf("users/@me with the placeholder: %d %v", code, body)
	}
	if code, _ := get("/api/v10/users/@me", discordtest.DefaultToken); code != 401 {
		t.Errorf("users/@me with the real token: %d, want 401 (only the placeholder is accepted)", code)
	}
	code, body := get("/api/v10/gateway/bot", proxytest.ClientToken)
	if code != 200 || body["url"] != r.URL() || body["shards"] != float64(1) || body["session_start_limit"] == nil {
		t.Errorf("gateway/bot: %d %v", code, body)
	}
	if code, body := get("/api/v9/gateway", ""); code != 200 || body["url"] != r.URL() {
		t.Errorf("gateway: %d %v", code, body)
	}
	// A path that climbs could dodge the routes the proxy answers itself.
	if code, _ := get("/api/v10/users/../gateway/bot", proxytest.ClientToken); code != 400 {
		t.Errorf("a path with ..: %d, want 400", code)
	}
}

// A member request's chunk comes back to the client that asked, not to the others.
func TestMembersChunkGoesBackToTheClientThatAsked(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g}}})
	asker, other := dial(t, r.URL(), gatewaycompress.None), dial(t, r.URL(), gatewaycompress.None)
	asker.identify(nil)
	asker.ready()
	other.identify(nil)
	other.ready()
	asker.send(8, map[string]any{"guild_id": fmt.Sprint(g), "query": "", "limit": 0, "nonce": "mine"})
	if f := asker.nextDispatch(); f.T != "GUILD_MEMBERS_CHUNK" || !strings.Contains(string(f.D), `"nonce":"mine"`) {
		t.Fatalf("the asker got %s %s", f.T, f.D)
	}
	r.Discord.SendMessage(g, 1, "after the chunk")
	if f := other.nextDispatch(); messageContent(f) != "after the chunk" {
		t.Fatalf("the other client got %s %s before the message", f.T, f.D)
	}
}

// The client probes: live while the client heartbeats within the tolerance; not once it
// stops; live again (the startup bound) once it is gone, so that a restarted container
// has time to connect; ready only with a client connected.
func TestClientProbes(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	clk := clocktesting.NewFakeClock(time.Now())
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g}}, AdjustProxy: func(o *gatewayproxy.Options) {
		o.Clock, o.HeartbeatInterval, o.ClientTolerance, o.StartupBound = clk, time.Second, 3, time.Minute
	}})
	if ok, why := r.Proxy.ClientLive(); !ok {
		t.Fatalf("live before any client, within the startup bound: %s", why)
	}
	clk.Step(61 * time.Second)
	if ok, _ := r.Proxy.ClientLive(); ok {
		t.Fatal("live with no client past the startup bound")
	}
	c := dial(t, r.URL(), gatewaycompress.None)
	c.identify(nil)
	c.ready()
	waitUpstreamReady(t, r)
	if ok, why := r.Proxy.ClientReady(); !ok {
		t.Fatalf("not ready with a client: %s", why)
	}
	clk.Step(2 * time.Second)
	c.send(1, c.seq)
	c.next()
	clk.Step(2 * time.Second)
	if ok, why := r.Proxy.ClientLive(); !ok {
		t.Fatalf("not live 2 s after a heartbeat (tolerance 3 s): %s", why)
	}
	clk.Step(2 * time.Second)
	if ok, _ := r.Proxy.ClientLive(); ok {
		t.Fatal("live 4 s after the last heartbeat")
	}
	_ = c.ws.Close()
	waitDetached(t, r)
	if ok, why := r.Proxy.ClientLive(); !ok {
		t.Fatalf("not live right after the client left: %s", why)
	}
	if ok, _ := r.Proxy.ClientReady(); ok {
		t.Fatal("ready with no client")
	}
}

// A client that reads nothing falls behind; past ClientQueue entries it is disconnected,
// and its resume gets everything it had not read.
func TestASlowClientIsDisconnectedAndResumesWithNothingLost(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g}}, AdjustProxy: func(o *gatewayproxy.Options) {
		o.ReplayEvents, o.ClientQueue = 100000, 50
	}})
	// A client that identifies, reads its READY and GUILD_CREATE, then nothing more.
	c := dialBuffered(t, r.URL(), gatewaycompress.None, 0)
	c.identify(nil)
	session, _ := c.ready()
	seq := c.seq
	// Big messages, so that the sockets' buffers fill and the writer falls behind.
	big := strings.Repeat("x", 64<<10)
	sent := 0
	for metricValue(t, r, "shardkeeper_proxy_slow_client_disconnects_total") == 0 {
		r.Discord.SendMessage(g, 1, fmt.Sprint(sent, " ", big))
		if sent++; sent > 5000 {
			t.Fatal("5000 messages of 64 KiB and the client was never found slow")
		}
	}
	// Every message is in the buffer (after the GUILD_CREATE) before the client resumes.
	deadline := time.Now().Add(waitLimit)
	for metricValue(t, r, "shardkeeper_proxy_buffer_events") < float64(sent+1) {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy holds %v events, want %d", metricValue(t, r, "shardkeeper_proxy_buffer_events"), sent+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c2 := dial(t, r.URL(), gatewaycompress.None)
	c2.seq = seq
	c2.send(6, map[string]any{"token": proxytest.ClientToken, "session_id": session, "seq": seq})
	got := 0
	for {
		f := c2.nextDispatch()
		if f.T == "RESUMED" {
			break
		}
		if f.T != "MESSAGE_CREATE" {
			continue
		}
		// The resume starts where the slow client's reading stopped: from message 0.
		if !strings.HasPrefix(messageContent(f), fmt.Sprint(got, " ")) {
			t.Fatalf("message %d: %.20s", got, messageContent(f))
		}
		got++
	}
	if got != sent {
		t.Errorf("resumed with %d messages, %d were sent", got, sent)
	}
}

func metricValue(t *testing.T, r *proxytest.Rig, name string) float64 {
	t.Helper()
	for _, c := range r.Proxy.Collectors() {
		ch := make(chan prometheus.Metric, 100)
		go func() { c.Collect(ch); close(ch) }()
		for m := range ch {
			if !strings.Contains(m.Desc().String(), `"`+name+`"`) {
				continue
			}
			var out dto.Metric
			_ = m.Write(&out)
			if out.Counter != nil {
				return out.Counter.GetValue()
			}
			return out.Gauge.GetValue()
		}
	}
	return 0
}

// On a connection carrying two shards, a shard out of room in its send limit holds up its
// own commands only.
func TestAShardAtItsSendLimitHoldsUpOnlyItsOwnCommands(t *testing.T) {
	g0, g1 := guildOnShard(1, 0, 2), guildOnShard(1, 1, 2)
	r := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g0, g1}}, ShardIDs: []int{0, 1}, ShardCount: 2})
	c := dial(t, r.URL(), gatewaycompress.None)
	c.identify(nil)
	c.ready()
	for range 125 { // more than a window leaves for commands (115 of 120)
		c.send(8, map[string]any{"guild_id": fmt.Sprint(g0), "query": "", "limit": 1})
	}
	c.send(8, map[string]any{"guild_id": fmt.Sprint(g1), "query": "", "limit": 1})
	deadline := time.Now().Add(waitLimit)
	for {
		st := r.Discord.Stats()
		ops0, ops1 := st.PerShard[0].OpsReceived, st.PerShard[1].OpsReceived
		if len(ops1) == 1 && ops1[0][8] == 1 && len(ops0) == 1 && ops0[0][8] >= 100 {
			if ops0[0][8] > 118 {
				t.Errorf("shard 0 got %d member requests within a window; its limiter should hold the rest", ops0[0][8])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream ops: shard 0 %v, shard 1 %v; shard 1's request waited behind shard 0's", ops0, ops1)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A proxy that replaces another (a new pod, with the old one's resume state) resumes
// the Discord session, so nothing said meanwhile is lost, then starts a new session for
// the READY and guilds it never saw: its client gets the guilds, then what was said.
func TestAReplacementProxyResumesThenStartsANewSessionForTheGuilds(t *testing.T) {
	g := guildOnShard(1, 0, 1)
	state := filepath.Join(t.TempDir(), "resume-state.json")
	first := proxytest.New(t, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{g}}, ResumeStateFile: state})
	c := dial(t, first.URL(), gatewaycompress.None)
	c.identify(nil)
	c.ready()
	first.Discord.SendMessage(g, 1, "before")
	c.messages(1)
	first.Stop()
	first.Discord.SendMessage(g, 1, "while replaced")

	second := proxytest.New(t, proxytest.Config{Server: first.Discord, ResumeStateFile: state})
	c2 := dial(t, second.URL(), gatewaycompress.None)
	c2.identify(nil)
	if _, guilds := c2.ready(); len(guilds) != 1 {
		t.Fatalf("guilds %v, want the one guild", guilds)
	}
	if got := c2.messages(1); got[0] != "while replaced" {
		t.Fatalf("after the guilds: %v, want what was said while the proxy was replaced", got)
	}
	second.Discord.SendMessage(g, 1, "live")
	if f := c2.nextDispatch(); messageContent(f) != "live" {
		t.Fatalf("then %s %s, want the live message", f.T, f.D)
	}
	if st := second.Discord.Stats(); st.Resumes != 1 || st.Identifies != 2 {
		t.Errorf("upstream resumes %d, identifies %d; want the resume, then a new session", st.Resumes, st.Identifies)
	}
	// On the session it identified itself, there is nothing to start anew.
	if err := second.Runtime.StartNewSession(0); !errors.Is(err, botruntime.ErrNotResumedSession) {
		t.Errorf("StartNewSession on an identified session: %v, want ErrNotResumedSession", err)
	}
}

// fakeUpstream is an Upstream whose sessions the test plays by calling HandleEvent.
type fakeUpstream struct{ newSessions chan int }

func (f *fakeUpstream) SendRawCommand(context.Context, int, gateway.Opcode, json.RawMessage) error {
	return nil
}
func (f *fakeUpstream) Shards() []botruntime.ShardStatus {
	return []botruntime.ShardStatus{{ID: 0, State: botruntime.StateReady}}
}
func (f *fakeUpstream) StartNewSession(shard int) error { f.newSessions <- shard; return nil }

// What Discord replays to a replacement proxy reaches its client after the new session's
// guilds, and so do the new session's own events until those are in; the replayed
// GUILD_CREATEs, older than the new session's, are dropped. The client here connects
// between the new READY and its GUILD_CREATEs, where a busy bot's client often does.
func TestReplayedAndEarlyEventsComeAfterTheNewSessionsGuilds(t *testing.T) {
	up := &fakeUpstream{newSessions: make(chan int, 4)}
	p, err := gatewayproxy.New(gatewayproxy.Options{
		ShardIDs: []int{0}, ShardCount: 1, ClientToken: proxytest.ClientToken, RealToken: "real", APIURL: "http://127.0.0.1:1/api/v10",
		NewCache: func(int) gatewayproxy.Cache { return guildcache.New(guildcache.Options{}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	p.SetUpstream(up)
	g1, g2 := guildOnShard(1, 0, 1), guildOnShard(2, 0, 1)
	guild := func(id uint64, name string) string {
		return fmt.Sprintf(`{"id":"%d","name":%q,"channels":[],"roles":[],"members":[],"emojis":[],"stickers":[],"threads":[],"voice_states":[]}`, id, name)
	}
	message := func(id, g uint64, content string) string {
		return fmt.Sprintf(`{"id":"%d","channel_id":"%d","guild_id":"%d","content":%q,"author":{"id":"9","username":"u"}}`, id, g, g, content)
	}
	feed := func(events ...[2]string) {
		for _, ev := range events {
			p.HandleEvent(context.Background(), botruntime.Event{Shard: 0, Type: gateway.EventType(ev[0]), Raw: json.RawMessage(ev[1])})
		}
	}
	feed(
		[2]string{"MESSAGE_CREATE", message(101, g2, "replayed")},
		[2]string{"GUILD_CREATE", guild(g2, "old name")},
		[2]string{"RESUMED", `{}`},
	)
	select {
	case <-up.newSessions:
	case <-time.After(waitLimit):
		t.Fatal("the proxy never asked for a new session after resuming another process's")
	}
	feed([2]string{"READY", fmt.Sprintf(`{"v":10,"session_id":"s2","resume_gateway_url":"ws://x","user":{"id":"1","username":"bot"},"application":{"id":"1","flags":0},"guilds":[{"id":"%d","unavailable":true},{"id":"%d","unavailable":true}]}`, g1, g2)})

	hs := httptest.NewServer(p)
	t.Cleanup(hs.Close)
	c := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"), gatewaycompress.None)
	c.identify(nil)
	if f := c.nextDispatch(); f.T != "READY" {
		t.Fatalf("first %s, want READY", f.T)
	}
	feed(
		[2]string{"GUILD_CREATE", guild(g1, "one")},
		[2]string{"MESSAGE_CREATE", message(102, g1, "live during the burst")},
		[2]string{"GUILD_CREATE", guild(g2, "new name")},
		[2]string{"MESSAGE_CREATE", message(103, g1, "live after")},
	)
	want := []string{"GUILD_CREATE one", "GUILD_CREATE new name", "MESSAGE_CREATE replayed", "MESSAGE_CREATE live during the burst", "MESSAGE_CREATE live after"}
	var got []string
	for len(got) < len(want) {
		f := c.nextDispatch()
		var d struct{ Name, Content string }
		_ = json.Unmarshal(f.D, &d)
		got = append(got, f.T+" "+d.Name+d.Content)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after READY: %q, want %q", got, want)
	}
}
