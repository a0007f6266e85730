// Package manifests renders Shardkeeper's install manifests the way users' tools do
// (kustomize build, helm template), decodes them into objects, and reduces RBAC rules to
// comparable grants. It serves the tests of config/ and charts/; the operator must never
// import it.
package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Decode splits a multi-document YAML (or JSON) stream into objects, skipping empty
// documents.
func Decode(raw []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// DecodeFile decodes the objects in one YAML file.
func DecodeFile(path string) ([]*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	objs, err := Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objs, nil
}

// Kustomize is `kustomize build dir`.
func Kustomize(dir string) ([]*unstructured.Unstructured, error) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	rendered, err := resources.AsYaml()
	if err != nil {
		return nil, err
	}
	return Decode(rendered)
}

// HelmBinary is $HELM, or bin/helm under the repository root, which `make helm` installs.
func HelmBinary(repoRoot string) (string, error) {
	helm := os.Getenv("HELM")
	if helm == "" {
		helm = filepath.Join(repoRoot, "bin", "helm")
	}
	if _, err := os.Stat(helm); err != nil {
		return "", fmt.Errorf("no helm at %s (run `make helm` to install the pinned version, or set $HELM): %w", helm, err)
	}
	return helm, nil
}

// Helm runs helm with args and returns its standard output; a failure's error carries
// helm's standard error, which names what was wrong.
func Helm(helm string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()+"\n"+stdout.String()))
	}
	return stdout.Bytes(), nil
}

// HelmTemplate is `helm template release chart --namespace namespace extraArgs...`.
func HelmTemplate(helm, chart, release, namespace string, extraArgs ...string) ([]*unstructured.Unstructured, error) {
	args := append([]string{"template", release, chart, "--namespace", namespace}, extraArgs...)
	rendered, err := Helm(helm, args...)
	if err != nil {
		return nil, err
	}
	return Decode(rendered)
}

// OfKind returns the objects of one kind, in order.
func OfKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == kind {
			out = append(out, obj)
		}
	}
	return out
}

// Kinds counts the objects of each kind.
func Kinds(objs []*unstructured.Unstructured) map[string]int {
	kinds := map[string]int{}
	for _, obj := range objs {
		kinds[obj.GetKind()]++
	}
	return kinds
}

// Grants reduces the rules of a Role or ClusterRole to sorted, unique single grants
// ("apiGroup resource verb", with a resource name when the rule has some), so that two
// roles compare equal exactly when they allow the same requests, however their rules
// are grouped or ordered.
func Grants(role *unstructured.Unstructured) ([]string, error) {
	var typed struct {
		Rules []rbacv1.PolicyRule `json:"rules"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(role.Object, &typed); err != nil {
		return nil, fmt.Errorf("%s %s: %w", role.GetKind(), role.GetName(), err)
	}
	if len(typed.Rules) == 0 {
		return nil, errors.New(role.GetKind() + " " + role.GetName() + " has no rules")
	}
	var out []string
	for _, rule := range typed.Rules {
		for _, verb := range rule.Verbs {
			for _, url := range rule.NonResourceURLs {
				out = append(out, fmt.Sprintf("nonResourceURL %s %s", url, verb))
			}
			for _, group := range rule.APIGroups {
				for _, resource := range rule.Resources {
					grant := fmt.Sprintf("%q %s %s", group, resource, verb)
					if len(rule.ResourceNames) == 0 {
						out = append(out, grant)
					}
					for _, name := range rule.ResourceNames {
						out = append(out, grant+" name="+name)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
