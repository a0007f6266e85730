package discordtest

// ResumeAnswer is how the server answers a Resume of a shard's session (SetResumeAnswer).
type ResumeAnswer int

const (
	// ResumeAnswered is Discord's answer: the missed events, then RESUMED.
	ResumeAnswered ResumeAnswer = iota
	// ResumeUnanswered reads the Resume and never answers it: no replay, no RESUMED, no
	// op 9. The connection stays open, unauthenticated, and its heartbeats are ACKed: a
	// gateway that lost the request. The session stays resumable as if nobody had tried.
	ResumeUnanswered
	// ResumeWithoutResumed takes the session over (the missed events, then live ones)
	// but never sends RESUMED: a replay that has not finished.
	ResumeWithoutResumed
)

// SetResumeAnswer sets how the server answers the resumes of the shard's sessions from
// now on, until it is set again. Resumes that get no RESUMED are counted in
// ShardStats.ResumesUnanswered, not in Resumes. A resume the server refuses (unknown or
// expired session, bad token, bad seq) is refused whatever the answer set.
func (s *Server) SetResumeAnswer(shard int, answer ResumeAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resumeAnswers == nil {
		s.resumeAnswers = map[int]ResumeAnswer{}
	}
	s.resumeAnswers[shard] = answer
}
