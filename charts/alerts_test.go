package charts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shardkeeper/shardkeeper/internal/manifests"
)

// promtool is $PROMTOOL or bin/promtool (`make promtool` installs the pinned version);
// without it the alert tests fail rather than skip.
func promtool(t *testing.T) string {
	t.Helper()
	path := os.Getenv("PROMTOOL")
	if path == "" {
		path = filepath.Join(root, "bin", "promtool")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no promtool at %s (run `make promtool` to install the pinned version, or set $PROMTOOL): %v", path, err)
	}
	return path
}

// alertRelease is the release the promtool tests' series are labelled for: its jobs are
// shardkeeper-metrics (the operator) and shardkeeper-system/shardkeeper-bots (the bots).
const alertRelease, alertNamespace = "shardkeeper", "shardkeeper-system"

// renderRules renders the chart's PrometheusRule, with the ServiceMonitor and PodMonitor
// whose series it reads, with the default thresholds and extra helm arguments.
func renderRules(t *testing.T, extraArgs ...string) *unstructured.Unstructured {
	t.Helper()
	args := append([]string{"--set", "metrics.prometheusRule.enabled=true,metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true"}, extraArgs...)
	objs, err := manifests.HelmTemplate(helm(t), chartDir, alertRelease, alertNamespace, args...)
	if err != nil {
		t.Fatal(err)
	}
	return only(t, objs, "PrometheusRule")
}

type ruleGroup struct {
	Name  string `json:"name"`
	Rules []struct {
		Alert       string            `json:"alert"`
		Expr        string            `json:"expr"`
		For         string            `json:"for"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"rules"`
}

func ruleGroups(t *testing.T, rule *unstructured.Unstructured) []ruleGroup {
	t.Helper()
	var spec struct {
		Groups []ruleGroup `json:"groups"`
	}
	raw, err := yaml.Marshal(rule.Object["spec"])
	if err == nil {
		err = yaml.Unmarshal(raw, &spec)
	}
	if err != nil || len(spec.Groups) == 0 {
		t.Fatalf("the PrometheusRule has no rule groups (%v)", err)
	}
	return spec.Groups
}

// The alerts the chart ships pass promtool's unit tests in testdata/alerts_test.yaml: each
// fires on the series of a problem and stays silent on healthy ones.
func TestAlertRulesFireOnProblemsOnly(t *testing.T) {
	rule := renderRules(t)
	dir := t.TempDir()
	rules, err := yaml.Marshal(map[string]any{"groups": rule.Object["spec"].(map[string]any)["groups"]})
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(root, "charts", "testdata", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"rules.yaml": rules, "alerts_test.yaml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"check", "rules", "--lint=all", "--lint-fatal", "rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool(t), args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// Each alert has a test that fires it and one that expects it silent.
	var suite struct {
		Tests []struct {
			Name          string `json:"name"`
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &suite); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, test := range suite.Tests {
		for _, c := range test.AlertRuleTest {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname] = true
			} else {
				silent[c.Alertname] = true
			}
		}
	}
	var shipped []string
	for _, g := range ruleGroups(t, rule) {
		for _, r := range g.Rules {
			shipped = append(shipped, r.Alert)
			if !fires[r.Alert] {
				t.Errorf("no promtool test fires %s", r.Alert)
			}
			if !silent[r.Alert] {
				t.Errorf("no promtool test expects %s silent", r.Alert)
			}
		}
	}
	for alert := range fires {
		if !slices.Contains(shipped, alert) {
			t.Errorf("testdata/alerts_test.yaml tests %s, which the chart does not ship", alert)
		}
	}
	if len(shipped) < 12 {
		t.Errorf("the chart ships %d alerts %v, want at least 12", len(shipped), shipped)
	}
}

// Every alert says what happened to which bot (or which operator), links to its own
// section of docs/operations.md, and waits a few scrapes before it fires.
func TestAlertsHaveRunbooks(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, heading := range regexp.MustCompile(`(?m)^#{2,4} (.+)$`).FindAllSubmatch(doc, -1) {
		anchors[githubAnchor(string(heading[1]))] = true
	}
	const runbook = "https://github.com/shardkeeper/shardkeeper/blob/main/docs/operations.md#"
	for _, g := range ruleGroups(t, renderRules(t)) {
		for _, r := range g.Rules {
			if r.Annotations["summary"] == "" {
				t.Errorf("%s has no summary", r.Alert)
			}
			description := r.Annotations["description"]
			wants := []string{"{{ $labels.namespace }}"}
			if g.Name == "shardkeeper-bots" {
				wants = append(wants, "{{ $labels.bot }}")
			}
			for _, want := range wants {
				if !strings.Contains(description, want) {
					t.Errorf("%s's description does not name %s: %q", r.Alert, want, description)
				}
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbook)
			if !ok || anchor != strings.ToLower(r.Alert) {
				t.Errorf("%s's runbook_url is %q, want %s%s", r.Alert, r.Annotations["runbook_url"], runbook, strings.ToLower(r.Alert))
			}
			if !anchors[anchor] {
				t.Errorf("docs/operations.md has no section #%s for %s", anchor, r.Alert)
			}
			if r.Labels["severity"] == "" {
				t.Errorf("%s has no severity", r.Alert)
			}
			// Scraped every 30 s, a for of 2 minutes is four scrapes: one odd scrape, or one
			// pass of the operator, does not page.
			if d, err := time.ParseDuration(r.For); err != nil || d < 2*time.Minute {
				t.Errorf("%s has for: %q, want 2m or more (%v)", r.Alert, r.For, err)
			}
		}
	}
}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Values change what the rules say: thresholds, durations, severities, extra labels, the
// jobs they read, and alerts turned off.
func TestAlertValues(t *testing.T) {
	rule := renderRules(t,
		"--set-json", `metrics.prometheusRule.alerts.shardsDown={"enabled":true,"severity":"page","for":"2m","ratio":0.5}`,
		"--set", "metrics.prometheusRule.alerts.botHalted.enabled=false",
		"--set", "metrics.prometheusRule.alertLabels.team=bots",
		"--set", "metrics.prometheusRule.operatorJob=my-operator,metrics.prometheusRule.botJob=my-bots",
		"--set", "metrics.prometheusRule.labels.release=prometheus")
	if got := rule.GetLabels()["release"]; got != "prometheus" {
		t.Errorf("PrometheusRule label release = %q, want prometheus", got)
	}
	found := map[string]bool{}
	for _, g := range ruleGroups(t, rule) {
		for _, r := range g.Rules {
			found[r.Alert] = true
			if r.Labels["team"] != "bots" {
				t.Errorf("%s has labels %v, want team: bots", r.Alert, r.Labels)
			}
			if strings.Contains(r.Expr, "shardkeeper-metrics") || strings.Contains(r.Expr, "shardkeeper-bots") {
				t.Errorf("%s still reads the default jobs:\n%s", r.Alert, r.Expr)
			}
			if !strings.Contains(r.Expr, `job="my-operator"`) && !strings.Contains(r.Expr, `job="my-bots"`) {
				t.Errorf("%s reads neither job my-operator nor my-bots:\n%s", r.Alert, r.Expr)
			}
			if r.Alert == "ShardkeeperBotShardsDown" {
				if r.For != "2m" || r.Labels["severity"] != "page" || !strings.Contains(r.Expr, ">= 0.5") {
					t.Errorf("ShardkeeperBotShardsDown: for %s, severity %s, expr\n%s\nwant 2m, page, >= 0.5", r.For, r.Labels["severity"], r.Expr)
				}
			}
		}
	}
	if found["ShardkeeperBotHalted"] || !found["ShardkeeperBotShardsDown"] {
		t.Errorf("alerts %v: want ShardkeeperBotHalted turned off and ShardkeeperBotShardsDown there", found)
	}
}

// Rules over series nothing scrapes are refused: with no ServiceMonitor ShardkeeperOperatorDown
// would fire for ever, and with no PodMonitor the alerts on bot pods' series could never
// fire. A job of the user's own scrape, or the bot alerts turned off, lets them render.
func TestAlertsNeedTheirScrapes(t *testing.T) {
	const noBotAlerts = "metrics.prometheusRule.alerts.heartbeatLatencyHigh.enabled=false," +
		"metrics.prometheusRule.alerts.dispatcherDroppingEvents.enabled=false,metrics.prometheusRule.alerts.handlerStuck.enabled=false"
	tests := map[string]struct {
		set  string
		want string // in helm's error; "" renders, with the alerts in alerts
		// alerts rendered (when want is "")
		alerts []string
	}{
		"no ServiceMonitor": {set: "metrics.podMonitor.enabled=true",
			want: "metrics.prometheusRule.enabled needs metrics.serviceMonitor.enabled: true, or metrics.prometheusRule.operatorJob"},
		"no ServiceMonitor, the bot alerts off": {set: noBotAlerts,
			want: "ShardkeeperOperatorDown fires for ever"},
		"no PodMonitor": {set: "metrics.serviceMonitor.enabled=true",
			want: "metrics.prometheusRule.alerts heartbeatLatencyHigh, dispatcherDroppingEvents, handlerStuck read the bot pods' own series"},
		"no PodMonitor, one bot alert on": {set: "metrics.serviceMonitor.enabled=true,metrics.prometheusRule.alerts.heartbeatLatencyHigh.enabled=false," +
			"metrics.prometheusRule.alerts.dispatcherDroppingEvents.enabled=false",
			want: "metrics.prometheusRule.alerts handlerStuck read the bot pods' own series: they need metrics.podMonitor.enabled"},
		"no PodMonitor, the bot alerts off": {set: "metrics.serviceMonitor.enabled=true," + noBotAlerts,
			alerts: []string{"ShardkeeperOperatorDown", "ShardkeeperBotNotReady"}},
		"jobs of the user's own scrapes": {set: "metrics.prometheusRule.operatorJob=my-operator,metrics.prometheusRule.botJob=my-bots",
			alerts: []string{"ShardkeeperOperatorDown", "ShardkeeperHandlerStuck"}},
		"both monitors": {set: "metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true",
			alerts: []string{"ShardkeeperOperatorDown", "ShardkeeperHandlerStuck"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			objs, err := manifests.HelmTemplate(helm(t), chartDir, alertRelease, alertNamespace,
				"--set", "metrics.prometheusRule.enabled=true", "--set", tt.set)
			if tt.want != "" {
				if err == nil {
					t.Fatalf("helm template --set %s rendered, want an error saying %q", tt.set, tt.want)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error does not say %q:\n%v", tt.want, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var rendered []string
			for _, g := range ruleGroups(t, only(t, objs, "PrometheusRule")) {
				for _, r := range g.Rules {
					rendered = append(rendered, r.Alert)
				}
			}
			for _, want := range tt.alerts {
				if !slices.Contains(rendered, want) {
					t.Errorf("alerts %v, want %s among them", rendered, want)
				}
			}
		})
	}
}
