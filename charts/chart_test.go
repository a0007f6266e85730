// Package charts_test checks the helm chart in charts/shardkeeper as a user meets it: it
// lints, renders with every values file in ci/, refuses bad values with a message naming
// the field, installs on a real API server, carries the generated CRD, grants exactly the
// generated RBAC, and installs what `kubectl apply -k config/default` installs. Its alerts
// pass promtool's unit tests, and every alert and dashboard query is PromQL that selects
// metrics the code exports.
//
// helm is $HELM or bin/helm (`make helm` installs the pinned version), promtool $PROMTOOL
// or bin/promtool (`make promtool`); without them the tests fail rather than skip.
package charts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/shardkeeper/shardkeeper/controllers"
	"github.com/shardkeeper/shardkeeper/internal/imagebuild"
	"github.com/shardkeeper/shardkeeper/internal/manifests"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

const crdName = "discordbots.shardkeeper.dev"

var (
	root     = testenv.RepoRoot()
	chartDir = filepath.Join(root, "charts", "shardkeeper")
)

// installCase is a set of values the chart must install with.
type installCase struct {
	name, release, namespace string
	valuesFile               string // under charts/shardkeeper/ci; empty for the defaults
	installsCRD              bool
}

// installCases run in this order on one API server: "minimal" does not install the CRD and
// relies on one installed before it, as a second release in a cluster would.
var installCases = []installCase{
	{name: "defaults", release: "shardkeeper", namespace: "shardkeeper-system", installsCRD: true},
	{name: "all features", release: "sk-all", namespace: "sk-all", valuesFile: "all-features-values.yaml", installsCRD: true},
	{name: "minimal", release: "sk-min", namespace: "sk-min", valuesFile: "minimal-values.yaml"},
}

func (c installCase) render(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var args []string
	if c.valuesFile != "" {
		args = []string{"--values", filepath.Join(chartDir, "ci", c.valuesFile)}
	}
	objs, err := manifests.HelmTemplate(helm(t), chartDir, c.release, c.namespace, args...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func helm(t *testing.T) string {
	t.Helper()
	path, err := manifests.HelmBinary(root)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func appVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml has no appVersion (%v)", err)
	}
	return chart.AppVersion
}

func decodeFile(t *testing.T, path ...string) *unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.DecodeFile(filepath.Join(append([]string{root}, path...)...))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("%s: want one object, found %d", filepath.Join(path...), len(objs))
	}
	return objs[0]
}

// only returns the one object of kind, failing the test when there is not exactly one.
func only(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	found := manifests.OfKind(objs, kind)
	if len(found) != 1 {
		t.Fatalf("want one %s, found %d", kind, len(found))
	}
	return found[0]
}

func toTyped(t *testing.T, obj *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into); err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}

func grants(t *testing.T, role *unstructured.Unstructured) []string {
	t.Helper()
	out, err := manifests.Grants(role)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameGrants reports what one role grants that the other does not.
func sameGrants(t *testing.T, what string, got, want []string) {
	t.Helper()
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("%s grants %s, which the generated RBAC does not", what, g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s lacks %s, which the generated RBAC grants", what, w)
		}
	}
}

// The chart reads the generated CRD and RBAC from copies under files/ (a chart cannot
// reach outside its directory); `make manifests` writes them and they must be current.
func TestChartCopiesOfGeneratedFilesAreCurrent(t *testing.T) {
	generatedCRDs, _ := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if len(generatedCRDs) == 0 {
		t.Fatal("no generated CRDs in config/crd/bases")
	}
	copies := map[string]string{
		"files/rbac/role.yaml":                 "config/rbac/role.yaml",
		"files/rbac/leader_election_role.yaml": "config/rbac/leader_election_role.yaml",
	}
	for _, crd := range generatedCRDs {
		copies["files/crds/"+filepath.Base(crd)] = "config/crd/bases/" + filepath.Base(crd)
	}
	for chartFile, generated := range copies {
		want, err := os.ReadFile(filepath.Join(root, generated))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartDir, chartFile))
		if err != nil {
			t.Errorf("charts/shardkeeper/%s: %v; run `make manifests`", chartFile, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("charts/shardkeeper/%s differs from %s; run `make manifests` and commit the result", chartFile, generated)
		}
	}
}

func TestChartLints(t *testing.T) {
	valuesFiles, _ := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if len(valuesFiles) < 2 {
		t.Fatalf("want values files under charts/shardkeeper/ci, found %v", valuesFiles)
	}
	for _, values := range append([]string{""}, valuesFiles...) {
		args := []string{"lint", "--strict", chartDir}
		if values != "" {
			args = append(args, "--values", values)
		}
		if _, err := manifests.Helm(helm(t), args...); err != nil {
			t.Errorf("with %s: %v", cmpOr(filepath.Base(values), "the default values"), err)
		}
	}
}

func cmpOr(s, otherwise string) string {
	if s == "" || s == "." {
		return otherwise
	}
	return s
}

func TestChartRendersTheGeneratedCRDAndRBAC(t *testing.T) {
	objs := installCases[0].render(t)

	crd := only(t, objs, "CustomResourceDefinition")
	generated := decodeFile(t, "config", "crd", "bases", "shardkeeper.dev_discordbots.yaml")
	if crd.GetName() != generated.GetName() || !reflect.DeepEqual(crd.Object["spec"], generated.Object["spec"]) {
		t.Errorf("the chart's CRD is not config/crd/bases/shardkeeper.dev_discordbots.yaml")
	}
	if got := crd.GetAnnotations()["helm.sh/resource-policy"]; got != "keep" {
		t.Errorf("CRD annotation helm.sh/resource-policy = %q, want keep: helm uninstall would delete every DiscordBot", got)
	}
	for key, value := range generated.GetAnnotations() {
		if crd.GetAnnotations()[key] != value {
			t.Errorf("CRD lost the generated annotation %s: %s", key, value)
		}
	}

	generatedRules := grants(t, decodeFile(t, "config", "rbac", "role.yaml"))
	leaderElectionRules := grants(t, decodeFile(t, "config", "rbac", "leader_election_role.yaml"))
	sameGrants(t, "the chart's ClusterRole", grants(t, only(t, objs, "ClusterRole")), generatedRules)
	sameGrants(t, "the chart's leader election Role", grants(t, only(t, objs, "Role")), leaderElectionRules)

	// With watchNamespaces, the same rules in a Role in each watched namespace, bound to the
	// operator there, and nothing cluster-wide.
	watching, err := manifests.HelmTemplate(helm(t), chartDir, "shardkeeper", "shardkeeper-system", "--set", "watchNamespaces={bots-a,bots-b}")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(manifests.OfKind(watching, "ClusterRole")) + len(manifests.OfKind(watching, "ClusterRoleBinding")); n != 0 {
		t.Errorf("with watchNamespaces the chart renders %d ClusterRoles and ClusterRoleBindings, want none", n)
	}
	roles := map[string]*unstructured.Unstructured{}
	for _, role := range manifests.OfKind(watching, "Role") {
		roles[role.GetNamespace()] = role
	}
	if len(roles) != 3 {
		t.Fatalf("with watchNamespaces the chart renders Roles in %v, want bots-a, bots-b and the release's namespace", slices.Sorted(maps.Keys(roles)))
	}
	for _, ns := range []string{"bots-a", "bots-b"} {
		role, ok := roles[ns]
		if !ok {
			t.Errorf("no Role in the watched namespace %s", ns)
			continue
		}
		sameGrants(t, "the chart's Role in "+ns, grants(t, role), generatedRules)
		bound := false
		for _, binding := range manifests.OfKind(watching, "RoleBinding") {
			ref, _, _ := unstructured.NestedString(binding.Object, "roleRef", "name")
			bound = bound || (binding.GetNamespace() == ns && ref == role.GetName())
		}
		if !bound {
			t.Errorf("no RoleBinding in %s binds the Role %s", ns, role.GetName())
		}
	}
	sameGrants(t, "the chart's leader election Role", grants(t, roles["shardkeeper-system"]), leaderElectionRules)
}

func TestChartValues(t *testing.T) {
	app := appVersion(t)
	tests := map[string]struct {
		want           map[string]int // kind -> count, exactly
		replicas       int32
		image          string
		pullPolicy     corev1.PullPolicy
		args           []string
		serviceAccount string
		metricsPort    int32 // 0: no metrics port or Service
	}{
		"defaults": {
			want: map[string]int{"CustomResourceDefinition": 1, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
				"Role": 1, "RoleBinding": 1, "Service": 1, "Deployment": 1,
				"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1},
			replicas:   1,
			image:      "ghcr.io/shardkeeper/operator:" + app,
			pullPolicy: corev1.PullIfNotPresent,
			args: []string{"--leader-elect", "--default-bot-image=ghcr.io/shardkeeper/bot:" + app, "--gateway-proxy-image=ghcr.io/shardkeeper/gateway-proxy:" + app, "--metrics-bind-address=:8080",
				"--health-probe-bind-address=:8081", "--zap-log-level=info", "--trusted-hosts=discord.com,*.discord.gg"},
			serviceAccount: "shardkeeper",
			metricsPort:    8080,
		},
		"all features": {
			// Two watched namespaces: a Role and RoleBinding in each, and none cluster-wide.
			want: map[string]int{"CustomResourceDefinition": 1, "ServiceAccount": 1, "Role": 3, "RoleBinding": 3,
				"Service": 1, "Deployment": 1, "ServiceMonitor": 1, "NetworkPolicy": 2,
				"PodMonitor": 1, "PrometheusRule": 1, "ConfigMap": 1,
				"ValidatingAdmissionPolicy": 1, "ValidatingAdmissionPolicyBinding": 1},
			replicas:   2,
			image:      "registry.example.com/shardkeeper/operator:0.1.0-rc.1",
			pullPolicy: corev1.PullAlways,
			args: []string{"--leader-elect", "--default-bot-image=registry.example.com/shardkeeper/bot:0.1.0-rc.1",
				"--gateway-proxy-image=registry.example.com/shardkeeper/gateway-proxy:0.1.0-rc.1", "--metrics-bind-address=:9090",
				"--health-probe-bind-address=:8081", "--zap-log-level=debug", "--watch-namespaces=bots-a,bots-b",
				"--discord-api-url=https://discord-proxy.example.com/api/v10", "--gateway-check-interval=30m",
				"--trusted-hosts=discord.com,*.discord.gg,discord-proxy.example.com", "--plain-http-hosts=discord-emulator.bots-a.svc,127.0.0.1"},
			serviceAccount: "shardkeeper-operator",
			metricsPort:    9090,
		},
		"minimal": {
			want:       map[string]int{"Deployment": 1},
			replicas:   1,
			image:      "ghcr.io/shardkeeper/operator:" + app,
			pullPolicy: corev1.PullIfNotPresent,
			args: []string{"--leader-elect", "--default-bot-image=ghcr.io/shardkeeper/bot:" + app, "--gateway-proxy-image=ghcr.io/shardkeeper/gateway-proxy:" + app, "--metrics-bind-address=0",
				"--health-probe-bind-address=:8081", "--zap-log-level=info", "--trusted-hosts=discord.com,*.discord.gg"},
			serviceAccount: "shardkeeper-preprovisioned",
		},
	}
	for _, c := range installCases {
		tt, ok := tests[c.name]
		if !ok {
			t.Fatalf("no expectations for install case %q", c.name)
		}
		t.Run(c.name, func(t *testing.T) {
			objs := c.render(t)
			if got := manifests.Kinds(objs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("renders %v, want %v", got, tt.want)
			}
			for _, obj := range objs {
				labels := obj.GetLabels()
				for _, key := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
					if labels[key] == "" {
						t.Errorf("%s %s has no label %s", obj.GetKind(), obj.GetName(), key)
					}
				}
			}

			var deploy appsv1.Deployment
			toTyped(t, only(t, objs, "Deployment"), &deploy)
			if deploy.Namespace != c.namespace {
				t.Errorf("Deployment in namespace %q, want the release's %q", deploy.Namespace, c.namespace)
			}
			if got := *deploy.Spec.Replicas; got != tt.replicas {
				t.Errorf("replicas %d, want %d", got, tt.replicas)
			}
			pod := deploy.Spec.Template.Spec
			if pod.ServiceAccountName != tt.serviceAccount {
				t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, tt.serviceAccount)
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("want one container, found %d", len(pod.Containers))
			}
			operator := pod.Containers[0]
			if operator.Image != tt.image || operator.ImagePullPolicy != tt.pullPolicy {
				t.Errorf("image %s (%s), want %s (%s)", operator.Image, operator.ImagePullPolicy, tt.image, tt.pullPolicy)
			}
			if !slices.Equal(operator.Args, tt.args) {
				t.Errorf("args %q, want %q", operator.Args, tt.args)
			}
			checkRestricted(t, pod)
			if operator.LivenessProbe == nil || operator.LivenessProbe.HTTPGet == nil || operator.LivenessProbe.HTTPGet.Path != "/healthz" ||
				operator.ReadinessProbe == nil || operator.ReadinessProbe.HTTPGet == nil || operator.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("want liveness on /healthz and readiness on /readyz, got %+v and %+v", operator.LivenessProbe, operator.ReadinessProbe)
			}

			metricsPort := containerPort(operator, "metrics")
			if metricsPort != tt.metricsPort {
				t.Errorf("container port metrics = %d, want %d", metricsPort, tt.metricsPort)
			}
			if tt.metricsPort != 0 {
				var svc corev1.Service
				toTyped(t, only(t, objs, "Service"), &svc)
				if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != tt.metricsPort || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
					t.Errorf("metrics Service ports %+v, want %d to the metrics port", svc.Spec.Ports, tt.metricsPort)
				}
				if !selects(svc.Spec.Selector, deploy.Spec.Template.Labels) {
					t.Errorf("metrics Service selector %v does not select the operator's pods %v", svc.Spec.Selector, deploy.Spec.Template.Labels)
				}
			}
			for _, binding := range append(manifests.OfKind(objs, "ClusterRoleBinding"), manifests.OfKind(objs, "RoleBinding")...) {
				subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
				want := []any{map[string]any{"kind": "ServiceAccount", "name": tt.serviceAccount, "namespace": c.namespace}}
				if !reflect.DeepEqual(subjects, want) {
					t.Errorf("%s %s binds %v, want the operator's ServiceAccount %s/%s", binding.GetKind(), binding.GetName(), subjects, c.namespace, tt.serviceAccount)
				}
			}
		})
	}
}

// The chart runs <repository>:<appVersion> for the operator and the default bot, so a
// release bump moves both; its repositories are the ones `make images` builds, and with
// the tags set to the local build's it runs exactly what config/default runs.
func TestChartImages(t *testing.T) {
	app := appVersion(t)
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Image             struct{ Repository, Tag string }
		DefaultBotImage   struct{ Repository, Tag string } `json:"defaultBotImage"`
		GatewayProxyImage struct{ Repository, Tag string } `json:"gatewayProxyImage"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	for name, repository := range map[string]string{"operator": values.Image.Repository, "bot": values.DefaultBotImage.Repository,
		"gateway-proxy": values.GatewayProxyImage.Repository} {
		if want := imagebuild.DefaultRepositoryPrefix + "/" + name; repository != want {
			t.Errorf("values.yaml names the %s repository %q; `make images` builds %q", name, repository, want)
		}
	}

	kustomize, err := manifests.Kustomize(filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	kustomizeOperator, kustomizeBot, kustomizeProxy := images(t, kustomize)

	tests := map[string]struct {
		args                             []string
		wantOperator, wantBot, wantProxy string
	}{
		"defaults": {wantOperator: values.Image.Repository + ":" + app, wantBot: values.DefaultBotImage.Repository + ":" + app,
			wantProxy: values.GatewayProxyImage.Repository + ":" + app},
		"local builds": {
			args: []string{"--set", "image.tag=" + imagebuild.DefaultTag + ",defaultBotImage.tag=" + imagebuild.DefaultTag +
				",gatewayProxyImage.tag=" + imagebuild.DefaultTag},
			wantOperator: kustomizeOperator, wantBot: kustomizeBot, wantProxy: kustomizeProxy,
		},
		"proxy image override": {
			args:         []string{"--set", "gatewayProxyImage.repository=registry.example.com/proxy,gatewayProxyImage.tag=1.2.3"},
			wantOperator: values.Image.Repository + ":" + app, wantBot: values.DefaultBotImage.Repository + ":" + app,
			wantProxy: "registry.example.com/proxy:1.2.3",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			objs, err := manifests.HelmTemplate(helm(t), chartDir, "shardkeeper", "shardkeeper-system", tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			operator, bot, proxy := images(t, objs)
			if operator != tt.wantOperator {
				t.Errorf("operator image %q, want %q", operator, tt.wantOperator)
			}
			if bot != tt.wantBot {
				t.Errorf("--default-bot-image %q, want %q", bot, tt.wantBot)
			}
			if proxy != tt.wantProxy {
				t.Errorf("--gateway-proxy-image %q, want %q", proxy, tt.wantProxy)
			}
		})
	}
}

// images returns the operator Deployment's image, its --default-bot-image and its
// --gateway-proxy-image.
func images(t *testing.T, objs []*unstructured.Unstructured) (operator, bot, proxy string) {
	t.Helper()
	var deploy appsv1.Deployment
	toTyped(t, only(t, objs, "Deployment"), &deploy)
	if len(deploy.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, found %d", len(deploy.Spec.Template.Spec.Containers))
	}
	container := deploy.Spec.Template.Spec.Containers[0]
	for _, arg := range container.Args {
		if value, ok := strings.CutPrefix(arg, "--default-bot-image="); ok {
			bot = value
		}
		if value, ok := strings.CutPrefix(arg, "--gateway-proxy-image="); ok {
			proxy = value
		}
	}
	if bot == "" || proxy == "" {
		t.Fatalf("the operator has no --default-bot-image or no --gateway-proxy-image: %q", container.Args)
	}
	return container.Image, bot, proxy
}

func checkRestricted(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	sc := pod.Containers[0].SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v, want no privilege escalation, a read-only root filesystem and ALL capabilities dropped", sc)
	}
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestChartRejectsBadValues(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string // in helm's error
	}{
		"no replicas":               {[]string{"--set", "replicaCount=0"}, "at '/replicaCount': minimum: got 0, want 1"},
		"replicas not a number":     {[]string{"--set", "replicaCount=two"}, "at '/replicaCount': got string, want integer"},
		"unknown pull policy":       {[]string{"--set", "image.pullPolicy=Sometimes"}, "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"},
		"unknown top-level key":     {[]string{"--set", "replicas=2"}, "additional properties 'replicas' not allowed"},
		"unknown nested key":        {[]string{"--set", "metrics.bindAddress=:9090"}, "at '/metrics': additional properties 'bindAddress' not allowed"},
		"invalid namespace":         {[]string{"--set", "watchNamespaces={Bots}"}, "at '/watchNamespaces/0'"},
		"Discord API not a URL":     {[]string{"--set", "discord.apiURL=discord.com"}, "at '/discord/apiURL'"},
		"check interval no unit":    {[]string{"--set", "discord.gatewayCheckInterval=60"}, "at '/discord/gatewayCheckInterval'"},
		"trusted host as a URL":     {[]string{"--set", "discord.trustedHosts={https://discord.com}"}, "at '/discord/trustedHosts/0'"},
		"no trusted host":           {[]string{"--set", "discord.trustedHosts={}"}, "at '/discord/trustedHosts"},
		"plain host with a port":    {[]string{"--set", "discord.plainHTTPHosts={proxy:8080}"}, "at '/discord/plainHTTPHosts/0'"},
		"unknown log level":         {[]string{"--set", "logLevel=verbose"}, "at '/logLevel'"},
		"metrics on the probe port": {[]string{"--set", "metrics.port=8081"}, "at '/metrics/port'"},
		"ServiceMonitor without metrics": {[]string{"--set", "metrics.enabled=false,metrics.serviceMonitor.enabled=true"},
			"metrics.serviceMonitor.enabled needs metrics.enabled"},
		"no ServiceAccount at all": {[]string{"--set", "serviceAccount.create=false"},
			"serviceAccount.name is required when serviceAccount.create is false"},
		"NetworkPolicy without a namespace": {[]string{"--set", "networkPolicy.enabled=true,networkPolicy.apiServer.cidrs={10.0.0.1/32}"},
			"networkPolicy.enabled needs networkPolicy.namespaces or watchNamespaces"},
		"NetworkPolicy without the API server": {[]string{"--set", "networkPolicy.enabled=true,networkPolicy.namespaces={bots}"},
			"networkPolicy.enabled needs networkPolicy.apiServer.cidrs"},
		"NetworkPolicy CIDR without a length": {[]string{"--set", "networkPolicy.apiServer.cidrs={10.0.0.1}"}, "at '/networkPolicy/apiServer/cidrs/0'"},
		"NetworkPolicy port out of range":     {[]string{"--set", "networkPolicy.discord.ports={70000}"}, "at '/networkPolicy/discord/ports/0'"},
		"NetworkPolicy block losing its exceptions": {[]string{"--set", "networkPolicy.enabled=true,networkPolicy.namespaces={bots},networkPolicy.apiServer.cidrs={10.0.0.1/32},networkPolicy.discord.cidrs={0.0.0.0/1}"},
			"0.0.0.0/1 is a block so wide that the exceptions"},
		"unknown alert": {[]string{"--set", "metrics.prometheusRule.alerts.botSad.enabled=true"},
			"at '/metrics/prometheusRule/alerts': additional properties 'botSad' not allowed"},
		"threshold of another alert": {[]string{"--set", "metrics.prometheusRule.alerts.botHalted.ratio=1"},
			"at '/metrics/prometheusRule/alerts/botHalted': additional properties 'ratio' not allowed"},
		"alert for without a unit": {[]string{"--set", "metrics.prometheusRule.alerts.botNotReady.for=15"}, "at '/metrics/prometheusRule/alerts/botNotReady/for'"},
		"alert ratio over one":     {[]string{"--set-json", "metrics.prometheusRule.alerts.shardsDown.ratio=2"}, "at '/metrics/prometheusRule/alerts/shardsDown/ratio'"},
		"runbook URL with an anchor": {[]string{"--set", "metrics.prometheusRule.runbookURL=https://example.com/ops.md#alerts"},
			"at '/metrics/prometheusRule/runbookURL'"},
		"alerts without metrics": {[]string{"--set", "metrics.enabled=false,metrics.prometheusRule.enabled=true"},
			"metrics.prometheusRule.enabled needs metrics.enabled"},
		"dashboard in a bad namespace": {[]string{"--set", "metrics.dashboard.namespace=Grafana"}, "at '/metrics/dashboard/namespace'"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := manifests.HelmTemplate(helm(t), chartDir, "shardkeeper", "shardkeeper-system", tt.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want an error naming %q", tt.args, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not say %q:\n%v", tt.want, err)
			}
		})
	}
}

// The chart with default values and `kubectl apply -k config/default` install the same
// operator: same CRD, same RBAC, a Deployment with the same arguments (apart from the
// images) and probes, and a metrics Service. The chart creates no Namespace: helm's
// --create-namespace does.
func TestChartInstallsWhatKustomizeInstalls(t *testing.T) {
	chart := installCases[0].render(t)
	kustomize, err := manifests.Kustomize(filepath.Join(root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}

	kustomizeKinds := manifests.Kinds(kustomize)
	delete(kustomizeKinds, "Namespace")
	if got := manifests.Kinds(chart); !reflect.DeepEqual(got, kustomizeKinds) {
		t.Errorf("the chart installs %v, config/default %v", got, kustomizeKinds)
	}

	if !reflect.DeepEqual(only(t, chart, "CustomResourceDefinition").Object["spec"], only(t, kustomize, "CustomResourceDefinition").Object["spec"]) {
		t.Error("the chart's CRD differs from config/default's")
	}
	sameGrants(t, "the chart's ClusterRole", grants(t, only(t, chart, "ClusterRole")), grants(t, only(t, kustomize, "ClusterRole")))
	sameGrants(t, "the chart's leader election Role", grants(t, only(t, chart, "Role")), grants(t, only(t, kustomize, "Role")))
	if got, want := admissionPolicy(t, chart), admissionPolicy(t, kustomize); !reflect.DeepEqual(got, want) {
		t.Errorf("the chart's admission policy differs from config/default's:\nchart:     %v\nkustomize: %v", got, want)
	}

	var fromChart, fromKustomize appsv1.Deployment
	toTyped(t, only(t, chart, "Deployment"), &fromChart)
	toTyped(t, only(t, kustomize, "Deployment"), &fromKustomize)
	chartPod, kustomizePod := fromChart.Spec.Template.Spec, fromKustomize.Spec.Template.Spec
	if len(chartPod.Containers) != 1 || len(kustomizePod.Containers) != 1 {
		t.Fatalf("want one container each, found %d and %d", len(chartPod.Containers), len(kustomizePod.Containers))
	}
	chartOperator, kustomizeOperator := chartPod.Containers[0], kustomizePod.Containers[0]
	if got, want := withoutImages(chartOperator.Args), withoutImages(kustomizeOperator.Args); !slices.Equal(got, want) {
		t.Errorf("operator args: chart %q, config/default %q", got, want)
	}
	for _, field := range []struct {
		name        string
		chart, kust any
	}{
		{"ports", chartOperator.Ports, kustomizeOperator.Ports},
		{"livenessProbe", chartOperator.LivenessProbe, kustomizeOperator.LivenessProbe},
		{"readinessProbe", chartOperator.ReadinessProbe, kustomizeOperator.ReadinessProbe},
		{"resources", chartOperator.Resources, kustomizeOperator.Resources},
		{"securityContext", chartOperator.SecurityContext, kustomizeOperator.SecurityContext},
		{"pod securityContext", chartPod.SecurityContext, kustomizePod.SecurityContext},
		{"replicas", fromChart.Spec.Replicas, fromKustomize.Spec.Replicas},
	} {
		if !reflect.DeepEqual(field.chart, field.kust) {
			t.Errorf("operator %s: chart %+v, config/default %+v", field.name, field.chart, field.kust)
		}
	}

	var chartSvc, kustomizeSvc corev1.Service
	toTyped(t, only(t, chart, "Service"), &chartSvc)
	toTyped(t, only(t, kustomize, "Service"), &kustomizeSvc)
	if !reflect.DeepEqual(chartSvc.Spec.Ports, kustomizeSvc.Spec.Ports) {
		t.Errorf("metrics Service ports: chart %+v, config/default %+v", chartSvc.Spec.Ports, kustomizeSvc.Spec.Ports)
	}
	if !selects(kustomizeSvc.Spec.Selector, fromKustomize.Spec.Template.Labels) {
		t.Errorf("config/default's metrics Service selector %v does not select the operator's pods %v", kustomizeSvc.Spec.Selector, fromKustomize.Spec.Template.Labels)
	}
}

// admissionPolicy returns the spec of the operator's ValidatingAdmissionPolicy with the
// operator's user name and namespace, which differ between the chart and config/default, put
// as <operator> and <namespace>. It fails when the policy's binding does not bind it, or
// when the policy does not name the operator Deployment's ServiceAccount: a policy for
// another user would leave the operator unrestricted.
func admissionPolicy(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	policy := only(t, objs, "ValidatingAdmissionPolicy")
	binding := only(t, objs, "ValidatingAdmissionPolicyBinding")
	if name, _, _ := unstructured.NestedString(binding.Object, "spec", "policyName"); name != policy.GetName() {
		t.Errorf("ValidatingAdmissionPolicyBinding binds %q, want %q", name, policy.GetName())
	}
	if actions, _, _ := unstructured.NestedStringSlice(binding.Object, "spec", "validationActions"); !slices.Equal(actions, []string{"Deny"}) {
		t.Errorf("ValidatingAdmissionPolicyBinding actions %v, want [Deny]", actions)
	}
	var deploy appsv1.Deployment
	toTyped(t, only(t, objs, "Deployment"), &deploy)
	user := "system:serviceaccount:" + deploy.Namespace + ":" + deploy.Spec.Template.Spec.ServiceAccountName
	raw, err := json.Marshal(policy.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("'"+user+"'")) {
		t.Errorf("the admission policy does not name the operator's user %s:\n%s", user, raw)
	}
	if !bytes.Contains(raw, []byte("request.name == '"+controllers.LeaderElectionID+"'")) {
		t.Errorf("the admission policy does not exempt the leader election Lease %s:\n%s", controllers.LeaderElectionID, raw)
	}
	raw = bytes.ReplaceAll(raw, []byte("'"+user+"'"), []byte("'<operator>'"))
	raw = bytes.ReplaceAll(raw, []byte("'"+deploy.Namespace+"'"), []byte("'<namespace>'"))
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

// withoutImages drops the values of --default-bot-image and --gateway-proxy-image, whose
// tags differ by design (the
// chart's appVersion in the chart, the local build's in config/default; TestChartImages
// checks both).
func withoutImages(args []string) []string {
	out := make([]string, len(args))
	for i, arg := range args {
		for _, flag := range []string{"--default-bot-image=", "--gateway-proxy-image="} {
			if strings.HasPrefix(arg, flag) {
				arg = flag + "<image>"
			}
		}
		out[i] = arg
	}
	return out
}

// monitoringCRDs are the Prometheus Operator's CRDs the chart's objects need, generated
// from its API module's Go types at a pinned version by hack/monitoring-crds.sh (cached):
// applying the chart checks its ServiceMonitor, PodMonitor and PrometheusRule against the
// real schemas.
func monitoringCRDs(t *testing.T) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "hack", "monitoring-crds.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hack/monitoring-crds.sh: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, plural := range []string{"servicemonitors", "podmonitors", "prometheusrules"} {
		raw, err := os.ReadFile(filepath.Join(dir, "monitoring.coreos.com_"+plural+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
			t.Fatalf("%s: %v", plural, err)
		}
		crds = append(crds, &crd)
	}
	return crds
}

func ptrTo[T any](v T) *T { return &v }

func TestChartInstallsOnAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest")
	}
	// Render first: a missing helm fails before the API server starts.
	rendered := make([][]*unstructured.Unstructured, len(installCases))
	for i, c := range installCases {
		rendered[i] = c.render(t)
	}

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
	for _, crd := range monitoringCRDs(t) {
		if err := k8s.Create(ctx, crd); err != nil {
			t.Fatal(err)
		}
		if err := testenv.WaitEstablished(ctx, k8s, crd.Name, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// helm itself first, on the empty API server: it installs the CRD, prints NOTES.txt,
	// and leaves the CRD behind on uninstall.
	t.Run("helm install and uninstall", func(t *testing.T) {
		kubeconfig, err := env.AdminKubeconfig()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), kubeconfig, 0o600); err != nil {
			t.Fatal(err)
		}
		for name, value := range map[string]string{
			"KUBECONFIG": filepath.Join(dir, "kubeconfig"), "HELM_CACHE_HOME": filepath.Join(dir, "cache"),
			"HELM_CONFIG_HOME": filepath.Join(dir, "config"), "HELM_DATA_HOME": filepath.Join(dir, "data"),
		} {
			t.Setenv(name, value)
		}
		notes, err := manifests.Helm(helm(t), "install", "sk-helm", chartDir, "--namespace", "sk-helm", "--create-namespace")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"kubectl create secret generic hello-bot-token", "kind: DiscordBot", "kubectl get discordbots"} {
			if !bytes.Contains(notes, []byte(want)) {
				t.Errorf("NOTES do not say %q:\n%s", want, notes)
			}
		}
		if err := testenv.WaitEstablished(ctx, k8s, crdName, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := manifests.Helm(helm(t), "uninstall", "sk-helm", "--namespace", "sk-helm"); err != nil {
			t.Fatal(err)
		}
		var deploy appsv1.Deployment
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "sk-helm", Name: "sk-helm-shardkeeper"}, &deploy); err == nil {
			t.Error("helm uninstall left the operator's Deployment behind")
		}
		var crd apiextensionsv1.CustomResourceDefinition
		// A deleted CRD lingers while its finalizer removes the DiscordBots: check that
		// no deletion began.
		if err := k8s.Get(ctx, client.ObjectKey{Name: crdName}, &crd); err != nil || crd.DeletionTimestamp != nil {
			t.Errorf("helm uninstall deleted the CRD, and every DiscordBot with it (%v)", err)
		}
	})

	samples, _ := filepath.Glob(filepath.Join(root, "config", "samples", "shardkeeper_v1_*.yaml"))
	if len(samples) < 2 {
		t.Fatalf("want a small and a sharded sample, found %v", samples)
	}
	for i, c := range installCases {
		ok := t.Run(c.name, func(t *testing.T) {
			// The release's namespace, and the watched ones its Roles go to.
			namespaces := map[string]bool{c.namespace: true}
			for _, obj := range rendered[i] {
				if obj.GetNamespace() != "" {
					namespaces[obj.GetNamespace()] = true
				}
			}
			for ns := range namespaces {
				if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := testenv.Apply(ctx, k8s, "helm-"+c.release, rendered[i]); err != nil {
				t.Fatal(err)
			}
			if c.installsCRD {
				if err := testenv.WaitEstablished(ctx, k8s, crdName, 20*time.Second); err != nil {
					t.Fatal(err)
				}
				var crd apiextensionsv1.CustomResourceDefinition
				if err := k8s.Get(ctx, client.ObjectKey{Name: crdName}, &crd); err != nil {
					t.Fatal(err)
				}
				if crd.Annotations["helm.sh/resource-policy"] != "keep" {
					t.Errorf("the installed CRD has annotations %v, want helm.sh/resource-policy: keep", crd.Annotations)
				}
			}
			// The samples are valid DiscordBots for the CRD this release runs with.
			for _, path := range samples {
				bots, err := manifests.DecodeFile(path)
				if err != nil {
					t.Fatal(err)
				}
				for _, bot := range bots {
					bot.SetNamespace(c.namespace)
					if err := k8s.Create(ctx, bot, client.DryRunAll); err != nil {
						t.Errorf("sample %s rejected: %v", filepath.Base(path), err)
					}
				}
			}
		})
		if !ok && c.installsCRD {
			t.Fatal("later cases need the CRD this one installs")
		}
	}

	// The all-features release's monitoring objects went in against the Prometheus
	// Operator's real schemas, and those schemas do check: a rule whose duration the
	// Prometheus Operator cannot read is refused.
	t.Run("monitoring objects against the Prometheus Operator's schemas", func(t *testing.T) {
		allFeatures := rendered[slices.IndexFunc(installCases, func(c installCase) bool { return c.name == "all features" })]
		for _, kind := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"} {
			want := only(t, allFeatures, kind)
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(want.GroupVersionKind())
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(want), live); err != nil {
				t.Errorf("%s %s/%s not installed: %v", kind, want.GetNamespace(), want.GetName(), err)
			}
		}
		bad := only(t, allFeatures, "PrometheusRule").DeepCopy()
		bad.SetName("unreadable-duration")
		groups, _, _ := unstructured.NestedSlice(bad.Object, "spec", "groups")
		rules, _, _ := unstructured.NestedSlice(groups[0].(map[string]any), "rules")
		rules[0].(map[string]any)["for"] = "a while"
		_ = unstructured.SetNestedSlice(groups[0].(map[string]any), rules, "rules")
		_ = unstructured.SetNestedSlice(bad.Object, groups, "spec", "groups")
		if err := k8s.Create(ctx, bad, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "for") {
			t.Errorf("a PrometheusRule with for: \"a while\" was not refused for it: %v", err)
		}
	})

	// What the installed releases let the operator do, asked as `kubectl auth can-i --as`
	// would, and then done as the operator.
	t.Run("operator access with watchNamespaces", func(t *testing.T) {
		checkWatchNamespacesAccess(t, ctx, k8s, serviceAccount{namespace: "sk-all", name: "shardkeeper-operator"}, []string{"bots-a", "bots-b"})
	})
	defaultOperator := serviceAccount{namespace: "shardkeeper-system", name: "shardkeeper"}
	t.Run("operator access in every namespace", func(t *testing.T) {
		checkClusterWideAccess(t, ctx, k8s, defaultOperator)
	})
	t.Run("admission policy", func(t *testing.T) {
		checkAdmissionPolicy(t, ctx, env, k8s, defaultOperator)
	})
	t.Run("operator runs with what it was granted", func(t *testing.T) {
		checkOperatorRunsWithItsGrants(t, ctx, env, k8s, serviceAccount{namespace: "sk-all", name: "shardkeeper-operator"}, []string{"bots-a", "bots-b"})
	})
}
