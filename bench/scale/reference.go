package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/shardkeeper/shardkeeper/bench/internal/proc"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

// The kube-controller-manager reference (-reference kcm): the node lifecycle controller
// judges node Leases the way the operator judges bot Leases (its own clock from when it saw
// a renewal, plus a grace period). At the same count, n kwok nodes whose Leases the load
// generator renews as the kubelet does (every duration/4 plus up to 4% jitter), and the
// same fraction silenced: from a node's last accepted renewal to the harness seeing its
// Ready condition turn Unknown, and the controller-manager's CPU and memory meanwhile.

// referenceKCM is the -reference value for the kube-controller-manager run.
const referenceKCM = "kcm"

// kcmResult is one size's measurements of the kube-controller-manager.
type kcmResult struct {
	nodes int
	// ready: from creating the nodes to every node Ready and renewing its Lease; settled:
	// from starting the controller-manager to its last API request of its start.
	ready, settled time.Duration
	// Steady state, over the window.
	kcmCores, controlCores, kwokCores float64
	rss, heap                         float64
	reqPerSec                         float64
	requestsByVerb                    map[string]float64
	window                            time.Duration
	renewals                          int
	controlCPU, harnessCPU            time.Duration
	// Silenced nodes: last accepted renewal -> Ready turned Unknown.
	staleNodes   int
	staleUnknown stats
}

// kcmRun is one size's running set-up.
type kcmRun struct {
	h       *harness
	n       int
	env     *testenv.Env
	kube    kubernetes.Interface
	kcm     *proc.Child
	kwok    *proc.Child
	metrics string
	nodes   *nodeWatch
	beats   *heartbeats
}

// kcmSample is a moment's reading of the controller-manager and the control plane.
type kcmSample struct {
	at  time.Time
	kcm proc.Stats
	background
	renewals int
	metrics  proc.Metrics // nil when its /metrics could not be read
}

func (r *kcmRun) sample(ctx context.Context) (kcmSample, error) {
	s := kcmSample{at: time.Now()}
	var err error
	if s.kcm, err = proc.Read(r.kcm.Pid()); err != nil {
		return s, fmt.Errorf("reading the controller-manager's /proc: %w", err)
	}
	s.background = readBackground(r.kwok)
	s.renewals = r.beats.renewalCount()
	s.metrics, _ = scrapeTLS(ctx, r.metrics)
	return s, nil
}

func (r *kcmRun) alive() error {
	for _, c := range []*proc.Child{r.kcm, r.kwok} {
		if c != nil && c.Exited() {
			return fmt.Errorf("%s exited:\n%s", c.Name, c.Tail())
		}
	}
	return nil
}

func (r *kcmRun) waitFor(what string, bound time.Duration, cond func() bool) error {
	start := time.Now()
	for !cond() {
		if err := r.alive(); err != nil {
			return err
		}
		if time.Since(start) > bound {
			return fmt.Errorf("%s: not within %s", what, bound)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

func (h *harness) runKCMSize(n int) (*kcmResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := h.o
	dir := filepath.Join(h.dir, fmt.Sprintf("kcm-%d", n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r := &kcmRun{h: h, n: n}
	res := &kcmResult{nodes: n}

	// 1. The control plane and kwok, which makes the nodes Ready once and then leaves
	// them alone: the harness renews their Leases, the controller-manager judges them.
	var err error
	if r.env, err = testenv.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = r.env.Stop() }()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	raw, err := r.env.AdminKubeconfig()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(r.env.Config)
	cfg.QPS = -1
	if r.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	r.kwok, err = proc.Start("kwok", dir, nil, o.kwok, "--kubeconfig="+kubeconfig, "--config="+h.kwokNodeStages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		"--manage-nodes-with-label-selector=", "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
		"--disregard-status-with-label-selector=", "--cidr=10.0.0.1/16", "--node-ip=10.0.0.1",
		"--node-lease-duration-seconds=0") // kwok renews no node Lease: the harness does
	if err != nil {
		return nil, err
	}
	defer r.kwok.Stop()
	r.beats = newHeartbeats(r.kube, corev1.NamespaceNodeLease, o.lease)
	r.beats.nodeLeases = true
	if r.nodes, err = watchNodes(ctx, r.kube); err != nil {
		return nil, err
	}

	// 2. The nodes and their Leases (the kubelet creates its Lease, owned by its Node),
	// then every node Ready and renewing.
	start := time.Now()
	names, err := createNodes(ctx, r.kube, n, o.podsPerNode)
	if err != nil {
		return nil, err
	}
	uids := map[string]types.UID{}
	for _, name := range names {
		node, err := r.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		uids[name] = node.UID
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: name, UID: node.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To(int32(o.lease / time.Second))},
		}
		if _, err := r.kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("creating node Lease %s: %w", name, err)
		}
		r.beats.start(ctx, name, name, node.UID, 0)
	}
	bound := 2*time.Minute + time.Duration(n)*100*time.Millisecond
	if err := r.waitFor("every node Ready and renewing", bound, func() bool {
		return r.nodes.readyCount() >= n && r.beats.renewedPods() >= n
	}); err != nil {
		return res, fmt.Errorf("%w (%d of %d Ready, %d renewing)", err, r.nodes.readyCount(), n, r.beats.renewedPods())
	}
	res.ready = time.Since(start)
	fmt.Printf("   every node Ready and renewing its Lease %.1f s after creating them\n", res.ready.Seconds())

	// 3. The controller-manager with the node lifecycle controller only, its grace period
	// the lease duration (the operator's bound for a bot Lease).
	metricsPort, err := proc.FreePort()
	if err != nil {
		return res, err
	}
	r.metrics = fmt.Sprintf("https://127.0.0.1:%d/metrics", metricsPort)
	r.kcm, err = proc.Start("kube-controller-manager", dir, nil, h.kcmBin,
		"--kubeconfig="+kubeconfig, "--controllers=node-lifecycle-controller", "--leader-elect=false",
		fmt.Sprintf("--node-monitor-grace-period=%s", o.lease), "--node-monitor-period=5s",
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", metricsPort), "--cert-dir="+dir,
		"--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics", "--authentication-skip-lookup")
	if err != nil {
		return res, err
	}
	defer r.kcm.Stop()

	// 4. Steady state: every node renews, nothing changes. The controller-manager's start
	// (an event and a taint check per node, at its client's 20 requests/s) is over first.
	kcmStart := time.Now()
	if err := r.settle(ctx, bound); err != nil {
		return res, err
	}
	res.settled = time.Since(kcmStart)
	fmt.Printf("   controller-manager settled (no API request for 10 s) %.1f s after it started\n", res.settled.Seconds())
	time.Sleep(o.warmup)
	if err := r.alive(); err != nil {
		return res, err
	}
	if unknown := r.nodes.unknownCount(); unknown > 0 {
		return res, fmt.Errorf("%d nodes turned Unknown while every node renewed", unknown)
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
	res.window = s1.at.Sub(s0.at)
	secs := res.window.Seconds()
	res.kcmCores = (s1.kcm.CPU - s0.kcm.CPU).Seconds() / secs
	res.controlCores = (s1.control - s0.control).Seconds() / secs
	res.kwokCores = (s1.kwok - s0.kwok).Seconds() / secs
	res.rss = float64(s1.kcm.RSS)
	res.renewals = s1.renewals - s0.renewals
	res.controlCPU, res.harnessCPU = s1.control-s0.control, s1.harness-s0.harness
	if s0.metrics != nil && s1.metrics != nil {
		res.heap = s1.metrics["go_memstats_heap_alloc_bytes"]
		res.reqPerSec = (s1.metrics["rest_client_requests_total"] - s0.metrics["rest_client_requests_total"]) / secs
		res.requestsByVerb = activityBetween(sample{opMetrics: s0.metrics}, sample{opMetrics: s1.metrics}).requestsByVerb
	} else {
		res.heap, res.reqPerSec = math.NaN(), math.NaN()
	}
	fmt.Printf("   steady: controller-manager %.3f cores, RSS %.0f MiB, heap %.0f MiB, %.2f API req/s; apiserver+etcd %.2f cores, kwok %.2f cores\n",
		res.kcmCores, mib(res.rss), mib(res.heap), res.reqPerSec, res.controlCores, res.kwokCores)

	// 5. Silence the same fraction of nodes, evenly spread, and time Ready -> Unknown.
	k := max(1, int(math.Round(o.staleFraction*float64(n))))
	var targets []string
	for j := range k {
		targets = append(targets, names[j*n/k])
	}
	for _, name := range targets {
		r.beats.silence(uids[name])
	}
	silenced := time.Now()
	waitErr := r.waitFor("every silenced node Unknown", o.lease+time.Minute, func() bool {
		for _, name := range targets {
			if _, ok := r.nodes.unknownAt(name); !ok {
				return false
			}
		}
		return true
	})
	var unknown []time.Duration
	for _, name := range targets {
		last, ok := r.beats.lastRenewal(uids[name])
		if !ok {
			last = silenced
		}
		if at, ok := r.nodes.unknownAt(name); ok {
			unknown = append(unknown, at.Sub(last))
		}
	}
	res.staleNodes = k
	res.staleUnknown = summarize(unknown)
	fmt.Printf("   stale: %d nodes silenced; last renewal -> Ready Unknown %s\n", k, res.staleUnknown)
	if waitErr != nil {
		return res, fmt.Errorf("%w: %d of %d Unknown", waitErr, len(unknown), k)
	}
	if others := r.nodes.unknownCount() - len(unknown); others > 0 {
		return res, fmt.Errorf("%d nodes that kept renewing turned Unknown", others)
	}
	return res, r.alive()
}

// settle waits until the controller-manager made no API request for 10 s.
func (r *kcmRun) settle(ctx context.Context, bound time.Duration) error {
	start := time.Now()
	last, quietSince := -1.0, time.Now()
	for time.Since(quietSince) < 10*time.Second {
		if err := r.alive(); err != nil {
			return err
		}
		if time.Since(start) > bound {
			return fmt.Errorf("the controller-manager did not settle within %s", bound)
		}
		if m, err := scrapeTLS(ctx, r.metrics); err == nil {
			if n := m["rest_client_requests_total"]; n != last {
				last, quietSince = n, time.Now()
			}
		}
		time.Sleep(time.Second)
	}
	return nil
}

// nodeWatch follows the nodes' Ready condition: when each first was Ready, and when it
// first was seen not Ready (Unknown) after that.
type nodeWatch struct {
	mu      sync.Mutex
	ready   map[string]bool
	unknown map[string]time.Time
}

func watchNodes(ctx context.Context, kube kubernetes.Interface) (*nodeWatch, error) {
	w := &nodeWatch{ready: map[string]bool{}, unknown: map[string]time.Time{}}
	factory := informers.NewSharedInformerFactory(kube, 0)
	inf := factory.Core().V1().Nodes().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.seen(obj) },
		UpdateFunc: func(_, obj any) { w.seen(obj) },
	}); err != nil {
		return nil, err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return w, nil
}

func (w *nodeWatch) seen(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	status := corev1.ConditionStatus("")
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			status = c.Status
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case status == corev1.ConditionTrue:
		w.ready[node.Name] = true
	case w.ready[node.Name]:
		if _, ok := w.unknown[node.Name]; !ok {
			w.unknown[node.Name] = time.Now()
		}
	}
}

func (w *nodeWatch) readyCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ready)
}

func (w *nodeWatch) unknownCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.unknown)
}

func (w *nodeWatch) unknownAt(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.unknown[name]
	return at, ok
}

// scrapeTLS reads the controller-manager's /metrics: HTTPS with its own self-signed
// certificate, on loopback.
func scrapeTLS(ctx context.Context, url string) (proc.Metrics, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a loopback port the harness opened
	}}
	return proc.ScrapeWith(ctx, client, url, map[string]string{"rest_client_requests_total": "method"})
}

// writeKwokNodeStages writes kwok's node-initialize stage for nodes that never had a Ready
// condition only: the stock one also fires on Ready Unknown, and would undo what the
// controller-manager decided.
func writeKwokNodeStages(dir, stagesDir string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(stagesDir, "node/fast/node-initialize.yaml"))
	if err != nil {
		return "", fmt.Errorf("kwok stage config: %w (run `make kwok`)", err)
	}
	const notReady = "      operator: 'NotIn'\n      values:\n      - 'True'\n"
	if !strings.Contains(string(raw), notReady) {
		return "", fmt.Errorf("kwok's node-initialize stage has no Ready NotIn True selector to change")
	}
	stage := strings.Replace(string(raw), notReady, "      operator: 'DoesNotExist'\n", 1)
	path := filepath.Join(dir, "kwok-node-stages.yaml")
	return path, os.WriteFile(path, []byte(stage), 0o600)
}

func printKCMTable(w io.Writer, o options, results []kcmResult) {
	fmt.Fprintf(w, "\nkube-controller-manager (node-lifecycle-controller only), node lease %s renewed every %s + 4%% jitter, --node-monitor-grace-period=%s --node-monitor-period=5s, %.1f%% of nodes silenced; steady window %s after %s warm-up\n\n",
		o.lease, o.lease/4, o.lease, o.staleFraction*100, o.window, o.warmup)
	fmt.Fprintln(w, "| nodes | all Ready + renewed | controller-manager settled after | controller-manager CPU steady | RSS | Go heap | API req/s | apiserver+etcd CPU | stale nodes | last renewal -> Ready Unknown p50 / p99 / max |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		if r.window == 0 {
			fmt.Fprintf(w, "| %d | %s | %s | | | | | | | |\n", r.nodes, seconds(r.ready), seconds(r.settled))
			continue
		}
		fmt.Fprintf(w, "| %d | %s | %s | %.1f%% of a core | %.0f MiB | %.0f MiB | %.2f | %.0f%% of a core | %d | %s |\n",
			r.nodes, seconds(r.ready), seconds(r.settled), r.kcmCores*100, mib(r.rss), mib(r.heap), r.reqPerSec, r.controlCores*100, r.staleNodes, r.staleUnknown)
	}
	fmt.Fprintln(w)
	for _, r := range results {
		if r.window == 0 {
			continue
		}
		verbs := make([]string, 0, len(r.requestsByVerb))
		for verb, n := range r.requestsByVerb {
			verbs = append(verbs, fmt.Sprintf("%s %.0f", verb, n))
		}
		slices.Sort(verbs)
		fmt.Fprintf(w, "%d nodes: steady %s: controller-manager API requests %.0f (%s); node Lease renewals %d; CPU s: apiserver+etcd %.1f, harness %.1f; kwok %.0f%% of a core\n",
			r.nodes, r.window.Round(time.Second), r.reqPerSec*r.window.Seconds(), strings.Join(verbs, " "), r.renewals,
			r.controlCPU.Seconds(), r.harnessCPU.Seconds(), r.kwokCores*100)
	}
}
