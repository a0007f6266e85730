package botruntime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// Discord's gateway send limit (developers/events/gateway#rate-limiting): 120 payloads per
// connection every 60 s; a connection over it is closed at once (4008), and repeat
// offenders lose API access.
const (
	gatewaySendLimit = 120
	// gatewaySendWindow is Discord's 60 s and a second more, so that two payloads a
	// window apart by our clock cannot land in one of Discord's after network jitter.
	gatewaySendWindow = 61 * time.Second
	// requestedHeartbeats is room kept for heartbeats Discord asks for (op 1) on top of
	// the schedule's.
	requestedHeartbeats = 2
	// maxQueuedCommands bounds the bot's commands waiting on one connection: past four
	// windows' worth, a bot has lost track of what it sends and is told so at once.
	maxQueuedCommands = 500
)

// errNoRoomForCommands: a heartbeat interval so short (under half a second; Discord's is
// 41.25 s) that heartbeats alone take the whole send limit.
var errNoRoomForCommands = errors.New("botruntime: the gateway's heartbeat interval leaves no room for commands within its send limit")

// writeOwn sends one of the runtime's own payloads (heartbeat, identify, resume): counted
// against the send limit, never held back by it.
func (c *conn) writeOwn(v any) error {
	c.sends.sentOwn()
	return c.writeJSON(v)
}

// writeCommand sends one of the bot's commands within the send limit, waiting for room
// until ctx ends or the connection does (gone).
func (c *conn) writeCommand(ctx context.Context, gone <-chan struct{}, v any) error {
	return c.sends.send(ctx, gone, func() error {
		if _, ended := c.endedOnPurpose(); ended {
			return errConnectionGone
		}
		if err := c.writeJSON(v); err != nil {
			return fmt.Errorf("%w: %v", errConnectionGone, err)
		}
		return nil
	})
}

// sendLimiter keeps one connection under the send limit. The runtime's own payloads
// (heartbeats, identify, resume) never wait: they are counted as they go, and the window
// keeps room for them. The bot's commands get the rest, one at a time, in the order they
// came, so no heartbeat ever waits behind them.
type sendLimiter struct {
	clock clock.Clock
	// commandShare is how many of a window's payloads commands may take (commandShare).
	commandShare int
	// turn is held by the command that goes next; a channel's waiters are served in order.
	turn   chan struct{}
	queued atomic.Int32

	mu   sync.Mutex
	sent []sentPayload // within the last window, oldest first
}

type sentPayload struct {
	at      time.Time
	command bool // the bot's, not the runtime's own
}

func newSendLimiter(clk clock.Clock, heartbeatInterval time.Duration) *sendLimiter {
	l := &sendLimiter{clock: clk, commandShare: commandShare(heartbeatInterval), turn: make(chan struct{}, 1)}
	l.turn <- struct{}{}
	return l
}

// commandShare is what a window leaves commands beside the runtime's own payloads: a beat
// every interval puts at most window/interval + 1 beats in any window, Discord may ask for
// a few more, and identify or resume is one. Discord's 41.25 s interval leaves 115.
func commandShare(heartbeatInterval time.Duration) int {
	if heartbeatInterval <= 0 || gatewaySendWindow/heartbeatInterval >= gatewaySendLimit {
		return 0
	}
	own := int(gatewaySendWindow/heartbeatInterval) + 1 + requestedHeartbeats + 1
	return max(gatewaySendLimit-own, 0)
}

// sentOwn counts one of the runtime's own payloads, which never waits.
func (l *sendLimiter) sentOwn() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.pruneLocked(now)
	l.sent = append(l.sent, sentPayload{at: now})
}

// send writes one of the bot's commands once it is its turn and the window has room for
// it. It gives up when ctx ends or gone closes (the connection ended); the command was
// then not sent.
func (l *sendLimiter) send(ctx context.Context, gone <-chan struct{}, write func() error) error {
	if l.commandShare == 0 {
		return errNoRoomForCommands
	}
	if l.queued.Add(1) > maxQueuedCommands {
		l.queued.Add(-1)
		return fmt.Errorf("%w (%d)", ErrCommandQueueFull, maxQueuedCommands)
	}
	defer l.queued.Add(-1)
	select {
	case <-l.turn:
	case <-ctx.Done():
		return ctx.Err()
	case <-gone:
		return errConnectionGone
	}
	defer func() { l.turn <- struct{}{} }()
	for {
		wait := l.reserve()
		if wait <= 0 {
			break
		}
		t := l.clock.NewTimer(wait)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-gone:
			t.Stop()
			return errConnectionGone
		}
	}
	return write()
}

// reserve takes a place in the window for a command and returns 0, or says how long until
// the window has one: commands stay within their share, and everything within the limit.
func (l *sendLimiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.pruneLocked(now)
	var wait time.Duration
	if over := len(l.sent) + 1 - gatewaySendLimit; over > 0 {
		wait = l.sent[over-1].at.Add(gatewaySendWindow).Sub(now)
	}
	commands := 0
	for _, p := range l.sent {
		if p.command {
			commands++
		}
	}
	if over := commands + 1 - l.commandShare; over > 0 {
		n := 0
		for _, p := range l.sent {
			if p.command {
				if n++; n == over {
					wait = max(wait, p.at.Add(gatewaySendWindow).Sub(now))
					break
				}
			}
		}
	}
	if wait > 0 {
		return wait
	}
	l.sent = append(l.sent, sentPayload{at: now, command: true})
	return 0
}

// pruneLocked forgets the payloads a window old.
func (l *sendLimiter) pruneLocked(now time.Time) {
	old := 0
	for old < len(l.sent) && now.Sub(l.sent[old].at) >= gatewaySendWindow {
		old++
	}
	l.sent = append(l.sent[:0], l.sent[old:]...)
}
