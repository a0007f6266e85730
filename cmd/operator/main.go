// Command operator runs the Shardkeeper controller manager: it reconciles DiscordBots into
// bot pods. Flags and wiring only; the logic lives in controllers/.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/controllers"
	"github.com/shardkeeper/shardkeeper/internal/discordapi"
	"github.com/shardkeeper/shardkeeper/internal/trustedhosts"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type options struct {
	defaultBotImage         string
	gatewayProxyImage       string
	watchNamespaces         string
	metricsAddr             string
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	discordAPIURL           string
	trustedHosts            string
	plainHTTPHosts          string
	gatewayCheckInterval    time.Duration
	maxConcurrentReconciles int
}

func main() {
	var o options
	flag.StringVar(&o.defaultBotImage, "default-bot-image", "ghcr.io/shardkeeper/bot:"+version,
		"Bot image for DiscordBots that set no spec.image.")
	flag.StringVar(&o.gatewayProxyImage, "gateway-proxy-image", "ghcr.io/shardkeeper/gateway-proxy:"+version,
		"Gateway proxy image for DiscordBots with spec.gatewayProxy that set no spec.gatewayProxy.image.")
	flag.StringVar(&o.watchNamespaces, "watch-namespaces", "",
		"Comma-separated namespaces to watch for DiscordBots; empty watches all namespaces.")
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 turns it off.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false,
		"Elect a leader so that only one of several operator replicas reconciles at a time.")
	flag.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease; defaults to the operator's own namespace.")
	flag.StringVar(&o.discordAPIURL, "discord-api-url", discordapi.DefaultAPIURL,
		"Discord REST API for bots that set no spec.gateway.apiURL: the operator asks GET /gateway/bot there, and their pods send their REST calls there.")
	flag.StringVar(&o.trustedHosts, "trusted-hosts", strings.Join(trustedhosts.DefaultTrusted, ","),
		"Comma-separated hosts a bot token may be sent to over https/wss: by the operator asking GET /gateway/bot, and by the pods it runs "+
			"(spec.gateway). \"*\" stands for one DNS label (*.discord.gg). A bot naming another host gets no pods (condition UntrustedEndpoint).")
	flag.StringVar(&o.plainHTTPHosts, "plain-http-hosts", "",
		"Comma-separated hosts a bot token may also be sent to unencrypted (http/ws): a local gateway proxy or test server, never Discord.")
	flag.DurationVar(&o.gatewayCheckInterval, "gateway-check-interval", controllers.DefaultGatewayCheckInterval,
		"How often to ask Discord for each bot's recommended shard count and session start budget.")
	flag.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 4,
		"How many DiscordBots are reconciled at once (one bot is never reconciled twice at once).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(o); err != nil {
		ctrl.Log.Error(err, "operator stopped")
		os.Exit(1)
	}
}

func run(o options) error {
	log := ctrl.Log.WithName("setup")
	if strings.TrimSpace(o.defaultBotImage) == "" {
		return errors.New("--default-bot-image must not be empty")
	}
	if strings.TrimSpace(o.gatewayProxyImage) == "" {
		return errors.New("--gateway-proxy-image must not be empty")
	}
	namespaces, err := parseNamespaces(o.watchNamespaces)
	if err != nil {
		return err
	}
	trusted, err := trustedhosts.New(trustedhosts.Split(o.trustedHosts), trustedhosts.Split(o.plainHTTPHosts))
	if err != nil {
		return fmt.Errorf("--trusted-hosts/--plain-http-hosts: %w", err)
	}
	if err := trusted.Allows(o.discordAPIURL); err != nil {
		return fmt.Errorf("--discord-api-url: %w", err)
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(shardkeeperv1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   controllers.CacheOptions(namespaces),
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        controllers.LeaderElectionID,
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// The new leader starts at once when the old one stops cleanly.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	ctx := ctrl.SetupSignalHandler()
	reconciler := controllers.NewDiscordBotReconciler(mgr, o.defaultBotImage)
	reconciler.DefaultGatewayProxyImage = o.gatewayProxyImage
	reconciler.DiscordAPIURL = o.discordAPIURL
	reconciler.TrustedHosts = trusted
	reconciler.GatewayCheckInterval = o.gatewayCheckInterval
	reconciler.MaxConcurrentReconciles = o.maxConcurrentReconciles
	if err := reconciler.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the DiscordBot controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Ready once the informers have synced: before that, reconciles would act on nothing.
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches have not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}

	log.Info("starting operator", "version", version, "defaultBotImage", o.defaultBotImage, "gatewayProxyImage", o.gatewayProxyImage,
		"watchNamespaces", namespaces, "leaderElection", o.leaderElect, "tokenHosts", trusted.String())
	return mgr.Start(ctx)
}

// parseNamespaces reads --watch-namespaces; an empty list means every namespace.
func parseNamespaces(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, ns := range strings.Split(list, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" || seen[ns] {
			continue
		}
		if len(ns) > 63 || strings.Trim(ns, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || strings.HasPrefix(ns, "-") || strings.HasSuffix(ns, "-") {
			return nil, fmt.Errorf("--watch-namespaces: %q is not a valid namespace name", ns)
		}
		seen[ns] = true
		out = append(out, ns)
	}
	return out, nil
}
