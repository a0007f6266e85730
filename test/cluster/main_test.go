// Package cluster runs Shardkeeper end to end on the real local cluster (hack/cluster), the
// way a user does: the images imported into the node's containerd, the operator installed
// with helm, bots applied with kubectl, a bot process frozen or wedged inside its
// container. `make test-e2e` brings the cluster up and runs it with SHARDKEEPER_E2E_CLUSTER=1;
// without that variable (as in `make test`) every test here skips.
//
// Each test works in a namespace of its own, with its own Discord emulator, and deletes it
// when done; the operator is shared.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/emulatorapi"
	"github.com/shardkeeper/shardkeeper/internal/imagebuild"
	"github.com/shardkeeper/shardkeeper/internal/localcluster"
)

// enabledVar turns the suite on; make test-e2e sets it after `make cluster-up`.
const enabledVar = "SHARDKEEPER_E2E_CLUSTER"

// e2eLabel marks the namespaces the suite makes, so that a later run removes what a killed
// one left.
const e2eLabel = "shardkeeper.dev/e2e"

// unliveBotImage is test/cluster/unlivebot, built and imported by TestMain.
const unliveBotImage = imagebuild.DefaultRepositoryPrefix + "/e2e-unlivebot:" + localcluster.ImageTag

// k is the cluster every test drives; nil when the suite is off.
var k *localcluster.Cluster

func TestMain(m *testing.M) {
	if os.Getenv(enabledVar) != "1" {
		fmt.Printf("cluster end-to-end tests skipped: run `make test-e2e` (root; it sets %s=1 on a running local cluster)\n", enabledVar)
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	err := setUp(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster e2e set-up:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// setUp imports the images `make images` built and the e2e bot, and installs the operator.
func setUp(ctx context.Context) error {
	var err error
	if k, err = localcluster.Default(os.Getenv("HELM")); err != nil {
		return err
	}
	if err := k.Reachable(ctx); err != nil {
		return err
	}
	// A run killed by go test's timeout runs no cleanup: its namespaces go now.
	if _, err := k.Kubectl(ctx, nil, "delete", "namespace", "--selector", e2eLabel+"=true", "--ignore-not-found", "--wait=true", "--timeout=3m"); err != nil {
		return fmt.Errorf("removing namespaces an earlier run left: %w", err)
	}
	var tarballs []string
	for _, name := range localcluster.Images {
		tarballs = append(tarballs, filepath.Join(filepath.Dir(operatorImage()), name+".tar"))
	}
	out, err := os.MkdirTemp("", "shardkeeper-e2e-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)
	built, err := imagebuild.Build(ctx, imagebuild.Options{
		RepositoryPrefix: imagebuild.DefaultRepositoryPrefix, Tag: localcluster.ImageTag, Version: "e2e", OutDir: out, ModuleDir: k.ModuleDir,
		Images: []imagebuild.Image{{Name: "e2e-unlivebot", Package: "./test/cluster/unlivebot", Entrypoint: "/bot"}},
	})
	if err != nil {
		return fmt.Errorf("building the e2e bot image: %w", err)
	}
	tarballs = append(tarballs, built[0].Path)
	if err := k.ImportImages(ctx, tarballs...); err != nil {
		return err
	}
	return k.InstallOperator(ctx, operatorImage())
}

// operatorImage is the operator's tarball, which make images wrote.
func operatorImage() string {
	dir := os.Getenv("IMAGES_DIR")
	if dir == "" {
		dir = filepath.Join(k.ModuleDir, "bin", "images")
	}
	return filepath.Join(dir, "operator.tar")
}

// suite skips the test when the suite is off, and gives it a context.
func suite(t *testing.T) context.Context {
	t.Helper()
	if k == nil {
		t.Skipf("needs the local cluster: make test-e2e")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// demo is config/demo (or config/demo-python) applied into a namespace of the test's own.
type demo struct {
	ns       string
	emulator localcluster.Emulator
	// botName is the DiscordBot's name.
	botName string
}

// newDemo applies config/demo (the emulator and demo-bot) into a new namespace, after
// edit changed the manifests (nil: as they are), with the bot's token (empty: the one
// the emulator accepts). The namespace is deleted when the test ends.
func newDemo(ctx context.Context, t *testing.T, edit func(string) string, token string) demo {
	t.Helper()
	ns := testNamespace(t)
	manifests, err := k.DemoManifests(ns, token)
	if err != nil {
		t.Fatal(err)
	}
	return applyDemo(ctx, t, ns, manifests, edit, localcluster.DemoBot)
}

// newPythonDemo applies config/demo-python (an emulator enforcing heartbeats and
// examples/python-bot behind the gateway proxy) into a new namespace, after edit.
func newPythonDemo(ctx context.Context, t *testing.T, edit func(string) string) demo {
	t.Helper()
	ns := testNamespace(t)
	manifests, err := k.PythonDemoManifests(ns)
	if err != nil {
		t.Fatal(err)
	}
	return applyDemo(ctx, t, ns, manifests, edit, localcluster.PythonDemoBot)
}

// testNamespace is a new namespace name for the test, labelled for removal by later runs.
func testNamespace(t *testing.T) string {
	name := strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))
	return fmt.Sprintf("e2e-%s-%04x", name[:min(20, len(name))], rand.IntN(1<<16))
}

func applyDemo(ctx context.Context, t *testing.T, ns string, manifests []byte, edit func(string) string, botName string) demo {
	t.Helper()
	if edit != nil {
		manifests = []byte(edit(string(manifests)))
	}
	t.Cleanup(func() {
		if t.Failed() {
			dump(t, ns)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := k.Kubectl(ctx, nil, "delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=150s"); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	mustKubectl(ctx, t, []byte(fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    %s: \"true\"\n", ns, e2eLabel)), "apply", "-f", "-")
	mustKubectl(ctx, t, manifests, "apply", "-f", "-")
	mustKubectl(ctx, t, nil, "rollout", "status", "deployment/discord-emulator", "--namespace", ns, "--timeout=120s")
	url, err := k.EmulatorURL(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	return demo{ns: ns, emulator: localcluster.Emulator{URL: url}, botName: botName}
}

// dump logs what a failed test leaves behind, for the CI log.
func dump(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"get", "discordbots,pods,leases", "-o", "wide", "--namespace", ns},
		{"get", "discordbots", "-o", "yaml", "--namespace", ns},
		{"get", "events", "--sort-by=.lastTimestamp", "--namespace", ns},
		{"logs", "--namespace", ns, "--selector", shardkeeperv1.LabelBot, "--all-containers", "--prefix", "--tail=40"},
	} {
		out, err := k.Kubectl(ctx, nil, args...)
		t.Logf("$ kubectl %s\n%s%v", strings.Join(args, " "), out, errOrEmpty(err))
	}
	// The operator's last lines about this namespace.
	out, err := k.Kubectl(ctx, nil, "logs", "--namespace", localcluster.OperatorNamespace, "deployment/"+localcluster.Release, "--tail=2000")
	var mine []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"namespace":"`+ns+`"`) {
			mine = append(mine, line)
		}
	}
	t.Logf("operator log lines about %s (last 30):\n%s%v", ns, strings.Join(mine[max(0, len(mine)-30):], "\n"), errOrEmpty(err))
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func mustKubectl(ctx context.Context, t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, err := k.Kubectl(ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// getJSON reads an object or list with kubectl get -o json into out.
func getJSON(ctx context.Context, out any, args ...string) error {
	raw, err := k.Kubectl(ctx, nil, append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(raw), out)
}

func (d demo) bot(ctx context.Context, t *testing.T) shardkeeperv1.DiscordBot {
	t.Helper()
	var bot shardkeeperv1.DiscordBot
	if err := getJSON(ctx, &bot, "discordbot", d.botName, "--namespace", d.ns); err != nil {
		t.Fatal(err)
	}
	return bot
}

func (d demo) pods(ctx context.Context, t *testing.T) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := getJSON(ctx, &pods, "pods", "--namespace", d.ns, "--selector", shardkeeperv1.LabelBot+"="+d.botName); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func (d demo) stats(ctx context.Context, t *testing.T) emulatorapi.Stats {
	t.Helper()
	st, err := d.emulator.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitReady waits for the bot's Ready condition.
func (d demo) waitReady(ctx context.Context, t *testing.T, timeout time.Duration) shardkeeperv1.DiscordBot {
	t.Helper()
	var bot shardkeeperv1.DiscordBot
	waitFor(ctx, t, "discordbot "+d.ns+"/"+d.botName+" Ready", timeout, func() (bool, string) {
		if err := getJSON(ctx, &bot, "discordbot", d.botName, "--namespace", d.ns); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(bot.Status.Conditions, shardkeeperv1.ConditionReady)
		if c == nil {
			return false, "no Ready condition yet"
		}
		return c.Status == "True" && c.ObservedGeneration == bot.Generation, c.Reason + ": " + c.Message
	})
	return bot
}

// waitFor polls cond every 500 ms until it holds, failing the test after timeout with the
// last reason cond gave.
func waitFor(ctx context.Context, t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	err := localcluster.WaitFor(ctx, what, timeout, 500*time.Millisecond, func() (bool, string, error) {
		ok, why := cond()
		return ok, why, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// podState is what a test compares to see whether bot pods were restarted.
type podState struct {
	uid      string
	restarts int32
}

func podStates(pods []corev1.Pod) map[string]podState {
	out := map[string]podState{}
	for _, p := range pods {
		var restarts int32
		for _, c := range p.Status.ContainerStatuses {
			restarts += c.RestartCount
		}
		out[p.Name] = podState{uid: string(p.UID), restarts: restarts}
	}
	return out
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// containerID is the containerd ID of the pod's bot container.
func containerID(t *testing.T, p corev1.Pod) string {
	t.Helper()
	for _, c := range p.Status.ContainerStatuses {
		if id, ok := strings.CutPrefix(c.ContainerID, "containerd://"); ok && c.State.Running != nil {
			return id
		}
	}
	t.Fatalf("pod %s has no running container", p.Name)
	return ""
}
