// Command scale measures how far one Shardkeeper operator goes: it runs the operator binary
// as its own process against envtest's kube-apiserver and etcd, with kwok playing the
// kubelet of fake nodes, a small binder playing the scheduler, and a load generator
// renewing every pod's heartbeat Lease as botruntime would. At each size it measures the
// time to create every pod, the operator's CPU, memory and API requests at steady state,
// and the time from a silenced pod's last renewal to the operator deleting it.
//
//	make kwok && go run ./bench/scale -pods 100,1000     # or: make bench-scale
//
// Everything listens on loopback, every wait is bounded, and it exits non-zero when a size
// fails: pods not all created in time, stale pods not deleted, or (from 1,000 pods) a
// stale-to-deletion p99 above the lease duration + 2 s.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

type options struct {
	sizes         []int
	shardsPerBot  int
	podsPerNode   int
	lease         time.Duration
	staleFraction float64
	warmup        time.Duration
	window        time.Duration
	createBound   time.Duration
	kwok          string
	operator      string
	reference     string
	kcm           string
	keep          bool
	workers       int
}

func main() {
	var o options
	sizes := flag.String("pods", "100,1000", "comma-separated shard pod counts, one run each")
	flag.IntVar(&o.shardsPerBot, "shards-per-bot", 4, "shards of each DiscordBot (1 shard per pod)")
	flag.IntVar(&o.podsPerNode, "pods-per-node", 100, "bot pods per fake node")
	lease := flag.Int("lease", 20, "spec.health.leaseDurationSeconds of every bot")
	flag.Float64Var(&o.staleFraction, "stale", 0.01, "fraction of pods that stop renewing (at least 1, at most one per bot)")
	flag.DurationVar(&o.warmup, "warmup", 30*time.Second, "wait after every pod renewed before the steady-state window")
	flag.DurationVar(&o.window, "window", 60*time.Second, "steady-state measurement window")
	flag.DurationVar(&o.createBound, "create-timeout", 0, "bound on creating every pod (default 2 min + 100 ms per pod)")
	flag.StringVar(&o.kwok, "kwok", "bin/kwok", "kwok binary (make kwok)")
	flag.StringVar(&o.operator, "operator", "", "a prebuilt operator binary, e.g. of another commit for a before/after (default: build ./cmd/operator)")
	flag.IntVar(&o.workers, "workers", 0, "the operator's --max-concurrent-reconciles (0: its default)")
	flag.StringVar(&o.reference, "reference", "", `"kcm": instead of the operator, measure the kube-controller-manager's node lifecycle controller on as many kwok nodes as -pods, their node Leases renewed by the harness (lease -lease, grace period -lease)`)
	flag.StringVar(&o.kcm, "kcm", "", "kube-controller-manager binary for -reference kcm (default: $KUBEBUILDER_ASSETS/kube-controller-manager)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs of the operator and kwok)")
	flag.Parse()
	o.lease = time.Duration(*lease) * time.Second
	if o.reference != "" && o.reference != referenceKCM {
		fmt.Fprintf(os.Stderr, "scale: -reference: %q is not %q\n", o.reference, referenceKCM)
		os.Exit(2)
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "scale: -pods: %q is not a pod count\n", s)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	h, err := newHarness(o)
	if err != nil {
		return err
	}
	defer h.close()
	if o.reference == referenceKCM {
		return runKCM(h)
	}
	var results []result
	var failures []string
	for _, n := range o.sizes {
		fmt.Printf("== %d pods\n", n)
		r, err := h.runSize(n)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%d pods: %v", n, err))
			fmt.Printf("   FAILED: %v\n", err)
		}
		if r != nil {
			results = append(results, *r)
		}
	}
	printTable(os.Stdout, o, results)
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d sizes failed:\n  %s", len(failures), len(o.sizes), strings.Join(failures, "\n  "))
	}
	return nil
}

func runKCM(h *harness) error {
	var results []kcmResult
	var failures []string
	for _, n := range h.o.sizes {
		fmt.Printf("== kube-controller-manager, %d nodes\n", n)
		r, err := h.runKCMSize(n)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%d nodes: %v", n, err))
			fmt.Printf("   FAILED: %v\n", err)
		}
		if r != nil {
			results = append(results, *r)
		}
	}
	printKCMTable(os.Stdout, h.o, results)
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d sizes failed:\n  %s", len(failures), len(h.o.sizes), strings.Join(failures, "\n  "))
	}
	return nil
}
