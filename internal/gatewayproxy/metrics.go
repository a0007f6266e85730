package gatewayproxy

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's series, served beside botruntime's (botruntime.WithCollectors).
type metrics struct {
	connections prometheus.Counter
	attached    prometheus.Gauge
	identifies  *prometheus.CounterVec
	resumes     *prometheus.CounterVec
	eventsSent  prometheus.Counter
	slowClients prometheus.Counter
	commands    *prometheus.CounterVec
	cacheErrors prometheus.Counter
	rest        *prometheus.CounterVec
	// upstreamSessions counts new upstream sessions after the first, per shard's READY.
	upstreamSessions prometheus.Counter
	// buffers reads the replay buffers at scrape time.
	buffers func() map[int]bufferStats
}

var (
	bufferEventsDesc = prometheus.NewDesc("shardkeeper_proxy_buffer_events",
		"Events held in each shard's replay buffer.", []string{"shard"}, nil)
	bufferBytesDesc = prometheus.NewDesc("shardkeeper_proxy_buffer_bytes",
		"Bytes held in each shard's replay buffer.", []string{"shard"}, nil)
	bufferDroppedDesc = prometheus.NewDesc("shardkeeper_proxy_buffer_evicted_events_total",
		"Events dropped from a shard's replay buffer for room: a client further behind than them cannot resume.", []string{"shard"}, nil)
)

func newMetrics() *metrics {
	return &metrics{
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardkeeper_proxy_client_connections_total", Help: "Websocket connections clients opened to the proxy.",
		}),
		attached: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardkeeper_proxy_clients_connected", Help: "Client sessions with a connection now.",
		}),
		identifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_proxy_client_identifies_total", Help: "Client identifies, by result (ok, authentication_failed, invalid_shard).",
		}, []string{"result"}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_proxy_client_resumes_total", Help: "Client resumes, by result (ok, invalid: answered with op 9).",
		}, []string{"result"}),
		eventsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardkeeper_proxy_client_events_total", Help: "Upstream events written to clients, replays included.",
		}),
		slowClients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardkeeper_proxy_slow_client_disconnects_total", Help: "Client connections closed for falling too far behind (they resume and get the rest).",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_proxy_client_commands_total", Help: "Gateway commands of clients, by opcode and result (sent, failed, rate_limited, not_this_pod, no_guild).",
		}, []string{"op", "result"}),
		cacheErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardkeeper_proxy_cache_errors_total", Help: "Upstream events the guild cache could not take (they are still passed on).",
		}),
		upstreamSessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardkeeper_proxy_upstream_new_sessions_total", Help: "Times a shard identified anew upstream after losing its session: connected clients keep theirs (their session_id is then stale for voice).",
		}),
		rest: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_proxy_rest_requests_total", Help: "REST requests of clients, by status code (401: the client's token was wrong).",
		}, []string{"code"}),
	}
}

// Collectors are the proxy's metrics, to register on the runtime's registry.
func (p *Proxy) Collectors() []prometheus.Collector {
	m := p.metrics
	return []prometheus.Collector{m.connections, m.attached, m.identifies, m.resumes, m.eventsSent, m.slowClients, m.commands, m.cacheErrors, m.rest, m.upstreamSessions, bufferCollector{m}}
}

type bufferCollector struct{ m *metrics }

func (b bufferCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- bufferEventsDesc
	ch <- bufferBytesDesc
	ch <- bufferDroppedDesc
}

func (b bufferCollector) Collect(ch chan<- prometheus.Metric) {
	for id, st := range b.m.buffers() {
		shard := strconv.Itoa(id)
		ch <- prometheus.MustNewConstMetric(bufferEventsDesc, prometheus.GaugeValue, float64(st.Events), shard)
		ch <- prometheus.MustNewConstMetric(bufferBytesDesc, prometheus.GaugeValue, float64(st.Bytes), shard)
		ch <- prometheus.MustNewConstMetric(bufferDroppedDesc, prometheus.CounterValue, float64(st.Dropped), shard)
	}
}
