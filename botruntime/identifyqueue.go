package botruntime

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// identifyPlace is a shard's place in its identify bucket's queue.
type identifyPlace struct {
	ahead int           // turns before this shard's
	step  time.Duration // the longest one turn takes
}

// queuedIdentifyLimiter is an IdentifyLimiter that tells a waiting shard its place in the
// queue, so that the wait counts as recovering instead of down. With 200 shards in one
// bucket the last identify is 18 minutes away: a fixed recovery bound would call every pod
// past the first few unhealthy, and the operator would restart them, every cycle.
type queuedIdentifyLimiter interface {
	waitInQueue(ctx context.Context, shard int, report func(identifyPlace)) error
}

// waitIdentifyTurn waits through l, reporting the shard's place when l can tell it.
func waitIdentifyTurn(ctx context.Context, l IdentifyLimiter, shard int, report func(identifyPlace)) error {
	if q, ok := l.(queuedIdentifyLimiter); ok {
		return q.waitInQueue(ctx, shard, report)
	}
	return l.Wait(ctx, shard)
}

// queueAllows says whether a shard waiting for its identify turn is still recovering, and
// until when. It may wait recoverWithin plus one step per turn ahead of it, counted from
// when its place last changed: a queue that moves keeps that moment in front of it, one that
// does not (a stuck bucket) runs out of it. Moments are the shard's own observations, never
// times read from the bucket's Lease, whose clock is another node's.
func queueAllows(place identifyPlace, movedAt, now time.Time, recoverWithin time.Duration) (bool, time.Time) {
	until := movedAt.Add(recoverWithin + time.Duration(place.ahead)*place.step)
	return !now.After(until), until
}

// identifyWait is one shard's wait for its identify turn, as healthyForLease judges it.
type identifyWait struct {
	mu sync.Mutex
	st waitState
}

type waitState struct {
	waiting bool
	placed  bool // the limiter said where the shard stands
	place   identifyPlace
	movedAt time.Time // when the place last changed, or the wait began
}

func (w *identifyWait) begin(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.st = waitState{waiting: true, movedAt: now}
}

func (w *identifyWait) report(p identifyPlace, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.st.placed || p.ahead != w.st.place.ahead {
		w.st.movedAt = now
	}
	w.st.place, w.st.placed = p, true
}

// end closes the wait and says whether the limiter had placed the shard.
func (w *identifyWait) end() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	placed := w.st.placed
	w.st = waitState{}
	return placed
}

// verdict judges a placed wait by queueAllows; placed is false when there is no such wait
// (the shard's ordinary down time rules then).
func (w *identifyWait) verdict(now time.Time, recoverWithin time.Duration) (placed, ok bool, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.st
	if !st.waiting || !st.placed {
		return false, false, ""
	}
	ok, until := queueAllows(st.place, st.movedAt, now, recoverWithin)
	if !ok {
		why = fmt.Sprintf("has waited for its identify turn with %d turns ahead and no progress for %s (allowed %s)",
			st.place.ahead, now.Sub(st.movedAt).Round(time.Second), until.Sub(st.movedAt).Round(time.Second))
	}
	return true, ok, why
}

// waitIdentifyTurn waits for the shard's turn to identify, in state WaitingToIdentify.
func (s *session) waitIdentifyTurn(ctx context.Context) error {
	s.setState(StateWaitingToIdentify)
	began := s.clock.Now()
	s.turn.begin(began)
	err := waitIdentifyTurn(ctx, s.limiter, s.shard, func(p identifyPlace) { s.turn.report(p, s.clock.Now()) })
	if placed := s.turn.end(); placed && err == nil {
		// The queue moved all along (or healthyForLease said otherwise): the time spent in
		// it was recovery, not time down. Only that time is taken off: a shard that keeps
		// failing after its identifies still runs out of its recovery bound.
		s.mu.Lock()
		if !s.downSince.IsZero() {
			s.downSince = s.downSince.Add(s.clock.Since(began))
		}
		s.mu.Unlock()
	}
	return err
}
