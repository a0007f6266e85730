// Command identify measures how fast a sharded bot comes up when its pods share Discord's
// identify buckets through Leases: N shards in N pods (real cmd/bot processes, each with
// its own limiter) against the fake Discord with max_concurrency M, from the DiscordBot's
// creation to every shard connected, beside the theoretical minimum ceil(N/M) x 5 s. It
// fails when an identify came within 5 s of another in its bucket, or when the bot took
// more than 10% over the minimum.
//
//	go run ./bench/identify                      # 16 shards, max_concurrency 4
//	go run ./bench/identify -shards 32 -max-concurrency 4
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/e2erig"
)

func main() {
	shards := flag.Int("shards", 16, "shards, one per pod")
	maxConcurrency := flag.Int("max-concurrency", 4, "Discord's max_concurrency (identify buckets)")
	flag.Parse()
	if err := run(*shards, *maxConcurrency); err != nil {
		fmt.Fprintln(os.Stderr, "identify:", err)
		os.Exit(1)
	}
}

func run(shards, maxConcurrency int) error {
	ctx := context.Background()
	rig, err := e2erig.Start(ctx, e2erig.Options{LeaseSeconds: 20, Shards: shards, MaxConcurrency: maxConcurrency, HeartbeatInterval: time.Second})
	if err != nil {
		return err
	}
	defer rig.Close()
	created := time.Now() // Start creates the DiscordBot as its last step

	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	st, err := rig.Discord.WaitStats(waitCtx, func(st discordtest.Stats) bool {
		connected := 0
		for _, ps := range st.PerShard {
			if ps.Identifies > 0 {
				connected++
			}
		}
		return st.Identifies >= shards && connected >= shards
	})
	if err != nil {
		return fmt.Errorf("%d of %d shards identified: %w\n%s", st.Identifies, shards, err, rig.Kubelet.Logs())
	}
	for s := range shards {
		if err := rig.Discord.WaitConnected(waitCtx, s); err != nil {
			return fmt.Errorf("shard %d never connected: %w", s, err)
		}
	}
	allUp := time.Since(created)

	first, last := st.IdentifyLog[0].At, st.IdentifyLog[0].At
	for _, rec := range st.IdentifyLog {
		if rec.At.Before(first) {
			first = rec.At
		}
		if rec.At.After(last) {
			last = rec.At
		}
	}
	rounds := (shards + maxConcurrency - 1) / maxConcurrency
	minimum := time.Duration(rounds) * discordtest.DefaultIdentifyInterval
	fmt.Printf("%d shards in %d pods, max_concurrency %d: %d rounds of identifies\n\n", shards, shards, maxConcurrency, rounds)
	fmt.Printf("  bot created -> first identify     %6.2f s   (operator, pod and process start)\n", first.Sub(created).Seconds())
	fmt.Printf("  first -> last identify            %6.2f s   (Discord's spacing alone: %.2f s)\n", last.Sub(first).Seconds(), (time.Duration(rounds-1) * discordtest.DefaultIdentifyInterval).Seconds())
	fmt.Printf("  bot created -> every shard ready  %6.2f s   (theoretical minimum ceil(%d/%d) x 5 s = %.0f s; %+.0f%%)\n",
		allUp.Seconds(), shards, maxConcurrency, minimum.Seconds(), 100*(allUp.Seconds()/minimum.Seconds()-1))
	fmt.Printf("  identifies within 5 s in a bucket %6d\n", st.BucketViolations)

	switch {
	case st.BucketViolations > 0:
		return fmt.Errorf("%d identifies came within 5 s of another in their bucket", st.BucketViolations)
	case allUp > minimum*11/10:
		return fmt.Errorf("every shard was ready after %s, more than 10%% over the minimum %s", allUp.Round(10*time.Millisecond), minimum)
	}
	return nil
}
