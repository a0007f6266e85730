package controllers

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
