// Package botmain is the process around a botruntime: configuration from the operator's
// SHARDKEEPER_* variables or flags, API access for the Lease, signals, and the exit codes
// and termination message the operator reads. cmd/bot and cmd/gateway-proxy share it.
package botmain

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

// Program is what a binary adds to the runtime.
type Program struct {
	// Name is the flag set's and the API client's name.
	Name string
	// Flags, when set, adds the program's own flags before they are parsed.
	Flags func(fs *flag.FlagSet)
	// Options, when set, is given the parsed configuration and returns more runtime
	// options; an error is a bad configuration (exit code 2).
	Options func(cfg botruntime.Config, log logr.Logger) ([]botruntime.Option, error)
	// Start is given the runtime before it runs: add handlers, start servers. It may
	// return a function that Run's end waits for. An error ends the process (exit 1).
	Start func(ctx context.Context, rt *botruntime.Runtime, log logr.Logger) (wait func(), err error)
}

// Main runs the program with the command line args and returns the process exit code:
// 0 clean shutdown, 1 unexpected error, 2 bad configuration, 3 replaced by a pod of the
// same name, 10-15 when no shard can run (botruntime.NoShardCanRunError).
func Main(p Program, args []string) int {
	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, nil))
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	if p.Flags != nil {
		p.Flags(fs)
	}
	cfg, err := botruntime.ConfigFromEnv(os.Getenv, fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return botruntime.ExitOK
	}
	badConfig := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		WriteTermination(cfg.TerminationLogPath, shardkeeperv1.StopReport{Reason: shardkeeperv1.ReasonBadConfiguration, Message: err.Error()})
		return botruntime.ExitBadConfig
	}
	if err != nil {
		return badConfig(err)
	}
	opts := []botruntime.Option{botruntime.WithLogger(log)}
	if cfg.LeaseName != "" {
		// In a pod the operator made: renew the heartbeat Lease with the pod's identity.
		kube, err := inClusterClient(p.Name)
		if err != nil {
			return badConfig(err)
		}
		opts = append(opts, botruntime.WithKubernetes(kube))
	}
	if p.Options != nil {
		more, err := p.Options(cfg, log)
		if err != nil {
			return badConfig(err)
		}
		opts = append(opts, more...)
	}
	rt, err := botruntime.New(cfg, opts...)
	if err != nil {
		return badConfig(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var wait func()
	if p.Start != nil {
		if wait, err = p.Start(ctx, rt, log); err != nil {
			log.Error(err, "exiting: could not start")
			return botruntime.ExitError
		}
	}
	err = rt.Run(ctx)
	stop()
	if wait != nil {
		wait()
	}
	var fatal *botruntime.NoShardCanRunError
	var replaced *botruntime.ReplacedError
	switch {
	case errors.As(err, &fatal):
		log.Error(err, "exiting: no shard can run")
		WriteTermination(cfg.TerminationLogPath, shardkeeperv1.StopReport{Reason: fatal.Reason.Reason, Message: fatal.Reason.Message})
		return fatal.ExitCode()
	case errors.As(err, &replaced):
		// Not a fatal reason for the operator: the replacement runs the shards. A kubelet
		// that restarts this container gets the same answer at once, before any connection.
		log.Error(err, "exiting: this pod was replaced")
		WriteTermination(cfg.TerminationLogPath, shardkeeperv1.StopReport{Reason: shardkeeperv1.ReasonPodReplaced, Message: err.Error()})
		return replaced.ExitCode()
	case err != nil:
		log.Error(err, "exiting")
		return botruntime.ExitError
	}
	return botruntime.ExitOK
}

// inClusterClient is the pod's API access; KUBECONFIG, when set, takes its place (a bot
// run by hand or by the end-to-end tests, outside a pod).
func inClusterClient(name string) (kubernetes.Interface, error) {
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
	cfg.UserAgent = "shardkeeper-" + name
	return kubernetes.NewForConfig(cfg)
}

// WriteTermination leaves the reason where Kubernetes shows it in the container status,
// and the operator reads it.
func WriteTermination(path string, report shardkeeperv1.StopReport) {
	if path == "" {
		return
	}
	_ = os.WriteFile(path, []byte(report.TerminationMessage()), 0o644)
}
