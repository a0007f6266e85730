package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
)

// The proxy's own settings come from the operator's variables, flags override them, and
// every problem is reported at once.
func TestProxySettings(t *testing.T) {
	dir := t.TempDir()
	real, placeholder := filepath.Join(dir, "token"), filepath.Join(dir, "client")
	_ = os.WriteFile(real, []byte("real\n"), 0o600)
	_ = os.WriteFile(placeholder, []byte("placeholder\n"), 0o600)
	env := map[string]string{
		shardkeeperv1.EnvProxyClientTokenFile:         placeholder,
		shardkeeperv1.EnvProxyClientStartupBound:      "5m",
		shardkeeperv1.EnvProxyClientHeartbeatInterval: "10s",
		shardkeeperv1.EnvProxyReplayEvents:            "500",
	}
	s := newSettings(func(k string) string { return env[k] })
	opts, err := s.proxyOptions(botruntime.Config{ShardIDs: []int{0}, ShardCount: 1, TokenFile: real}, testLogger)
	if err != nil {
		t.Fatal(err)
	}
	if opts.StartupBound != 5*time.Minute || opts.HeartbeatInterval != 10*time.Second || opts.ReplayEvents != 500 ||
		opts.ClientToken != "placeholder" || opts.RealToken != "real" {
		t.Errorf("options %+v", opts)
	}

	s.clientTokenFile, s.startupBound, s.tolerance = real, "soon", "0"
	_, err = s.proxyOptions(botruntime.Config{ShardIDs: []int{0}, ShardCount: 1, TokenFile: real}, testLogger)
	for _, want := range []string{"holds the bot's real token", `client startup bound "soon"`, `client tolerance "0"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

var testLogger = logr.Discard()
