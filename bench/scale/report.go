package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// result is one size's measurements.
type result struct {
	pods, bots, nodes int
	// created and running are from applying the bots to every pod seen, and to every pod
	// running (kwok) and having renewed its Lease once; createCPU is the operator's CPU
	// seconds over the same span.
	created, running time.Duration
	createCPU        float64
	// Steady state, over the window: cores used, memory at its end, API requests per
	// second the operator made (and by verb).
	opCores, controlCores, kwokCores float64
	rss, heap                        float64
	reqPerSec                        float64
	reqByVerb                        map[string]float64
	window                           time.Duration
	// Stale Leases: from a silenced pod's last accepted renewal to the operator's delete,
	// and to its replacement pod's creation.
	stalePods                   int
	staleDeleted, staleReplaced stats
}

func (r *result) steady(s0, s1 sample) {
	r.window = s1.at.Sub(s0.at)
	secs := r.window.Seconds()
	r.opCores = (s1.operator.cpu - s0.operator.cpu).Seconds() / secs
	r.controlCores = (s1.control - s0.control).Seconds() / secs
	r.kwokCores = (s1.kwok - s0.kwok).Seconds() / secs
	r.rss = float64(s1.operator.rss)
	r.heap = s1.opMetrics["go_memstats_heap_alloc_bytes"]
	r.reqPerSec = (s1.opMetrics["rest_client_requests_total"] - s0.opMetrics["rest_client_requests_total"]) / secs
	r.reqByVerb = map[string]float64{}
	for name, v := range s1.opMetrics {
		if verb, ok := strings.CutPrefix(name, "rest_client_requests_total/"); ok {
			if d := (v - s0.opMetrics[name]) / secs; d > 0 {
				r.reqByVerb[verb] = d
			}
		}
	}
}

// stats are nearest-rank percentiles of a handful of durations.
type stats struct {
	n             int
	p50, p99, max time.Duration
}

func summarize(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	slices.Sort(ds)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(ds))+0.999999) - 1
		return ds[max(0, min(i, len(ds)-1))]
	}
	return stats{n: len(ds), p50: rank(0.50), p99: rank(0.99), max: ds[len(ds)-1]}
}

func (s stats) String() string {
	if s.n == 0 {
		return "none"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f s", s.p50.Seconds(), s.p99.Seconds(), s.max.Seconds())
}

func mib(b float64) float64 { return b / (1 << 20) }

func printTable(w io.Writer, o options, results []result) {
	fmt.Fprintf(w, "\n%d shards per bot, 1 shard per pod, lease %s, %.1f%% of pods silenced; steady window %s after %s warm-up\n\n",
		o.shardsPerBot, o.lease, o.staleFraction*100, o.window, o.warmup)
	fmt.Fprintln(w, "| pods | bots | all pods created | all running + renewed | operator CPU while creating | operator CPU steady | RSS | Go heap | API req/s (per 1,000 pods) | apiserver+etcd CPU | stale pods | last renewal -> deleted p50 / p99 / max | -> replacement created p50 / p99 / max |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		if r.window == 0 {
			fmt.Fprintf(w, "| %d | %d | %s | %s | | | | | | | | | |\n", r.pods, r.bots, seconds(r.created), seconds(r.running))
			continue
		}
		fmt.Fprintf(w, "| %d | %d | %s | %s | %.1f s | %.1f%% of a core | %.0f MiB | %.0f MiB | %.2f (%.2f) | %.0f%% of a core | %d | %s | %s |\n",
			r.pods, r.bots, seconds(r.created), seconds(r.running), r.createCPU, r.opCores*100, mib(r.rss), mib(r.heap),
			r.reqPerSec, r.reqPerSec*1000/float64(r.pods), r.controlCores*100, r.stalePods, r.staleDeleted, r.staleReplaced)
	}
	fmt.Fprintln(w)
	for _, r := range results {
		if r.window == 0 {
			continue
		}
		verbs := make([]string, 0, len(r.reqByVerb))
		for verb, v := range r.reqByVerb {
			verbs = append(verbs, fmt.Sprintf("%s %.2f", verb, v))
		}
		slices.Sort(verbs)
		fmt.Fprintf(w, "%d pods: operator API requests/s by verb at steady state: %s; kwok %.0f%% of a core\n", r.pods, strings.Join(verbs, ", "), r.kwokCores*100)
	}
}

func seconds(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
