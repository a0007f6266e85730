package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/shardkeeper/shardkeeper/bench/internal/proc"
	"github.com/shardkeeper/shardkeeper/bench/internal/shardclient"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// implementation is one way to run a shard in the events-per-second runs.
type implementation struct {
	name string
	run  shardclient.Client
}

var implementations = []implementation{
	{"raw websocket reader (ceiling)", shardclient.RawReader},
	{"botruntime", shardclient.Botruntime},
	{"disgo gateway", shardclient.DisgoGateway},
	{"disgo.New + listener", shardclient.DisgoBot},
}

// floodRun is one flood of one implementation.
type floodRun struct {
	events    int
	elapsed   time.Duration // from the first message sent to the last one handled
	cpu       time.Duration // this process: the fake Discord and the client together
	heartbeat []time.Duration
	beats     int // heartbeats during the flood
	reconnect int
}

func (r floodRun) rate() float64 { return float64(r.events) / r.elapsed.Seconds() }

// cpuPerEvent is this process's CPU per message in µs: the fake's share and the client's.
func (r floodRun) cpuPerEvent() float64 {
	return float64(r.cpu) / float64(time.Microsecond) / float64(r.events)
}

// flood connects one shard with impl to a fresh fake Discord, then has the fake send
// MESSAGE_CREATE as fast as the client takes them for o.floodFor, spread over the shard's
// guilds, at most o.window ahead of what handlers counted. Every message must reach a
// handler exactly once.
func flood(ctx context.Context, o options, impl implementation) (floodRun, error) {
	guilds := make([]uint64, o.floodGuilds)
	for i := range guilds {
		guilds[i] = uint64(i+1) << 22
	}
	srv := discordtest.NewServer(discordtest.Options{Token: shardclient.Token, HeartbeatInterval: o.floodHeartbeat, Guilds: guilds})
	defer srv.Close()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var handled, lastHandled atomic.Int64
	errc := make(chan error, 1)
	go func() {
		errc <- impl.run(runCtx, srv, func() {
			lastHandled.Store(time.Now().UnixNano())
			handled.Add(1)
		})
	}()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := srv.WaitConnected(waitCtx, 0)
	cancel()
	if err != nil {
		stop()
		return floodRun{}, fmt.Errorf("%s did not connect: %w (client: %v)", impl.name, err, clientErr(errc))
	}

	before, err := proc.Read(os.Getpid())
	if err != nil {
		return floodRun{}, err
	}
	start := time.Now()
	sent := int64(0)
	for time.Since(start) < o.floodFor {
		if sent-handled.Load() >= int64(o.window) {
			time.Sleep(100 * time.Microsecond) // not a spin: the client needs the core
			continue
		}
		g := guilds[sent%int64(len(guilds))]
		srv.SendMessage(g, g, "flood")
		sent++
	}
	deadline := time.Now().Add(o.drainTimeout)
	for handled.Load() < sent && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	after, err := proc.Read(os.Getpid())
	if err != nil {
		return floodRun{}, err
	}
	st := srv.Stats()
	stop()
	if err := clientErr(errc); err != nil {
		return floodRun{}, fmt.Errorf("%s: %w", impl.name, err)
	}
	if got := handled.Load(); got != sent {
		return floodRun{}, fmt.Errorf("%s: handlers got %d of %d messages within %s of the flood's end", impl.name, got, sent, o.drainTimeout)
	}

	shard := st.PerShard[0]
	var during []time.Time
	for _, t := range shard.HeartbeatTimes {
		if !t.Before(start) {
			during = append(during, t)
		}
	}
	return floodRun{
		events:    int(sent),
		elapsed:   time.Unix(0, lastHandled.Load()).Sub(start),
		cpu:       after.CPU - before.CPU,
		heartbeat: shardclient.Lateness(during, o.floodHeartbeat),
		beats:     len(during),
		reconnect: st.Connections - 1,
	}, nil
}

// clientErr is the client's error if it has returned, waiting at most 5 s.
func clientErr(errc <-chan error) error {
	select {
	case err := <-errc:
		return err
	case <-time.After(5 * time.Second):
		return fmt.Errorf("the client did not stop within 5 s")
	}
}

// medianRun is the run with the median rate.
func medianRun(runs []floodRun) floodRun {
	byRate := slices.Clone(runs)
	slices.SortFunc(byRate, func(a, b floodRun) int {
		switch {
		case a.rate() < b.rate():
			return -1
		case a.rate() > b.rate():
			return 1
		}
		return 0
	})
	return byRate[len(byRate)/2]
}
