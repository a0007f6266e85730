package discordtest

// IdentifyAnswer is how the server answers an Identify of a shard (SetIdentifyAnswer).
type IdentifyAnswer int

const (
	// IdentifyAnswered is Discord's answer: READY, then the shard's guilds.
	IdentifyAnswered IdentifyAnswer = iota
	// IdentifyUnanswered reads a valid Identify and never answers it: no READY, no op 9, no
	// close. The connection stays open, unauthenticated, its heartbeats ACKed: a gateway
	// that lost the request. The identify still costs a session start and its bucket's
	// turn, as one Discord accepted would.
	IdentifyUnanswered
)

// SetIdentifyAnswer sets how the server answers the shard's identifies from now on, until
// it is set again. Unanswered identifies are counted in ShardStats.IdentifiesUnanswered,
// not in Identifies. An identify the server refuses (bad token, shard or intents) is
// refused whatever the answer set.
func (s *Server) SetIdentifyAnswer(shard int, answer IdentifyAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.identifyAnswers == nil {
		s.identifyAnswers = map[int]IdentifyAnswer{}
	}
	s.identifyAnswers[shard] = answer
}
