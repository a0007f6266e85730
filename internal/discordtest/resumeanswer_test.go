package discordtest

import (
	"errors"
	"maps"
	"net"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
)

func TestResumeAnswerHook(t *testing.T) {
	g := guildID(3)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	c := dial(t, srv, "")
	ready, _ := c.identify(0, 1, 1) // READY 1, GUILD_CREATE 2
	srv.Cut(0)
	c.expectCut()
	srv.SendMessage(g, g, "missed") // seq 3, stored for replay

	// Unanswered: nothing but heartbeat ACKs comes back, and the session is untouched.
	srv.SetResumeAnswer(0, ResumeUnanswered)
	silent := dial(t, srv, "")
	silent.hello()
	silent.resume(ready.SessionID, 2)
	silent.send(1, 2)
	silent.nextOp(gateway.OpcodeHeartbeatACK)
	_ = silent.ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, data, err := silent.ws.ReadMessage(); err == nil {
		t.Fatalf("an unanswered resume got %s", data)
	} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("the connection of an unanswered resume ended: %v", err)
	}
	st := srv.Stats().PerShard[0]
	if st.ResumesUnanswered != 1 || st.Resumes != 0 || st.Connections != 2 || srv.Connected(0) {
		t.Fatalf("after an unanswered resume: %+v, connected %v", st, srv.Connected(0))
	}

	// Without RESUMED: the missed events and live ones flow, RESUMED never comes.
	srv.SetResumeAnswer(0, ResumeWithoutResumed)
	replaying := dial(t, srv, "")
	replaying.hello()
	replaying.resume(ready.SessionID, 2)
	if f := replaying.nextDispatch(gateway.EventTypeMessageCreate); f.Msg.S != 3 {
		t.Fatalf("replayed seq %d, want 3", f.Msg.S)
	}
	srv.SendMessage(g, g, "live")
	if f := replaying.nextDispatch(gateway.EventTypeMessageCreate); f.Msg.S != 4 {
		t.Fatalf("live seq %d after a replay without RESUMED, want 4", f.Msg.S)
	}
	if st := srv.Stats().PerShard[0]; st.ResumesUnanswered != 2 || st.Resumes != 0 || !srv.Connected(0) {
		t.Fatalf("after a resume without RESUMED: %+v, connected %v", st, srv.Connected(0))
	}

	// Answered again, as Discord does.
	srv.SetResumeAnswer(0, ResumeAnswered)
	answered := dial(t, srv, "")
	answered.hello()
	answered.resume(ready.SessionID, 4)
	answered.nextDispatch(gateway.EventTypeResumed)
	if st := srv.Stats().PerShard[0]; st.ResumesUnanswered != 2 || st.Resumes != 1 {
		t.Fatalf("after an answered resume: %+v", st)
	}
}

func TestOpsReceivedPerConnection(t *testing.T) {
	srv := newTestServer(t, Options{})
	c := dial(t, srv, "")
	c.hello()
	c.send(1, nil) // before the shard is known
	c.nextOp(gateway.OpcodeHeartbeatACK)
	c.send(2, identifyPayload(DefaultToken, 0, 1, 0))
	ready := c.nextDispatch(gateway.EventTypeReady).Msg.D.(gateway.EventReady)
	for range 3 {
		c.send(3, map[string]any{"since": nil, "activities": []any{}, "status": "online", "afk": false})
	}
	c.send(8, map[string]any{"guild_id": "1", "query": "", "limit": 0})
	c.nextDispatch(gateway.EventTypeGuildMembersChunk)
	c.send(1, 1)
	c.nextOp(gateway.OpcodeHeartbeatACK)
	srv.Cut(0)
	c.expectCut()

	c2 := dial(t, srv, "")
	c2.hello()
	c2.resume(ready.SessionID, 2) // READY and the members chunk
	c2.nextDispatch(gateway.EventTypeResumed)
	c2.send(4, map[string]any{"guild_id": "1", "channel_id": nil, "self_mute": false, "self_deaf": false})

	want := []map[int]int{{1: 2, 2: 1, 3: 3, 8: 1}, {6: 1, 4: 1}}
	st := waitStats(t, srv, "every payload counted", func(s Stats) bool {
		ops := s.PerShard[0].OpsReceived
		return len(ops) == 2 && maps.Equal(ops[0], want[0]) && maps.Equal(ops[1], want[1])
	})
	// Stats is a copy: changing it changes nothing in the server.
	st.PerShard[0].OpsReceived[0][3] = 99
	if got := srv.Stats().PerShard[0].OpsReceived[0][3]; got != 3 {
		t.Errorf("presence updates %d after changing a copy of Stats", got)
	}
}
