package controllers

import (
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// Per-bot health, served on the operator's /metrics beside controller-runtime's own.
// One series per bot, never per shard: the count of bots, not shards, bounds cardinality.
// The chart's alerts and dashboard read these names (docs/operations.md lists them).
var (
	botLabels = []string{"namespace", "bot"}

	// phases are every phase a bot can be in: shardkeeper_bot_phase has a series for each,
	// so that a dashboard counts bots by phase and an alert sees a phase it left.
	phases = []shardkeeperv1.BotPhase{
		shardkeeperv1.PhasePending, shardkeeperv1.PhaseStarting, shardkeeperv1.PhaseRunning, shardkeeperv1.PhaseUpdating,
		shardkeeperv1.PhaseDegraded, shardkeeperv1.PhaseSuspended, shardkeeperv1.PhaseFailed,
	}

	operatorSeries = newOperatorMetrics()
	// The names the reconcilers and their tests use.
	metricPodActions     = operatorSeries.podActions
	metricBotShards      = operatorSeries.shards
	metricBotReadyShards = operatorSeries.readyShards
	metricBotReady       = operatorSeries.ready
	metricBotRestarts    = operatorSeries.restarts
	metricRestartsTotal  = operatorSeries.restartsTotal
)

// operatorMetrics are the operator's own series. One set is registered on
// controller-runtime's registry; ReferenceMetrics builds another.
type operatorMetrics struct {
	shards, readyShards, pods, problemPods, restarts, ready *prometheus.GaugeVec
	staleShards, heartbeatLatency                           *prometheus.GaugeVec
	sessionStartsRemaining, sessionStartLimit               *prometheus.GaugeVec
	phase, condition, halted, haltedShardGroups             *prometheus.GaugeVec
	podActions, restartsTotal                               *prometheus.CounterVec

	// labelled holds, per bot, the series last set on the vectors whose labels follow the
	// status (a condition's reason, a halt's): a pass sets the series it wants and then
	// deletes only those it no longer sets, so a scrape never finds a bot without them.
	mu       sync.Mutex
	labelled map[types.NamespacedName]map[*prometheus.GaugeVec][]prometheus.Labels
}

func newOperatorMetrics() *operatorMetrics {
	gauge := func(name, help string, extra ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, slices.Concat(botLabels, extra))
	}
	m := &operatorMetrics{
		shards:      gauge("shardkeeper_bot_shards", "Shards the bot should run."),
		readyShards: gauge("shardkeeper_bot_ready_shards", "Shards whose pod is ready."),
		pods:        gauge("shardkeeper_bot_pods", "Bot pods that exist."),
		problemPods: gauge("shardkeeper_bot_problem_pods", "Bot pods with a problem (crash loop, image pull, unschedulable, not ready past their grace)."),
		restarts: gauge("shardkeeper_bot_restarts",
			"Bot container restarts and failed-pod replacements since the bot was created (status.restarts); it can go down (a status restored from a backup). Count restarts with shardkeeper_bot_restarts_total."),
		ready: gauge("shardkeeper_bot_ready",
			"1 while the bot's Ready condition is True: every shard ready on the current spec, or on the old layout while a reshard starts the new one (reason OldLayoutServing)."),
		staleShards: gauge("shardkeeper_bot_stale_shards", "Shards whose pod's heartbeat Lease is stale (status.staleShards)."),
		heartbeatLatency: gauge("shardkeeper_bot_heartbeat_latency_max_seconds",
			"Highest gateway heartbeat round trip any shard reported on its Lease (status.maxHeartbeatLatencyMillis)."),
		sessionStartsRemaining: gauge("shardkeeper_bot_session_starts_remaining",
			"Session starts (identifies) Discord still allowed the bot's token when the operator last asked; no series before it has asked."),
		sessionStartLimit: gauge("shardkeeper_bot_session_start_limit", "Session starts Discord allows the bot's token per period (usually a day)."),
		phase:             gauge("shardkeeper_bot_phase", "1 for the bot's phase (status.phase), 0 for every other phase.", "phase"),
		condition: gauge("shardkeeper_bot_condition",
			"1 while the bot's condition of this type is True, 0 while False or Unknown; reason is the condition's current reason.", "type", "reason"),
		halted: gauge("shardkeeper_bot_halted",
			"1 while the bot is halted for a reason restarts cannot fix (status.halted: TokenInvalid, IntentsDisallowed, ...); no series otherwise.", "reason"),
		haltedShardGroups: gauge("shardkeeper_bot_halted_shard_groups",
			"Shard groups of the bot halted on their own while the others run (status.haltedPods, e.g. ShardingRequired), by reason; no series when none is.", "reason"),
		podActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_pod_actions_total", Help: "Pods the operator created or deleted, by reason.",
		}, []string{"action", "reason"}),
		restartsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_bot_restarts_total",
			Help: "Bot container restarts and failed-pod replacements this operator process counted into the bot's saved status.",
		}, botLabels),
		labelled: map[types.NamespacedName]map[*prometheus.GaugeVec][]prometheus.Labels{},
	}
	// The restarts an alert counts start at zero: a counter born at its first increment
	// hides that increment from increase().
	for _, reason := range []string{shardkeeperv1.ReasonLeaseStale, shardkeeperv1.ReasonLeaseNeverWritten} {
		m.podActions.WithLabelValues("delete", reason)
	}
	return m
}

func (m *operatorMetrics) botGauges() []*prometheus.GaugeVec {
	return []*prometheus.GaugeVec{m.shards, m.readyShards, m.pods, m.problemPods, m.restarts, m.ready, m.staleShards,
		m.heartbeatLatency, m.sessionStartsRemaining, m.sessionStartLimit, m.phase, m.condition, m.halted, m.haltedShardGroups}
}

func (m *operatorMetrics) collectors() []prometheus.Collector {
	var out []prometheus.Collector
	for _, g := range m.botGauges() {
		out = append(out, g)
	}
	return append(out, m.podActions, m.restartsTotal)
}

func init() {
	metrics.Registry.MustRegister(operatorSeries.collectors()...)
}

// recordBotMetrics publishes a bot's saved status as gauges, and counts the restarts that
// status added (newRestarts). Only a status the API server holds is published: a pass whose
// patch failed, from a stale copy, would publish a lower restart count.
func recordBotMetrics(bot *shardkeeperv1.DiscordBot, newRestarts int64) {
	operatorSeries.record(bot)
	operatorSeries.countRestarts(bot, newRestarts)
}

// forgetBotMetrics drops a deleted bot's series.
func forgetBotMetrics(namespace, name string) { operatorSeries.forget(namespace, name) }

// countRestarts adds restarts to the bot's counter, which exists at zero from the bot's
// first pass on: a counter born at its first increment hides that increment from increase().
func (m *operatorMetrics) countRestarts(bot *shardkeeperv1.DiscordBot, n int64) {
	if n < 0 {
		return
	}
	m.restartsTotal.WithLabelValues(bot.Namespace, bot.Name).Add(float64(n))
}

func (m *operatorMetrics) record(bot *shardkeeperv1.DiscordBot) {
	l := prometheus.Labels{"namespace": bot.Namespace, "bot": bot.Name}
	st := bot.Status
	m.shards.With(l).Set(float64(st.Shards))
	m.readyShards.With(l).Set(float64(st.ReadyShards))
	m.pods.With(l).Set(float64(st.Pods))
	m.problemPods.With(l).Set(float64(st.ProblemCount))
	m.restarts.With(l).Set(float64(st.Restarts))
	// Ready, not phase Running: a reshard (phase Updating) serves every guild through the
	// old layout until the new one is ready, and is no outage.
	m.ready.With(l).Set(boolValue(meta.IsStatusConditionTrue(st.Conditions, shardkeeperv1.ConditionReady)))
	m.staleShards.With(l).Set(float64(st.StaleShards))
	m.heartbeatLatency.With(l).Set(float64(st.MaxHeartbeatLatencyMillis) / 1000)
	if gw := st.Gateway; gw != nil {
		m.sessionStartsRemaining.With(l).Set(float64(gw.SessionStartLimit.Remaining))
		m.sessionStartLimit.With(l).Set(float64(gw.SessionStartLimit.Total))
	} else {
		m.sessionStartsRemaining.Delete(l)
		m.sessionStartLimit.Delete(l)
	}
	for _, p := range phases {
		m.phase.With(withLabel(l, "phase", string(p))).Set(boolValue(st.Phase == p))
	}

	// A condition's or a halt's reason is a label: the old reason's series goes when it
	// changes, after the new one is there.
	wanted := map[*prometheus.GaugeVec][]prometheus.Labels{}
	set := func(g *prometheus.GaugeVec, labels prometheus.Labels, value float64) {
		g.With(labels).Set(value)
		wanted[g] = append(wanted[g], labels)
	}
	for _, c := range st.Conditions {
		set(m.condition, withLabel(withLabel(l, "type", c.Type), "reason", c.Reason), boolValue(c.Status == metav1.ConditionTrue))
	}
	if st.Halted != nil {
		set(m.halted, withLabel(l, "reason", st.Halted.Reason), 1)
	}
	groupHalts := map[string]int{}
	for _, h := range st.HaltedPods {
		groupHalts[h.Reason]++
	}
	for _, reason := range slices.Sorted(maps.Keys(groupHalts)) {
		set(m.haltedShardGroups, withLabel(l, "reason", reason), float64(groupHalts[reason]))
	}

	key := types.NamespacedName{Namespace: bot.Namespace, Name: bot.Name}
	m.mu.Lock()
	before := m.labelled[key]
	m.labelled[key] = wanted
	m.mu.Unlock()
	for g, series := range before {
		for _, labels := range series {
			if !slices.ContainsFunc(wanted[g], func(w prometheus.Labels) bool { return maps.Equal(w, labels) }) {
				g.Delete(labels)
			}
		}
	}
}

func (m *operatorMetrics) forget(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "bot": name}
	for _, g := range m.botGauges() {
		g.DeletePartialMatch(l)
	}
	m.restartsTotal.DeletePartialMatch(l)
	m.mu.Lock()
	delete(m.labelled, types.NamespacedName{Namespace: namespace, Name: name})
	m.mu.Unlock()
}

func withLabel(l prometheus.Labels, name, value string) prometheus.Labels {
	out := prometheus.Labels{name: value}
	for k, v := range l {
		out[k] = v
	}
	return out
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ReferenceMetrics gathers every metric the operator itself exports (not
// controller-runtime's), each vector with a series for an example bot. It feeds the metrics
// reference in docs/operations.md (hack/metricsdoc) and the check that the chart's alerts
// and dashboard name only exported metrics. It builds its own set: the operator's registry
// is untouched.
func ReferenceMetrics() ([]*dto.MetricFamily, error) {
	m := newOperatorMetrics()
	m.record(&shardkeeperv1.DiscordBot{
		ObjectMeta: metav1.ObjectMeta{Namespace: "example", Name: "example"},
		Status: shardkeeperv1.DiscordBotStatus{
			Phase: shardkeeperv1.PhaseFailed, Shards: 2,
			Gateway:    &shardkeeperv1.GatewayStatus{SessionStartLimit: shardkeeperv1.SessionStartLimit{Total: 1000, Remaining: 990}},
			Halted:     &shardkeeperv1.BotHalt{Reason: "TokenInvalid"},
			HaltedPods: []shardkeeperv1.BotHalt{{Reason: shardkeeperv1.ReasonShardingRequired, Pod: "example-1"}},
			Conditions: []metav1.Condition{{
				Type: shardkeeperv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "TokenInvalid",
			}},
		},
	})
	m.podActions.WithLabelValues("delete", shardkeeperv1.ReasonLeaseStale).Inc()
	m.restartsTotal.WithLabelValues("example", "example").Inc()
	registry := prometheus.NewPedanticRegistry()
	for _, c := range m.collectors() {
		if err := registry.Register(c); err != nil {
			return nil, err
		}
	}
	return registry.Gather()
}
