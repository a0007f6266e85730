package controllers

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
	"github.com/shardkeeper/shardkeeper/internal/trustedhosts"
)

const (
	testDefaultImage = "registry.test/shardkeeper/bot:default"
	testToken        = "MTIz.fake.token"
)

var (
	k8s        client.Client // uncached, so tests see the API server's truth
	cached     client.Client // the operator's: reads from its cache and indexes
	restConfig *rest.Config
	nsCounter  atomic.Int32
	discord    *discordtest.Server // the fake Discord bots ask by default
	// testTrustedHosts trusts the fake Discords of the tests (127.0.0.1, and fake-discord
	// where no connection is made), in plain text, and nothing else: "localhost" names the
	// same servers and is not trusted.
	testTrustedHosts = trustedhosts.MustNew(nil, []string{"127.0.0.1", "fake-discord"})
)

// TestMain runs one control plane and one operator for every envtest test in this package;
// each test works in a namespace of its own.
func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	// Operator logs only when asked for: SHARDKEEPER_TEST_LOGS=1 go test ./controllers/
	logOutput := io.Discard
	if os.Getenv("SHARDKEEPER_TEST_LOGS") != "" {
		logOutput = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(logOutput)))
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	restConfig = env.Config

	k8s, err = client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The operator's requests pass operatorSecretRequests, which tells what it reads of Secrets.
	operatorConfig := rest.CopyConfig(env.Config)
	operatorConfig.Wrap(operatorSecretRequests.wrap)
	mgr, err := ctrl.NewManager(operatorConfig, ctrl.Options{
		Scheme:  env.Scheme,
		Cache:   CacheOptions(nil),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Bots that name no API URL ask this fake Discord; it knows the tests' token.
	cached = mgr.GetClient()
	discord = discordtest.NewServer(discordtest.Options{Token: testToken, MaxConcurrency: 1, RecommendedShards: 1})
	defer discord.Close()
	reconciler := NewDiscordBotReconciler(mgr, testDefaultImage)
	reconciler.DefaultGatewayProxyImage = testProxyImage
	reconciler.DiscordAPIURL = discord.APIURL()
	reconciler.TrustedHosts = testTrustedHosts
	reconciler.MaxConcurrentReconciles = 4 // as the operator runs; -race checks what passes share
	if err := reconciler.SetupWithManager(ctx, mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return m.Run()
}

// envtestOnly skips under -short; envtest tests need the control plane.
func envtestOnly(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("envtest test: run without -short")
	}
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("t%d-%d", nsCounter.Add(1), time.Now().UnixNano()%100000)}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func createTokenSecret(t *testing.T, ns, name, key string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data:       map[string][]byte{key: []byte(testToken)},
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

func newBot(ns, name string, shards, perPod int) *shardkeeperv1.DiscordBot {
	bot := &shardkeeperv1.DiscordBot{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: shardkeeperv1.DiscordBotSpec{
			TokenSecretRef: shardkeeperv1.SecretKeySelector{Name: name + "-token"},
			ShardsPerPod:   int32(perPod),
			Intents:        []shardkeeperv1.Intent{"GUILDS", "GUILD_MESSAGES"},
		},
	}
	bot.Spec.Shards.IntVal = int32(shards)
	return bot
}

func getBot(g Gomega, ns, name string) *shardkeeperv1.DiscordBot {
	bot := &shardkeeperv1.DiscordBot{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, bot)).To(Succeed())
	return bot
}

// botPods lists the bot's live (not terminating) pods by name.
func botPods(g Gomega, ns, bot string) map[string]corev1.Pod {
	var pods corev1.PodList
	g.Expect(k8s.List(context.Background(), &pods, client.InNamespace(ns),
		client.MatchingLabels{shardkeeperv1.LabelBot: bot})).To(Succeed())
	out := map[string]corev1.Pod{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out[p.Name] = p
		}
	}
	return out
}

// setPodReady plays the kubelet: the pod runs and its readiness probe passes (or not).
func setPodReady(g Gomega, pod corev1.Pod, ready bool) {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
	g.Expect(k8s.Status().Update(context.Background(), &pod)).To(Succeed())
}

// markAllReady makes every current pod of the bot ready.
func markAllReady(g Gomega, ns, bot string) {
	for _, p := range botPods(g, ns, bot) {
		if !isReady(p) {
			setPodReady(g, p, true)
		}
	}
}

func isReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// eventReasons lists the reasons of events about the bot.
func eventReasons(g Gomega, ns, bot string) []string {
	var evs eventsv1.EventList
	g.Expect(k8s.List(context.Background(), &evs, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range evs.Items {
		if e.Regarding.Kind == "DiscordBot" && e.Regarding.Name == bot {
			out = append(out, e.Reason)
		}
	}
	return out
}

// updateBot changes a bot's spec the way a user's kubectl edit would, retrying on conflicts
// with the operator's status writes.
func updateBot(g Gomega, bot *shardkeeperv1.DiscordBot, change func(*shardkeeperv1.DiscordBot)) {
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(bot), bot); err != nil {
			return err
		}
		change(bot)
		return k8s.Update(context.Background(), bot)
	})).To(Succeed())
}

// startedBot creates a namespace, a token Secret and a bot, and waits for its pods.
func startedBot(t *testing.T, g Gomega, name string, shards, perPod, wantPods int) (string, *shardkeeperv1.DiscordBot) {
	t.Helper()
	ns := newNamespace(t)
	createTokenSecret(t, ns, name+"-token", "token")
	bot := newBot(ns, name, shards, perPod)
	g.Expect(k8s.Create(context.Background(), bot)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, name)).To(HaveLen(wantPods)) }, wait, tick).Should(Succeed())
	return ns, bot
}
