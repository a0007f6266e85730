package discordtest

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
)

func TestIdentifyAnswerHook(t *testing.T) {
	srv := newTestServer(t, Options{Guilds: []uint64{guildID(1)}, SessionStartTotal: 10})

	// Unanswered: nothing but heartbeat ACKs comes back; the identify costs a session start.
	srv.SetIdentifyAnswer(0, IdentifyUnanswered)
	silent := dial(t, srv, "")
	silent.hello()
	silent.send(2, identifyPayload(DefaultToken, 0, 1, 1))
	silent.send(1, nil)
	silent.nextOp(gateway.OpcodeHeartbeatACK)
	_ = silent.ws.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, data, err := silent.ws.ReadMessage(); err == nil {
		t.Fatalf("an unanswered identify got %s", data)
	} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("the connection of an unanswered identify ended: %v", err)
	}
	st := srv.Stats()
	if sh := st.PerShard[0]; sh.IdentifiesUnanswered != 1 || sh.Identifies != 0 || sh.Connections != 1 || srv.Connected(0) {
		t.Fatalf("after an unanswered identify: %+v, connected %v", sh, srv.Connected(0))
	}
	if st.Identifies != 0 || len(st.IdentifyLog) != 0 || st.SessionStartRemaining != 9 {
		t.Fatalf("identifies %d, log %v, session starts left %d; want 0, none, 9", st.Identifies, st.IdentifyLog, st.SessionStartRemaining)
	}
	// Other shards are answered.
	other := dial(t, srv, "")
	other.hello()
	other.send(2, identifyPayload(DefaultToken, 1, 2, 1))
	other.nextDispatch(gateway.EventTypeReady)

	// Answered again, as Discord does; the unanswered connection is still the shard's
	// until the new one authenticates.
	srv.SetIdentifyAnswer(0, IdentifyAnswered)
	answered := dial(t, srv, "")
	answered.identify(0, 1, 1)
	if sh := srv.Stats().PerShard[0]; sh.IdentifiesUnanswered != 1 || sh.Identifies != 1 || !srv.Connected(0) {
		t.Fatalf("after an answered identify: %+v", sh)
	}
}
