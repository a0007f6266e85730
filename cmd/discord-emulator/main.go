// Command discord-emulator runs the fake Discord of the tests (internal/discordtest) as a
// server, so that bots in a cluster can run with no Discord account: a gateway and the REST
// API on one port, and a small control API on another to play a user.
//
//	discord-emulator --listen :8080 --public-host discord-emulator.shardkeeper-system:8080 --control-listen :8090
//
// The gateway honours transport compression (compress=zlib-stream or zstd-stream) as
// Discord does, and REST answers carry Discord's rate limit headers, with a global limit
// (--global-rate-limit) and per-route buckets. With --enforce-heartbeats a connection whose
// client sends no heartbeat for 2 heartbeat intervals + 1s is closed with 4009, its
// session ended; with --enforce-send-limit one whose client sends more than 120 payloads
// within 60 s is closed with 4008.
//
// Control API:
//
//	POST /control/messages  {"guild": 1, "channel": 2, "content": "!ping"}  a user sends a message
//	POST /control/interactions  {"guild": 1, "command": "ping"}  a user runs a slash command
//	GET  /control/replies   what bots sent (messages, interaction answers), oldest first
//	POST /control/cut       {"shard": 0}  drop the shard's connection without a close frame
//	GET  /control/stats     connections, identifies, resumes, close codes, compression, REST
//	                        rate limits, and the same per shard (docs/discord-emulator.md)
//	GET  /healthz
//
// Nothing here is Discord itself: see internal/discordtest for what the fake models.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/emulatorapi"
)

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "discord-emulator:", err)
		os.Exit(1)
	}
}

type config struct {
	listen, publicHost, controlListen, token  string
	guilds, recommendedShards, maxConcurrency int
	heartbeat                                 time.Duration
	enforceHeartbeats, enforceSendLimit       bool
	globalRateLimit                           int
}

func parse(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("discord-emulator", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", ":8080", "address of the gateway and REST API")
	fs.StringVar(&c.publicHost, "public-host", "", "host:port bots reach the emulator at (a Service), for the URLs it hands out; default: the listen address")
	fs.StringVar(&c.controlListen, "control-listen", ":8090", "address of the control API")
	fs.StringVar(&c.token, "token", discordtest.DefaultToken, "the bot token the emulator accepts")
	fs.IntVar(&c.guilds, "guilds", 4, "guilds the bot is in (IDs 1<<22 | 1, 2<<22 | 1, ...)")
	fs.IntVar(&c.recommendedShards, "recommended-shards", 1, "shard count GET /gateway/bot recommends")
	fs.IntVar(&c.maxConcurrency, "max-concurrency", 1, "identify buckets (max_concurrency)")
	fs.DurationVar(&c.heartbeat, "heartbeat-interval", 41250*time.Millisecond, "gateway heartbeat interval sent in Hello")
	fs.BoolVar(&c.enforceHeartbeats, "enforce-heartbeats", false,
		"close a connection with 4009 (ending its session) when its client sends no heartbeat for 2 heartbeat intervals + 1s, as Discord drops a client that stopped heartbeating")
	fs.BoolVar(&c.enforceSendLimit, "enforce-send-limit", false,
		"close a connection with 4008 (rate limited; its session stays resumable) when its client sends more than 120 payloads within 60 s, as Discord does")
	fs.IntVar(&c.globalRateLimit, "global-rate-limit", discordtest.DefaultGlobalRateLimit,
		"REST requests per second the bot may make (interaction endpoints excepted) before a global 429, as on Discord; 0 turns the global limit off")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.guilds < 0 || c.guilds > 10000:
		return c, fmt.Errorf("--guilds %d must be between 0 and 10000", c.guilds)
	case c.recommendedShards < 1 || c.maxConcurrency < 1:
		return c, errors.New("--recommended-shards and --max-concurrency must be at least 1")
	case c.globalRateLimit < 0:
		return c, fmt.Errorf("--global-rate-limit %d must be 0 (off) or more", c.globalRateLimit)
	case strings.TrimSpace(c.token) == "":
		return c, errors.New("--token must not be empty")
	}
	return c, nil
}

func run(args []string) error {
	c, err := parse(args)
	if err != nil {
		return err
	}
	// The control port is bound before anything is printed, so that a test passing
	// --control-listen 127.0.0.1:0 reads the port it got from the first line.
	controlListener, err := net.Listen("tcp", c.controlListen)
	if err != nil {
		return fmt.Errorf("control API: %w", err)
	}
	srv := discordtest.NewServer(c.options())
	defer srv.Close()
	control := &http.Server{Handler: controlAPI(srv), ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, 1)
	go func() { errs <- control.Serve(controlListener) }()
	fmt.Printf("discord-emulator: gateway %s, API %s, control on %s, %d guilds\n", srv.URL(), srv.APIURL(), controlListener.Addr(), c.guilds)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-errs:
		return fmt.Errorf("control API: %w", err)
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return control.Shutdown(shutdown)
}

// options are the fake's options for the flags.
func (c config) options() discordtest.Options {
	var guilds []uint64
	for k := 1; k <= c.guilds; k++ {
		guilds = append(guilds, uint64(k)<<22|1)
	}
	globalRateLimit := c.globalRateLimit
	if globalRateLimit == 0 {
		globalRateLimit = -1 // the fake's "off"; its 0 means the default
	}
	return discordtest.Options{
		Token: c.token, Guilds: guilds, RecommendedShards: c.recommendedShards, MaxConcurrency: c.maxConcurrency,
		HeartbeatInterval: c.heartbeat, EnforceHeartbeats: c.enforceHeartbeats, EnforceSendLimit: c.enforceSendLimit,
		GlobalRateLimit: globalRateLimit,
		ListenAddr:      c.listen, PublicHost: c.publicHost,
	}
}

// controlAPI lets a person or a test play a Discord user.
func controlAPI(srv *discordtest.Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("POST /control/messages", func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Guild   uint64 `json:"guild"`
			Channel uint64 `json:"channel"`
			Content string `json:"content"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&m); err != nil {
			http.Error(w, "want JSON {\"guild\": <id>, \"channel\": <id>, \"content\": \"...\"}: "+err.Error(), http.StatusBadRequest)
			return
		}
		if m.Guild == 0 || m.Channel == 0 || m.Content == "" {
			http.Error(w, "guild, channel and content are required", http.StatusBadRequest)
			return
		}
		id := srv.SendMessageWithID(m.Guild, m.Channel, m.Content)
		writeJSON(w, http.StatusCreated, map[string]uint64{"id": id})
	})
	// A slash command comes from the guild's "general" channel, whose ID is the guild's, as
	// every interaction the fake makes (discordtest.Server.SendSlashCommand).
	mux.HandleFunc("POST /control/interactions", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Guild   uint64 `json:"guild"`
			Channel uint64 `json:"channel"`
			Command string `json:"command"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil {
			http.Error(w, "want JSON {\"guild\": <id>, \"command\": \"ping\"}: "+err.Error(), http.StatusBadRequest)
			return
		}
		switch {
		case in.Guild == 0 || strings.TrimSpace(in.Command) == "":
			http.Error(w, "guild and command are required: {\"guild\": <id>, \"command\": \"ping\"}", http.StatusBadRequest)
			return
		case srv.GuildCreate(in.Guild) == nil:
			http.Error(w, fmt.Sprintf("the bot is not in guild %d: the emulator's guilds are 1<<22|1, 2<<22|1, ... (--guilds)", in.Guild), http.StatusBadRequest)
			return
		case in.Channel != 0 && in.Channel != in.Guild:
			http.Error(w, fmt.Sprintf("slash commands come from the guild's general channel, whose ID is the guild's: leave channel out or pass %d", in.Guild), http.StatusBadRequest)
			return
		}
		id := srv.SendSlashCommand(in.Guild, in.Command)
		writeJSON(w, http.StatusCreated, map[string]uint64{"id": id})
	})
	mux.HandleFunc("GET /control/replies", func(w http.ResponseWriter, _ *http.Request) {
		type reply struct {
			Kind   string          `json:"kind"`
			Method string          `json:"method"`
			Path   string          `json:"path"`
			Body   json.RawMessage `json:"body"`
			At     time.Time       `json:"at"`
		}
		out := []reply{}
		for _, r := range srv.Replies() {
			out = append(out, reply{Kind: r.Kind, Method: r.Method, Path: r.Path, Body: r.Body, At: r.At})
		}
		writeJSON(w, http.StatusOK, out)
	})
	// A cut is how a real connection dies (a node, a NAT, a load balancer): the client
	// gets no close frame and must resume on its own.
	mux.HandleFunc("POST /control/cut", func(w http.ResponseWriter, r *http.Request) {
		var c struct {
			Shard *int `json:"shard"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&c); err != nil || c.Shard == nil {
			http.Error(w, "want JSON {\"shard\": <id>}", http.StatusBadRequest)
			return
		}
		if !srv.Connected(*c.Shard) {
			http.Error(w, fmt.Sprintf("shard %d has no open connection to cut", *c.Shard), http.StatusConflict)
			return
		}
		srv.Cut(*c.Shard)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /control/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, newControlStats(srv))
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// newControlStats is GET /control/stats (internal/emulatorapi, documented in
// docs/discord-emulator.md).
func newControlStats(srv *discordtest.Server) emulatorapi.Stats {
	st := srv.Stats()
	out := emulatorapi.Stats{
		Connections: st.Connections, OpenConnections: st.OpenConnections, Identifies: st.Identifies,
		Resumes: st.Resumes, BucketViolations: st.BucketViolations, SessionStartRemaining: st.SessionStartRemaining,
		CoverageGaps:             len(srv.CoverageGaps()),
		ResumeFailures:           st.ResumeFailures,
		ConnectionsByCompression: map[string]int{},
		ServerCloseCodes:         st.ServerCloseCodes,
		BytesSent:                st.BytesSent,
		REST:                     emulatorapi.RESTStats{Requests: st.RESTRequests, RateLimited: st.RESTRateLimited, GlobalRateLimited: st.RESTGlobalRateLimited},
		Shards:                   map[int]emulatorapi.ShardStats{},
	}
	for c, n := range st.ConnectionsByCompression {
		out.ConnectionsByCompression[string(c)] = n
	}
	for id, sh := range st.PerShard {
		compressions := make([]string, len(sh.Compressions))
		for i, c := range sh.Compressions {
			compressions[i] = string(c)
		}
		ops := sh.OpsReceived
		if ops == nil {
			ops = []map[int]int{}
		}
		out.Shards[id] = emulatorapi.ShardStats{
			Connected:   srv.Connected(id),
			Connections: sh.Connections, Compression: string(sh.Compression), Compressions: compressions,
			Identifies: sh.Identifies, IdentifiesUnanswered: sh.IdentifiesUnanswered,
			Resumes: sh.Resumes, ResumeFailures: sh.ResumeFailures, ResumesUnanswered: sh.ResumesUnanswered,
			OpsReceived:     ops,
			CloseCodes:      emulatorapi.CloseCodes{Client: countCodes(sh.ClientCloseCodes), Server: countCodes(sh.ServerCloseCodes)},
			EventsDelivered: sh.EventsSent, Replayed: sh.Replayed, Heartbeats: sh.Heartbeats,
			BytesSent: sh.BytesSent, SessionID: sh.SessionID, LastSeq: sh.LastSeq,
		}
	}
	return out
}

func countCodes(codes []int) map[int]int {
	out := map[int]int{}
	for _, c := range codes {
		out[c]++
	}
	return out
}
