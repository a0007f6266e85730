package botruntime

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// metrics are one runtime's Prometheus series, on a registry of its own so that tests can
// run several runtimes in one process.
type metrics struct {
	registry *prometheus.Registry

	shardState      *prometheus.GaugeVec
	heartbeatRTT    *prometheus.HistogramVec
	heartbeatLate   *prometheus.HistogramVec
	reconnects      *prometheus.CounterVec
	resumes         *prometheus.CounterVec
	identifies      *prometheus.CounterVec
	zombies         *prometheus.CounterVec
	resumeTimeouts  *prometheus.CounterVec
	readyTimeouts   *prometheus.CounterVec
	fatal           *prometheus.GaugeVec
	events          *prometheus.CounterVec
	handlerDuration prometheus.Histogram
	handlerPanics   prometheus.Counter
	queueDepth      prometheus.Gauge
	droppedEvents   *prometheus.CounterVec
	guilds          *prometheus.GaugeVec
	wireBytes       *prometheus.CounterVec
	payloadBytes    *prometheus.CounterVec
	leaseRenewals   prometheus.Counter
	leaseFailures   prometheus.Counter
	leaseHeld       prometheus.Gauge
}

// heartbeatBuckets reach from a fast loopback round trip to a heartbeat interval.
var heartbeatBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newMetrics() *metrics {
	shard := []string{"shard"}
	m := &metrics{
		registry: prometheus.NewRegistry(),
		shardState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shardkeeper_shard_state",
			Help: "1 for the state each shard is in (Connecting, WaitingToIdentify, Identifying, Resuming, Ready, Resumed, Reconnecting, Stopped, Failed).",
		}, []string{"shard", "state"}),
		heartbeatRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shardkeeper_heartbeat_rtt_seconds", Help: "Time from sending a heartbeat to reading its ACK.",
			Buckets: heartbeatBuckets,
		}, shard),
		heartbeatLate: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shardkeeper_heartbeat_send_lateness_seconds", Help: "How late each heartbeat was written, against its schedule.",
			Buckets: heartbeatBuckets,
		}, shard),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_gateway_reconnects_total", Help: "Gateway reconnects, by reason.",
		}, []string{"shard", "reason"}),
		resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_gateway_resumes_total", Help: "Sessions resumed (RESUMED received).",
		}, shard),
		identifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_gateway_identifies_total", Help: "Identify payloads sent (new sessions).",
		}, shard),
		zombies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_gateway_zombie_connections_total", Help: "Connections closed because a heartbeat was not ACKed in time.",
		}, shard),
		resumeTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_gateway_resume_timeouts_total",
			Help: "Resumes Discord did not answer (RESUMED or op 9) within 30 s of sending them or of the last replayed event; each connection was dropped and the shard identified anew.",
		}, shard),
		readyTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_gateway_ready_timeouts_total",
			Help: "Identifies Discord did not answer (READY, op 9 or a close) within 30 s; each connection was dropped and the shard identified again after a backoff.",
		}, shard),
		fatal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shardkeeper_shard_fatal", Help: "1 when a shard stopped for good, with the reason.",
		}, []string{"shard", "reason", "close_code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_gateway_events_total", Help: "Dispatch events received, by type.",
		}, []string{"type"}),
		handlerDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shardkeeper_handler_duration_seconds", Help: "Time user handlers took per event.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
		}),
		handlerPanics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shardkeeper_handler_panics_total", Help: "Handler panics recovered by the dispatcher.",
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shardkeeper_dispatcher_queue_depth", Help: "Events received and not yet handled.",
		}),
		// By worker, not by guild: workers are few and fixed, a bot's guilds are not. The
		// Lease names the guilds that lost events last.
		droppedEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_dispatcher_dropped_events_total", Help: "Events dropped because their dispatcher worker's queue was full, by worker.",
		}, []string{"worker"}),
		guilds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shardkeeper_shard_guilds", Help: "Guilds the shard serves.",
		}, shard),
		// The two side by side show what transport compression saves.
		wireBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_gateway_received_wire_bytes_total", Help: "Bytes of the gateway's websocket messages as received, compressed when the transport is (frame headers not included).",
		}, shard),
		payloadBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardkeeper_gateway_received_payload_bytes_total", Help: "Bytes of JSON the gateway's messages decoded to.",
		}, shard),
	}
	m.leaseRenewals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shardkeeper_lease_renewals_total", Help: "Heartbeat Lease renewals.",
	})
	m.leaseFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shardkeeper_lease_write_failures_total", Help: "Heartbeat Lease writes the API server refused or never answered.",
	})
	m.leaseHeld = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "shardkeeper_lease_renewal_held", Help: "1 while the pod holds back renewal because it is not healthy.",
	})
	m.registry.MustRegister(m.leaseRenewals, m.leaseFailures, m.leaseHeld)
	m.registry.MustRegister(m.resumeTimeouts, m.readyTimeouts)
	m.registry.MustRegister(m.shardState, m.heartbeatRTT, m.heartbeatLate, m.reconnects, m.resumes,
		m.identifies, m.zombies, m.fatal, m.events, m.handlerDuration, m.handlerPanics, m.queueDepth,
		m.droppedEvents, m.guilds, m.wireBytes, m.payloadBytes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchWorker adds a dispatcher worker's gauges, read at scrape time, and its drop
// counter at zero: a counter born at its first drop hides that drop from increase().
func (m *metrics) watchWorker(worker string, oldestSeconds, queued func() float64) {
	labels := prometheus.Labels{"worker": worker}
	m.droppedEvents.With(labels)
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shardkeeper_dispatcher_worker_oldest_event_seconds", ConstLabels: labels,
			Help: "How long the worker has had its oldest unfinished event (being handled or queued); 0 when idle.",
		}, oldestSeconds),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shardkeeper_dispatcher_worker_queue_depth", ConstLabels: labels,
			Help: "Events queued for the worker, not counting the one being handled.",
		}, queued))
}

func shardLabel(id int) string { return strconv.Itoa(id) }

// ReferenceMetrics gathers every metric a bot exports, each vector with an example series.
// It feeds the metrics reference in docs/operations.md (hack/metricsdoc) and the check
// that the chart's alerts and dashboard name only exported metrics. No runtime is made.
func ReferenceMetrics() ([]*dto.MetricFamily, error) {
	m := newMetrics()
	shard := shardLabel(0)
	m.shardState.WithLabelValues(shard, string(StateReady)).Set(1)
	m.heartbeatRTT.WithLabelValues(shard).Observe(0.05)
	m.heartbeatLate.WithLabelValues(shard).Observe(0.001)
	m.reconnects.WithLabelValues(shard, "example").Inc()
	m.resumes.WithLabelValues(shard).Inc()
	m.identifies.WithLabelValues(shard).Inc()
	m.zombies.WithLabelValues(shard).Inc()
	m.resumeTimeouts.WithLabelValues(shard).Inc()
	m.readyTimeouts.WithLabelValues(shard).Inc()
	m.fatal.WithLabelValues(shard, "TokenInvalid", "4004").Set(1)
	m.events.WithLabelValues("MESSAGE_CREATE").Inc()
	m.droppedEvents.WithLabelValues("0").Inc()
	m.guilds.WithLabelValues(shard).Set(1)
	m.wireBytes.WithLabelValues(shard).Add(300)
	m.payloadBytes.WithLabelValues(shard).Add(1500)
	idle := func() float64 { return 0 }
	m.watchWorker("0", idle, idle)
	return m.registry.Gather()
}
