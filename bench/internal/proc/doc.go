// Package proc runs the benchmarks' child processes (an operator, kwok, bot pods) and
// reads what they cost: CPU and resident memory from /proc, Go heap and counters from their
// Prometheus /metrics. It is Linux-only and loopback-only, like the benchmarks.
package proc
