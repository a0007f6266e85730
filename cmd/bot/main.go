// Command bot is Shardkeeper's default Discord bot, built on botruntime: /ping, !ping,
// /shard and /confirm. The operator configures it through SHARDKEEPER_* variables;
// outside Kubernetes, flags do (bot --help).
//
// Exit codes: 0 clean shutdown, 1 unexpected error, 2 bad configuration, 3 replaced by a
// pod of the same name while still running (force-deleted), and when no shard can run:
// 10 token invalid (4004), 11 invalid shard (4010), 12 sharding required (4011),
// 13 invalid API version (4012), 14 invalid intents (4013), 15 disallowed intents (4014).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := botruntime.ConfigFromEnv(os.Getenv, flag.NewFlagSet("bot", flag.ContinueOnError), args)
	if errors.Is(err, flag.ErrHelp) {
		return botruntime.ExitOK
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		writeTermination(cfg.TerminationLogPath, shardkeeperv1.StopReport{Reason: shardkeeperv1.ReasonBadConfiguration, Message: err.Error()})
		return botruntime.ExitBadConfig
	}
	opts := []botruntime.Option{botruntime.WithLogger(log)}
	if cfg.LeaseName != "" {
		// In a pod the operator made: renew the heartbeat Lease with the pod's identity.
		kube, err := inClusterClient()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			writeTermination(cfg.TerminationLogPath, shardkeeperv1.StopReport{Reason: shardkeeperv1.ReasonBadConfiguration, Message: err.Error()})
			return botruntime.ExitBadConfig
		}
		opts = append(opts, botruntime.WithKubernetes(kube))
	}
	rt, err := botruntime.New(cfg, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		writeTermination(cfg.TerminationLogPath, shardkeeperv1.StopReport{Reason: shardkeeperv1.ReasonBadConfiguration, Message: err.Error()})
		return botruntime.ExitBadConfig
	}
	bot := &pingBot{rt: rt, log: log.WithName("bot"), confirmWait: confirmTimeout}
	if err := rt.Handle(bot.handle); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return botruntime.ExitError
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err = rt.Run(ctx)
	var fatal *botruntime.NoShardCanRunError
	var replaced *botruntime.ReplacedError
	switch {
	case errors.As(err, &fatal):
		log.Error(err, "exiting: no shard can run")
		writeTermination(cfg.TerminationLogPath, shardkeeperv1.StopReport{Reason: fatal.Reason.Reason, Message: fatal.Reason.Message})
		return fatal.ExitCode()
	case errors.As(err, &replaced):
		// Not a fatal reason for the operator: the replacement runs the shards. A kubelet
		// that restarts this container gets the same answer at once, before any connection.
		log.Error(err, "exiting: this pod was replaced")
		writeTermination(cfg.TerminationLogPath, shardkeeperv1.StopReport{Reason: shardkeeperv1.ReasonPodReplaced, Message: err.Error()})
		return replaced.ExitCode()
	case err != nil:
		log.Error(err, "exiting")
		return botruntime.ExitError
	}
	return botruntime.ExitOK
}

// inClusterClient is the pod's API access; KUBECONFIG, when set, takes its place (a bot
// run by hand or by the end-to-end tests, outside a pod).
func inClusterClient() (kubernetes.Interface, error) {
	var (
		cfg *rest.Config
		err error
	)
	if path := os.Getenv("KUBECONFIG"); path != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("%s is set but there is no API access (in-cluster or KUBECONFIG): %w", shardkeeperv1.EnvLeaseName, err)
	}
	cfg.UserAgent = "shardkeeper-bot"
	return kubernetes.NewForConfig(cfg)
}

// writeTermination leaves the reason where Kubernetes shows it in the container status,
// and the operator reads it.
func writeTermination(path string, report shardkeeperv1.StopReport) {
	if path == "" {
		return
	}
	_ = os.WriteFile(path, []byte(report.TerminationMessage()), 0o644)
}
