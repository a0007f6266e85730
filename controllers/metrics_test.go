package controllers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

// The series an alert reads follow the bot's status: a reason that changed, a halt that
// was lifted, a gateway answer not yet in take their old series with them.
func TestBotMetricsFollowTheStatus(t *testing.T) {
	m := newOperatorMetrics()
	registry := prometheus.NewPedanticRegistry()
	for _, g := range m.botGauges() {
		registry.MustRegister(g)
	}
	bot := &shardkeeperv1.DiscordBot{ObjectMeta: metav1.ObjectMeta{Namespace: "bots", Name: "hello"}}
	bot.Status = shardkeeperv1.DiscordBotStatus{
		Phase: shardkeeperv1.PhaseFailed, Shards: 4, ReadyShards: 1, StaleShards: 2, MaxHeartbeatLatencyMillis: 1500,
		Halted:  &shardkeeperv1.BotHalt{Reason: "TokenInvalid"},
		Gateway: &shardkeeperv1.GatewayStatus{SessionStartLimit: shardkeeperv1.SessionStartLimit{Total: 1000, Remaining: 12}},
		Conditions: []metav1.Condition{
			{Type: shardkeeperv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "TokenInvalid"},
			{Type: shardkeeperv1.ConditionRemediationRestricted, Status: metav1.ConditionTrue, Reason: shardkeeperv1.ReasonTooManyUnhealthy},
		},
	}
	m.record(bot)
	want := map[string]float64{
		`shardkeeper_bot_shards{bot="hello",namespace="bots"}`:                                                           4,
		`shardkeeper_bot_ready_shards{bot="hello",namespace="bots"}`:                                                     1,
		`shardkeeper_bot_ready{bot="hello",namespace="bots"}`:                                                            0,
		`shardkeeper_bot_stale_shards{bot="hello",namespace="bots"}`:                                                     2,
		`shardkeeper_bot_heartbeat_latency_max_seconds{bot="hello",namespace="bots"}`:                                    1.5,
		`shardkeeper_bot_session_starts_remaining{bot="hello",namespace="bots"}`:                                         12,
		`shardkeeper_bot_session_start_limit{bot="hello",namespace="bots"}`:                                              1000,
		`shardkeeper_bot_phase{bot="hello",namespace="bots",phase="Failed"}`:                                             1,
		`shardkeeper_bot_phase{bot="hello",namespace="bots",phase="Running"}`:                                            0,
		`shardkeeper_bot_halted{bot="hello",namespace="bots",reason="TokenInvalid"}`:                                     1,
		`shardkeeper_bot_condition{bot="hello",namespace="bots",reason="TokenInvalid",type="Ready"}`:                     0,
		`shardkeeper_bot_condition{bot="hello",namespace="bots",reason="TooManyUnhealthy",type="RemediationRestricted"}`: 1,
		`shardkeeper_bot_restarts{bot="hello",namespace="bots"}`:                                                         0,
		`shardkeeper_bot_problem_pods{bot="hello",namespace="bots"}`:                                                     0,
		`shardkeeper_bot_pods{bot="hello",namespace="bots"}`:                                                             0,
		`shardkeeper_bot_phase{bot="hello",namespace="bots",phase="Pending"}`:                                            0,
		`shardkeeper_bot_phase{bot="hello",namespace="bots",phase="Starting"}`:                                           0,
		`shardkeeper_bot_phase{bot="hello",namespace="bots",phase="Updating"}`:                                           0,
		`shardkeeper_bot_phase{bot="hello",namespace="bots",phase="Degraded"}`:                                           0,
		`shardkeeper_bot_phase{bot="hello",namespace="bots",phase="Suspended"}`:                                          0,
	}
	checkSeries(t, "a halted bot", registry, want)

	// The token was fixed: the halt is lifted, the storm hold ended with another reason,
	// and the operator has not asked Discord again yet.
	bot.Status.Phase, bot.Status.Halted, bot.Status.Gateway = shardkeeperv1.PhaseRunning, nil, nil
	bot.Status.Conditions = []metav1.Condition{
		{Type: shardkeeperv1.ConditionReady, Status: metav1.ConditionTrue, Reason: shardkeeperv1.ReasonAllShardsReady},
		{Type: shardkeeperv1.ConditionRemediationRestricted, Status: metav1.ConditionFalse, Reason: shardkeeperv1.ReasonRestartsAllowed},
	}
	m.record(bot)
	for _, gone := range []string{
		`shardkeeper_bot_halted{bot="hello",namespace="bots",reason="TokenInvalid"}`,
		`shardkeeper_bot_condition{bot="hello",namespace="bots",reason="TokenInvalid",type="Ready"}`,
		`shardkeeper_bot_condition{bot="hello",namespace="bots",reason="TooManyUnhealthy",type="RemediationRestricted"}`,
		`shardkeeper_bot_session_starts_remaining{bot="hello",namespace="bots"}`,
		`shardkeeper_bot_session_start_limit{bot="hello",namespace="bots"}`,
	} {
		delete(want, gone)
	}
	want[`shardkeeper_bot_ready{bot="hello",namespace="bots"}`] = 1
	want[`shardkeeper_bot_phase{bot="hello",namespace="bots",phase="Failed"}`] = 0
	want[`shardkeeper_bot_phase{bot="hello",namespace="bots",phase="Running"}`] = 1
	want[`shardkeeper_bot_condition{bot="hello",namespace="bots",reason="AllShardsReady",type="Ready"}`] = 1
	want[`shardkeeper_bot_condition{bot="hello",namespace="bots",reason="RestartsAllowed",type="RemediationRestricted"}`] = 0
	checkSeries(t, "the same bot mended", registry, want)

	m.forget("bots", "hello")
	checkSeries(t, "the bot deleted", registry, map[string]float64{})
}

// checkSeries compares every series in registry with want (series -> value).
func checkSeries(t *testing.T, when string, registry *prometheus.Registry, want map[string]float64) {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			got[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	for series, value := range want {
		if v, ok := got[series]; !ok {
			t.Errorf("%s: no series %s", when, series)
		} else if v != value {
			t.Errorf("%s: %s = %v, want %v", when, series, v, value)
		}
	}
	for series := range got {
		if _, ok := want[series]; !ok {
			t.Errorf("%s: unexpected series %s", when, series)
		}
	}
}

// The metrics reference (docs/operations.md) and the chart's PromQL check see every
// metric the operator has: each of its collectors has a family in ReferenceMetrics.
func TestReferenceMetricsHaveEveryCollector(t *testing.T) {
	families, err := ReferenceMetrics()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	collectors := newOperatorMetrics().collectors()
	if len(names) != len(collectors) {
		t.Errorf("ReferenceMetrics has %d families %v, the operator %d collectors: give every vector an example series", len(names), names, len(collectors))
	}
}

// shardkeeper_bot_phase has a series for each phase the CRD allows.
func TestPhaseMetricKnowsEveryPhase(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", "shardkeeper.dev_discordbots.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties struct {
							Status struct {
								Properties struct {
									Phase struct {
										Enum []string `json:"enum"`
									} `json:"phase"`
								} `json:"properties"`
							} `json:"status"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil || len(crd.Spec.Versions) != 1 {
		t.Fatalf("reading the CRD: %v (%d versions)", err, len(crd.Spec.Versions))
	}
	enum := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties.Status.Properties.Phase.Enum
	var known []string
	for _, p := range phases {
		known = append(known, string(p))
	}
	slices.Sort(enum)
	slices.Sort(known)
	if !slices.Equal(enum, known) {
		t.Errorf("the CRD's phases are %v, shardkeeper_bot_phase knows %v", enum, known)
	}
}

// shardkeeper_bot_ready is the Ready condition, not phase Running: a bot resharding is in
// phase Updating while its old layout serves every guild, and must not read as down.
func TestBotReadyFollowsTheReadyCondition(t *testing.T) {
	tests := map[string]struct {
		phase     shardkeeperv1.BotPhase
		condition *metav1.Condition
		want      float64
	}{
		"every shard ready": {shardkeeperv1.PhaseRunning,
			&metav1.Condition{Type: shardkeeperv1.ConditionReady, Status: metav1.ConditionTrue, Reason: shardkeeperv1.ReasonAllShardsReady}, 1},
		"resharding, the old layout serving": {shardkeeperv1.PhaseUpdating,
			&metav1.Condition{Type: shardkeeperv1.ConditionReady, Status: metav1.ConditionTrue, Reason: shardkeeperv1.ReasonOldLayoutServing}, 1},
		"resharding, nothing serving": {shardkeeperv1.PhaseUpdating,
			&metav1.Condition{Type: shardkeeperv1.ConditionReady, Status: metav1.ConditionFalse, Reason: shardkeeperv1.ReasonShardsNotReady}, 0},
		"degraded": {shardkeeperv1.PhaseDegraded,
			&metav1.Condition{Type: shardkeeperv1.ConditionReady, Status: metav1.ConditionFalse, Reason: shardkeeperv1.ReasonShardsNotReady}, 0},
		"no condition yet": {shardkeeperv1.PhasePending, nil, 0},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			m := newOperatorMetrics()
			bot := &shardkeeperv1.DiscordBot{ObjectMeta: metav1.ObjectMeta{Namespace: "bots", Name: "hello"}}
			bot.Status.Phase = tt.phase
			if tt.condition != nil {
				bot.Status.Conditions = []metav1.Condition{*tt.condition}
			}
			m.record(bot)
			if got := testutil.ToFloat64(m.ready.WithLabelValues("bots", "hello")); got != tt.want {
				t.Errorf("shardkeeper_bot_ready = %v, want %v", got, tt.want)
			}
		})
	}
}

// Shard groups halted on their own (status.haltedPods: a 4011 on one group) have series
// of their own, counted by reason, which go when the halts are lifted.
func TestHaltedShardGroupsMetric(t *testing.T) {
	m := newOperatorMetrics()
	registry := prometheus.NewPedanticRegistry()
	registry.MustRegister(m.haltedShardGroups, m.halted)
	bot := &shardkeeperv1.DiscordBot{ObjectMeta: metav1.ObjectMeta{Namespace: "bots", Name: "big"}}
	bot.Status.Phase = shardkeeperv1.PhaseDegraded
	bot.Status.HaltedPods = []shardkeeperv1.BotHalt{
		{Reason: shardkeeperv1.ReasonShardingRequired, Pod: "big-1"},
		{Reason: shardkeeperv1.ReasonShardingRequired, Pod: "big-3"},
	}
	m.record(bot)
	checkSeries(t, "two groups halted", registry, map[string]float64{
		`shardkeeper_bot_halted_shard_groups{bot="big",namespace="bots",reason="ShardingRequired"}`: 2,
	})

	bot.Status.HaltedPods = nil
	m.record(bot)
	checkSeries(t, "the halts lifted", registry, map[string]float64{})
}

// A pass that keeps a condition's reason keeps its series: it is set again, never deleted
// and created anew, so that a scrape in between cannot find the bot without it (and an
// alert on it resolve for one evaluation). A series that was deleted comes back as a new
// child of the vector.
func TestBotMetricsKeepTheirSeriesAcrossPasses(t *testing.T) {
	m := newOperatorMetrics()
	bot := &shardkeeperv1.DiscordBot{ObjectMeta: metav1.ObjectMeta{Namespace: "bots", Name: "hello"}}
	bot.Status = shardkeeperv1.DiscordBotStatus{
		Phase:      shardkeeperv1.PhaseDegraded,
		Halted:     &shardkeeperv1.BotHalt{Reason: shardkeeperv1.ReasonTokenInvalid},
		HaltedPods: []shardkeeperv1.BotHalt{{Reason: shardkeeperv1.ReasonShardingRequired, Pod: "hello-1"}},
		Conditions: []metav1.Condition{
			{Type: shardkeeperv1.ConditionReady, Status: metav1.ConditionFalse, Reason: shardkeeperv1.ReasonTokenInvalid},
			{Type: shardkeeperv1.ConditionRemediationRestricted, Status: metav1.ConditionTrue, Reason: shardkeeperv1.ReasonTooManyUnhealthy},
		},
	}
	series := func() []prometheus.Gauge {
		return []prometheus.Gauge{
			m.condition.WithLabelValues("bots", "hello", shardkeeperv1.ConditionReady, shardkeeperv1.ReasonTokenInvalid),
			m.condition.WithLabelValues("bots", "hello", shardkeeperv1.ConditionRemediationRestricted, shardkeeperv1.ReasonTooManyUnhealthy),
			m.halted.WithLabelValues("bots", "hello", shardkeeperv1.ReasonTokenInvalid),
			m.haltedShardGroups.WithLabelValues("bots", "hello", shardkeeperv1.ReasonShardingRequired),
		}
	}
	m.record(bot)
	first := series()
	m.record(bot)
	for i, s := range series() {
		if s != first[i] {
			t.Errorf("series %d was deleted and created again by a pass that wants it", i)
		}
	}
}

// Metrics are recorded from a saved status only: a pass whose status patch fails (a stale
// copy, a conflict) records nothing, and its restarts are counted once, by the pass that
// saves them. shardkeeper_bot_restarts_total only goes up.
func TestMetricsFollowTheSavedStatus(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := shardkeeperv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	const ns, name = "metrics-saved", "counted"
	stored := &shardkeeperv1.DiscordBot{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	stored.Status.Restarts = 5
	failPatch := true
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(stored).WithStatusSubresource(stored).
		WithInterceptorFuncs(interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				if failPatch {
					return apierrors.NewConflict(shardkeeperv1.GroupVersion.WithResource("discordbots").GroupResource(), obj.GetName(), errors.New("stale"))
				}
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		}).Build()
	r := &DiscordBotReconciler{Client: c}
	t.Cleanup(func() { forgetBotMetrics(ns, name) })

	pass := func(newRestarts int64) error {
		bot := &shardkeeperv1.DiscordBot{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, bot); err != nil {
			t.Fatal(err)
		}
		s := &scope{bot: bot, newRestarts: newRestarts, recount: map[*corev1.Pod]restartCounts{}}
		_, err := r.saveStatus(ctx, bot.DeepCopy(), s)
		return err
	}
	// A first pass that cannot save: nothing is recorded.
	if err := pass(2); err == nil {
		t.Fatal("saveStatus succeeded through a failing patch")
	}
	if hasSeries(metricBotRestarts, ns, name) || hasSeries(metricRestartsTotal, ns, name) {
		t.Error("a pass whose status patch failed recorded metrics")
	}

	failPatch = false
	if err := pass(2); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(metricBotRestarts.WithLabelValues(ns, name)); got != 7 {
		t.Errorf("shardkeeper_bot_restarts = %v after the save, want 7", got)
	}
	if got := testutil.ToFloat64(metricRestartsTotal.WithLabelValues(ns, name)); got != 2 {
		t.Errorf("shardkeeper_bot_restarts_total = %v, want 2", got)
	}

	// A later pass fails again with a restart it found: the saved count stands.
	failPatch = true
	if err := pass(1); err == nil {
		t.Fatal("saveStatus succeeded through a failing patch")
	}
	if got := testutil.ToFloat64(metricBotRestarts.WithLabelValues(ns, name)); got != 7 {
		t.Errorf("shardkeeper_bot_restarts = %v after a failed save, want 7 (the saved status)", got)
	}
	if got := testutil.ToFloat64(metricRestartsTotal.WithLabelValues(ns, name)); got != 2 {
		t.Errorf("shardkeeper_bot_restarts_total = %v after a failed save, want 2", got)
	}
}
