// Command unlivebot is a bot of the cluster end-to-end tests: a user's bot built on
// botruntime with a liveness check of its own, which fails from the moment someone says
// "!wedge" (standing for a part of a bot only a restart mends). Its process and gateway
// keep running, so only the kubelet's liveness probe can notice; a restarted container
// starts unwedged.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/disgoorg/disgo/gateway"
	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/shardkeeper/shardkeeper/botruntime"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "unlivebot:", err)
		os.Exit(1)
	}
}

func run() error {
	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := botruntime.ConfigFromEnv(os.Getenv, nil, nil)
	if err != nil {
		return err
	}
	restCfg, err := rest.InClusterConfig()
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	var wedged atomic.Bool
	rt, err := botruntime.New(cfg, botruntime.WithLogger(log), botruntime.WithKubernetes(kube),
		botruntime.WithLivenessCheck("e2e-wedge", func(context.Context) error {
			if wedged.Load() {
				return errors.New("wedged on purpose by !wedge")
			}
			return nil
		}))
	if err != nil {
		return err
	}
	err = rt.Handle(func(_ context.Context, ev botruntime.Event) {
		if m, ok := ev.Data.(gateway.EventMessageCreate); ok && strings.TrimSpace(m.Content) == "!wedge" {
			log.Info("wedged: /healthz fails from now on", "shard", ev.Shard)
			wedged.Store(true)
		}
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return rt.Run(ctx)
}
