package discordtest

import "time"

// Knobs a test turns while bots run: what GET /gateway/bot recommends, what the gateway
// requires, and the session start budget, which refills after its reset time as on Discord.

// SetRecommendedShards changes the shard count GET /gateway/bot recommends.
func (s *Server) SetRecommendedShards(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.RecommendedShards = max(n, 1)
}

// SetRequiredShards makes identifies with fewer than n shards close with 4011 (0 turns it
// off). Sessions already running are not touched, as on Discord.
func (s *Server) SetRequiredShards(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.RequiredShards = max(n, 0)
}

// SetSessionStartLimit sets session_start_limit.remaining and starts a new reset period:
// resetAfter from now, remaining goes back to Options.SessionStartTotal.
func (s *Server) SetSessionStartLimit(remaining int, resetAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessionRemaining = max(remaining, 0)
	s.sessionResetAt = time.Now().Add(resetAfter)
	s.notifyLocked()
}

// refillSessionStartsLocked resets the budget once its period is over. s.mu must be held.
func (s *Server) refillSessionStartsLocked(now time.Time) {
	if now.Before(s.sessionResetAt) {
		return
	}
	s.sessionRemaining = s.opts.SessionStartTotal
	s.sessionResetAt = now.Add(s.opts.SessionStartResetAfter)
}

// sessionResetAfterLocked is reset_after for GET /gateway/bot. s.mu must be held.
func (s *Server) sessionResetAfterLocked(now time.Time) time.Duration {
	s.refillSessionStartsLocked(now)
	return s.sessionResetAt.Sub(now)
}

func (s *Server) sessionRemainingLocked() int {
	s.refillSessionStartsLocked(time.Now())
	return s.sessionRemaining
}
