package botruntime

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
)

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFromEnv(t *testing.T) {
	cfg, err := ConfigFromEnv(envMap(map[string]string{
		"SHARDKEEPER_SHARD_IDS":   "4,5,6",
		"SHARDKEEPER_SHARD_COUNT": "8",
		"SHARDKEEPER_TOKEN_FILE":  "/var/run/secrets/shardkeeper/token",
		"SHARDKEEPER_INTENTS":     "GUILDS,GUILD_MESSAGES",
		"SHARDKEEPER_GATEWAY_URL": "ws://fake:8080",
		"SHARDKEEPER_API_URL":     "http://fake:8080/api/v10",
		"SHARDKEEPER_HEALTH_PORT": "9090",
		"SHARDKEEPER_POD_NAME":    "bot-1",
	}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ShardIDs) != 3 || cfg.ShardIDs[2] != 6 || cfg.ShardCount != 8 {
		t.Errorf("shards %v of %d", cfg.ShardIDs, cfg.ShardCount)
	}
	if cfg.HealthAddr != ":9090" || cfg.GatewayURL != "ws://fake:8080" || cfg.PodName != "bot-1" || len(cfg.Intents) != 2 {
		t.Errorf("config %+v", cfg)
	}
}

func TestConfigFlagsOverrideEnv(t *testing.T) {
	fs := flag.NewFlagSet("bot", flag.ContinueOnError)
	cfg, err := ConfigFromEnv(envMap(map[string]string{"SHARDKEEPER_SHARD_IDS": "0", "SHARDKEEPER_TOKEN_FILE": "/x"}), fs,
		[]string{"--shards=1,2", "--shard-count=3", "--gateway-url=wss://proxy.example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ShardIDs) != 2 || cfg.ShardCount != 3 || cfg.GatewayURL != "wss://proxy.example" {
		t.Errorf("config %+v", cfg)
	}
}

func TestBadConfigFailsWithEveryProblemInOneMessage(t *testing.T) {
	_, err := ConfigFromEnv(envMap(map[string]string{
		"SHARDKEEPER_SHARD_IDS":   "0,9,x,0",
		"SHARDKEEPER_SHARD_COUNT": "4",
		"SHARDKEEPER_INTENTS":     "GUILDS,NOT_AN_INTENT",
		"SHARDKEEPER_GATEWAY_URL": "http://not-a-websocket",
	}), nil, nil)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"shard ID 9 is outside 0..3", `shard ID "x" is not a number`, "shard ID 0 is listed twice",
		`unknown gateway intent "NOT_AN_INTENT"`, "no token file", "gateway URL",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := readToken(write("ok", "MTIz.abc.def\n")); err != nil || tok != "MTIz.abc.def" {
		t.Errorf("token %q, %v", tok, err)
	}
	if tok, _ := readToken(write("prefixed", "Bot MTIz.abc.def")); tok != "MTIz.abc.def" {
		t.Errorf("Bot prefix kept: %q", tok)
	}
	for name, content := range map[string]string{"empty": "  \n", "two words": "abc def"} {
		if _, err := readToken(write(name, content)); err == nil {
			t.Errorf("%s token file accepted", name)
		} else if strings.Contains(err.Error(), "abc") {
			t.Errorf("error shows the token: %v", err)
		}
	}
	if _, err := readToken(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing token file accepted")
	}
}

func TestGatewayCompressionConfig(t *testing.T) {
	base := map[string]string{"SHARDKEEPER_TOKEN_FILE": "/x"}
	with := func(v string) map[string]string {
		env := map[string]string{"SHARDKEEPER_GATEWAY_COMPRESSION": v}
		for k, val := range base {
			env[k] = val
		}
		return env
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want Compression
	}{
		{"unset: zstd-stream", base, nil, CompressionZstdStream},
		{"env zlib-stream", with("zlib-stream"), nil, CompressionZlibStream},
		{"env none", with("none"), nil, CompressionNone},
		{"flag over env", with("zlib-stream"), []string{"--gateway-compression=none"}, CompressionNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ConfigFromEnv(envMap(tc.env), flag.NewFlagSet("bot", flag.ContinueOnError), tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Compression != tc.want {
				t.Errorf("compression %q, want %q", cfg.Compression, tc.want)
			}
		})
	}
	for _, v := range []string{"zstd", "zlib", "true", "ZSTD-STREAM"} {
		_, err := ConfigFromEnv(envMap(with(v)), nil, nil)
		if err == nil || !strings.Contains(err.Error(), `gateway compression "`+v+`" must be zstd-stream, zlib-stream or none`) {
			t.Errorf("compression %q: %v", v, err)
		}
	}
}

// A Config built in code with a name botruntime does not know fails in New, before
// anything connects; left empty, it is the default.
func TestNewRefusesAnUnknownCompression(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{ShardIDs: []int{0}, ShardCount: 1, TokenFile: tokenFile, GatewayURL: DefaultGatewayURL, APIURL: DefaultAPIURL}
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := rt.sessions[0].transport.compression; got != "zstd-stream" {
		t.Errorf("an empty Compression asks for %q, want zstd-stream", got)
	}
	cfg.Compression = "zstd"
	var ce *ConfigError
	if _, err := New(cfg); !errors.As(err, &ce) {
		t.Errorf("New with compression zstd: %v, want a ConfigError", err)
	}
}

func TestGatewayAddressAsksForTheCompression(t *testing.T) {
	tests := map[gatewaycompress.Mode]string{
		gatewaycompress.ZstdStream: "wss://gateway.discord.gg/?compress=zstd-stream&encoding=json&v=10",
		gatewaycompress.ZlibStream: "wss://gateway.discord.gg/?compress=zlib-stream&encoding=json&v=10",
		gatewaycompress.None:       "wss://gateway.discord.gg/?encoding=json&v=10",
	}
	for mode, want := range tests {
		if got := gatewayAddress("wss://gateway.discord.gg/?compress=zlib-stream", mode); got != want {
			t.Errorf("%s: %s, want %s", mode, got, want)
		}
	}
}
