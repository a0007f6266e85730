package discordtest

import (
	"slices"
	"time"
)

// CoverageGap is a time during which a guild had no connected session to receive its
// events: no open connection that completed READY or RESUMED for a session whose shard
// the guild routes to (under that session's shard count).
type CoverageGap struct {
	Guild uint64
	From  time.Time
	// To is zero while the gap is still open.
	To time.Time
}

// coverageLocked records gaps for Options.Guilds. A guild's watch starts the first time
// it is covered, so the bot's own start-up is not a gap. s.mu must be held.
func (s *Server) coverageLocked(now time.Time) {
	if len(s.opts.Guilds) == 0 {
		return
	}
	if s.uncoveredSince == nil {
		s.uncoveredSince = map[uint64]time.Time{}
		s.everCovered = map[uint64]bool{}
	}
	for _, g := range s.opts.Guilds {
		covered := false
		for _, sess := range s.sessions {
			if sess.conn != nil && !sess.conn.closing && ShardForGuild(g, sess.shardCount) == sess.shard {
				covered = true
				break
			}
		}
		since, open := s.uncoveredSince[g]
		switch {
		case covered && open:
			s.gaps = append(s.gaps, CoverageGap{Guild: g, From: since, To: now})
			delete(s.uncoveredSince, g)
		case covered:
			s.everCovered[g] = true
		case !open && s.everCovered[g]:
			s.uncoveredSince[g] = now
		}
	}
}

// CoverageGaps returns every gap in guild coverage since the server started, closed gaps
// first, then those still open (To zero), each list in order of start.
func (s *Server) CoverageGaps() []CoverageGap {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.gaps)
	var open []CoverageGap
	for g, since := range s.uncoveredSince {
		open = append(open, CoverageGap{Guild: g, From: since})
	}
	slices.SortFunc(open, func(a, b CoverageGap) int { return a.From.Compare(b.From) })
	return append(out, open...)
}

// Covered reports whether every guild in Options.Guilds has a connected session now.
func (s *Server) Covered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.opts.Guilds {
		if !s.everCovered[g] {
			return false
		}
		if _, open := s.uncoveredSince[g]; open {
			return false
		}
	}
	return true
}
