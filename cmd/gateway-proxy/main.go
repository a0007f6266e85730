// Command gateway-proxy holds a pod's Discord gateway sessions (botruntime: a heartbeat
// nothing blocks, the Lease, identify buckets, resume across pods, compression) and serves
// the bot's own process, in any language, a Discord-compatible gateway and REST API on one
// local port (docs/gateway-proxy.md). The operator runs it as a native sidecar and
// configures it through SHARDKEEPER_* variables; outside Kubernetes it takes cmd/bot's
// flags plus --listen and --client-token-file (gateway-proxy --help).
//
// Exit codes are cmd/bot's: 0 clean shutdown, 1 unexpected error, 2 bad configuration,
// 3 replaced by a pod of the same name, 10-15 when no shard can run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/botmain"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/guildcache"
)

// DefaultListen is where the bot container connects unless told otherwise.
const DefaultListen = "127.0.0.1:7878"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv))
}

// settings are the proxy's own, beside botruntime's Config.
type settings struct {
	listen, clientTokenFile      string
	replayEvents, replayBytes    string
	heartbeatInterval, tolerance string
	startupBound                 string
}

func run(args []string, getenv func(string) string) int {
	s := newSettings(getenv)
	var proxy *gatewayproxy.Proxy
	var listener net.Listener
	return botmain.Main(botmain.Program{
		Name: "gateway-proxy",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&s.listen, "listen", s.listen, "Where the bot's own process connects, gateway and REST (env "+shardkeeperv1.EnvProxyListen+").")
			fs.StringVar(&s.clientTokenFile, "client-token-file", s.clientTokenFile, "File holding the placeholder token the bot's process presents (env "+shardkeeperv1.EnvProxyClientTokenFile+").")
			fs.StringVar(&s.replayEvents, "replay-events", s.replayEvents, "Events each shard's replay buffer holds at most (env "+shardkeeperv1.EnvProxyReplayEvents+").")
			fs.StringVar(&s.replayBytes, "replay-bytes", s.replayBytes, "Bytes each shard's replay buffer holds at most (env "+shardkeeperv1.EnvProxyReplayBytes+").")
			fs.StringVar(&s.heartbeatInterval, "client-heartbeat-interval", s.heartbeatInterval, "Heartbeat interval told to the bot's process (env "+shardkeeperv1.EnvProxyClientHeartbeatInterval+").")
			fs.StringVar(&s.tolerance, "client-tolerance", s.tolerance, "Heartbeat intervals the bot's process may miss before /client/healthz fails (env "+shardkeeperv1.EnvProxyClientTolerance+").")
			fs.StringVar(&s.startupBound, "client-startup-bound", s.startupBound, "How long /client/healthz passes with no client connected, after start or a client leaving (env "+shardkeeperv1.EnvProxyClientStartupBound+").")
		},
		Options: func(cfg botruntime.Config, log logr.Logger) ([]botruntime.Option, error) {
			opts, err := s.proxyOptions(cfg, log)
			if err != nil {
				return nil, err
			}
			if proxy, err = gatewayproxy.New(opts); err != nil {
				return nil, err
			}
			// Listen now, so that a port in use is a configuration error, before any
			// session starts.
			if listener, err = net.Listen("tcp", s.listen); err != nil {
				return nil, fmt.Errorf("--listen %s: %w", s.listen, err)
			}
			return []botruntime.Option{
				botruntime.WithRawEvents(), botruntime.WithWorkers(1),
				botruntime.WithCollectors(proxy.Collectors()...),
				botruntime.WithHealthHandler("/client/", proxy.ProbeHandler()),
			}, nil
		},
		Start: func(ctx context.Context, rt *botruntime.Runtime, log logr.Logger) (func(), error) {
			proxy.SetUpstream(rt)
			if err := rt.Handle(proxy.HandleEvent); err != nil {
				return nil, err
			}
			srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
			served := make(chan struct{})
			go func() {
				defer close(served)
				if err := srv.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
					log.Error(err, "serving the bot's process")
				}
			}()
			log.Info("serving the bot's process", "gateway", "ws://"+listener.Addr().String(), "api", "http://"+listener.Addr().String()+"/api/v10")
			return func() {
				shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(shutdown)
				_ = srv.Close() // websockets are hijacked: Shutdown does not wait for them
				<-served
			}, nil
		},
	}, args)
}

// newSettings reads the operator's variables, with the defaults for those unset.
func newSettings(getenv func(string) string) settings {
	return settings{
		listen:            orDefault(getenv(shardkeeperv1.EnvProxyListen), DefaultListen),
		clientTokenFile:   getenv(shardkeeperv1.EnvProxyClientTokenFile),
		replayEvents:      orDefault(getenv(shardkeeperv1.EnvProxyReplayEvents), strconv.Itoa(gatewayproxy.DefaultReplayEvents)),
		replayBytes:       orDefault(getenv(shardkeeperv1.EnvProxyReplayBytes), strconv.Itoa(gatewayproxy.DefaultReplayBytes)),
		heartbeatInterval: orDefault(getenv(shardkeeperv1.EnvProxyClientHeartbeatInterval), gatewayproxy.DefaultHeartbeatInterval.String()),
		tolerance:         orDefault(getenv(shardkeeperv1.EnvProxyClientTolerance), strconv.Itoa(gatewayproxy.DefaultClientTolerance)),
		startupBound:      orDefault(getenv(shardkeeperv1.EnvProxyClientStartupBound), gatewayproxy.DefaultStartupBound.String()),
	}
}

// proxyOptions validates the proxy's settings, every problem at once.
func (s settings) proxyOptions(cfg botruntime.Config, log logr.Logger) (gatewayproxy.Options, error) {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	opts := gatewayproxy.Options{ShardIDs: cfg.ShardIDs, ShardCount: cfg.ShardCount, APIURL: cfg.APIURL, Log: log.WithName("proxy")}

	if s.clientTokenFile == "" {
		bad("no client token file: set %s or --client-token-file", shardkeeperv1.EnvProxyClientTokenFile)
	} else if b, err := os.ReadFile(s.clientTokenFile); err != nil {
		bad("client token file: %v", err)
	} else if opts.ClientToken = strings.TrimSpace(string(b)); opts.ClientToken == "" {
		bad("client token file %s is empty", s.clientTokenFile)
	}
	if b, err := os.ReadFile(cfg.TokenFile); err == nil {
		opts.RealToken = strings.TrimSpace(string(b))
	} // botruntime reports a missing token file
	if opts.ClientToken != "" && opts.ClientToken == opts.RealToken {
		bad("the client token file holds the bot's real token: give the bot's process a placeholder")
	}
	if _, _, err := net.SplitHostPort(s.listen); err != nil {
		bad("--listen %q: %v", s.listen, err)
	}
	var err error
	if opts.ReplayEvents, err = strconv.Atoi(s.replayEvents); err != nil || opts.ReplayEvents < 1 {
		bad("replay events %q must be a whole number >= 1", s.replayEvents)
	}
	if opts.ReplayBytes, err = strconv.Atoi(s.replayBytes); err != nil || opts.ReplayBytes < 1<<20 {
		bad("replay bytes %q must be a whole number >= 1048576", s.replayBytes)
	}
	if opts.HeartbeatInterval, err = time.ParseDuration(s.heartbeatInterval); err != nil || opts.HeartbeatInterval < 100*time.Millisecond {
		bad("client heartbeat interval %q must be a duration >= 100ms", s.heartbeatInterval)
	}
	if opts.ClientTolerance, err = strconv.Atoi(s.tolerance); err != nil || opts.ClientTolerance < 1 {
		bad("client tolerance %q must be a whole number of intervals >= 1", s.tolerance)
	}
	if opts.StartupBound, err = time.ParseDuration(s.startupBound); err != nil || opts.StartupBound <= 0 {
		bad("client startup bound %q must be a positive duration", s.startupBound)
	}
	presences := slices.Contains(cfg.Intents, shardkeeperv1.Intent("GUILD_PRESENCES"))
	opts.NewCache = func(int) gatewayproxy.Cache { return guildcache.New(guildcache.Options{Presences: presences}) }
	if len(problems) > 0 {
		return opts, errors.New(strings.Join(problems, "; "))
	}
	return opts, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
