package botruntime

import (
	"context"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// IdentifyLimiter decides when a shard may send Identify. Discord allows one identify per
// bucket (shard_id % max_concurrency) every 5 seconds. Resumes never ask it.
type IdentifyLimiter interface {
	// Wait returns when the shard may identify, or with ctx's error.
	Wait(ctx context.Context, shard int) error
}

// localIdentifyLimiter spaces identifies within one process. Each call reserves the next
// free slot of its bucket, so shards of one bucket identify in the order they asked.
type localIdentifyLimiter struct {
	maxConcurrency int
	interval       time.Duration
	clock          clock.Clock

	mu   sync.Mutex
	next map[int]time.Time // bucket -> earliest time of its next identify
}

// NewLocalIdentifyLimiter limits identifies within this process only, on the real clock.
func NewLocalIdentifyLimiter(maxConcurrency int, interval time.Duration) IdentifyLimiter {
	return newLocalIdentifyLimiter(maxConcurrency, interval, clock.RealClock{})
}

func newLocalIdentifyLimiter(maxConcurrency int, interval time.Duration, clk clock.Clock) *localIdentifyLimiter {
	if maxConcurrency < 1 {
		maxConcurrency = 1
	}
	return &localIdentifyLimiter{maxConcurrency: maxConcurrency, interval: interval, clock: clk, next: map[int]time.Time{}}
}

func (l *localIdentifyLimiter) Wait(ctx context.Context, shard int) error {
	return l.waitInQueue(ctx, shard, func(identifyPlace) {})
}

// waitInQueue is Wait that reports the shard's place once it has its slot: one turn per
// interval before it.
func (l *localIdentifyLimiter) waitInQueue(ctx context.Context, shard int, report func(identifyPlace)) error {
	bucket := shard % l.maxConcurrency
	l.mu.Lock()
	now := l.clock.Now()
	slot := l.next[bucket]
	if slot.Before(now) {
		slot = now
	}
	l.next[bucket] = slot.Add(l.interval)
	l.mu.Unlock()
	if l.interval > 0 {
		report(identifyPlace{ahead: int((slot.Sub(now) + l.interval - 1) / l.interval), step: l.interval})
	}

	if !sleep(ctx, l.clock, slot.Sub(l.clock.Now())) {
		// Give the slot back if nobody took a later one, so a cut connection does not
		// cost its bucket an interval.
		l.mu.Lock()
		if l.next[bucket].Equal(slot.Add(l.interval)) {
			l.next[bucket] = slot
		}
		l.mu.Unlock()
		return ctx.Err()
	}
	return nil
}
