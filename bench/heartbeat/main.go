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
	"os"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/shardkeeper/shardkeeper/bench/internal/shardclient"
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
		measure("botruntime", *interval, *block, *duration, *rate, shardclient.Botruntime),
		measure("disgo gateway", *interval, *block, *duration, *rate, shardclient.DisgoGateway),
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "implementation\theartbeats\tlateness p50\tp99\tmax\treconnects\tidentifies\tevents handled\t")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t\n", r.name, r.heartbeats, r.p50, r.p99, r.max, r.reconnects, r.identifies, r.handled)
	}
	_ = w.Flush()
}

func measure(name string, interval, block, duration time.Duration, rate int, run shardclient.Client) result {
	guild := uint64(1) << 22
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: interval, Guilds: []uint64{guild}})
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var handled atomic.Int64
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, srv, func() {
			time.Sleep(block)
			handled.Add(1)
		})
	}()
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
	late := shardclient.Lateness(shard.HeartbeatTimes, interval)
	r := result{name: name, heartbeats: len(shard.HeartbeatTimes), reconnects: st.Connections - 1, identifies: shard.Identifies, handled: int(handled.Load())}
	if len(late) > 0 {
		r.p50 = shardclient.Percentile(late, 50).Round(time.Millisecond)
		r.p99 = shardclient.Percentile(late, 99).Round(time.Millisecond)
		r.max = late[len(late)-1].Round(time.Millisecond)
	}
	return r
}
