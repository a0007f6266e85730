package processkubelet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// Package processkubelet plays the kubelet for bot pods on an API server with no nodes
// (envtest): for every bot pod it starts a real cmd/bot process with the environment the
// pod spec describes (field references resolved, the token Secret written to a file), and
// kills the process when the pod goes away. Like the kubelet's readiness probe, it asks each
// bot's /readyz and keeps the pod's Ready condition in step. It does nothing else a kubelet
// does. End-to-end tests and benchmarks use it.

// Kubelet runs bot pods of one namespace as local processes.
type Kubelet struct {
	k8s        client.Client
	ns         string
	bin        string
	kubeconfig string
	dir        string
	// OnError is told when a process cannot start (default: ignore).
	OnError func(error)

	mu    sync.Mutex
	procs map[types.UID]*botProc
}

// New returns a Kubelet that runs the bot binary bin for the bot pods in ns; the bots reach
// the API server through kubeconfig; dir holds token files.
func New(k8s client.Client, ns, bin, kubeconfig, dir string) *Kubelet {
	return &Kubelet{k8s: k8s, ns: ns, bin: bin, kubeconfig: kubeconfig, dir: dir, procs: map[types.UID]*botProc{}}
}

type botProc struct {
	pod        string
	cmd        *exec.Cmd
	logs       *lockedBuffer
	healthAddr string
}

// Run starts and stops processes as pods come and go, until ctx ends; then it kills them all.
func (k *Kubelet) Run(ctx context.Context) {
	for {
		k.sync(ctx)
		select {
		case <-ctx.Done():
			k.KillAll()
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (k *Kubelet) sync(ctx context.Context) {
	var pods corev1.PodList
	if err := k.k8s.List(ctx, &pods, client.InNamespace(k.ns), client.HasLabels{shardkeeperv1.LabelBot}); err != nil {
		return
	}
	alive := map[types.UID]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		alive[pod.UID] = true
		k.mu.Lock()
		proc, running := k.procs[pod.UID]
		k.mu.Unlock()
		if !running {
			k.start(ctx, pod)
			continue
		}
		k.probe(ctx, pod, proc)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for uid, p := range k.procs {
		if !alive[uid] {
			p.kill()
			delete(k.procs, uid)
		}
	}
}

func (k *Kubelet) start(ctx context.Context, pod *corev1.Pod) {
	c := pod.Spec.Containers[0]
	env := []string{"KUBECONFIG=" + k.kubeconfig}
	for _, e := range c.Env {
		value := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				value = pod.Name
			case "metadata.namespace":
				value = pod.Namespace
			case "metadata.uid":
				value = string(pod.UID)
			}
		}
		if e.Name == shardkeeperv1.EnvTokenFile {
			value = k.tokenFile(ctx, pod)
		}
		env = append(env, e.Name+"="+value)
	}
	healthAddr, err := freeAddr()
	if err != nil {
		if k.OnError != nil {
			k.OnError(err)
		}
		return
	}
	cmd := exec.Command(k.bin, "--health-addr="+healthAddr, "--termination-log=")
	cmd.Env = env
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		if k.OnError != nil {
			k.OnError(fmt.Errorf("starting the bot for pod %s: %w", pod.Name, err))
		}
		return
	}
	k.mu.Lock()
	k.procs[pod.UID] = &botProc{pod: pod.Name, cmd: cmd, logs: logs, healthAddr: healthAddr}
	k.mu.Unlock()
}

// tokenFile writes the pod's token Secret key where the bot reads it, as a volume would.
func (k *Kubelet) tokenFile(ctx context.Context, pod *corev1.Pod) string {
	var vol *corev1.SecretVolumeSource
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil {
			vol = v.Secret
		}
	}
	var secret corev1.Secret
	if vol == nil || k.k8s.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: vol.SecretName}, &secret) != nil {
		return "/nonexistent"
	}
	path := filepath.Join(k.dir, string(pod.UID)+"-token")
	_ = os.WriteFile(path, secret.Data[vol.Items[0].Key], 0o600)
	return path
}

// Signal sends sig to the process running pod.
func (k *Kubelet) Signal(pod string, sig syscall.Signal) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.procs {
		if p.pod == pod {
			return p.cmd.Process.Signal(sig)
		}
	}
	return fmt.Errorf("no process for pod %s", pod)
}

// Logs is every running process's output, for failure reports.
func (k *Kubelet) Logs() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var b strings.Builder
	for _, p := range k.procs {
		fmt.Fprintf(&b, "--- %s\n%s\n", p.pod, p.logs.String())
	}
	return b.String()
}

// KillAll kills every process.
func (k *Kubelet) KillAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for uid, p := range k.procs {
		p.kill()
		delete(k.procs, uid)
	}
}

// kill ends the process the way the kubelet ends a deleted pod's frozen container.
func (p *botProc) kill() {
	_ = p.cmd.Process.Kill() // SIGKILL ends a stopped process too
	_ = p.cmd.Wait()
}

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeAddr finds a loopback port for a bot's health endpoints.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a port for a bot's health endpoints: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

var probeClient = &http.Client{Timeout: time.Second}

// probe asks the bot's /readyz, as the kubelet's readiness probe would, and writes the
// pod's Ready condition when the answer changed.
func (k *Kubelet) probe(ctx context.Context, pod *corev1.Pod, proc *botProc) {
	ready := false
	if resp, err := probeClient.Get("http://" + proc.healthAddr + "/readyz"); err == nil {
		ready = resp.StatusCode == http.StatusOK
		resp.Body.Close()
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == status {
			return
		}
	}
	now := metav1.Now()
	pod = pod.DeepCopy()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReady, Status: status, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: status, LastTransitionTime: now},
	}
	_ = k.k8s.Status().Update(ctx, pod) // a conflict is retried on the next pass
}
