package main

import (
	"fmt"
	"os"

	"github.com/shardkeeper/shardkeeper/internal/localcluster"
)

const (
	kubernetesVersion = localcluster.KubernetesVersion
	etcdClientURL     = "http://127.0.0.1:12379"
	etcdPeerURL       = "http://127.0.0.1:12380"
	// pauseImage is containerd's sandbox image, imported from a tarball: no registry is reachable.
	pauseImage        = "ghcr.io/shardkeeper/pause:dev"
	clusterCheckImage = "ghcr.io/shardkeeper/clustercheck:dev"
	// cniBinDir is where Debian's containernetworking-plugins puts the plugins.
	cniBinDir = "/usr/lib/cni"
)

func (c *cluster) containerdSocket() string { return c.path("containerd", "containerd.sock") }

// containerdConfig keeps containerd apart from any system containerd: its own root,
// state, socket, runc root and CNI configuration. restrict_oom_score_adj is needed
// because this VM lacks CAP_SYS_RESOURCE (without it every sandbox fails with "can't get
// final child's PID from pipe: EOF"); netns_mounts_under_state_dir keeps the pods'
// network namespaces under the state directory, where down finds them.
func (c *cluster) containerdConfig() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, c.path("containerd", "root"), c.path("containerd", "state"), c.containerdSocket(),
		c.path("containerd", "opt"), pauseImage, c.path("containerd", "runc"),
		cniBinDir, c.path("cni", "net.d"))
}

// cniConfig attaches pods to the bridge with addresses from the pod range. No ipMasq:
// nothing leaves the bridge, so nothing is masqueraded.
func (c *cluster) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
`, cniNetwork, bridgeName, c.path("cni", "ipam"), podCIDR, nodeIP)
}

// kubeletConfig: cgroup v1 here, so failCgroupV1 false and the cgroupfs driver; it
// serves on the bridge address only; pod logs and volume plugins stay in the state
// directory; eviction thresholds are low because this is a shared dev disk.
func (c *cluster) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
tlsCertFile: %q
tlsPrivateKeyFile: %q
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
clusterDomain: cluster.local
clusterDNS: [%s]
resolvConf: %q
podCIDR: %s
podLogsDir: %q
volumePluginDir: %q
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
  nodefs.inodesFree: 1%%
`, nodeIP, c.pki("ca.crt"), c.pki("kubelet-serving.crt"), c.pki("kubelet-serving.key"),
		c.containerdSocket(), nodeIP, c.path("resolv.conf"), podCIDR,
		c.path("kubelet", "pod-logs"), c.path("kubelet", "volume-plugins"))
}

// kubeProxyConfig: iptables mode; NodePorts only on the bridge; conntrack limits left as
// the machine has them (zero means do not touch).
func (c *cluster) kubeProxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: %q
hostnameOverride: %s
bindAddress: %s
clusterCIDR: %s
nodePortAddresses: [%s]
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, c.path("kubeconfigs", "kube-proxy.kubeconfig"), nodeName, nodeIP, podCIDR, podCIDR)
}

// corefile serves cluster.local on the bridge address and nothing else: no forwarding
// to the machine's resolver, so pods cannot resolve or reach outside names. In egress mode
// other names go to the machine's resolver. CoreDNS reloads it when up rewrites it.
func (c *cluster) corefile() string {
	forward := ""
	if c.egress {
		forward = "\n    forward . /etc/resolv.conf"
	}
	return fmt.Sprintf(`.:53 {
    bind %s
    errors
    reload 2s
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }%s
    cache 30
}
`, nodeIP, c.path("kubeconfigs", "coredns.kubeconfig"), forward)
}

func (c *cluster) writeConfigs() error {
	files := map[string]string{
		c.path("containerd", "config.toml"):           c.containerdConfig(),
		c.path("cni", "net.d", "10-cluster.conflist"): c.cniConfig(),
		c.path("kubelet", "config.yaml"):              c.kubeletConfig(),
		c.path("kube-proxy", "config.yaml"):           c.kubeProxyConfig(),
		c.path("coredns", "Corefile"):                 c.corefile(),
		// The node's resolver for pods with dnsPolicy Default: none, on purpose.
		c.path("resolv.conf"): "# the local cluster's pods resolve cluster.local only\n",
	}
	for path, content := range files {
		// Unchanged files are not rewritten: kube-proxy exits when its config file is
		// written to, even with the same content, and up must leave a running cluster be.
		if b, err := os.ReadFile(path); err == nil && string(b) == content {
			continue
		}
		if err := writeFile(path, content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func flags(pairs ...string) []string {
	var out []string
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, "--"+pairs[i]+"="+pairs[i+1])
	}
	return out
}
