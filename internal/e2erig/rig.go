// Package e2erig sets Shardkeeper up end to end on one machine: a real API server and
// etcd (envtest), the operator, the fake Discord, one DiscordBot, and real cmd/bot
// processes standing in for its pods. The end-to-end tests and the failover benchmark
// share it.
package e2erig

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/controllers"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/processkubelet"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
	"github.com/shardkeeper/shardkeeper/internal/trustedhosts"
)

// Namespace and BotName are where the rig's bot lives.
const (
	Namespace = "e2e"
	BotName   = "pinger"
)

// Options shape the rig.
type Options struct {
	// RepoRoot finds cmd/bot; default: testenv.RepoRoot().
	RepoRoot          string
	LeaseSeconds      int32
	Shards            int
	ShardsPerPod      int
	Guilds            []uint64
	HeartbeatInterval time.Duration
	// MaxConcurrency is the fake Discord's identify concurrency (default 1). Its identify
	// interval is Discord's 5 s.
	MaxConcurrency int
	// AutoShards sets shards: auto; the fake Discord then recommends Shards.
	AutoShards bool
}

// Rig is a running setup. Close stops everything.
type Rig struct {
	K8s     client.Client
	Discord *discordtest.Server
	Kubelet *processkubelet.Kubelet

	env    *testenv.Env
	proxy  *apiProxy
	cancel context.CancelFunc
	dir    string
}

// Start builds cmd/bot, starts the control plane, the operator and the fake Discord, and
// creates the bot. Its pods' processes start as the operator creates the pods.
func Start(ctx context.Context, o Options) (*Rig, error) {
	if o.RepoRoot == "" {
		o.RepoRoot = testenv.RepoRoot()
	}
	if o.Shards == 0 {
		o.Shards = 1
	}
	if o.ShardsPerPod == 0 {
		o.ShardsPerPod = 1
	}
	ctrl.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "shardkeeper-e2e")
	if err != nil {
		return nil, err
	}
	r := &Rig{dir: dir}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()

	bin := filepath.Join(dir, "bot")
	build := exec.Command("go", "build", "-o", bin, "./cmd/bot")
	build.Dir = o.RepoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building cmd/bot: %v\n%s", err, out)
	}
	if r.env, err = testenv.Start(); err != nil {
		return nil, err
	}
	// The operator and the bots reach the API server through a proxy a test can cut.
	apiURL, err := url.Parse(r.env.Config.Host)
	if err != nil || apiURL.Host == "" {
		return nil, fmt.Errorf("the control plane's address %q: %v", r.env.Config.Host, err)
	}
	if r.proxy, err = newAPIProxy(apiURL.Host); err != nil {
		return nil, err
	}
	proxied := "https://" + r.proxy.Addr()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	raw, err := r.env.AdminKubeconfig()
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		return nil, err
	}
	for _, cluster := range cfg.Clusters {
		cluster.Server = proxied
	}
	if raw, err = clientcmd.Write(*cfg); err != nil {
		return nil, err
	}
	if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
		return nil, err
	}
	if r.K8s, err = client.New(r.env.Config, client.Options{Scheme: r.env.Scheme}); err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	operatorConfig := rest.CopyConfig(r.env.Config)
	operatorConfig.Host = proxied
	mgr, err := ctrl.NewManager(operatorConfig, ctrl.Options{
		Scheme: r.env.Scheme, Cache: controllers.CacheOptions(nil), Metrics: metricsserver.Options{BindAddress: "0"},
		// A test run with -count=N builds the operator again in the same process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, err
	}
	reconciler := controllers.NewDiscordBotReconciler(mgr, "unused")
	// The rig's fake Discord listens on loopback, in plain text.
	reconciler.TrustedHosts = trustedhosts.MustNew(nil, []string{"127.0.0.1"})
	if err := reconciler.SetupWithManager(runCtx, mgr); err != nil {
		return nil, err
	}
	go func() { _ = mgr.Start(runCtx) }()

	r.Discord = discordtest.NewServer(discordtest.Options{HeartbeatInterval: o.HeartbeatInterval, Guilds: o.Guilds,
		MaxConcurrency: o.MaxConcurrency, RecommendedShards: o.Shards})
	objects := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: BotName + "-token", Namespace: Namespace},
			Data: map[string][]byte{"token": []byte(discordtest.DefaultToken)}},
	}
	bot := &shardkeeperv1.DiscordBot{
		ObjectMeta: metav1.ObjectMeta{Name: BotName, Namespace: Namespace},
		Spec: shardkeeperv1.DiscordBotSpec{
			TokenSecretRef: shardkeeperv1.SecretKeySelector{Name: BotName + "-token", Key: "token"},
			ShardsPerPod:   int32(o.ShardsPerPod),
			Intents:        []shardkeeperv1.Intent{"GUILDS", "GUILD_MESSAGES", "MESSAGE_CONTENT"},
			Gateway:        &shardkeeperv1.GatewaySpec{URL: r.Discord.URL(), APIURL: r.Discord.APIURL()},
			Health:         shardkeeperv1.HealthSpec{Mode: shardkeeperv1.HealthModeLease, LeaseDurationSeconds: o.LeaseSeconds},
		},
	}
	bot.Spec.Shards = intstr.FromInt32(int32(o.Shards))
	if o.AutoShards {
		bot.Spec.Shards = intstr.FromString(shardkeeperv1.ShardsAuto)
	}
	for _, obj := range append(objects, bot) {
		if err := r.K8s.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	r.Kubelet = processkubelet.New(r.K8s, Namespace, bin, kubeconfig, dir)
	go r.Kubelet.Run(runCtx)
	ok = true
	return r, nil
}

// Close stops the processes, the operator, Discord and the control plane.
func (r *Rig) Close() {
	if r.cancel != nil {
		r.cancel()
	}
	if r.Kubelet != nil {
		r.Kubelet.KillAll()
	}
	if r.Discord != nil {
		r.Discord.Close()
	}
	if r.proxy != nil {
		r.proxy.Close()
	}
	if r.env != nil {
		_ = r.env.Stop()
	}
	_ = os.RemoveAll(r.dir)
}

// CutAPIServer makes the API server unreachable for the operator and the bot processes
// (open connections reset, new ones refused) until RestoreAPIServer, as an outage of the
// control plane does. The rig's own client and process kubelet still reach it.
func (r *Rig) CutAPIServer() { r.proxy.Cut() }

// RestoreAPIServer ends the outage CutAPIServer began.
func (r *Rig) RestoreAPIServer() { r.proxy.Restore() }

// PodUID returns the UID of the live pod name, if there is one.
func (r *Rig) PodUID(ctx context.Context, name string) (string, bool) {
	var pod corev1.Pod
	if err := r.K8s.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, &pod); err != nil || pod.DeletionTimestamp != nil {
		return "", false
	}
	return string(pod.UID), true
}
