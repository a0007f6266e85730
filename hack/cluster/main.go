// Command cluster runs a real single-node Kubernetes cluster on this machine, without
// Docker or a registry: etcd, the control plane, containerd, a kubelet, kube-proxy and
// CoreDNS as plain processes, pods on a bridge of its own.
//
//	go run ./hack/cluster up       # build (once), start or reuse, smoke check
//	go run ./hack/cluster status   # what runs, node and smoke check
//	go run ./hack/cluster down     # stop and remove everything up made
//
// Components are built from Go modules by hack/envtest-assets.sh into
// ~/.cache/shardkeeper/k8s-<version>; the cluster's state (certificates, configs, logs,
// PIDs, etcd data, containerd and kubelet roots) lives in ~/.cache/shardkeeper/cluster.
// SHARDKEEPER_CACHE moves both.
//
// It must never touch the machine's own network: nothing listens on or routes through
// its interfaces, every forwarded packet that does not stay on the cluster's bridge is
// dropped, and down undoes every sysctl, chain, mount and cgroup that up made.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/shardkeeper/shardkeeper/internal/localcluster"
)

const usage = `usage: go run ./hack/cluster up|down|status

  up      build missing components, start the cluster or reuse a healthy one, smoke check
          (CLUSTER_EGRESS=1: pods may open HTTPS connections to the internet, for bots
          against real Discord; CLUSTER_EGRESS=0: nothing leaves the bridge; unset: the
          running cluster's mode, off for a new one)
  status  what runs, whether the node is Ready, and the smoke check
  down    stop every process up started and remove what it made (works after a crash)
`

func main() {
	if len(os.Args) != 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	c, err := newCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch os.Args[1] {
	case "up":
		err = c.up(ctx)
	case "down":
		err = c.down(ctx)
	case "status":
		err = c.status(ctx)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// cluster knows where everything lives; the network layout is in network.go.
type cluster struct {
	// assets holds the built binaries, shared with envtest (hack/envtest-assets.sh).
	assets string
	// state holds everything a running cluster made on disk; down removes it.
	state string
	// images holds the image tarballs the cluster imports (pause, clustercheck).
	images string
	// moduleDir is the repository root, where hack/envtest-assets.sh and the images' sources are.
	moduleDir string
	// egress lets pods reach the internet (CLUSTER_EGRESS=1 at up): masquerade off the
	// bridge and DNS forwarding, for bots against real Discord. Off, nothing leaves the bridge.
	egress bool
	// egressAsked is CLUSTER_EGRESS: "" keeps the mode the cluster has (off for a new one).
	egressAsked string
}

func newCluster() (*cluster, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("must run as root: it starts containerd and a kubelet")
	}
	root, err := localcluster.CacheRoot()
	if err != nil {
		return nil, err
	}
	moduleDir, err := localcluster.ModuleDir()
	if err != nil {
		return nil, err
	}
	return &cluster{
		assets:      filepath.Join(root, "k8s-"+kubernetesVersion),
		state:       filepath.Join(root, "cluster"),
		images:      filepath.Join(root, "cluster-images"),
		moduleDir:   moduleDir,
		egressAsked: os.Getenv("CLUSTER_EGRESS"),
	}, nil
}

func (c *cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.state}, parts...)...)
}

func (c *cluster) kubeconfig() string { return c.path("kubeconfig") }

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}
