package discordtest

import (
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
)

func TestSendLimitWindowSlides(t *testing.T) {
	var w sendLimitWindow
	start := time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)
	for i := range SendLimit {
		if w.overLimit(start.Add(time.Duration(i) * 100 * time.Millisecond)) {
			t.Fatalf("payload %d of %d within a window is over the limit", i+1, SendLimit)
		}
	}
	if !w.overLimit(start.Add(SendLimitWindow - time.Millisecond)) {
		t.Fatalf("payload %d within %s is not over the limit", SendLimit+1, SendLimitWindow)
	}
	// Once the first payload is a window old, there is room for one more, and only one.
	if w.overLimit(start.Add(SendLimitWindow)) {
		t.Fatal("no room once the first payload is a window old")
	}
	if !w.overLimit(start.Add(SendLimitWindow + time.Millisecond)) {
		t.Fatal("room for two once only the first payload is a window old")
	}
}

func presence() map[string]any {
	return map[string]any{"since": nil, "activities": []any{}, "status": "online", "afk": false}
}

func TestEnforcedSendLimitClosesTheConnectionWith4008(t *testing.T) {
	srv := newTestServer(t, Options{EnforceSendLimit: true})
	c := dial(t, srv, "")
	ready, _ := c.identify(0, 1, 0)
	for range SendLimit - 1 { // 120 with the identify: at the limit, not over it
		c.send(3, presence())
	}
	c.send(1, nil)
	c.expectClose(CloseRateLimited)
	st := waitStats(t, srv, "the 4008 counted", func(s Stats) bool { return s.ServerCloseCodes[CloseRateLimited] == 1 })
	if ops := st.PerShard[0].OpsReceived[0]; ops[2] != 1 || ops[3] != SendLimit-1 || ops[1] != 1 {
		t.Errorf("payloads received %v, want the identify, %d presence updates and the heartbeat over the limit", ops, SendLimit-1)
	}
	if got := st.PerShard[0].ServerCloseCodes; len(got) != 1 || got[0] != CloseRateLimited {
		t.Errorf("shard close codes %v, want [4008]", got)
	}
	// 4008 does not end the session, as on Discord.
	again := dial(t, srv, "")
	again.hello()
	again.resume(ready.SessionID, 1)
	again.nextDispatch(gateway.EventTypeResumed)
}

func TestSendLimitIsOffByDefault(t *testing.T) {
	srv := newTestServer(t, Options{})
	c := dial(t, srv, "")
	c.identify(0, 1, 0)
	for range 2 * SendLimit {
		c.send(3, presence())
	}
	c.send(1, nil)
	c.nextOp(gateway.OpcodeHeartbeatACK)
	if st := srv.Stats(); st.ServerCloseCodes[CloseRateLimited] != 0 || !srv.Connected(0) {
		t.Fatalf("closed without EnforceSendLimit: %v", st.ServerCloseCodes)
	}
}
