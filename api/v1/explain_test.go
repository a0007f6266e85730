package v1_test

import (
	"os"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// `kubectl explain discordbot` prints the schema's top-level description: the type's doc
// comment, which a stray blank line among its markers silently drops.
func TestTheCRDExplainsTheKind(t *testing.T) {
	raw, err := os.ReadFile("../../config/crd/bases/shardkeeper.dev_discordbots.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	for _, v := range crd.Spec.Versions {
		desc := v.Schema.OpenAPIV3Schema.Description
		if !strings.HasPrefix(desc, "DiscordBot runs a Discord bot") {
			t.Errorf("version %s: kubectl explain shows %q, want the DiscordBot doc comment", v.Name, desc)
		}
		if strings.Contains(desc, "+kubebuilder") {
			t.Errorf("version %s: the description carries markers: %q", v.Name, desc)
		}
	}
}
