package botruntime

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
)

// DefaultGatewayURL and DefaultAPIURL are Discord's own endpoints.
const (
	DefaultGatewayURL = "wss://gateway.discord.gg"
	DefaultAPIURL     = "https://discord.com/api/v10"
)

// Config is everything a runtime needs to know. The operator fills it through SHARDKEEPER_*
// environment variables (api/v1/env.go); outside Kubernetes, flags fill it.
type Config struct {
	// ShardIDs are the shards this process runs; ShardCount is the bot's total.
	ShardIDs   []int
	ShardCount int
	// TokenFile holds the bot token. It is read once at start and never logged.
	TokenFile string
	Intents   []shardkeeperv1.Intent
	// GatewayURL and APIURL default to Discord's.
	GatewayURL string
	APIURL     string
	// Compression is the transport compression shards ask the gateway for; empty means
	// DefaultCompression.
	Compression Compression
	// HealthAddr serves /healthz, /readyz and /metrics, e.g. ":8081". Empty turns it off.
	HealthAddr string
	// Identity, for logs, metrics and (later) the heartbeat Lease.
	BotName, Namespace, PodName, PodUID string
	// LeaseName and LeaseDuration describe the heartbeat Lease (used by the lease issue).
	LeaseName     string
	LeaseDuration time.Duration
	// MaxConcurrency is Discord's identify concurrency (shards identify in buckets of
	// shard_id % MaxConcurrency, one per IdentifyInterval).
	MaxConcurrency   int
	IdentifyInterval time.Duration
	// IdentifyMargin is added to IdentifyInterval between two identifies of a bucket
	// shared by pods (default DefaultIdentifyMargin).
	IdentifyMargin time.Duration
	// ResumeStateFile, when set, keeps resume state across restarts outside Kubernetes.
	ResumeStateFile string
	// TerminationLogPath receives the fatal reason when the process exits because no shard
	// can run; Kubernetes shows it in the container status. Empty turns it off.
	TerminationLogPath string
}

// ConfigFromEnv reads the operator's SHARDKEEPER_* variables, then lets flags (when fs is
// not nil and args are given) override them, then validates. Every problem is reported at
// once, in one error; with an error, the returned Config is only good for reporting it.
func ConfigFromEnv(getenv func(string) string, fs *flag.FlagSet, args []string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	cfg := Config{
		TokenFile:          getenv(shardkeeperv1.EnvTokenFile),
		GatewayURL:         orDefault(getenv(shardkeeperv1.EnvGatewayURL), DefaultGatewayURL),
		APIURL:             orDefault(getenv(shardkeeperv1.EnvAPIURL), DefaultAPIURL),
		BotName:            getenv(shardkeeperv1.EnvBotName),
		Namespace:          getenv(shardkeeperv1.EnvNamespace),
		PodName:            getenv(shardkeeperv1.EnvPodName),
		PodUID:             getenv(shardkeeperv1.EnvPodUID),
		LeaseName:          getenv(shardkeeperv1.EnvLeaseName),
		MaxConcurrency:     1,
		IdentifyInterval:   5 * time.Second,
		TerminationLogPath: "/dev/termination-log",
	}
	shardIDs := getenv(shardkeeperv1.EnvShardIDs)
	shardCount := getenv(shardkeeperv1.EnvShardCount)
	intents := getenv(shardkeeperv1.EnvIntents)
	healthPort := orDefault(getenv(shardkeeperv1.EnvHealthPort), "8081")
	lease := orDefault(getenv(shardkeeperv1.EnvLeaseDurationSeconds), "20")
	maxConcurrency := orDefault(getenv(shardkeeperv1.EnvMaxConcurrency), "1")
	compression := orDefault(getenv(shardkeeperv1.EnvGatewayCompression), string(DefaultCompression))
	healthAddr := ":" + healthPort

	if fs != nil {
		fs.StringVar(&shardIDs, "shards", shardIDs, "Comma-separated shard IDs this process runs (env "+shardkeeperv1.EnvShardIDs+"), e.g. 0,1.")
		fs.StringVar(&shardCount, "shard-count", orDefault(shardCount, "1"), "Total shard count of the bot (env "+shardkeeperv1.EnvShardCount+").")
		fs.StringVar(&cfg.TokenFile, "token-file", cfg.TokenFile, "File holding the bot token (env "+shardkeeperv1.EnvTokenFile+").")
		fs.StringVar(&intents, "intents", intents, "Comma-separated gateway intents, e.g. GUILDS,GUILD_MESSAGES (env "+shardkeeperv1.EnvIntents+").")
		fs.StringVar(&cfg.GatewayURL, "gateway-url", cfg.GatewayURL, "Gateway websocket URL (env "+shardkeeperv1.EnvGatewayURL+").")
		fs.StringVar(&cfg.APIURL, "api-url", cfg.APIURL, "REST API base URL (env "+shardkeeperv1.EnvAPIURL+").")
		fs.StringVar(&compression, "gateway-compression", compression, "Transport compression asked of the gateway: zstd-stream, zlib-stream or none (env "+shardkeeperv1.EnvGatewayCompression+").")
		fs.StringVar(&healthAddr, "health-addr", healthAddr, "Address of /healthz, /readyz and /metrics; empty turns them off.")
		fs.StringVar(&maxConcurrency, "max-concurrency", maxConcurrency, "Discord's identify max_concurrency for this bot (env "+shardkeeperv1.EnvMaxConcurrency+").")
		fs.StringVar(&cfg.ResumeStateFile, "resume-state-file", "", "Keep gateway resume state in this file across restarts (outside Kubernetes).")
		fs.StringVar(&cfg.TerminationLogPath, "termination-log", cfg.TerminationLogPath, "Where to write the fatal reason on exit; empty turns it off.")
		if err := fs.Parse(args); err != nil {
			return Config{}, err
		}
	}
	if shardCount == "" {
		shardCount = "1"
	}
	if shardIDs == "" {
		shardIDs = "0"
	}
	cfg.HealthAddr = healthAddr

	n, err := strconv.Atoi(strings.TrimSpace(shardCount))
	if err != nil || n < 1 {
		bad("shard count %q must be a whole number >= 1", shardCount)
	}
	cfg.ShardCount = n
	for _, f := range strings.Split(shardIDs, ",") {
		id, err := strconv.Atoi(strings.TrimSpace(f))
		switch {
		case err != nil:
			bad("shard ID %q is not a number", f)
		case id < 0 || (n >= 1 && id >= n):
			bad("shard ID %d is outside 0..%d (shard count %d)", id, n-1, n)
		case slices.Contains(cfg.ShardIDs, id):
			bad("shard ID %d is listed twice", id)
		default:
			cfg.ShardIDs = append(cfg.ShardIDs, id)
		}
	}
	if cfg.Intents, err = shardkeeperv1.ParseIntents(intents); err != nil {
		bad("intents: %v", err)
	}
	if cfg.TokenFile == "" {
		bad("no token file: set %s or --token-file", shardkeeperv1.EnvTokenFile)
	}
	if err := checkURL(cfg.GatewayURL, "ws", "wss"); err != nil {
		bad("gateway URL: %v", err)
	}
	if err := checkURL(cfg.APIURL, "http", "https"); err != nil {
		bad("API URL: %v", err)
	}
	if cfg.Compression, err = ParseCompression(compression); err != nil {
		bad("%v", err)
	}
	if secs, err := strconv.Atoi(lease); err != nil || secs < 1 {
		bad("lease duration %q must be a whole number of seconds", lease)
	} else {
		cfg.LeaseDuration = time.Duration(secs) * time.Second
	}
	if cfg.MaxConcurrency, err = strconv.Atoi(strings.TrimSpace(maxConcurrency)); err != nil || cfg.MaxConcurrency < 1 {
		bad("max concurrency %q must be a whole number >= 1", maxConcurrency)
	}
	if len(problems) > 0 {
		// The partial config goes back too: the caller still needs TerminationLogPath to
		// say why it exits.
		return cfg, &ConfigError{Problems: problems}
	}
	return cfg, nil
}

// Compression is the transport compression a shard asks the gateway for (the compress
// query parameter). Every connection then carries one compression context from its first
// frame to its last, decoded on the shard's read loop, never on its heartbeat's goroutine.
type Compression string

const (
	// CompressionZstdStream is compress=zstd-stream: the fewest bytes on the wire.
	CompressionZstdStream Compression = "zstd-stream"
	// CompressionZlibStream is compress=zlib-stream, which every Discord library speaks.
	CompressionZlibStream Compression = "zlib-stream"
	// CompressionNone asks for no compression: JSON in TEXT frames.
	CompressionNone Compression = "none"
	// DefaultCompression is what a Config without Compression asks for.
	DefaultCompression = CompressionZstdStream
)

// ParseCompression reads a compression name: zstd-stream, zlib-stream or none.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(strings.TrimSpace(s)); c {
	case CompressionZstdStream, CompressionZlibStream, CompressionNone:
		return c, nil
	}
	return "", fmt.Errorf("gateway compression %q must be %s, %s or %s", s, CompressionZstdStream, CompressionZlibStream, CompressionNone)
}

// mode is the compression as internal/gatewaycompress names it; empty is the default.
func (c Compression) mode() gatewaycompress.Mode {
	switch c {
	case CompressionNone:
		return gatewaycompress.None
	case CompressionZlibStream:
		return gatewaycompress.ZlibStream
	}
	return gatewaycompress.ZstdStream // New refuses any other name
}

// ConfigError lists everything wrong with a configuration.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return "invalid bot configuration: " + strings.Join(e.Problems, "; ")
}

// readToken reads the token file. The token is trimmed and checked for shape only.
func readToken(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	token = strings.TrimPrefix(token, "Bot ")
	if token == "" {
		return "", errors.New("token file " + path + " is empty")
	}
	if strings.ContainsAny(token, " \t\r\n") {
		return "", errors.New("token file " + path + " holds more than one word")
	}
	return token, nil
}

func checkURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if !slices.Contains(schemes, u.Scheme) || u.Host == "" {
		return fmt.Errorf("%q must be a %s URL with a host", raw, strings.Join(schemes, " or "))
	}
	return nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
