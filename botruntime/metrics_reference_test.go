package botruntime

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The metrics reference (docs/operations.md) and the chart's PromQL check see every metric
// a bot has: each collector of the runtime has a family in ReferenceMetrics, so a vector
// added without an example series fails here rather than going missing from the doc.
func TestReferenceMetricsHaveEveryCollector(t *testing.T) {
	families, err := ReferenceMetrics()
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "shardkeeper_") {
			ours = append(ours, f.GetName())
		}
	}
	workerGauges := []string{"shardkeeper_dispatcher_worker_oldest_event_seconds", "shardkeeper_dispatcher_worker_queue_depth"}
	for _, name := range workerGauges {
		if !slices.Contains(ours, name) {
			t.Errorf("ReferenceMetrics lacks the dispatcher worker's %s", name)
		}
	}
	// One family per collector field of metrics, and the worker's two.
	fields := reflect.TypeFor[metrics]()
	collectors := 0
	for i := range fields.NumField() {
		typ := fields.Field(i).Type
		if typ.Implements(reflect.TypeFor[prometheus.Collector]()) && typ != reflect.TypeFor[*prometheus.Registry]() {
			collectors++
		}
	}
	if len(ours) != collectors+len(workerGauges) {
		t.Errorf("ReferenceMetrics has %d shardkeeper_ families %v; metrics has %d collectors and the worker %d: give every vector an example series",
			len(ours), ours, collectors, len(workerGauges))
	}
}

// A worker's drop counter is there at zero before its first drop, so that an alert on
// increase() sees the first burst.
func TestDropCounterStartsAtZero(t *testing.T) {
	m := newMetrics()
	idle := func() float64 { return 0 }
	m.watchWorker("3", idle, idle)
	if got := testutil.ToFloat64(m.droppedEvents.WithLabelValues("3")); got != 0 {
		t.Errorf("dropped events of a new worker = %v, want 0", got)
	}
	if n := testutil.CollectAndCount(m.droppedEvents); n != 1 {
		t.Errorf("a new worker has %d drop series, want 1", n)
	}
}
