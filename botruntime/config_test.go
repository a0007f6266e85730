package botruntime

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
