// Package config_test checks the manifests users install: config/default (what
// `kubectl apply -k config/default` applies) and the samples, against a real API server.
package config_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

func decodeAll(t *testing.T, raw []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

func TestKustomizeDefaultAndSamplesInstallCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest")
	}
	root := testenv.RepoRoot()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatalf("kustomize build config/default: %v", err)
	}
	rendered, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}

	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	if err := apiextensionsv1.AddToScheme(env.Scheme); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Every object is accepted. Namespaces and CRDs go first, as kubectl orders them.
	objects := decodeAll(t, rendered)
	slices.SortStableFunc(objects, func(a, b *unstructured.Unstructured) int { return applyRank(a) - applyRank(b) })
	kinds := map[string]int{}
	for _, obj := range objects {
		kinds[obj.GetKind()]++
		if err := k8s.Patch(ctx, obj, client.Apply, client.ForceOwnership, client.FieldOwner("manifests-test")); err != nil {
			t.Errorf("%s %s rejected: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment"} {
		if kinds[kind] == 0 {
			t.Errorf("config/default renders no %s", kind)
		}
	}

	var crd apiextensionsv1.CustomResourceDefinition
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := k8s.Get(ctx, client.ObjectKey{Name: "discordbots.shardkeeper.dev"}, &crd); err == nil && established(&crd) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the CRD never became Established")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The samples are valid DiscordBots.
	samples, _ := filepath.Glob(filepath.Join(root, "config", "samples", "shardkeeper_v1_*.yaml"))
	if len(samples) < 2 {
		t.Fatalf("want a small and a sharded sample, found %v", samples)
	}
	for _, path := range samples {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range decodeAll(t, raw) {
			obj.SetNamespace("shardkeeper-system")
			if err := k8s.Create(ctx, obj, client.DryRunAll); err != nil {
				t.Errorf("sample %s rejected: %v", filepath.Base(path), err)
			}
		}
	}
}

func applyRank(obj *unstructured.Unstructured) int {
	switch obj.GetKind() {
	case "Namespace":
		return 0
	case "CustomResourceDefinition":
		return 1
	}
	return 2
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}
