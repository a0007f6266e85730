package shardclient

import (
	"slices"
	"testing"
	"time"
)

func TestLateness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Interval 100 ms: on time, 30 ms late, early (counts as 0), 250 ms late.
	beats := []time.Time{at(0), at(100), at(230), at(310), at(660)}
	got := Lateness(beats, 100*time.Millisecond)
	want := []time.Duration{0, 0, 30 * time.Millisecond, 250 * time.Millisecond}
	if !slices.Equal(got, want) {
		t.Errorf("Lateness = %v, want %v", got, want)
	}
	if got := Lateness(beats[:1], time.Second); len(got) != 0 {
		t.Errorf("one heartbeat has no lateness, got %v", got)
	}
}

func TestPercentile(t *testing.T) {
	var sorted []time.Duration
	for i := 1; i <= 100; i++ {
		sorted = append(sorted, time.Duration(i))
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0.1, 1}}
	for _, tc := range tests {
		if got := Percentile(sorted, tc.p); got != tc.want {
			t.Errorf("p%v = %d, want %d", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %d, want 0", got)
	}
	if got := Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one = %d, want 7", got)
	}
}
