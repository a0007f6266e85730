// Package localcluster drives the single-node cluster hack/cluster runs on this machine the
// way a user would: images imported into its containerd, the helm chart installed with
// helm, manifests applied with kubectl. `make run` (hack/run) and the cluster end-to-end
// tests (test/cluster) share it.
package localcluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Where the operator and the demo live, and the images they run.
const (
	Release           = "shardkeeper"
	OperatorNamespace = "shardkeeper-system"
	DemoNamespace     = "shardkeeper-demo"
	DemoBot           = "demo-bot"
	// DemoToken is the token the demo's emulator accepts (config/demo).
	DemoToken = "demo-token"
	// The Python bot behind the gateway proxy, with an emulator of its own
	// (config/demo-python).
	PythonDemoNamespace = "shardkeeper-demo-python"
	PythonDemoBot       = "python-bot"
	// ImageTag is the tag `make images` gives local builds.
	ImageTag = "dev"
	// KubernetesVersion is the cluster's (hack/cluster, hack/envtest-assets.sh).
	KubernetesVersion = "v1.37.2"
)

// Images are the tarballs `make images` writes that the cluster needs, by name.
var Images = []string{"operator", "bot", "gateway-proxy", "discord-emulator", "python-bot", "node-bot"}

// Cluster is the running local cluster and the tools that drive it.
type Cluster struct {
	// Kubeconfig is the admin kubeconfig hack/cluster writes.
	Kubeconfig string
	// ContainerdSocket is the cluster's own containerd (not the system's).
	ContainerdSocket string
	// ModuleDir is the repository root: the chart and config/demo are read from there.
	ModuleDir string
	// Helm is the helm binary (the pinned one in ./bin).
	Helm string
	// KubectlBin is kubectl: the one built beside the cluster's components (hack/cluster
	// builds it, at the cluster's version), else the one on PATH.
	KubectlBin string
	// Assets is where the cluster's components are built (hack/envtest-assets.sh).
	Assets string
}

// Default finds the cluster where hack/cluster keeps it (SHARDKEEPER_CACHE, else
// ~/.cache/shardkeeper) and the repository above the working directory. It does not
// check that the cluster runs: Reachable does.
func Default(helm string) (*Cluster, error) {
	root, err := CacheRoot()
	if err != nil {
		return nil, err
	}
	moduleDir, err := ModuleDir()
	if err != nil {
		return nil, err
	}
	if helm == "" {
		helm = filepath.Join(moduleDir, "bin", "helm")
	}
	state := filepath.Join(root, "cluster")
	assets := filepath.Join(root, "k8s-"+KubernetesVersion)
	kubectl := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		kubectl = "kubectl"
	}
	return &Cluster{
		Kubeconfig:       filepath.Join(state, "kubeconfig"),
		ContainerdSocket: filepath.Join(state, "containerd", "containerd.sock"),
		ModuleDir:        moduleDir,
		Helm:             helm,
		KubectlBin:       kubectl,
		Assets:           assets,
	}, nil
}

// Egress says whether the cluster runs in egress mode (its pods may reach the internet),
// as hack/cluster recorded it.
func (c *Cluster) Egress() bool {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(c.Kubeconfig), "egress"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// Reachable says whether the cluster's API server answers and its node is Ready, with
// what to do when not.
func (c *Cluster) Reachable(ctx context.Context) error {
	if _, err := os.Stat(c.Kubeconfig); err != nil {
		return fmt.Errorf("no local cluster (%v): start it with `make cluster-up`", err)
	}
	out, err := c.Kubectl(ctx, nil, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	if err != nil {
		return fmt.Errorf("the local cluster does not answer: %w; start it with `make cluster-up`", err)
	}
	for _, line := range strings.Fields(out) {
		if strings.HasSuffix(line, "=True") {
			return nil
		}
	}
	return fmt.Errorf("no node of the local cluster is Ready (%q): see `go run ./hack/cluster status`", strings.TrimSpace(out))
}

// Kubectl runs kubectl against the cluster, with stdin when not nil, and returns stdout.
// A failure's error carries stderr.
func (c *Cluster) Kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	return c.run(ctx, stdin, c.KubectlBin, args...)
}

// HelmRun runs the pinned helm against the cluster.
func (c *Cluster) HelmRun(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, nil, c.Helm, args...)
}

func (c *Cluster) run(ctx context.Context, stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(Environ(), "KUBECONFIG="+c.Kubeconfig)
	cmd.Dir = c.ModuleDir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Ctr runs containerd's ctr against the cluster's containerd, in the kubelet's namespace.
func (c *Cluster) Ctr(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, nil, "ctr", append([]string{"--address", c.ContainerdSocket, "--namespace", "k8s.io"}, args...)...)
}

// Environ is this process's environment less DISCORD_TOKEN, for the tools and the
// cluster's long-lived processes it starts: the token goes into a Secret through stdin and
// must not sit in /proc/<pid>/environ of a kubelet or an API server.
func Environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DISCORD_TOKEN=") {
			env = append(env, kv)
		}
	}
	return env
}

// ImportImages imports image tarballs into the cluster's containerd, where the kubelet
// finds them (no registry is reachable here). Importing an image again replaces the tag.
func (c *Cluster) ImportImages(ctx context.Context, tarballs ...string) error {
	for _, tar := range tarballs {
		if _, err := os.Stat(tar); err != nil {
			return fmt.Errorf("image %s: %w (build the images with `make images`)", tar, err)
		}
		if _, err := c.Ctr(ctx, "images", "import", tar); err != nil {
			return err
		}
	}
	return nil
}

// EmulatorHostPattern is the Discord emulator's Service in any namespace, as the operator's
// trusted hosts write it.
const EmulatorHostPattern = "discord-emulator.*.svc"

// InstallOperator installs or upgrades the chart with the local images and waits for the
// operator to roll out. operatorImage is the operator's tarball: its digest goes into a pod
// annotation, so that a rebuilt image (same tag) rolls the operator. extra are more helm
// arguments (--set ...).
func (c *Cluster) InstallOperator(ctx context.Context, operatorImage string, extra ...string) error {
	digest, err := fileDigest(operatorImage)
	if err != nil {
		return err
	}
	args := append([]string{
		"upgrade", "--install", Release, filepath.Join(c.ModuleDir, "charts", "shardkeeper"),
		"--namespace", OperatorNamespace, "--create-namespace",
		"--set", "image.tag=" + ImageTag + ",defaultBotImage.tag=" + ImageTag + ",gatewayProxyImage.tag=" + ImageTag + ",image.pullPolicy=IfNotPresent",
		"--set-string", `podAnnotations.shardkeeper\.dev/image-tarball=` + digest,
		// The Discord emulator of config/demo, in whichever namespace (make run's, each
		// end-to-end test's): the operator sends tokens to it in plain text.
		"--set", "discord.plainHTTPHosts={" + EmulatorHostPattern + "}",
		"--wait", "--timeout", "3m",
	}, extra...)
	_, err = c.HelmRun(ctx, args...)
	return err
}

// fileDigest is the start of a file's sha256, enough to tell two builds apart.
func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("image %w (build the images with `make images`)", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// DemoManifests are config/demo's namespace, emulator and bot, moved to namespace ns
// (every "shardkeeper-demo" in them, the emulator's full Service name included) and with
// the bot's token replaced by token when it is not empty. The emulator keeps accepting
// DemoToken, so another token is an invalid one.
func (c *Cluster) DemoManifests(ns, token string) ([]byte, error) {
	out, err := c.manifests("demo", DemoNamespace, ns, "namespace.yaml", "discord-emulator.yaml", "bot.yaml")
	if err != nil {
		return nil, err
	}
	if token != "" {
		const tokenLine = "token: " + DemoToken + "\n"
		if strings.Count(out, tokenLine) != 1 {
			return nil, errors.New("config/demo/bot.yaml no longer has one `token: " + DemoToken + "` line to replace")
		}
		out = strings.Replace(out, tokenLine, "token: "+token+"\n", 1)
	}
	return []byte(out), nil
}

// PythonDemoManifests are config/demo-python's namespace, emulator and Python bot, moved
// to namespace ns.
func (c *Cluster) PythonDemoManifests(ns string) ([]byte, error) {
	out, err := c.manifests("demo-python", PythonDemoNamespace, ns, "namespace.yaml", "discord-emulator.yaml", "python-bot.yaml")
	return []byte(out), err
}

// manifests joins files of config/<dir> into one stream, with every fromNS made toNS.
func (c *Cluster) manifests(dir, fromNS, toNS string, files ...string) (string, error) {
	var docs []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(c.ModuleDir, "config", dir, f))
		if err != nil {
			return "", err
		}
		docs = append(docs, string(b))
	}
	return strings.ReplaceAll(strings.Join(docs, "\n---\n"), fromNS, toNS), nil
}

// WaitFor polls cond every interval until it says done, returns an error, or timeout
// passes; the last reason it gave is in the timeout's error.
func WaitFor(ctx context.Context, what string, timeout, interval time.Duration, cond func() (done bool, reason string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		done, reason, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return nil
		}
		if reason != "" {
			last = reason
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not after %s (last seen: %s)", what, timeout, last)
		case <-time.After(interval):
		}
	}
}

// CacheRoot is where built components, images and the cluster's state live:
// SHARDKEEPER_CACHE, else ~/.cache/shardkeeper (as hack/envtest-assets.sh has it).
func CacheRoot() (string, error) {
	if root := os.Getenv("SHARDKEEPER_CACHE"); root != "" {
		return root, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "shardkeeper"), nil
}

// ModuleDir walks up from the working directory to this module's go.mod.
func ModuleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/shardkeeper/shardkeeper\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it inside the shardkeeper repository (no go.mod of github.com/shardkeeper/shardkeeper above the working directory)")
		}
		dir = parent
	}
}

// EmulatorURL is the base URL of the Discord emulator's control API in namespace ns, at its
// Service's cluster IP: this machine is the node, so kube-proxy routes it from here too.
func (c *Cluster) EmulatorURL(ctx context.Context, ns string) (string, error) {
	ip, err := c.Kubectl(ctx, nil, "get", "service", "discord-emulator", "--namespace", ns, "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		return "", err
	}
	if ip = strings.TrimSpace(ip); ip == "" || ip == "None" {
		return "", fmt.Errorf("service %s/discord-emulator has no cluster IP", ns)
	}
	return "http://" + ip + ":8090", nil
}
