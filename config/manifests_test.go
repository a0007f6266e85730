// Package config_test checks the manifests users install: config/default (what
// `kubectl apply -k config/default` applies) and the samples, against a real API server.
package config_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shardkeeper/shardkeeper/internal/imagebuild"
	"github.com/shardkeeper/shardkeeper/internal/manifests"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

func TestKustomizeDefaultAndSamplesInstallCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest")
	}
	root := testenv.RepoRoot()
	objects, err := manifests.Kustomize(filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := manifests.Kinds(objects)
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		if kinds[kind] == 0 {
			t.Errorf("config/default renders no %s", kind)
		}
	}

	// No CRD beforehand: the one config/default installs must be accepted and served.
	env, err := testenv.StartEmpty()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	k8s, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := testenv.Apply(ctx, k8s, "manifests-test", objects); err != nil {
		t.Error(err)
	}
	if err := testenv.WaitEstablished(ctx, k8s, "discordbots.shardkeeper.dev", 20*time.Second); err != nil {
		t.Fatal(err)
	}

	// The samples are valid DiscordBots.
	samples, _ := filepath.Glob(filepath.Join(root, "config", "samples", "shardkeeper_v1_*.yaml"))
	if len(samples) < 2 {
		t.Fatalf("want a small and a sharded sample, found %v", samples)
	}
	for _, path := range samples {
		bots, err := manifests.DecodeFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, bot := range bots {
			bot.SetNamespace("shardkeeper-system")
			if err := k8s.Create(ctx, bot, client.DryRunAll); err != nil {
				t.Errorf("sample %s rejected: %v", filepath.Base(path), err)
			}
		}
	}
}

// `make images` then `kubectl apply -k config/default` runs the images just built: the
// operator's, the default bot's and the gateway proxy's.
func TestKustomizeDefaultRunsTheLocalBuilds(t *testing.T) {
	objects, err := manifests.Kustomize(filepath.Join(testenv.RepoRoot(), "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	deployments := manifests.OfKind(objects, "Deployment")
	if len(deployments) != 1 {
		t.Fatalf("want one Deployment, found %d", len(deployments))
	}
	containers, _, _ := unstructured.NestedSlice(deployments[0].Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("want one container, found %d", len(containers))
	}
	operator, _ := containers[0].(map[string]any)
	image, _, _ := unstructured.NestedString(operator, "image")
	args, _, _ := unstructured.NestedStringSlice(operator, "args")
	bot, proxy := "", ""
	for _, arg := range args {
		if value, ok := strings.CutPrefix(arg, "--default-bot-image="); ok {
			bot = value
		}
		if value, ok := strings.CutPrefix(arg, "--gateway-proxy-image="); ok {
			proxy = value
		}
	}

	ref := func(name string) string {
		return imagebuild.DefaultRepositoryPrefix + "/" + name + ":" + imagebuild.DefaultTag
	}
	if want := ref("operator"); image != want {
		t.Errorf("operator image %q, want %q, which `make images` builds", image, want)
	}
	if want := ref("bot"); bot != want {
		t.Errorf("--default-bot-image=%q, want %q, which `make images` builds", bot, want)
	}
	if want := ref("gateway-proxy"); proxy != want {
		t.Errorf("--gateway-proxy-image=%q, want %q, which `make images` builds", proxy, want)
	}
}
