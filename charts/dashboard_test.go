package charts_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/shardkeeper/shardkeeper/internal/manifests"
)

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or {"query": "..."} for query variables
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "files", "dashboards", "shardkeeper.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("files/dashboards/shardkeeper.json: %v", err)
	}
	return d, raw
}

// The dashboard ships as a ConfigMap Grafana's sidecar finds, holding the JSON in
// files/dashboards, with a fleet row and a row for the bot the variables pick.
func TestDashboardConfigMap(t *testing.T) {
	objs, err := manifests.HelmTemplate(helm(t), chartDir, "shardkeeper", "shardkeeper-system",
		"--set", "metrics.dashboard.enabled=true,metrics.dashboard.namespace=grafana,metrics.dashboard.annotations.grafana_folder=Discord")
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	toTyped(t, only(t, objs, "ConfigMap"), &cm)
	if cm.Namespace != "grafana" || cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Discord" {
		t.Errorf("ConfigMap %s/%s labels %v annotations %v: want namespace grafana, grafana_dashboard: \"1\", grafana_folder: Discord",
			cm.Namespace, cm.Name, cm.Labels, cm.Annotations)
	}
	d, raw := readDashboard(t)
	if got := cm.Data["shardkeeper.json"]; strings.TrimSpace(got) != strings.TrimSpace(string(raw)) {
		t.Errorf("the ConfigMap's shardkeeper.json is not files/dashboards/shardkeeper.json")
	}

	var variables []string
	for _, v := range d.Templating.List {
		variables = append(variables, v.Name)
	}
	for _, want := range []string{"datasource", "namespace", "bot"} {
		if !slices.Contains(variables, want) {
			t.Errorf("the dashboard has variables %v, want %s", variables, want)
		}
	}
	panels := map[string]bool{}
	botRow := false
	for _, p := range d.Panels {
		panels[p.Title] = true
		if p.Type == "row" {
			botRow = strings.Contains(p.Title, "$bot")
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			if botRow && !(strings.Contains(target.Expr, `namespace="$namespace"`) && strings.Contains(target.Expr, `bot="$bot"`)) {
				t.Errorf("panel %q of the bot row does not select the chosen bot: %s", p.Title, target.Expr)
			}
		}
	}
	for _, want := range []string{
		"Bots by phase", "Shards ready / total", "Pods replaced, by reason", "Session starts left", // the fleet
		"Shards", "Heartbeat latency", "Events/s", "Handler latency", "Dispatcher queue", "Lease renewals", // one bot
	} {
		if !panels[want] {
			t.Errorf("the dashboard has no panel %q", want)
		}
	}

	objs, err = manifests.HelmTemplate(helm(t), chartDir, "shardkeeper", "shardkeeper-system")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(manifests.OfKind(objs, "ConfigMap")); n != 0 {
		t.Errorf("the default values render %d ConfigMaps, want no dashboard", n)
	}
}
