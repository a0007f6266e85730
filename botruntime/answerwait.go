package botruntime

import (
	"context"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/go-logr/logr"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// answerTimeout is how long a shard waits for Discord's answer to its Identify (READY) or
// Resume (RESUMED), after sending it or after the last event read since: Discord answers
// within a round trip and replays the missed events before RESUMED, so a replay still
// coming in is progress, while a gateway that sends nothing but heartbeat ACKs is not.
// Without the bound, a gateway that reads the payload and never answers would leave the
// shard Identifying or Resuming for good, heartbeats ACKed, nothing to restart it. 30 s,
// like the dial and Hello timeouts, keeps a recovery (this wait, a backoff, an identify)
// well inside the heartbeat Lease's 3-minute recovery bound; a few heartbeat intervals
// (41.25 s each on Discord) would not.
const answerTimeout = 30 * time.Second

// answerWait is an Identify or a Resume waiting for its answer. The read loop records
// events read meanwhile and closes answered on the answer; both under session.mu.
type answerWait struct {
	answer   gateway.EventType // READY or RESUMED
	answered chan struct{}
	// progress is when the payload was sent, or the last event read since.
	progress time.Time
}

// expectAnswer registers the wait before the payload goes out, so that an answer read at
// once is not missed.
func (s *session) expectAnswer(answer gateway.EventType) *answerWait {
	w := &answerWait{answer: answer, answered: make(chan struct{}), progress: s.clock.Now()}
	s.mu.Lock()
	s.answerWait = w
	s.mu.Unlock()
	return w
}

// noteEventLocked is the read loop's part: the answer ends the wait, any other event is
// progress. session.mu must be held.
func (s *session) noteEventLocked(eventType gateway.EventType, now time.Time) {
	w := s.answerWait
	if w == nil {
		return
	}
	if eventType == w.answer {
		close(w.answered)
		s.answerWait = nil
		return
	}
	w.progress = now
}

// awaitAnswer gives up on a payload Discord does not answer: past answerTimeout without
// the answer, op 9, a close or an event read, it drops the connection with 1000 (a
// session Discord may have started, or the one we tried to resume, is of no use to us,
// so Discord should end it too). The supervisor then identifies on a fresh connection to
// the gateway URL, as Discord's docs ask, after the backoff of a connection that never
// got up (each identify costs a session start). timeouts counts it, as reason.
func (s *session) awaitAnswer(ctx context.Context, c *conn, w *answerWait, timeouts *prometheus.CounterVec, reason string, log logr.Logger) {
	defer func() {
		s.mu.Lock()
		if s.answerWait == w {
			s.answerWait = nil
		}
		s.mu.Unlock()
	}()
	timer := s.clock.NewTimer(answerTimeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.ended: // op 9, a zombie, shutdown: that decides
			return
		case <-w.answered:
			return
		case <-timer.C():
		}
		s.mu.Lock()
		left := answerTimeout - s.clock.Since(w.progress)
		s.mu.Unlock()
		if left > 0 {
			timer.Reset(left) // events came meanwhile
			continue
		}
		if _, ended := c.endedOnPurpose(); ended {
			return
		}
		timeouts.WithLabelValues(shardLabel(s.shard)).Inc()
		log.Info("Discord did not answer; dropping the connection to identify anew", "waitingFor", w.answer, "waited", answerTimeout)
		c.end(websocket.CloseNormalClosure, "no "+string(w.answer), outcome{reason: reason, resume: false})
		return
	}
}
