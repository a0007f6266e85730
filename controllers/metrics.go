package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// Per-bot health, served on the operator's /metrics beside controller-runtime's own.
// One series per bot, never per shard: the count of bots, not shards, bounds cardinality.
var (
	botLabels = []string{"namespace", "bot"}

	metricBotShards = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shardkeeper_bot_shards", Help: "Shards the bot should run.",
	}, botLabels)
	metricBotReadyShards = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shardkeeper_bot_ready_shards", Help: "Shards whose pod is ready.",
	}, botLabels)
	metricBotPods = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shardkeeper_bot_pods", Help: "Bot pods that exist.",
	}, botLabels)
	metricBotProblemPods = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shardkeeper_bot_problem_pods", Help: "Bot pods with a problem (crash loop, image pull, unschedulable, not ready past their grace).",
	}, botLabels)
	metricBotRestarts = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shardkeeper_bot_restarts", Help: "Bot container restarts and failed-pod replacements since the bot was created (status.restarts).",
	}, botLabels)
	metricBotReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shardkeeper_bot_ready", Help: "1 when the bot's Ready condition is True.",
	}, botLabels)
	metricPodActions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardkeeper_pod_actions_total", Help: "Pods the operator created or deleted, by reason.",
	}, []string{"action", "reason"})
)

func init() {
	metrics.Registry.MustRegister(metricBotShards, metricBotReadyShards, metricBotPods, metricBotProblemPods, metricBotRestarts, metricBotReady, metricPodActions)
}

// recordBotMetrics publishes a bot's status as gauges.
func recordBotMetrics(bot *shardkeeperv1.DiscordBot) {
	l := prometheus.Labels{"namespace": bot.Namespace, "bot": bot.Name}
	st := bot.Status
	metricBotShards.With(l).Set(float64(st.Shards))
	metricBotReadyShards.With(l).Set(float64(st.ReadyShards))
	metricBotPods.With(l).Set(float64(st.Pods))
	metricBotProblemPods.With(l).Set(float64(st.ProblemCount))
	metricBotRestarts.With(l).Set(float64(st.Restarts))
	ready := 0.0
	if st.Phase == shardkeeperv1.PhaseRunning {
		ready = 1
	}
	metricBotReady.With(l).Set(ready)
}

// forgetBotMetrics drops a deleted bot's series.
func forgetBotMetrics(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "bot": name}
	for _, g := range []*prometheus.GaugeVec{metricBotShards, metricBotReadyShards, metricBotPods, metricBotProblemPods, metricBotRestarts, metricBotReady} {
		g.Delete(l)
	}
}
