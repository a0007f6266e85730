// Package metricsref lists the metrics Shardkeeper exports, read from the code rather than
// written down: the operator's (controllers.ReferenceMetrics) and a bot's
// (botruntime.ReferenceMetrics). hack/metricsdoc writes them into docs/operations.md, and
// the chart's tests check that every alert and dashboard query names one of them.
package metricsref

import (
	"fmt"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/controllers"
)

// Source says which process serves a metric.
type Source string

const (
	// Operator metrics are on the operator's /metrics, with namespace and bot labels of
	// their own.
	Operator Source = "operator"
	// Bot metrics are on each bot pod's health port (8081, /metrics); the scrape adds
	// namespace, pod and (the chart's PodMonitor) bot.
	Bot Source = "bot"
)

// Metric is one exported metric family.
type Metric struct {
	Name, Help string
	Type       dto.MetricType
	Labels     []string
	Source     Source
}

// Series are the names a query may use for m: a histogram's _bucket, _sum and _count, a
// summary's _sum and _count, and the family's own name.
func (m Metric) Series() []string {
	switch m.Type {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return []string{m.Name + "_bucket", m.Name + "_sum", m.Name + "_count"}
	case dto.MetricType_SUMMARY:
		return []string{m.Name, m.Name + "_sum", m.Name + "_count"}
	}
	return []string{m.Name}
}

// All gathers every metric of the operator and of a bot, sorted by name.
func All() ([]Metric, error) {
	var out []Metric
	for _, src := range []struct {
		source Source
		gather func() ([]*dto.MetricFamily, error)
	}{{Operator, controllers.ReferenceMetrics}, {Bot, botruntime.ReferenceMetrics}} {
		families, err := src.gather()
		if err != nil {
			return nil, fmt.Errorf("gathering the %s's metrics: %w", src.source, err)
		}
		for _, f := range families {
			out = append(out, Metric{Name: f.GetName(), Help: f.GetHelp(), Type: f.GetType(), Labels: labelsOf(f), Source: src.source})
		}
	}
	slices.SortFunc(out, func(a, b Metric) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func labelsOf(f *dto.MetricFamily) []string {
	var out []string
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(out, l.GetName()) {
				out = append(out, l.GetName())
			}
		}
	}
	return out
}

// Markdown is the reference table of Shardkeeper's own metrics (shardkeeper_*); the Go
// runtime's and process metrics a bot also serves are left to their own documentation.
func Markdown(metrics []Metric) string {
	var b strings.Builder
	b.WriteString("| Metric | Type | Labels | Served by | Meaning |\n| --- | --- | --- | --- | --- |\n")
	for _, m := range metrics {
		if !strings.HasPrefix(m.Name, "shardkeeper_") {
			continue
		}
		labels := make([]string, len(m.Labels))
		for i, l := range m.Labels {
			labels[i] = "`" + l + "`"
		}
		if len(labels) == 0 {
			labels = []string{"—"}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", m.Name, strings.ToLower(m.Type.String()), strings.Join(labels, ", "), m.Source,
			strings.ReplaceAll(m.Help, "|", `\|`))
	}
	return b.String()
}

// The generated section of docs/operations.md lies between these lines.
const (
	BeginMarker = "<!-- BEGIN GENERATED METRICS: go run ./hack/metricsdoc -->"
	EndMarker   = "<!-- END GENERATED METRICS -->"
)

// Replace returns doc with the text between the markers replaced by section.
func Replace(doc, section string) (string, error) {
	begin := strings.Index(doc, BeginMarker)
	end := strings.Index(doc, EndMarker)
	if begin < 0 || end < begin {
		return "", fmt.Errorf("the document has no %q ... %q section", BeginMarker, EndMarker)
	}
	return doc[:begin+len(BeginMarker)] + "\n" + section + doc[end:], nil
}
