package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/bench/internal/proc"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// buildBot builds cmd/bot as the image does (no cgo, trimmed paths) into dir.
func buildBot(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "bot")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "github.com/shardkeeper/shardkeeper/cmd/bot")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cmd/bot: %v\n%s", err, out)
	}
	return bin, nil
}

// podResult is one idle bot process.
type podResult struct {
	shards, guilds int
	rss            int64
	heapInuse      float64
	heapAlloc      float64
	goroutines     float64
	idleCPU        time.Duration // over the settle time
}

// measurePod runs cmd/bot with shards shards (0..shards-1 of shards) against a fake
// Discord of its own holding guildsPerShard guilds for each, waits for /readyz and for the
// fake to see every shard connected, lets it idle for o.settle, and reads its memory.
func measurePod(ctx context.Context, o options, bin, dir string, shards int) (podResult, error) {
	guilds := make([]uint64, shards*o.guildsPerShard)
	for i := range guilds {
		// (i+1) % shards spreads them evenly: guildsPerShard on every shard.
		guilds[i] = uint64(i+1) << 22
	}
	srv := discordtest.NewServer(discordtest.Options{
		Guilds: guilds, RecommendedShards: shards,
		// Every shard its own identify bucket: the pod comes up at once instead of one
		// shard per 5 s. Idle memory does not depend on how fast it came up.
		MaxConcurrency: shards,
	})
	defer srv.Close()

	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(discordtest.DefaultToken), 0o600); err != nil {
		return podResult{}, err
	}
	port, err := proc.FreePort()
	if err != nil {
		return podResult{}, err
	}
	ids := make([]string, shards)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	name := fmt.Sprintf("bot-%dshards", shards)
	// No Lease (not in a pod) and nothing inherited from a SHARDKEEPER_* environment.
	env := []string{shardkeeperv1.EnvLeaseName + "=", shardkeeperv1.EnvShardIDs + "=", shardkeeperv1.EnvShardCount + "="}
	bot, err := proc.Start(name, dir, env, bin,
		"--shards="+strings.Join(ids, ","), "--shard-count="+strconv.Itoa(shards),
		"--token-file="+tokenFile, "--intents=GUILDS,GUILD_MESSAGES",
		"--gateway-url="+srv.URL(), "--api-url="+srv.APIURL(),
		fmt.Sprintf("--health-addr=127.0.0.1:%d", port), "--max-concurrency="+strconv.Itoa(shards),
		"--termination-log=")
	if err != nil {
		return podResult{}, err
	}
	defer bot.Stop()

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := bot.WaitHTTP(ctx, base+"/readyz", o.readyTimeout); err != nil {
		return podResult{}, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, o.readyTimeout)
	st, err := srv.WaitStats(waitCtx, func(st discordtest.Stats) bool {
		return st.OpenConnections == shards && st.Identifies == shards
	})
	cancel()
	if err != nil {
		return podResult{}, fmt.Errorf("%s: the fake Discord saw %d connections and %d identifies, want %d: %w", name, st.OpenConnections, st.Identifies, shards, err)
	}

	before, err := proc.Read(bot.Pid())
	if err != nil {
		return podResult{}, err
	}
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
		return podResult{}, ctx.Err()
	}
	if bot.Exited() {
		return podResult{}, fmt.Errorf("%s exited while idle:\n%s", name, bot.Tail())
	}
	after, err := proc.Read(bot.Pid())
	if err != nil {
		return podResult{}, err
	}
	m, err := proc.Scrape(ctx, base+"/metrics", map[string]string{"shardkeeper_shard_state": "state"})
	if err != nil {
		return podResult{}, err
	}
	if ready := m["shardkeeper_shard_state/Ready"]; int(ready) != shards {
		return podResult{}, fmt.Errorf("%s: %v shards Ready after settling, want %d", name, ready, shards)
	}
	if n := m["shardkeeper_gateway_reconnects_total"]; n != 0 {
		return podResult{}, fmt.Errorf("%s: %v reconnects while idle", name, n)
	}
	if _, ok := m["go_memstats_heap_inuse_bytes"]; !ok {
		return podResult{}, fmt.Errorf("%s: /metrics has no go_memstats_heap_inuse_bytes", name)
	}
	return podResult{
		shards: shards, guilds: len(guilds), rss: after.RSS,
		heapInuse: m["go_memstats_heap_inuse_bytes"], heapAlloc: m["go_memstats_heap_alloc_bytes"],
		goroutines: m["go_goroutines"], idleCPU: after.CPU - before.CPU,
	}, nil
}
