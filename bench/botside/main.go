// Command botside measures the bot side of Shardkeeper on one machine, against the fake
// Discord (internal/discordtest) on loopback:
//
//   - idle memory: the real cmd/bot binary, built once, run as one process per pod size
//     (1, 4 and 16 shards by default) without Kubernetes, each against a fake Discord of
//     its own with the same guilds per shard. Once /readyz answers and the fake sees every
//     shard connected, the pod idles for -settle; then its VmRSS (/proc/<pid>/status) and
//     Go heap (go_memstats_heap_inuse_bytes on its /metrics) are read. A least-squares line
//     over the pod sizes gives the cost of one more shard (slope) and of a pod (intercept).
//
//   - events per second one shard hands to handlers: the fake sends MESSAGE_CREATE as fast
//     as the client takes them (at most -window ahead of the handlers' count) for -flood,
//     and every message must reach a trivial counting handler, for a raw websocket reader
//     (the fake's ceiling), botruntime, disgo's gateway and disgo.New with a listener, one
//     after another (never sharing the CPU), -runs times; the median run is reported, with
//     the heartbeats the fake saw during the flood.
//
//   - transport compression: the cmd/bot binary once per mode (none, zlib-stream,
//     zstd-stream), side by side, each against a fake Discord of its own, is sent the same
//     batches of -compression-events MESSAGE_CREATE (chat-like contents, the last one
//     "!ping", whose reply says every message was handled), -compression-rounds times after
//     a warm-up batch. The fake counts the bytes it wrote for them; the bot's CPU is read to
//     the nanosecond from /proc/<pid>/task/*/schedstat.
//
// Run it with:
//
//	go run ./bench/botside                  # about 3 minutes; or: make bench-botside
//	go run ./bench/botside -pods 1,4,16,64 -settle 30s -runs 5
//	go run ./bench/botside -skip-memory -skip-flood      # transport compression only
//
// Every wait is bounded and it exits non-zero on its own failures: a bot not Ready in time
// or reconnecting while idle, a message lost, a client that does not connect.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

type options struct {
	pods           []int
	guildsPerShard int
	settle         time.Duration
	readyTimeout   time.Duration

	runs           int
	floodFor       time.Duration
	floodGuilds    int
	floodHeartbeat time.Duration
	window         int
	drainTimeout   time.Duration

	compressionRounds int
	compressionEvents int

	skipMemory, skipFlood, skipCompression bool
}

func main() {
	var o options
	pods := flag.String("pods", "1,4,16", "shards per bot process, one process per size")
	flag.IntVar(&o.guildsPerShard, "guilds-per-shard", 100, "guilds the fake Discord gives each shard (GUILD_CREATE after READY)")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "how long each bot idles, connected, before its memory is read")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", time.Minute, "how long a bot may take to be Ready")
	flag.IntVar(&o.runs, "runs", 3, "floods per implementation; the median is reported")
	flag.DurationVar(&o.floodFor, "flood", 5*time.Second, "how long each flood sends")
	flag.IntVar(&o.floodGuilds, "flood-guilds", 16, "guilds of the flooded shard (messages go round robin)")
	flag.DurationVar(&o.floodHeartbeat, "flood-heartbeat", time.Second, "heartbeat interval during floods")
	flag.IntVar(&o.window, "window", 5000, "most messages sent and not yet handled")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "how long handlers may take to get the last messages after a flood")
	flag.BoolVar(&o.skipMemory, "skip-memory", false, "skip the idle memory part")
	flag.BoolVar(&o.skipFlood, "skip-flood", false, "skip the events per second part")
	flag.IntVar(&o.compressionRounds, "compression-rounds", 9, "measured batches per compression mode; the median is reported")
	flag.IntVar(&o.compressionEvents, "compression-events", 1000, "MESSAGE_CREATE per batch in the compression part")
	flag.BoolVar(&o.skipCompression, "skip-compression", false, "skip the transport compression part")
	flag.Parse()
	var err error
	if o.pods, err = parseSizes(*pods); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if o.compressionRounds < 1 || o.compressionEvents < 2 {
		fmt.Fprintln(os.Stderr, "-compression-rounds must be at least 1 and -compression-events at least 2")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
}

func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-pods %q: %q is not a shard count >= 1", s, f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

func run(o options) error {
	// A hard bound on the whole run, beyond which something is stuck.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "botside")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var bin string
	if !o.skipMemory || !o.skipCompression {
		fmt.Println("building cmd/bot ...")
		if bin, err = buildBot(ctx, dir); err != nil {
			return err
		}
	}
	if !o.skipMemory {
		if err := runMemory(ctx, o, bin, dir); err != nil {
			return err
		}
	}
	if !o.skipFlood {
		if err := runFlood(ctx, o); err != nil {
			return err
		}
	}
	if !o.skipCompression {
		if err := runCompression(ctx, o, bin, dir); err != nil {
			return err
		}
	}
	return nil
}

func runMemory(ctx context.Context, o options, bin, dir string) error {
	var pods []podResult
	for _, n := range o.pods {
		r, err := measurePod(ctx, o, bin, dir, n)
		if err != nil {
			return err
		}
		pods = append(pods, r)
	}
	printMemory(os.Stdout, o, pods)
	return nil
}

func runFlood(ctx context.Context, o options) error {
	runs := make([][]floodRun, len(implementations))
	for i := range o.runs {
		for j, impl := range implementations {
			r, err := flood(ctx, o, impl)
			if err != nil {
				return err
			}
			fmt.Printf("run %d: %-32s %8.0f events/s (%d in %s), %.1f µs CPU per event, %d reconnects\n", i+1, impl.name,
				r.rate(), r.events, r.elapsed.Round(time.Millisecond), r.cpuPerEvent(), r.reconnect)
			runs[j] = append(runs[j], r)
		}
	}
	printFlood(os.Stdout, o, runs)
	return nil
}
