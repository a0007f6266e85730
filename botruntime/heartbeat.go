package botruntime

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// heartbeater keeps one connection's heartbeat. It runs on its own goroutine with its own
// timer, so nothing the read loop or handlers do can delay it.
//
// The zombie check is exact where disgo v0.19.6's is not: a heartbeat is marked outstanding
// before it is written, so an ACK that arrives before the write call returns (a fast
// loopback) still counts, and a heartbeat is a zombie only when the previous one was never
// ACKed by the time the next is due.
type heartbeater struct {
	clock    clock.Clock
	interval time.Duration
	// write sends one heartbeat frame; seq is the session's last sequence number.
	write    func() error
	onZombie func()
	onRTT    func(time.Duration)
	onLate   func(time.Duration)
	// onWriteError ends the connection: a heartbeat that cannot be written is a dead link.
	onWriteError func(error)
	touch        func()
	// requested carries Discord's op 1 (send a heartbeat now) from the read loop.
	requested chan struct{}

	mu          sync.Mutex
	outstanding bool
	sentAt      time.Time
}

// run sends heartbeats until ctx ends or the connection turns out to be a zombie. The first
// heartbeat waits interval * jitter, as Discord asks, so reconnecting shards spread out.
func (h *heartbeater) run(ctx context.Context) {
	first := time.Duration(rand.Float64() * float64(h.interval))
	due := h.clock.Now().Add(first)
	timer := h.clock.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.requested:
			// Discord asked for a heartbeat now; it does not move the schedule.
			h.mu.Lock()
			if !h.outstanding {
				h.outstanding, h.sentAt = true, h.clock.Now()
			}
			h.mu.Unlock()
			if err := h.write(); err != nil {
				h.writeFailed(err)
				return
			}
			continue
		case <-timer.C():
		}
		now := h.clock.Now()
		h.mu.Lock()
		if h.outstanding {
			h.mu.Unlock()
			h.onZombie()
			return
		}
		h.outstanding, h.sentAt = true, now
		h.mu.Unlock()

		if err := h.write(); err != nil {
			h.writeFailed(err)
			return
		}
		h.onLate(h.clock.Since(due))
		h.touch()

		due = due.Add(h.interval)
		now = h.clock.Now()
		if due.Before(now) {
			due = now.Add(h.interval) // never send a burst to catch up
		}
		timer.Reset(due.Sub(now))
	}
}

// request asks for a heartbeat now (Discord's op 1). It never blocks: the read loop calls it.
func (h *heartbeater) request() {
	select {
	case h.requested <- struct{}{}:
	default: // one is already pending
	}
}

func (h *heartbeater) writeFailed(err error) {
	if h.onWriteError != nil {
		h.onWriteError(err)
	}
}

// ack records an op 11 read at time t.
func (h *heartbeater) ack(t time.Time) {
	h.mu.Lock()
	if !h.outstanding {
		h.mu.Unlock()
		return
	}
	rtt := t.Sub(h.sentAt)
	h.outstanding = false
	h.mu.Unlock()
	h.onRTT(rtt)
}
