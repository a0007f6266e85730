package controllers

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
)

// operatorMetrics are the operator's own series. One set is registered on
// controller-runtime's registry; ReferenceMetrics builds another.
type operatorMetrics struct {
	shards, readyShards, pods, problemPods, restarts, ready *prometheus.GaugeVec
	staleShards, heartbeatLatency                           *prometheus.GaugeVec
	sessionStartsRemaining, sessionStartLimit               *prometheus.GaugeVec
	phase, condition, halted                                *prometheus.GaugeVec
	podActions                                              *prometheus.CounterVec
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
		restarts:    gauge("shardkeeper_bot_restarts", "Bot container restarts and failed-pod replacements since the bot was created (status.restarts)."),
		ready:       gauge("shardkeeper_bot_ready", "1 when the bot's phase is Running: every shard ready on the current spec."),
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
		podActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_pod_actions_total", Help: "Pods the operator created or deleted, by reason.",
		}, []string{"action", "reason"}),
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
		m.heartbeatLatency, m.sessionStartsRemaining, m.sessionStartLimit, m.phase, m.condition, m.halted}
}

func (m *operatorMetrics) collectors() []prometheus.Collector {
	var out []prometheus.Collector
	for _, g := range m.botGauges() {
		out = append(out, g)
	}
	return append(out, m.podActions)
}

func init() {
	metrics.Registry.MustRegister(operatorSeries.collectors()...)
}

// recordBotMetrics publishes a bot's status as gauges.
func recordBotMetrics(bot *shardkeeperv1.DiscordBot) { operatorSeries.record(bot) }

// forgetBotMetrics drops a deleted bot's series.
func forgetBotMetrics(namespace, name string) { operatorSeries.forget(namespace, name) }

func (m *operatorMetrics) record(bot *shardkeeperv1.DiscordBot) {
	l := prometheus.Labels{"namespace": bot.Namespace, "bot": bot.Name}
	st := bot.Status
	m.shards.With(l).Set(float64(st.Shards))
	m.readyShards.With(l).Set(float64(st.ReadyShards))
	m.pods.With(l).Set(float64(st.Pods))
	m.problemPods.With(l).Set(float64(st.ProblemCount))
	m.restarts.With(l).Set(float64(st.Restarts))
	m.ready.With(l).Set(boolValue(st.Phase == shardkeeperv1.PhaseRunning))
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
	// A condition's reason is a label: the old reason's series goes when it changes.
	m.condition.DeletePartialMatch(l)
	for _, c := range st.Conditions {
		m.condition.With(withLabel(withLabel(l, "type", c.Type), "reason", c.Reason)).Set(boolValue(c.Status == metav1.ConditionTrue))
	}
	m.halted.DeletePartialMatch(l)
	if st.Halted != nil {
		m.halted.With(withLabel(l, "reason", st.Halted.Reason)).Set(1)
	}
}

func (m *operatorMetrics) forget(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "bot": name}
	for _, g := range m.botGauges() {
		g.DeletePartialMatch(l)
	}
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
			Gateway: &shardkeeperv1.GatewayStatus{SessionStartLimit: shardkeeperv1.SessionStartLimit{Total: 1000, Remaining: 990}},
			Halted:  &shardkeeperv1.BotHalt{Reason: "TokenInvalid"},
			Conditions: []metav1.Condition{{
				Type: shardkeeperv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "TokenInvalid",
			}},
		},
	})
	m.podActions.WithLabelValues("delete", shardkeeperv1.ReasonLeaseStale).Inc()
	registry := prometheus.NewPedanticRegistry()
	for _, c := range m.collectors() {
		if err := registry.Register(c); err != nil {
			return nil, err
		}
	}
	return registry.Gather()
}
