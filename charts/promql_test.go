package charts_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	corev1 "k8s.io/api/core/v1"

	"github.com/shardkeeper/shardkeeper/internal/manifests"
	"github.com/shardkeeper/shardkeeper/internal/metricsref"
)

// exportedSeries are the series names a query may select: every metric the operator and a
// bot export, gathered from their code (metricsref), with a histogram's _bucket, _sum and
// _count.
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	all, err := metricsref.All()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range all {
		for _, s := range m.Series() {
			out[s] = true
		}
	}
	return out
}

// Metrics that no Shardkeeper code defines but that do exist where the queries run.
var external = map[string]string{
	// Prometheus writes up for every target it scrapes (the operator down alert).
	"up": "Prometheus",
	// controller-runtime's own, served on the operator's /metrics beside ours; probed on
	// controller-runtime's registry below, not taken on trust.
	"controller_runtime_reconcile_total":        "controller-runtime",
	"controller_runtime_reconcile_errors_total": "controller-runtime",
}

// onControllerRuntimeRegistry reports whether the registry the operator serves holds a
// metric named name: a probe of that name is refused when it does.
func onControllerRuntimeRegistry(name string) bool {
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe"})
	if err := metrics.Registry.Register(probe); err != nil {
		return true
	}
	metrics.Registry.Unregister(probe)
	return false
}

var promqlParser = parser.NewParser(parser.Options{})

// checkQuery parses expr with Prometheus's PromQL parser and returns an error when it does
// not parse or selects a series not in known.
func checkQuery(expr string, known map[string]bool) error {
	parsed, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return fmt.Errorf("not PromQL: %w", err)
	}
	var unknown []string
	parser.Inspect(parsed, func(node parser.Node, _ []parser.Node) error {
		selector, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := selector.Name
		for _, m := range selector.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		switch {
		case name == "":
			unknown = append(unknown, selector.String()+" (no metric name)")
		case !known[name]:
			unknown = append(unknown, name)
		}
		return nil
	})
	if len(unknown) > 0 {
		return fmt.Errorf("selects metrics neither the operator nor a bot exports: %s", strings.Join(unknown, ", "))
	}
	return nil
}

var (
	grafanaIntervals = regexp.MustCompile(`\$\{?__(rate_interval|interval|range)\}?`)
	grafanaVariable  = regexp.MustCompile(`\$\{?[A-Za-z_]\w*\}?`)
	labelValues      = regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
)

// fromGrafana turns a dashboard query into PromQL: Grafana's intervals become 5m and its
// variables a value; a label_values() variable query becomes its selector.
func fromGrafana(query string) string {
	query = grafanaIntervals.ReplaceAllString(query, "5m")
	query = grafanaVariable.ReplaceAllString(query, "x")
	if m := labelValues.FindStringSubmatch(query); m != nil {
		return m[1]
	}
	return query
}

// shippedQueries renders the chart with the alerts and the dashboard on and returns every
// query in them, by where it is.
func shippedQueries(t *testing.T) map[string]string {
	t.Helper()
	objs, err := manifests.HelmTemplate(helm(t), chartDir, alertRelease, alertNamespace,
		"--set", "metrics.prometheusRule.enabled=true,metrics.dashboard.enabled=true",
		"--set", "metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	queries := map[string]string{}
	for _, g := range ruleGroups(t, only(t, objs, "PrometheusRule")) {
		for _, r := range g.Rules {
			queries["alert "+r.Alert] = r.Expr
		}
	}
	var cm corev1.ConfigMap
	toTyped(t, only(t, objs, "ConfigMap"), &cm)
	var d dashboard
	if err := json.Unmarshal([]byte(cm.Data["shardkeeper.json"]), &d); err != nil {
		t.Fatal(err)
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		query, _ := v.Query.(string)
		if q, ok := v.Query.(map[string]any); ok {
			query, _ = q["query"].(string)
		}
		queries["dashboard variable "+v.Name] = fromGrafana(query)
	}
	for _, p := range d.Panels {
		for i, target := range p.Targets {
			queries[fmt.Sprintf("dashboard panel %q query %d", p.Title, i+1)] = fromGrafana(target.Expr)
		}
	}
	return queries
}

// Every query the chart ships, in its alerts and its dashboard, is PromQL that Prometheus's
// parser accepts, and selects only metrics the operator or a bot export: a renamed metric
// breaks this test, not a user's pager.
func TestShippedQueriesUseExportedMetrics(t *testing.T) {
	known := exportedSeries(t)
	for name, from := range external {
		if from == "controller-runtime" && !onControllerRuntimeRegistry(name) {
			t.Errorf("%s is not on controller-runtime's registry: the operator does not serve it", name)
		}
		known[name] = true
	}
	queries := shippedQueries(t)
	if len(queries) < 30 {
		t.Errorf("found %d queries in the chart, want the alerts' and the dashboard's (30 or more)", len(queries))
	}
	for _, where := range slices.Sorted(maps.Keys(queries)) {
		if err := checkQuery(queries[where], known); err != nil {
			t.Errorf("%s: %v\n%s", where, err, queries[where])
		}
	}

	// The same check, shown failing: a query that names a metric nobody exports, one that
	// names a histogram without its series suffix, and one that is not PromQL.
	for name, bad := range map[string]string{
		"unexported metric":         `sum by (namespace, bot) (rate(shardkeeper_bot_reconnects_total[5m])) > 0`,
		"histogram without _bucket": `histogram_quantile(0.99, rate(shardkeeper_heartbeat_rtt_seconds[5m]))`,
		"not PromQL":                `max by (namespace, bot) (shardkeeper_bot_ready == 0`,
	} {
		t.Run("rejects "+name, func(t *testing.T) {
			if err := checkQuery(bad, known); err == nil {
				t.Errorf("checkQuery accepted %s", bad)
			} else {
				t.Logf("rejected as it should be: %v", err)
			}
		})
	}
}

// counterFunctions treat a drop of their series as a counter reset: over a gauge that can
// go down, one lower scrape reads as the whole value again.
var counterFunctions = map[string]bool{"rate": true, "irate": true, "increase": true, "resets": true}

// checkCounterFunctions returns an error when expr applies rate(), irate(), increase() or
// resets() to a metric that types says is not a counter (metrics not in types, such as
// controller-runtime's counters, are left alone).
func checkCounterFunctions(expr string, types map[string]dto.MetricType) error {
	parsed, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return fmt.Errorf("not PromQL: %w", err)
	}
	var misused []string
	parser.Inspect(parsed, func(node parser.Node, _ []parser.Node) error {
		call, ok := node.(*parser.Call)
		if !ok || !counterFunctions[call.Func.Name] {
			return nil
		}
		parser.Inspect(call, func(node parser.Node, _ []parser.Node) error {
			if selector, ok := node.(*parser.VectorSelector); ok {
				if typ, known := types[selector.Name]; known && typ != dto.MetricType_COUNTER {
					misused = append(misused, fmt.Sprintf("%s() over %s, a %s", call.Func.Name, selector.Name, strings.ToLower(typ.String())))
				}
			}
			return nil
		})
		return nil
	})
	if len(misused) > 0 {
		return errors.New(strings.Join(misused, "; "))
	}
	return nil
}

// rate() and increase() in the chart's queries read counters only (a histogram's _bucket,
// _sum and _count are counters too).
func TestShippedQueriesRateCountersOnly(t *testing.T) {
	all, err := metricsref.All()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]dto.MetricType{}
	for _, m := range all {
		for _, series := range m.Series() {
			types[series] = m.Type
			if m.Type == dto.MetricType_HISTOGRAM && series != m.Name {
				types[series] = dto.MetricType_COUNTER
			}
		}
	}
	queries := shippedQueries(t)
	for _, where := range slices.Sorted(maps.Keys(queries)) {
		if err := checkCounterFunctions(queries[where], types); err != nil {
			t.Errorf("%s: %v\n%s", where, err, queries[where])
		}
	}

	bad := `max by (namespace, bot) (increase(shardkeeper_bot_restarts[1h])) > 5`
	if err := checkCounterFunctions(bad, types); err == nil {
		t.Errorf("checkCounterFunctions accepted %s", bad)
	}
}
