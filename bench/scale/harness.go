package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/bench/internal/proc"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

const (
	namespace = "scale"
	// kwokVersion must match the Makefile's KWOK_VERSION: its stage configs are read from
	// the module cache `make kwok` fills.
	kwokVersion = "v0.8.0"
)

// harness holds what the sizes share: the operator binary, kwok and its stages.
type harness struct {
	o           options
	dir         string
	operatorBin string
	kwokStages  string
	// The kube-controller-manager reference: its binary, and kwok's node stage for it.
	kcmBin         string
	kwokNodeStages string
}

func newHarness(o options) (*harness, error) {
	ctrl.SetLogger(logr.Discard())
	root := testenv.RepoRoot()
	if !filepath.IsAbs(o.kwok) {
		o.kwok = filepath.Join(root, o.kwok)
	}
	if _, err := os.Stat(o.kwok); err != nil {
		return nil, fmt.Errorf("no kwok at %s: run `make kwok`", o.kwok)
	}
	dir, err := os.MkdirTemp("", "shardkeeper-scale")
	if err != nil {
		return nil, err
	}
	h := &harness{o: o, dir: dir, operatorBin: o.operator}
	stagesDir, err := kwokStagesDir()
	if err != nil {
		h.close()
		return nil, err
	}
	if o.reference == referenceKCM {
		h.kcmBin = o.kcm
		if h.kcmBin == "" {
			h.kcmBin = filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-controller-manager")
		}
		if _, err := os.Stat(h.kcmBin); err != nil {
			h.close()
			return nil, fmt.Errorf("-kcm: %w (hack/envtest-assets.sh kube-controller-manager builds one into the asset directory)", err)
		}
		if h.kwokNodeStages, err = writeKwokNodeStages(dir, stagesDir); err != nil {
			h.close()
			return nil, err
		}
		return h, nil
	}
	if h.operatorBin == "" {
		h.operatorBin = filepath.Join(dir, "operator")
		build := exec.Command("go", "build", "-o", h.operatorBin, "./cmd/operator")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			h.close()
			return nil, fmt.Errorf("building cmd/operator: %v\n%s", err, out)
		}
	} else if h.operatorBin, err = filepath.Abs(h.operatorBin); err != nil {
		h.close()
		return nil, err
	} else if _, err := os.Stat(h.operatorBin); err != nil {
		h.close()
		return nil, fmt.Errorf("-operator: %w", err)
	}
	if h.kwokStages, err = writeKwokStages(dir, stagesDir); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *harness) close() {
	if h.o.keep {
		fmt.Println("work directory kept:", h.dir)
		return
	}
	_ = os.RemoveAll(h.dir)
}

// kwokStagesDir is where kwok's stage configs are, in the module cache `make kwok` fills.
func kwokStagesDir() (string, error) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "sigs.k8s.io", "kwok@"+kwokVersion, "kustomize", "stage"), nil
}

// writeKwokStages joins kwok's "fast" node and pod stages (nodes ready at once, pods
// running and ready at once, deleted pods removed at once) into one config file. The
// node heartbeat stages are left out: nothing in envtest watches node health.
func writeKwokStages(dir, stages string) (string, error) {
	var docs []string
	for _, f := range []string{"node/fast/node-initialize.yaml", "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml"} {
		raw, err := os.ReadFile(filepath.Join(stages, f))
		if err != nil {
			return "", fmt.Errorf("kwok stage config: %w (run `make kwok`)", err)
		}
		docs = append(docs, string(raw))
	}
	path := filepath.Join(dir, "kwok-stages.yaml")
	return path, os.WriteFile(path, []byte(strings.Join(docs, "\n---\n")), 0o600)
}

// sample is a moment's reading of the operator and the control plane.
type sample struct {
	at       time.Time
	operator proc.Stats
	background
	renewals  int
	opMetrics proc.Metrics
}

// background is the CPU time of what runs beside the process measured.
type background struct {
	control time.Duration // kube-apiserver + etcd
	kwok    time.Duration
	harness time.Duration // this process: the load generator, binder and watches
}

func readBackground(kwok *proc.Child) background {
	var b background
	for _, name := range []string{"kube-apiserver", "etcd"} {
		for _, pid := range proc.ChildrenNamed(name) {
			if st, err := proc.Read(pid); err == nil {
				b.control += st.CPU
			}
		}
	}
	if st, err := proc.Read(kwok.Pid()); err == nil {
		b.kwok = st.CPU
	}
	if st, err := proc.Read(os.Getpid()); err == nil {
		b.harness = st.CPU
	}
	return b
}

// run is one size's running set-up.
type sizeRun struct {
	h        *harness
	n        int
	dir      string
	env      *testenv.Env
	kube     kubernetes.Interface
	k8s      client.Client
	discord  *discordtest.Server
	operator *proc.Child
	kwok     *proc.Child
	metrics  string
	watch    *podWatch
	beats    *heartbeats
}

func (r *sizeRun) sample(ctx context.Context) (sample, error) {
	s := sample{at: time.Now()}
	var err error
	if s.operator, err = proc.Read(r.operator.Pid()); err != nil {
		return s, fmt.Errorf("reading the operator's /proc: %w", err)
	}
	s.background = readBackground(r.kwok)
	s.renewals = r.beats.renewalCount()
	s.opMetrics, err = proc.Scrape(ctx, r.metrics, map[string]string{"rest_client_requests_total": "method"})
	return s, err
}

// alive fails when the operator or kwok stopped.
func (r *sizeRun) alive() error {
	for _, c := range []*proc.Child{r.operator, r.kwok} {
		if c.Exited() {
			return fmt.Errorf("%s exited:\n%s", c.Name, c.Tail())
		}
	}
	return nil
}

// waitFor polls cond every 100 ms until it holds, a process dies, or bound passes.
func (r *sizeRun) waitFor(what string, bound time.Duration, cond func() bool) (time.Duration, error) {
	start := time.Now()
	for !cond() {
		if err := r.alive(); err != nil {
			return time.Since(start), err
		}
		if time.Since(start) > bound {
			return time.Since(start), fmt.Errorf("%s: not within %s", what, bound)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start), nil
}

func (h *harness) runSize(n int) (*result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := h.o
	r := &sizeRun{h: h, n: n, dir: filepath.Join(h.dir, fmt.Sprintf("pods-%d", n))}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, err
	}
	res := &result{pods: n, bots: (n + o.shardsPerBot - 1) / o.shardsPerBot, nodes: (n + o.podsPerNode - 1) / o.podsPerNode}

	// 1. The control plane, the fake Discord, the operator and kwok.
	var err error
	if r.env, err = testenv.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = r.env.Stop() }()
	kubeconfig := filepath.Join(r.dir, "kubeconfig")
	raw, err := r.env.AdminKubeconfig()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(r.env.Config)
	cfg.QPS = -1 // the harness must never be the bottleneck it measures
	if r.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if r.k8s, err = client.New(cfg, client.Options{Scheme: r.env.Scheme}); err != nil {
		return nil, err
	}
	r.discord = discordtest.NewServer(discordtest.Options{RecommendedShards: o.shardsPerBot})
	defer r.discord.Close()

	metricsPort, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	probePort, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	r.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	args := []string{
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
		"--default-bot-image=bench.invalid/shardkeeper/bot:scale",
		"--discord-api-url=" + r.discord.APIURL(),
		// The fake Discord listens on loopback in plain text. (An operator built before
		// --plain-http-hosts existed does not know the flag.)
		"--plain-http-hosts=127.0.0.1",
	}
	if o.workers > 0 {
		args = append(args, fmt.Sprintf("--max-concurrent-reconciles=%d", o.workers))
	}
	r.operator, err = proc.Start("operator", r.dir, []string{"KUBECONFIG=" + kubeconfig}, h.operatorBin, args...)
	if err != nil {
		return nil, err
	}
	defer r.operator.Stop()
	if err := r.operator.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort), time.Minute); err != nil {
		return nil, err
	}
	r.kwok, err = proc.Start("kwok", r.dir, nil, o.kwok, "--kubeconfig="+kubeconfig, "--config="+h.kwokStages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		"--manage-nodes-with-label-selector=", "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
		"--disregard-status-with-label-selector=", "--cidr=10.0.0.1/16", "--node-ip=10.0.0.1", "--node-lease-duration-seconds=0")
	if err != nil {
		return nil, err
	}
	defer r.kwok.Stop()
	nodes, err := createNodes(ctx, r.kube, res.nodes, o.podsPerNode)
	if err != nil {
		return nil, err
	}
	r.beats = newHeartbeats(r.kube, namespace, o.lease)
	if r.watch, err = watchPods(ctx, r.kube, namespace, nodes, r.beats); err != nil {
		return nil, err
	}

	// 2. Apply the bots and wait for every pod, then for every pod to renew its Lease.
	applied := time.Now()
	before, err := r.sample(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.createBots(ctx, res.bots); err != nil {
		return nil, err
	}
	bound := o.createBound
	if bound == 0 {
		bound = 2*time.Minute + time.Duration(n)*100*time.Millisecond
	}
	if res.created, err = r.waitFor("every pod created", bound, func() bool { ever, _ := r.watch.podsSeen(); return ever >= n }); err != nil {
		ever, _ := r.watch.podsSeen()
		return res, fmt.Errorf("%w (%d of %d pods)", err, ever, n)
	}
	res.created = time.Since(applied)
	fmt.Printf("   every pod created %.1f s after the bots were applied\n", res.created.Seconds())
	if _, err = r.waitFor("every pod running and renewing", bound, func() bool { return r.beats.renewedPods() >= n }); err != nil {
		return res, fmt.Errorf("%w (%d of %d renewing, %d failed bindings)", err, r.beats.renewedPods(), n, r.watch.bindFailures())
	}
	res.running = time.Since(applied)
	after, err := r.sample(ctx)
	if err != nil {
		return res, err
	}
	res.createCPU = (after.operator.CPU - before.operator.CPU).Seconds()
	res.create = activityBetween(before, after)
	fmt.Printf("   every pod running and renewing %.1f s after; operator CPU meanwhile %.1f s\n", res.running.Seconds(), res.createCPU)

	// 3. Steady state: every pod renews, nothing changes.
	time.Sleep(o.warmup)
	if err := r.alive(); err != nil {
		return res, err
	}
	s0, err := r.sample(ctx)
	if err != nil {
		return res, err
	}
	time.Sleep(o.window)
	s1, err := r.sample(ctx)
	if err != nil {
		return res, err
	}
	res.steady(s0, s1)
	if res.steadyEvents, err = r.eventsBetween(ctx, s0.at, s1.at); err != nil {
		return res, err
	}
	fmt.Printf("   steady: operator %.3f cores, RSS %.0f MiB, heap %.0f MiB, %.2f API req/s; apiserver+etcd %.2f cores, kwok %.2f cores\n",
		res.opCores, mib(res.rss), mib(res.heap), res.reqPerSec, res.controlCores, res.kwokCores)

	// 4. Stale Leases: silence a fraction of the pods, one per bot at most, and time the
	// operator's deletions and the replacements.
	if err := r.staleLeases(res); err != nil {
		return res, err
	}
	if n >= 1000 && res.staleDeleted.p99 > o.lease+2*time.Second {
		return res, fmt.Errorf("stale-to-deletion p99 %.2f s is over the lease duration + 2 s (%.0f s)", res.staleDeleted.p99.Seconds(), (o.lease + 2*time.Second).Seconds())
	}
	return res, r.alive()
}

// createBots applies the token Secret and the bots, 8 at a time, as `kubectl apply` of a
// large manifest would.
func (r *sizeRun) createBots(ctx context.Context, bots int) error {
	o := r.h.o
	if err := r.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	if err := r.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "token", Namespace: namespace},
		Data: map[string][]byte{"token": []byte(discordtest.DefaultToken)}}); err != nil {
		return err
	}
	work := make(chan int)
	errs := make(chan error, bots)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				shards := min(o.shardsPerBot, r.n-i*o.shardsPerBot)
				bot := &shardkeeperv1.DiscordBot{
					ObjectMeta: metav1.ObjectMeta{Name: botName(i), Namespace: namespace},
					Spec: shardkeeperv1.DiscordBotSpec{
						TokenSecretRef: shardkeeperv1.SecretKeySelector{Name: "token", Key: "token"},
						Shards:         intstr.FromInt32(int32(shards)),
						ShardsPerPod:   1,
						Intents:        []shardkeeperv1.Intent{"GUILDS"},
						Gateway:        &shardkeeperv1.GatewaySpec{URL: r.discord.URL(), APIURL: r.discord.APIURL()},
						Health: shardkeeperv1.HealthSpec{Mode: shardkeeperv1.HealthModeLease,
							LeaseDurationSeconds: int32(o.lease / time.Second)},
					},
				}
				if err := r.k8s.Create(ctx, bot); err != nil {
					errs <- fmt.Errorf("creating bot %s: %w", bot.Name, err)
				}
			}
		}()
	}
	for i := range bots {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func botName(i int) string { return fmt.Sprintf("bot-%05d", i) }

// staleLeases silences the first pod of evenly spread bots and waits for each to be
// deleted and replaced.
func (r *sizeRun) staleLeases(res *result) error {
	o := r.h.o
	k := max(1, int(math.Round(o.staleFraction*float64(r.n))))
	k = min(k, res.bots)
	type target struct {
		name string
		uid  types.UID
	}
	var targets []target
	for j := range k {
		name := botName(j*res.bots/k) + "-0"
		uid, ok := r.watch.pod(name)
		if !ok {
			return fmt.Errorf("pod %s to silence is not running", name)
		}
		targets = append(targets, target{name, uid})
	}
	for _, t := range targets {
		r.beats.silence(t.uid)
	}
	silenced := time.Now()
	done := func() bool {
		for _, t := range targets {
			if _, ok := r.watch.replacedAt(t.name, t.uid); !ok {
				return false
			}
		}
		return true
	}
	_, waitErr := r.waitFor("every silenced pod deleted and replaced", o.lease+time.Minute, done)
	var deleted, replaced []time.Duration
	for _, t := range targets {
		last, ok := r.beats.lastRenewal(t.uid)
		if !ok {
			last = silenced
		}
		if at, ok := r.watch.deletedAt(t.uid); ok {
			deleted = append(deleted, at.Sub(last))
		}
		if at, ok := r.watch.replacedAt(t.name, t.uid); ok {
			replaced = append(replaced, at.Sub(last))
		}
	}
	res.stalePods = k
	res.staleDeleted = summarize(deleted)
	res.staleReplaced = summarize(replaced)
	fmt.Printf("   stale: %d pods silenced; last renewal -> deleted %s; -> replacement created %s\n", k, res.staleDeleted, res.staleReplaced)
	if waitErr != nil {
		return fmt.Errorf("%w: %d of %d deleted, %d replaced", waitErr, len(deleted), k, len(replaced))
	}
	return nil
}

// eventsBetween counts the operator's events (new ones and repeats) between two moments by
// reason: a steady state with events is one where statuses still change.
func (r *sizeRun) eventsBetween(ctx context.Context, from, to time.Time) (map[string]int, error) {
	var events eventsv1.EventList
	if err := r.k8s.List(ctx, &events, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	out := map[string]int{}
	for _, e := range events.Items {
		at := e.EventTime.Time
		if e.Series != nil {
			at = e.Series.LastObservedTime.Time
		}
		if !at.Before(from) && at.Before(to) {
			out[e.Reason]++
		}
	}
	return out, nil
}
