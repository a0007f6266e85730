package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardkeeper/shardkeeper/internal/metricsref"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

// docs/operations.md lists the metrics the code exports today.
func TestOperationsDocListsTheExportedMetrics(t *testing.T) {
	path := filepath.Join(testenv.RepoRoot(), "docs", "operations.md")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := render(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != want {
		t.Error("docs/operations.md's metrics reference is out of date: run `go run ./hack/metricsdoc` and commit the result")
	}
	metrics, err := metricsref.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"shardkeeper_bot_ready", "shardkeeper_heartbeat_rtt_seconds", "shardkeeper_pod_actions_total"} {
		if !strings.Contains(want, "`"+name+"`") {
			t.Errorf("the reference does not list %s (of %d metrics)", name, len(metrics))
		}
	}
}

func TestReplaceKeepsTheRestOfTheDocument(t *testing.T) {
	doc := "intro\n" + metricsref.BeginMarker + "\nold\n" + metricsref.EndMarker + "\noutro\n"
	got, err := metricsref.Replace(doc, "new\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "intro\n" + metricsref.BeginMarker + "\nnew\n" + metricsref.EndMarker + "\noutro\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := metricsref.Replace("no markers", "new\n"); err == nil {
		t.Error("a document without markers was accepted")
	}
}
