// Command localplane runs Shardkeeper on this machine with no cluster at hand: a real
// kube-apiserver and etcd (the envtest binaries hack/envtest-assets.sh builds), the
// DiscordBot CRD, the operator, and the sample bots from config/samples.
//
// There is no node and no kubelet, so the operator's bot pods are created but never run:
// bots stay in phase Starting with 0 ready shards. Everything else is real: validation,
// pods, RBAC, status, events, kubectl. A real node arrives with `make run` in a later step.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/shardkeeper/shardkeeper/controllers"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

const demoNamespace = "demo"

type options struct {
	kubeconfig      string
	defaultBotImage string
	once            bool
	verbose         bool
}

func main() {
	var o options
	cache, _ := os.UserCacheDir()
	flag.StringVar(&o.kubeconfig, "kubeconfig-out", filepath.Join(cache, "shardkeeper", "localplane", "kubeconfig"),
		"Where to write the admin kubeconfig for kubectl.")
	flag.StringVar(&o.defaultBotImage, "default-bot-image", "ghcr.io/shardkeeper/bot:dev", "The operator's --default-bot-image.")
	flag.BoolVar(&o.once, "once", false, "Print the bots' state once and exit instead of running until interrupted.")
	flag.BoolVar(&o.verbose, "v", false, "Print the operator's logs.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "localplane:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	logOutput := io.Discard
	if o.verbose {
		logOutput = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logOutput)))

	fmt.Fprintln(out, "starting kube-apiserver and etcd...")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()

	kubeconfig, err := env.AdminKubeconfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.kubeconfig), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(o.kubeconfig, kubeconfig, 0o600); err != nil {
		return err
	}

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Cache:   controllers.CacheOptions(nil),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		return err
	}
	if err := controllers.NewDiscordBotReconciler(mgr, o.defaultBotImage).SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	mgrCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()

	k8s, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		return err
	}
	if err := applySamples(ctx, k8s); err != nil {
		return err
	}
	fmt.Fprintf(out, "operator running; sample bots applied in namespace %q\n\n", demoNamespace)

	// Give the operator a moment to create pods and write status, then show what kubectl shows.
	select {
	case <-time.After(3 * time.Second):
	case err := <-mgrDone:
		return fmt.Errorf("operator stopped: %w", err)
	}
	if err := printBots(ctx, env, out); err != nil {
		return err
	}
	fmt.Fprintf(out, `
No node runs here, so bot pods stay Pending and bots stay Starting.
Try:
  export KUBECONFIG=%s
  kubectl -n %s get discordbots -o wide
  kubectl -n %s get pods,serviceaccounts,roles
  kubectl -n %s describe discordbot big-bot
`, o.kubeconfig, demoNamespace, demoNamespace, demoNamespace)
	if o.once {
		return nil
	}
	fmt.Fprintln(out, "\nPress Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		return nil
	case err := <-mgrDone:
		return err
	}
}

// applySamples creates the demo namespace, a token Secret for each sample bot (a dummy
// token: nothing here talks to Discord) and the bots from config/samples.
func applySamples(ctx context.Context, k8s client.Client) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace}}
	if err := k8s.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	samples, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "shardkeeper_v1_*.yaml"))
	if err != nil || len(samples) == 0 {
		return fmt.Errorf("no samples in config/samples: %v", err)
	}
	for _, path := range samples {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		bot := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(raw, &bot.Object); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		bot.SetNamespace(demoNamespace)
		secretName, _, _ := unstructured.NestedString(bot.Object, "spec", "tokenSecretRef", "name")
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: demoNamespace},
			StringData: map[string]string{"token": "local-demo-token"},
		}
		for _, obj := range []client.Object{secret, bot} {
			if err := k8s.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("%s: creating %s %s: %w", filepath.Base(path), obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
			}
		}
	}
	return nil
}

// printBots prints the bots as `kubectl get discordbots -o wide` would, from the server's
// Table response.
func printBots(ctx context.Context, env *testenv.Env, out io.Writer) error {
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return err
	}
	raw, err := cs.RESTClient().Get().AbsPath("/apis/shardkeeper.dev/v1/namespaces", demoNamespace, "discordbots").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		return err
	}
	var table metav1.Table
	if err := yaml.Unmarshal(raw, &table); err != nil {
		return err
	}
	if len(table.Rows) == 0 {
		return errors.New("no DiscordBots found after applying the samples")
	}
	w := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	for _, c := range table.ColumnDefinitions {
		fmt.Fprintf(w, "%s\t", strings.ToUpper(c.Name))
	}
	fmt.Fprintln(w)
	for _, row := range table.Rows {
		for _, cell := range row.Cells {
			fmt.Fprintf(w, "%v\t", cell)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}
