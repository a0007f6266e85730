// Package proxytest wires a gateway proxy as cmd/gateway-proxy does, against a fake
// Discord (internal/discordtest) on loopback, for the proxy's tests and benchmarks: a
// runtime holding the pod's sessions upstream, the proxy serving clients in front, and a
// raw gateway client that decodes any transport compression. It is test code only.
package proxytest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/guildcache"
)

// ClientToken is the placeholder token the bot's process presents to the proxy.
const ClientToken = "placeholder-token-for-the-bot-container"

// Config shapes a Rig; the zero value is one shard of one.
type Config struct {
	// Discord configures the fake; its HeartbeatInterval defaults to an hour.
	Discord discordtest.Options
	// ShardIDs are the pod's shards (default [0]), ShardCount the bot's (default 1).
	ShardIDs   []int
	ShardCount int
	// Compression is what the runtime asks the fake for (default botruntime's).
	Compression botruntime.Compression
	// AdjustProxy, if set, changes the proxy's options before it is built.
	AdjustProxy func(*gatewayproxy.Options)
	// Server, if set, is the fake to connect to (an earlier rig's), instead of a new one
	// made from Discord.
	Server *discordtest.Server
	// ResumeStateFile keeps the runtime's resume state across rigs, as the Lease does
	// across pods.
	ResumeStateFile string
}

// Rig is a fake Discord, a runtime holding the pod's sessions and the proxy in front,
// all stopped when the test ends.
type Rig struct {
	Discord *discordtest.Server
	Runtime *botruntime.Runtime
	Proxy   *gatewayproxy.Proxy
	HTTP    *httptest.Server
	// Stop stops the runtime (saving its resume state) and the proxy's server, as a pod
	// going away does; the test's end does it too.
	Stop func()
}

// URL is the proxy's gateway address, as a client is given it.
func (r *Rig) URL() string { return "ws" + strings.TrimPrefix(r.HTTP.URL, "http") }

// New starts a rig. The runtime is wired as cmd/gateway-proxy wires it: raw events, one
// worker (so the proxy sees events in order), the proxy's HandleEvent as its handler.
func New(tb testing.TB, cfg Config) *Rig {
	tb.Helper()
	if cfg.Discord.HeartbeatInterval == 0 {
		cfg.Discord.HeartbeatInterval = time.Hour
	}
	if len(cfg.ShardIDs) == 0 {
		cfg.ShardIDs, cfg.ShardCount = []int{0}, 1
	}
	srv := cfg.Server
	if srv == nil {
		srv = discordtest.NewServer(cfg.Discord)
		tb.Cleanup(srv.Close)
	}
	tokenFile := filepath.Join(tb.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(srv.Options().Token), 0o600); err != nil {
		tb.Fatal(err)
	}
	popts := gatewayproxy.Options{
		ShardIDs: cfg.ShardIDs, ShardCount: cfg.ShardCount, ClientToken: ClientToken, RealToken: srv.Options().Token,
		APIURL: srv.APIURL(), HeartbeatInterval: time.Second,
		NewCache: func(int) gatewayproxy.Cache { return guildcache.New(guildcache.Options{}) },
	}
	if cfg.AdjustProxy != nil {
		cfg.AdjustProxy(&popts)
	}
	p, err := gatewayproxy.New(popts)
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := botruntime.New(botruntime.Config{
		ShardIDs: cfg.ShardIDs, ShardCount: cfg.ShardCount, TokenFile: tokenFile,
		Intents:    []shardkeeperv1.Intent{"GUILDS", "GUILD_MESSAGES"},
		GatewayURL: srv.URL(), APIURL: srv.APIURL(), MaxConcurrency: 1, IdentifyInterval: 10 * time.Millisecond,
		Compression: cfg.Compression, ResumeStateFile: cfg.ResumeStateFile,
	}, botruntime.WithRawEvents(), botruntime.WithWorkers(1), botruntime.WithCollectors(p.Collectors()...))
	if err != nil {
		tb.Fatal(err)
	}
	p.SetUpstream(rt)
	if err := rt.Handle(p.HandleEvent); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rt.Run(ctx); close(done) }()
	hs := httptest.NewServer(p)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			hs.CloseClientConnections()
			hs.Close()
		})
	}
	tb.Cleanup(stop)
	return &Rig{Discord: srv, Runtime: rt, Proxy: p, HTTP: hs, Stop: stop}
}

// Conn is a raw gateway connection, to the proxy or to the fake, that undoes the
// transport compression it asked for.
type Conn struct {
	*websocket.Conn
	mode gatewaycompress.Mode
	dec  *gatewaycompress.Decoder
}

// Dial opens a gateway connection to url (v10, JSON) asking for mode.
func Dial(url string, mode gatewaycompress.Mode) (*Conn, error) {
	q := "?v=10&encoding=json"
	if mode != gatewaycompress.None {
		q += "&compress=" + string(mode)
	}
	ws, _, err := websocket.DefaultDialer.Dial(url+q, nil)
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: ws, mode: mode, dec: gatewaycompress.NewDecoder(mode)}, nil
}

// ReadPayload reads the next gateway payload, decompressed: its JSON.
func (c *Conn) ReadPayload() ([]byte, error) {
	mt, data, err := c.ReadMessage()
	if err != nil {
		return nil, err
	}
	if c.mode == gatewaycompress.None {
		return data, nil
	}
	if mt != websocket.BinaryMessage {
		return nil, fmt.Errorf("a %d frame on a %s connection", mt, c.mode)
	}
	return c.dec.Decode(data)
}
