package shardclient

import (
	"slices"
	"time"
)

// Lateness is how much later than one interval after the previous heartbeat each heartbeat
// arrived (never negative), sorted: heartbeat times as the fake Discord recorded them.
func Lateness(heartbeats []time.Time, interval time.Duration) []time.Duration {
	var late []time.Duration
	for i := 1; i < len(heartbeats); i++ {
		late = append(late, max(0, heartbeats[i].Sub(heartbeats[i-1])-interval))
	}
	slices.Sort(late)
	return late
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted durations, 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
