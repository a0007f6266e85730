// Command heartbeat measures what slow event handlers do to a shard's heartbeat, with
// botruntime and with plain disgo (v0.19.6, handlers registered the usual way), one after
// the other in one run, against the same fake Discord (internal/discordtest).
//
// Each run: a 250 ms heartbeat interval, MESSAGE_CREATE events at a steady rate, and a
// handler that blocks for 10 intervals on every event (file I/O, a slow API call). The
// fake records when each heartbeat arrives; lateness is how much later than one interval
// after the previous one it came. Reconnects count connections beyond the first: with a
// healthy heartbeat there are none.
//
//	go run ./bench/heartbeat            # about 1 minute
//	go run ./bench/heartbeat -duration 60s -block 2.5s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/go-logr/logr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

type result struct {
	name       string
	heartbeats int
	p50, p99   time.Duration
	max        time.Duration
	reconnects int
	identifies int
	handled    int
}

func main() {
	interval := flag.Duration("interval", 250*time.Millisecond, "heartbeat interval the fake Discord asks for")
	block := flag.Duration("block", 0, "how long each handler blocks (default 10 x interval)")
	duration := flag.Duration("duration", 25*time.Second, "how long each implementation runs")
	rate := flag.Int("rate", 4, "events per second")
	flag.Parse()
	if *block == 0 {
		*block = 10 * *interval
	}
	fmt.Printf("heartbeat interval %s, handlers block %s per event, %d events/s, %s per run\n\n", *interval, *block, *rate, *duration)

	results := []result{
		measure("botruntime", *interval, *block, *duration, *rate, runBotruntime),
		measure("disgo gateway", *interval, *block, *duration, *rate, runDisgo),
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "implementation\theartbeats\tlateness p50\tp99\tmax\treconnects\tidentifies\tevents handled\t")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t\n", r.name, r.heartbeats, r.p50, r.p99, r.max, r.reconnects, r.identifies, r.handled)
	}
	_ = w.Flush()
}

// runner connects one shard to srv with a handler that blocks for block on MESSAGE_CREATE,
// counting handled events, until ctx ends.
type runner func(ctx context.Context, srv *discordtest.Server, block time.Duration, handled *atomic.Int64) error

func measure(name string, interval, block, duration time.Duration, rate int, run runner) result {
	guild := uint64(1) << 22
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: interval, Guilds: []uint64{guild}})
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var handled atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, srv, block, &handled) }()
	waitCtx, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	if err := srv.WaitConnected(waitCtx, 0); err != nil {
		fmt.Fprintf(os.Stderr, "%s never connected: %v\n", name, err)
		os.Exit(1)
	}
	cancelWait()

	tick := time.NewTicker(time.Second / time.Duration(rate))
	end := time.After(duration)
loop:
	for {
		select {
		case <-tick.C:
			srv.SendMessage(guild, 1, "work")
		case <-end:
			break loop
		}
	}
	tick.Stop()
	st := srv.Stats()
	cancel()
	<-errc

	shard := st.PerShard[0]
	var late []time.Duration
	for i := 1; i < len(shard.HeartbeatTimes); i++ {
		late = append(late, max(0, shard.HeartbeatTimes[i].Sub(shard.HeartbeatTimes[i-1])-interval))
	}
	slices.Sort(late)
	r := result{name: name, heartbeats: len(shard.HeartbeatTimes), reconnects: st.Connections - 1, identifies: shard.Identifies, handled: int(handled.Load())}
	if len(late) > 0 {
		r.p50 = late[len(late)/2].Round(time.Millisecond)
		r.p99 = late[len(late)*99/100].Round(time.Millisecond)
		r.max = late[len(late)-1].Round(time.Millisecond)
	}
	return r
}

func runBotruntime(ctx context.Context, srv *discordtest.Server, block time.Duration, handled *atomic.Int64) error {
	dir, err := os.MkdirTemp("", "bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(discordtest.DefaultToken), 0o600); err != nil {
		return err
	}
	rt, err := botruntime.New(botruntime.Config{
		ShardIDs: []int{0}, ShardCount: 1, TokenFile: tokenFile,
		Intents:    []shardkeeperv1.Intent{"GUILDS", "GUILD_MESSAGES"},
		GatewayURL: srv.URL(), APIURL: srv.APIURL(), MaxConcurrency: 1, IdentifyInterval: time.Millisecond,
	}, botruntime.WithLogger(logr.Discard()), botruntime.WithShutdownTimeout(time.Second))
	if err != nil {
		return err
	}
	_ = rt.Handle(func(ctx context.Context, ev botruntime.Event) {
		if _, ok := ev.Data.(gateway.EventMessageCreate); ok {
			time.Sleep(block)
			handled.Add(1) // one guild: handled in order, one at a time
		}
	})
	return rt.Run(ctx)
}

func runDisgo(ctx context.Context, srv *discordtest.Server, block time.Duration, handled *atomic.Int64) error {
	gw := gateway.New(discordtest.DefaultToken, func(_ gateway.Gateway, _ gateway.EventType, _ int, ev gateway.EventData) {
		if _, ok := ev.(gateway.EventMessageCreate); ok {
			time.Sleep(block)
			handled.Add(1)
		}
	},
		gateway.WithURL(srv.URL()), gateway.WithCompression(gateway.CompressionNone),
		gateway.WithShardID(0), gateway.WithShardCount(1),
		gateway.WithIntents(gateway.IntentGuilds, gateway.IntentGuildMessages),
		gateway.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	)
	if err := gw.Open(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	gw.CloseWithCode(closeCtx, 4000, "bench done")
	return nil
}
