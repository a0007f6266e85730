package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/imagebuild"
)

// hostPackages are the Debian packages up installs when a file of theirs is missing.
var hostPackages = []struct{ file, pkg string }{
	{"/usr/bin/containerd", "containerd"},
	{"/usr/sbin/runc", "runc"},
	{filepath.Join(cniBinDir, "bridge"), "containernetworking-plugins"},
	{"/usr/sbin/iptables", "iptables"},
	{"/usr/sbin/conntrack", "conntrack"},
}

// components are what envtest-assets.sh builds for the cluster beyond etcd and kube-apiserver.
var components = []string{"kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl", "coredns"}

func (c *cluster) up(ctx context.Context) error {
	start := time.Now()
	if err := c.chooseEgress(); err != nil {
		return err
	}
	step("host packages")
	if err := ensurePackages(); err != nil {
		return err
	}
	step("components %s (built once into %s)", kubernetesVersion, c.assets)
	if err := c.ensureAssets(ctx); err != nil {
		return err
	}
	step("images (pause, clustercheck) into %s", c.images)
	if err := c.ensureImages(ctx); err != nil {
		return err
	}
	step("network: bridge %s, pods %s, Services %s%s", bridgeName, podCIDR, serviceCIDR, map[bool]string{true: "; egress mode: pods may reach the internet (CLUSTER_EGRESS=1)"}[c.egress])
	if err := c.ensureNetwork(); err != nil {
		return err
	}
	step("certificates and configuration in %s", c.state)
	if err := c.ensurePKI(); err != nil {
		return err
	}
	if err := c.writeConfigs(); err != nil {
		return err
	}
	step("processes")
	var kubeletStarted time.Time // zero when the kubelet already ran
	for _, p := range c.processes() {
		if _, running := c.pidOf(p.name, p.binary); p.name == "kubelet" && !running {
			kubeletStarted = time.Now()
		}
		if err := c.start(ctx, p); err != nil {
			return err
		}
		switch p.name {
		case "containerd":
			if err := c.importImages(); err != nil {
				return err
			}
		case "kube-apiserver":
			if err := c.ensureRBAC(ctx); err != nil {
				return err
			}
		}
	}
	step("smoke check")
	if err := c.smoke(ctx, kubeletStarted); err != nil {
		return err
	}
	path := ""
	if _, err := exec.LookPath("kubectl"); err != nil {
		path = fmt.Sprintf("  export PATH=$PATH:%s   # kubectl %s, built with the components\n", c.assets, kubernetesVersion)
	}
	fmt.Printf("\ncluster up in %s. Use it with:\n\n%s  export KUBECONFIG=%s\n  kubectl get nodes -o wide\n  kubectl get pods -A\n\nLogs: %s/*.log. Stop and remove it: go run ./hack/cluster down (or make cluster-down).\n",
		time.Since(start).Round(time.Second), path, c.kubeconfig(), c.path("logs"))
	return nil
}

func ensurePackages() error {
	var missing []string
	for _, hp := range hostPackages {
		if _, err := os.Stat(hp.file); err != nil {
			missing = append(missing, hp.pkg)
		}
	}
	if len(missing) == 0 {
		fmt.Println("    all present: containerd, runc, containernetworking-plugins, iptables, conntrack")
		return nil
	}
	fmt.Printf("    installing with apt-get: %s\n", strings.Join(missing, " "))
	for _, args := range [][]string{{"update"}, append([]string{"install", "-y", "--no-install-recommends"}, missing...)} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w", args[0], err)
		}
	}
	return nil
}

// ensureAssets runs hack/envtest-assets.sh, which builds what is missing one component
// at a time and says so on stderr.
func (c *cluster) ensureAssets(ctx context.Context) error {
	var missing []string
	for _, name := range append([]string{"etcd", "kube-apiserver"}, components...) {
		if _, err := os.Stat(filepath.Join(c.assets, name)); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		fmt.Println("    all built")
		return nil
	}
	fmt.Printf("    building %s: about 20 minutes cold on 2 cores\n", strings.Join(missing, ", "))
	began := time.Now()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(c.moduleDir, "hack", "envtest-assets.sh")}, components...)...)
	cmd.Dir = c.moduleDir
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("hack/envtest-assets.sh: %w", err)
	}
	fmt.Printf("    built in %s\n", time.Since(began).Round(time.Second))
	return nil
}

// ensureImages builds the cluster's images every time: seconds with a warm build cache,
// and a changed pause or clustercheck source never runs stale.
func (c *cluster) ensureImages(ctx context.Context) error {
	results, err := imagebuild.Build(ctx, imagebuild.Options{
		RepositoryPrefix: imagebuild.DefaultRepositoryPrefix,
		Tag:              imagebuild.DefaultTag,
		Version:          "dev",
		OutDir:           c.images,
		Only:             []string{"pause", "clustercheck"},
		ModuleDir:        c.moduleDir,
	})
	if err != nil {
		return err
	}
	for _, r := range results {
		fmt.Printf("    %s  %s  %.1f MB\n", r.Path, r.Ref, float64(r.Size)/1e6)
	}
	return nil
}

// importImages puts the image tarballs into containerd's k8s.io namespace, where the
// kubelet and the sandbox_image setting look.
func (c *cluster) importImages() error {
	for _, name := range []string{"pause", "clustercheck"} {
		if err := run("ctr", "--address", c.containerdSocket(), "-n", "k8s.io", "images", "import", filepath.Join(c.images, name+".tar")); err != nil {
			return err
		}
	}
	fmt.Printf("    imported %s, %s\n", pauseImage, clusterCheckImage)
	return nil
}

// chooseEgress sets the egress mode from CLUSTER_EGRESS, or keeps the one the cluster
// has (egressFile), and says when it changes.
func (c *cluster) chooseEgress() error {
	b, err := os.ReadFile(c.egressFile())
	had := err == nil && strings.TrimSpace(string(b)) == "1"
	switch c.egressAsked {
	case "":
		c.egress = had
	case "1":
		c.egress = true
	case "0":
		c.egress = false
	default:
		return fmt.Errorf("CLUSTER_EGRESS=%q: want 1 (pods may reach the internet), 0 (nothing leaves the bridge) or unset (keep the cluster's mode)", c.egressAsked)
	}
	if err == nil && had != c.egress {
		fmt.Printf("==> egress mode turns %s (CLUSTER_EGRESS=%s); it was %s\n", onOff(c.egress), c.egressAsked, onOff(had))
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// egressFile records the egress mode of the running cluster.
func (c *cluster) egressFile() string { return c.path("egress") }

func (c *cluster) recordEgress() error {
	return os.WriteFile(c.egressFile(), []byte(map[bool]string{true: "1\n", false: "0\n"}[c.egress]), 0o644)
}

func (c *cluster) ensureNetwork() error {
	if err := c.saveSysctls(); err != nil {
		return err
	}
	if err := ensureBridge(); err != nil {
		return err
	}
	if err := ensureForwardChain(c.egress); err != nil {
		return err
	}
	if err := ensureEgress(c.egress); err != nil {
		return err
	}
	if err := c.recordEgress(); err != nil {
		return err
	}
	// Forwarding only once the chain above restricts it to the bridge.
	for key, value := range map[string]string{"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"} {
		if err := setSysctl(key, value); err != nil {
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
	}
	return nil
}

// processes are the cluster's components in start order.
func (c *cluster) processes() []process {
	bin := func(name string) string { return filepath.Join(c.assets, name) }
	kubeconfig := func(name string) string { return c.path("kubeconfigs", name+".kubeconfig") }
	return []process{
		{
			name: "containerd", binary: "/usr/bin/containerd",
			args: []string{"--config", c.path("containerd", "config.toml")},
			ready: func(ctx context.Context) error {
				return run("ctr", "--address", c.containerdSocket(), "version")
			},
		},
		{
			name: "etcd", binary: bin("etcd"),
			args: flags(
				"name", "shardkeeper-local",
				"data-dir", c.path("etcd"),
				"listen-client-urls", etcdClientURL,
				"advertise-client-urls", etcdClientURL,
				"listen-peer-urls", etcdPeerURL,
				"initial-advertise-peer-urls", etcdPeerURL,
				"initial-cluster", "shardkeeper-local="+etcdPeerURL,
				"log-level", "warn",
			),
			ready: httpReady(etcdClientURL+"/health", nil),
		},
		{
			name: "kube-apiserver", binary: bin("kube-apiserver"),
			args: flags(
				"etcd-servers", etcdClientURL,
				"bind-address", nodeIP,
				"advertise-address", nodeIP,
				"secure-port", "6443",
				"service-cluster-ip-range", serviceCIDR,
				"client-ca-file", c.pki("ca.crt"),
				"tls-cert-file", c.pki("kube-apiserver.crt"),
				"tls-private-key-file", c.pki("kube-apiserver.key"),
				"kubelet-client-certificate", c.pki("apiserver-kubelet-client.crt"),
				"kubelet-client-key", c.pki("apiserver-kubelet-client.key"),
				"kubelet-certificate-authority", c.pki("ca.crt"),
				// Otherwise `kubectl logs` resolves the node's name through the VM's DNS.
				"kubelet-preferred-address-types", "InternalIP",
				"service-account-issuer", "https://kubernetes.default.svc.cluster.local",
				"service-account-key-file", c.pki("sa.pub"),
				"service-account-signing-key-file", c.pki("sa.key"),
				"authorization-mode", "Node,RBAC",
				"enable-admission-plugins", "NodeRestriction",
				"allow-privileged", "true",
				"cert-dir", c.path("kube-apiserver"),
			),
			ready: httpReady(apiserverURL+"/readyz", c.caPool),
		},
		{
			name: "kube-controller-manager", binary: bin("kube-controller-manager"),
			args: flags(
				"kubeconfig", kubeconfig("kube-controller-manager"),
				"authentication-kubeconfig", kubeconfig("kube-controller-manager"),
				"authorization-kubeconfig", kubeconfig("kube-controller-manager"),
				"bind-address", "127.0.0.1",
				"leader-elect", "false",
				"use-service-account-credentials", "true",
				"service-account-private-key-file", c.pki("sa.key"),
				"root-ca-file", c.pki("ca.crt"),
				"cluster-signing-cert-file", c.pki("ca.crt"),
				"cluster-signing-key-file", c.pki("ca.key"),
				"allocate-node-cidrs", "false",
				// Its default, /usr/libexec/kubernetes/..., would be created on the host.
				"flex-volume-plugin-dir", c.path("kube-controller-manager", "volume-plugins"),
				"cert-dir", c.path("kube-controller-manager"),
			),
			ready: httpReady("https://127.0.0.1:10257/healthz", nil),
		},
		{
			name: "kube-scheduler", binary: bin("kube-scheduler"),
			args: flags(
				"kubeconfig", kubeconfig("kube-scheduler"),
				"authentication-kubeconfig", kubeconfig("kube-scheduler"),
				"authorization-kubeconfig", kubeconfig("kube-scheduler"),
				"bind-address", "127.0.0.1",
				"leader-elect", "false",
				"cert-dir", c.path("kube-scheduler"),
			),
			ready: httpReady("https://127.0.0.1:10259/healthz", nil),
		},
		{
			name: "kubelet", binary: bin("kubelet"),
			args: flags(
				"config", c.path("kubelet", "config.yaml"),
				"kubeconfig", kubeconfig("kubelet"),
				"root-dir", c.path("kubelet", "root"),
				"cert-dir", c.path("kubelet", "pki"),
				"hostname-override", nodeName,
				"node-ip", nodeIP,
			),
			ready: httpReady("http://127.0.0.1:10248/healthz", nil),
		},
		{
			name: "kube-proxy", binary: bin("kube-proxy"),
			args:  flags("config", c.path("kube-proxy", "config.yaml")),
			ready: httpReady("http://127.0.0.1:10256/healthz", nil),
		},
		{
			name: "coredns", binary: bin("coredns"),
			args:  []string{"-conf", c.path("coredns", "Corefile")},
			ready: httpReady("http://127.0.0.1:18181/ready", nil),
		},
	}
}

func (c *cluster) caPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(c.pki("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return pool, nil
}

// httpReady polls url for a 200. Without roots, an https endpoint's certificate (the
// components' self-signed serving certificates on loopback) is not verified.
func httpReady(url string, roots func() (*x509.CertPool, error)) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		tlsConfig := &tls.Config{InsecureSkipVerify: roots == nil} //nolint:gosec // loopback health checks only
		if roots != nil {
			pool, err := roots()
			if err != nil {
				return err
			}
			tlsConfig.RootCAs = pool
		}
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
