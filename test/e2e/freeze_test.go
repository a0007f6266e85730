// Package e2e runs Shardkeeper end to end on a real API server (envtest) with real bot
// processes (cmd/bot) against the fake Discord, a process per pod standing in for the
// kubelet.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/controllers"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

const leaseSeconds = 10

func TestFrozenBotIsReplacedAndTheReplacementResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()

	bin := filepath.Join(dir, "bot")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/bot").CombinedOutput(); err != nil {
		t.Fatalf("building cmd/bot: %v\n%s", err, out)
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	raw, err := env.AdminKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	// The operator.
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Cache: controllers.CacheOptions(nil),
		Metrics: metricsserver.Options{BindAddress: "0"},
		// -count=N runs this test again in the same process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.NewDiscordBotReconciler(mgr, "unused").SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	// Discord, and a bot in it.
	guild := uint64(7) << 22
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 500 * time.Millisecond, Guilds: []uint64{guild}})
	defer srv.Close()
	ns := "e2e"
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pinger-token", Namespace: ns},
		Data: map[string][]byte{"token": []byte(discordtest.DefaultToken)}}))
	bot := &shardkeeperv1.DiscordBot{
		ObjectMeta: metav1.ObjectMeta{Name: "pinger", Namespace: ns},
		Spec: shardkeeperv1.DiscordBotSpec{
			TokenSecretRef: shardkeeperv1.SecretKeySelector{Name: "pinger-token", Key: "token"},
			ShardsPerPod:   1,
			Intents:        []shardkeeperv1.Intent{"GUILDS", "GUILD_MESSAGES", "MESSAGE_CONTENT"},
			Gateway:        &shardkeeperv1.GatewaySpec{URL: srv.URL(), APIURL: srv.APIURL()},
			Health:         shardkeeperv1.HealthSpec{Mode: shardkeeperv1.HealthModeLease, LeaseDurationSeconds: leaseSeconds},
		},
	}
	bot.Spec.Shards.IntVal = 1
	must(t, k8s.Create(ctx, bot))

	kubelet := &processKubelet{t: t, k8s: k8s, ns: ns, bin: bin, kubeconfig: kubeconfig, dir: dir, procs: map[types.UID]*botProc{}}
	go kubelet.run(ctx)
	defer kubelet.killAll()

	waitCtx, cancelWait := context.WithTimeout(ctx, 60*time.Second)
	defer cancelWait()
	if err := srv.WaitConnected(waitCtx, 0); err != nil {
		t.Fatalf("the bot never connected: %v\n%s", err, kubelet.logs())
	}
	first := podUID(t, k8s, ns, "pinger-0")
	session := srv.Stats().PerShard[0].SessionID
	waitFor(t, "the session's resume state on the Lease", 30*time.Second, func() bool {
		var lease coordinationv1.Lease
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pinger-0"}, &lease) == nil && lease.Spec.RenewTime != nil &&
			strings.Contains(lease.Annotations[shardkeeperv1.AnnotationResume], session)
	})

	// Freeze the process: its gateway and its Lease both stop.
	must(t, kubelet.signal("pinger-0", syscall.SIGSTOP))
	frozenAt := time.Now()
	for i := 1; i <= 3; i++ {
		srv.SendMessage(guild, uint64(100+i), "!ping") // sent while nobody listens
	}

	waitFor(t, "the frozen pod replaced", time.Duration(leaseSeconds)*time.Second+30*time.Second, func() bool {
		uid, ok := tryPodUID(k8s, ns, "pinger-0")
		return ok && uid != first
	})
	replacedAfter := time.Since(frozenAt)
	t.Logf("frozen pod replaced %s after the freeze (lease duration %ds)", replacedAfter.Round(100*time.Millisecond), leaseSeconds)
	if replacedAfter > time.Duration(leaseSeconds)*time.Second+15*time.Second {
		t.Errorf("replaced %s after the freeze; want within the lease duration plus a small grace", replacedAfter)
	}

	// The replacement resumes the session from the Lease, and every ping is answered.
	stats, err := srv.WaitStats(waitCtx, func(s discordtest.Stats) bool { return s.Resumes >= 1 })
	if err != nil {
		t.Fatalf("the replacement did not resume: %v; stats %+v\n%s", err, srv.Stats(), kubelet.logs())
	}
	if stats.Identifies != 1 {
		t.Errorf("%d identifies: the replacement should resume, not identify", stats.Identifies)
	}
	replyCtx, cancelReply := context.WithTimeout(ctx, 30*time.Second)
	defer cancelReply()
	for i := 1; i <= 3; i++ {
		path := "/channels/" + strconv.Itoa(100+i) + "/messages"
		if _, err := srv.WaitReply(replyCtx, func(r discordtest.Reply) bool {
			return r.Path == path && strings.Contains(string(r.Body), "pong")
		}); err != nil {
			t.Errorf("the !ping sent to channel %d during the freeze was lost: %v", 100+i, err)
		}
	}
	if t.Failed() {
		for _, r := range srv.Replies() {
			t.Logf("reply %s %s at %s", r.Kind, r.Path, r.At.Format(time.StampMilli))
		}
		t.Logf("stats %+v\n%s", srv.Stats().PerShard[0].Replayed, kubelet.logs())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tryPodUID(k8s client.Client, ns, name string) (types.UID, bool) {
	var pod corev1.Pod
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil || pod.DeletionTimestamp != nil {
		return "", false
	}
	return pod.UID, true
}

func podUID(t *testing.T, k8s client.Client, ns, name string) types.UID {
	t.Helper()
	var uid types.UID
	waitFor(t, "pod "+name, 30*time.Second, func() bool { var ok bool; uid, ok = tryPodUID(k8s, ns, name); return ok })
	return uid
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
