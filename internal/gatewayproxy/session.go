package gatewayproxy

import (
	"slices"
	"sync"
	"time"
)

// clientSession is a client's place in the proxy's stream: which shards it gets, the
// sequence numbers it was given and what each stood for, so that it can resume on a new
// connection and be sent what it missed.
type clientSession struct {
	id     string
	shards []int // upstream shards, in the pod's order
	// clientShard is the shard array the client identified with (nil: none sent).
	clientShard []int

	mu sync.Mutex
	// seq is the last sequence number sent. Numbers up to burstEnd were READY and the
	// cache's GUILD_CREATEs: a resume from inside them cannot be served.
	seq, burstEnd int
	// floor is, per shard, what the session skips: entries up to it were sent to an
	// earlier client (or stood for in the cache's GUILD_CREATEs).
	floor map[int]uint64
	// sent[i] is the g of the entry sent with sequence number firstSeq+i.
	firstSeq int
	sent     []uint64
	// burstGuilds are the guilds the burst carried from the cache: their GUILD_CREATE
	// entries up to burstG are not sent again.
	burstGuilds map[string]bool
	burstG      uint64
	// conn is the connection the session is attached to, nil between connections
	// (guarded by Proxy.mu). owner is the connection allowed to send on the session:
	// it changes as soon as a resume is accepted, so the old connection's writer stops
	// before the new one starts.
	conn       *clientConn
	owner      *clientConn
	detachedAt time.Time
	// acked is the sequence number of the client's last heartbeat: what it says it got;
	// lastBeat is when that heartbeat came.
	acked    int
	lastBeat time.Time
	// caughtUp is set once the attached connection has been sent everything there was:
	// until then what it is behind is the backlog it was handed, not slowness.
	caughtUp bool
}

// gOfLocked is the entry sequence number seq stood for (0 for one of the burst); ok is
// false for a number too old to be remembered, or never sent.
func (s *clientSession) gOfLocked(seq int) (g uint64, ok bool) {
	i := seq - s.firstSeq
	if i < 0 || i >= len(s.sent) {
		return 0, false
	}
	return s.sent[i], true
}

// from is, per shard, the place after which entries are still to be sent: the later of
// the floor and the last entry sent.
func (s *clientSession) fromLocked() map[int]uint64 {
	last := uint64(0)
	if len(s.sent) > 0 {
		last = s.sent[len(s.sent)-1]
	}
	from := make(map[int]uint64, len(s.shards))
	for _, id := range s.shards {
		from[id] = max(s.floor[id], last)
	}
	return from
}

// recordLocked notes that sequence number seq went out standing for entry g, keeping at
// most keep of them.
func (s *clientSession) recordLocked(seq int, g uint64, keep int) {
	if len(s.sent) == 0 {
		s.firstSeq = seq
	}
	s.sent = append(s.sent, g)
	s.seq = seq
	// Trimmed to keep once it holds twice that, so a record costs O(1).
	if over := len(s.sent) - keep; over > keep {
		s.sent = append(make([]uint64, 0, 2*keep), s.sent[over:]...)
		s.firstSeq += over
	}
}

// rewindLocked puts the session back to sequence number seq, as a resume from it asks:
// what was sent after it goes again. It fails when seq was never sent, is inside the
// burst, or is too old to be remembered.
func (s *clientSession) rewindLocked(seq int) bool {
	if seq < s.burstEnd || seq > s.seq {
		return false
	}
	i := seq - s.firstSeq
	if i < 0 || i >= len(s.sent) {
		return false
	}
	s.sent = s.sent[:i+1]
	s.seq = seq
	s.acked = min(s.acked, seq)
	s.caughtUp = false
	return true
}

func (s *clientSession) covers(shard int) bool { return slices.Contains(s.shards, shard) }
