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
	// What the operator did while creating: API requests (and their mean latency),
	// reconciles (and their mean duration), and the control plane's CPU.
	create activity
	// Steady state, over the window: cores used, memory at its end, API requests per
	// second the operator made (and by verb).
	opCores, controlCores, kwokCores float64
	rss, heap                        float64
	reqPerSec                        float64
	window                           time.Duration
	steadyActivity                   activity
	steadyEvents                     map[string]int // the operator's events in the window, by reason
	// Stale Leases: from a silenced pod's last accepted renewal to the operator's delete,
	// and to its replacement pod's creation.
	stalePods                   int
	staleDeleted, staleReplaced stats
}

// activity is what happened between two samples.
type activity struct {
	requests, reconciles   float64
	reconcileMean          time.Duration
	queueWaitMean          time.Duration // a bot's wait in the work queue before a worker took it
	queueDepth             float64       // bots waiting at the end
	requestsByVerb         map[string]float64
	controlCPU, harnessCPU time.Duration
	renewals               int
}

func activityBetween(s0, s1 sample) activity {
	delta := func(name string) float64 { return s1.opMetrics[name] - s0.opMetrics[name] }
	mean := func(name string) time.Duration {
		if n := delta(name + "_count"); n > 0 {
			return time.Duration(delta(name+"_sum") / n * float64(time.Second))
		}
		return 0
	}
	a := activity{
		requests: delta("rest_client_requests_total"), reconciles: delta("controller_runtime_reconcile_total"),
		reconcileMean: mean("controller_runtime_reconcile_time_seconds"), requestsByVerb: map[string]float64{},
		queueWaitMean: mean("workqueue_queue_duration_seconds"), queueDepth: s1.opMetrics["workqueue_depth"],
		controlCPU: s1.control - s0.control, harnessCPU: s1.harness - s0.harness, renewals: s1.renewals - s0.renewals,
	}
	for name := range s1.opMetrics {
		if verb, ok := strings.CutPrefix(name, "rest_client_requests_total/"); ok && delta(name) > 0 {
			a.requestsByVerb[verb] = delta(name)
		}
	}
	return a
}

func (a activity) String() string {
	verbs := make([]string, 0, len(a.requestsByVerb))
	for verb, n := range a.requestsByVerb {
		verbs = append(verbs, fmt.Sprintf("%s %.0f", verb, n))
	}
	slices.Sort(verbs)
	return fmt.Sprintf("operator API requests %.0f (%s), reconciles %.0f (mean %.1f ms, queue wait mean %.1f ms, %.0f queued at the end); Lease renewals %d; CPU s: apiserver+etcd %.1f, harness %.1f",
		a.requests, strings.Join(verbs, " "), a.reconciles, ms(a.reconcileMean), ms(a.queueWaitMean), a.queueDepth, a.renewals,
		a.controlCPU.Seconds(), a.harnessCPU.Seconds())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *result) steady(s0, s1 sample) {
	r.steadyActivity = activityBetween(s0, s1)
	r.window = s1.at.Sub(s0.at)
	secs := r.window.Seconds()
	r.opCores = (s1.operator.CPU - s0.operator.CPU).Seconds() / secs
	r.controlCores = (s1.control - s0.control).Seconds() / secs
	r.kwokCores = (s1.kwok - s0.kwok).Seconds() / secs
	r.rss = float64(s1.operator.RSS)
	r.heap = s1.opMetrics["go_memstats_heap_alloc_bytes"]
	r.reqPerSec = (s1.opMetrics["rest_client_requests_total"] - s0.opMetrics["rest_client_requests_total"]) / secs
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
		fmt.Fprintf(w, "%d pods: creating: %s\n", r.pods, r.create)
		fmt.Fprintf(w, "%d pods: steady %s: %s; kwok %.0f%% of a core; events %s\n", r.pods, r.window.Round(time.Second), r.steadyActivity,
			r.kwokCores*100, byReason(r.steadyEvents))
	}
}

func seconds(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func byReason(counts map[string]int) string {
	if len(counts) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(counts))
	for reason, n := range counts {
		parts = append(parts, fmt.Sprintf("%s %d", reason, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
