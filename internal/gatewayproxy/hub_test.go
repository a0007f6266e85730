package gatewayproxy

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/guildcache"
)

// At its event bound every add drops one entry and copies the whole buffer.
func BenchmarkHubAddAtBound(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(map[int]string{1000: "1k", 10000: "10k"}[n], func(b *testing.B) {
			h := newHub([]int{0}, n, 1<<30)
			d := json.RawMessage(`{"content":"hello"}`)
			for range n {
				h.add(entry{shard: 0, t: "MESSAGE_CREATE", d: d})
			}
			b.ResetTimer()
			for range b.N {
				h.add(entry{shard: 0, t: "MESSAGE_CREATE", d: d})
			}
		})
	}
}

// A session's seq->g log, once at its bound, is copied whole per event.
func BenchmarkSessionRecordAtBound(b *testing.B) {
	s := &clientSession{}
	keep := 40000 // DefaultReplayEvents * 4 shards
	for i := range keep {
		s.recordLocked(i+1, uint64(i+1), keep)
	}
	b.ResetTimer()
	for i := range b.N {
		s.recordLocked(keep+i+1, uint64(keep+i+1), keep)
	}
}

// nopCache is a Cache that keeps nothing.
type nopCache struct{}

func (nopCache) Reset(json.RawMessage) error                { return nil }
func (nopCache) Apply(string, json.RawMessage) error        { return nil }
func (nopCache) Guilds() []guildcache.Guild                 { return nil }
func (nopCache) GuildCreate(string) (json.RawMessage, bool) { return nil, false }

// A writer skipping another session's member chunks holds its session's lock and takes the
// proxy's (nonceOwned); the event path holds the proxy's and takes the session's
// (evictLagging -> tooFarBehind). Run side by side, they deadlock.
func TestSkippingAChunkAndCheckingForLagDoNotDeadlock(t *testing.T) {
	p, err := New(Options{ShardIDs: []int{0}, ShardCount: 1, ClientToken: "a", RealToken: "b",
		ReplayEvents: 1 << 20, ClientQueue: 1 << 19, NewCache: func(int) Cache { return nopCache{} }})
	if err != nil {
		t.Fatal(err)
	}
	asker := &clientSession{id: "asker", shards: []int{0}, floor: map[int]uint64{}}
	c := &clientConn{p: p, done: make(chan struct{})}
	other := &clientSession{id: "other", shards: []int{0}, floor: map[int]uint64{}, conn: c, owner: c}
	p.sessions["asker"], p.sessions["other"] = asker, other
	p.nonces["n"] = asker
	for range 1000 {
		p.hub.add(entry{shard: 0, t: "GUILD_MEMBERS_CHUNK", d: json.RawMessage(`{}`), asker: asker})
	}
	stop := make(chan struct{})
	done := make(chan struct{}, 2)
	go func() { // the other session's writer: every entry is skipped, nothing is written
		defer func() { done <- struct{}{} }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			other.mu.Lock()
			other.floor[0], other.sent = 0, nil
			other.mu.Unlock()
			if _, err := c.sendEntries(other, ^uint64(0)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() { // the event path
		defer func() { done <- struct{}{} }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			p.evictLagging(0)
		}
	}()
	time.Sleep(2 * time.Second)
	close(stop)
	for range 2 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("deadlock: the writer holds session.mu waiting for Proxy.mu, evictLagging holds Proxy.mu waiting for session.mu")
		}
	}
}

// A new upstream session: the guilds the bot is no longer in are announced to the
// clients, which keep their own sessions.
func TestANewUpstreamSessionAnnouncesTheGuildsLeft(t *testing.T) {
	p, err := New(Options{ShardIDs: []int{0}, ShardCount: 1, ClientToken: "a", RealToken: "b",
		NewCache: func(int) Cache { return guildcache.New(guildcache.Options{}) }})
	if err != nil {
		t.Fatal(err)
	}
	event := func(typ, d string) {
		p.HandleEvent(context.Background(), botruntime.Event{Shard: 0, Type: gateway.EventType(typ), Raw: json.RawMessage(d)})
	}
	event("READY", `{"session_id":"one","guilds":[{"id":"1","unavailable":true},{"id":"2","unavailable":true}]}`)
	event("GUILD_CREATE", `{"id":"1","name":"stays"}`)
	event("GUILD_CREATE", `{"id":"2","name":"left while the shard had no session"}`)
	event("READY", `{"session_id":"two","guilds":[{"id":"1","unavailable":true}]}`)
	var deletes []string
	for _, e := range p.hub.after([]int{0}, map[int]uint64{}, 100) {
		if e.t == "GUILD_DELETE" {
			deletes = append(deletes, string(e.d))
		}
	}
	if len(deletes) != 1 || deletes[0] != `{"id":"2"}` {
		t.Errorf("GUILD_DELETEs after the new session: %v, want guild 2's only", deletes)
	}
}
