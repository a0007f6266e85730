package botruntime

import (
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

func TestPlaceInTheIdentifyQueue(t *testing.T) {
	l := &leaseIdentifyLimiter{maxConcurrency: 1, shardCount: 200, interval: 5 * time.Second, margin: 500 * time.Millisecond, orderGrace: time.Second}
	l4 := &leaseIdentifyLimiter{maxConcurrency: 4, shardCount: 18, interval: 5 * time.Second, margin: 500 * time.Millisecond, orderGrace: time.Second}
	tests := []struct {
		name         string
		l            *leaseIdentifyLimiter
		shard        int
		lastIdentify string // "" when no shard of the bucket identified yet
		ahead        int
	}{
		{"first shard, fresh bucket", l, 0, "", 0},
		{"last shard, fresh bucket", l, 199, "", 199},
		{"right after the last one", l, 51, "50", 0},
		{"behind others", l, 60, "50", 9},
		{"wraps around", l, 10, "50", 159},
		{"after the bucket's last shard", l, 0, "199", 0},
		// Bucket 2 of 4 over 18 shards: 2, 6, 10, 14 (4 shards).
		{"bucket of several", l4, 14, "2", 2},
		{"bucket of several, wrapping", l4, 2, "6", 2},
		{"bucket of several, past the end", l4, 6, "14", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}}}
			if tt.lastIdentify != "" {
				lease.Annotations[shardkeeperv1.AnnotationIdentifiedShard] = tt.lastIdentify
			}
			p := tt.l.place(tt.shard, tt.shard%tt.l.maxConcurrency, lease)
			if p.ahead != tt.ahead {
				t.Errorf("%d turns ahead, want %d", p.ahead, tt.ahead)
			}
			if p.step != 6500*time.Millisecond {
				t.Errorf("step %s, want the window plus the order grace", p.step)
			}
			if isNext := tt.l.isNext(tt.shard, tt.shard%tt.l.maxConcurrency, lease); isNext != (tt.ahead == 0) {
				t.Errorf("isNext = %v", isNext)
			}
		})
	}
}

// A shard 100 turns back in a bucket of 5.5 s turns, with a recovery bound of 3 minutes.
func TestAWaitInTheIdentifyQueueIsRecoveryWhileTheQueueMoves(t *testing.T) {
	const recoverWithin, step = 3 * time.Minute, 5500 * time.Millisecond
	start := time.Now()
	at := func(d time.Duration) time.Time { return start.Add(d) }
	tests := []struct {
		name string
		// reports are the places the limiter reported, at times after start.
		reports []time.Duration
		aheads  []int
		now     time.Duration
		ok      bool
	}{
		{"placed far back, within its place's time", []time.Duration{0}, []int{100}, 9 * time.Minute, true},
		{"placed far back, past its place's time", []time.Duration{0}, []int{100}, recoverWithin + 100*step + time.Second, false},
		{"the queue moves: 15 minutes in, 10 turns to go", []time.Duration{0, 14 * time.Minute}, []int{100, 10}, 15 * time.Minute, true},
		{"the queue moved, then stuck at 10 turns", []time.Duration{0, 14 * time.Minute}, []int{100, 10}, 14*time.Minute + recoverWithin + 10*step + time.Second, false},
		{"next in a stuck bucket: the recovery bound", []time.Duration{0}, []int{0}, recoverWithin + time.Second, false},
		{"next, and the bucket just moved", []time.Duration{0, 5 * time.Minute}, []int{3, 0}, 7 * time.Minute, true},
		{"looking again at the same place is no progress", []time.Duration{0, 2 * time.Minute, 4 * time.Minute}, []int{0, 0, 0}, 4 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w identifyWait
			w.begin(start)
			if placed, _, _ := w.verdict(start, recoverWithin); placed {
				t.Fatal("placed before the limiter said where")
			}
			for i, d := range tt.reports {
				w.report(identifyPlace{ahead: tt.aheads[i], step: step}, at(d))
			}
			placed, ok, why := w.verdict(at(tt.now), recoverWithin)
			if !placed || ok != tt.ok {
				t.Errorf("verdict = placed %v, ok %v (%q); want ok %v", placed, ok, why, tt.ok)
			}
			if !ok && !strings.Contains(why, "identify turn") {
				t.Errorf("reason %q does not say the shard waits to identify", why)
			}
			if !w.end() {
				t.Error("end: the wait was placed")
			}
			if placed, _, _ := w.verdict(at(tt.now), recoverWithin); placed {
				t.Error("a finished wait still judged")
			}
		})
	}
}
