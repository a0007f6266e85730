package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/shardkeeper/shardkeeper/bench/internal/shardclient"
)

func mib(bytes float64) float64 { return bytes / (1 << 20) }

func printMemory(w io.Writer, o options, pods []podResult) {
	fmt.Fprintf(w, "\n### Idle cmd/bot: %d guilds per shard, %s idle after Ready\n\n", o.guildsPerShard, o.settle)
	fmt.Fprintln(w, "| shards in the pod | guilds | RSS | Go heap in use | Go heap allocated | goroutines | CPU while idle |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	var x, rss, heap []float64
	for _, p := range pods {
		fmt.Fprintf(w, "| %d | %d | %.1f MiB | %.1f MiB | %.1f MiB | %.0f | %.1f%% of a core |\n", p.shards, p.guilds,
			mib(float64(p.rss)), mib(p.heapInuse), mib(p.heapAlloc), p.goroutines, 100*p.idleCPU.Seconds()/o.settle.Seconds())
		x = append(x, float64(p.shards))
		rss = append(rss, float64(p.rss))
		heap = append(heap, p.heapInuse)
	}
	rssLine, ok1 := fitLine(x, rss)
	heapLine, ok2 := fitLine(x, heap)
	if ok1 && ok2 {
		fmt.Fprintf(w, "\nLeast squares over %d pod sizes: **per shard %.2f MiB RSS, %.2f MiB Go heap**; per pod before its first shard %.1f MiB RSS, %.1f MiB Go heap.\n",
			len(pods), mib(rssLine.slope), mib(heapLine.slope), mib(rssLine.intercept), mib(heapLine.intercept))
	}
}

func printFlood(w io.Writer, o options, runs [][]floodRun) {
	fmt.Fprintf(w, "\n### One shard flooded with MESSAGE_CREATE: %s per run, %d guilds, window %d, heartbeat every %s, median of %d runs (GOMAXPROCS %d)\n\n",
		o.floodFor, o.floodGuilds, o.window, o.floodHeartbeat, o.runs, runtime.GOMAXPROCS(0))
	fmt.Fprintln(w, "| implementation | events/s to handlers, median | all runs | CPU per event, fake + client | client alone (minus the raw reader's) | heartbeats during the median run | lateness p99 / max | reconnects, all runs |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	ceiling := medianRun(runs[0]).cpuPerEvent() // implementations[0] is the raw reader
	for i, impl := range implementations {
		m := medianRun(runs[i])
		var all []string
		reconnects := 0
		for _, r := range runs[i] {
			all = append(all, fmt.Sprintf("%.0f", r.rate()))
			reconnects += r.reconnect
		}
		client := "-"
		if i > 0 {
			client = fmt.Sprintf("%.1f µs", m.cpuPerEvent()-ceiling)
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %.1f µs | %s | %d | %s / %s | %d |\n", impl.name, m.rate(), strings.Join(all, ", "),
			m.cpuPerEvent(), client, m.beats,
			shardclient.Percentile(m.heartbeat, 99).Round(time.Millisecond), maxOf(m.heartbeat).Round(time.Millisecond), reconnects)
	}
}

func maxOf(sorted []time.Duration) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[len(sorted)-1]
}
