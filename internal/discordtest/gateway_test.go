package discordtest

import (
	"encoding/json"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
)

func TestIdentifyReadyAndGuildRoutingAcrossTwoShards(t *testing.T) {
	guilds := []uint64{guildID(1), guildID(2), guildID(3), guildID(4), guildID(6)}
	srv := newTestServer(t, Options{HeartbeatInterval: 100 * time.Millisecond, Guilds: guilds})

	want := map[int][]uint64{}
	for _, g := range guilds {
		want[ShardForGuild(g, 2)] = append(want[ShardForGuild(g, 2)], g)
	}
	if len(want[0]) != 3 || len(want[1]) != 2 {
		t.Fatalf("bad test guilds: %v", want)
	}

	clients := map[int]*rawClient{}
	for shard := 0; shard < 2; shard++ {
		c := dial(t, srv, "")
		clients[shard] = c
		if hello := c.hello(); hello.HeartbeatInterval != 100 {
			t.Fatalf("heartbeat_interval %d, want 100", hello.HeartbeatInterval)
		}
		c.send(2, identifyPayload(DefaultToken, shard, 2, int64(gateway.IntentsNonPrivileged)))

		f := c.nextDispatch(gateway.EventTypeReady)
		if f.Msg.S != 1 {
			t.Fatalf("READY seq %d", f.Msg.S)
		}
		ready := f.Msg.D.(gateway.EventReady)
		if ready.Version != 10 || ready.Shard != [2]int{shard, 2} || ready.SessionID == "" ||
			ready.ResumeGatewayURL != srv.URL() || ready.Application.ID != DefaultApplicationID ||
			ready.User.ID != DefaultApplicationID || !ready.User.Bot {
			t.Fatalf("bad READY: %+v", ready)
		}
		var readyGuilds []uint64
		for _, g := range ready.Guilds {
			if !g.Unavailable {
				t.Fatalf("READY guild %d not unavailable", g.ID)
			}
			readyGuilds = append(readyGuilds, uint64(g.ID))
		}
		if !slices.Equal(readyGuilds, want[shard]) {
			t.Fatalf("shard %d READY guilds %v, want %v", shard, readyGuilds, want[shard])
		}
		for i, g := range want[shard] {
			f := c.nextDispatch(gateway.EventTypeGuildCreate)
			if f.Msg.S != 2+i {
				t.Fatalf("GUILD_CREATE seq %d, want %d", f.Msg.S, 2+i)
			}
			gc := f.Msg.D.(gateway.EventGuildCreate)
			if uint64(gc.ID) != g || gc.Unavailable || gc.Name == "" || gc.MemberCount < 1 ||
				len(gc.Channels) != 1 || uint64(gc.Channels[0].ID()) != g || len(gc.Roles) != 1 {
				t.Fatalf("bad GUILD_CREATE: %+v", gc)
			}
		}
		if err := srv.WaitConnected(testCtx(t), shard); err != nil {
			t.Fatal(err)
		}
	}

	// A guild event reaches only the guild's shard, with the session's next seq.
	srv.Dispatch(guildID(1), "GUILD_UPDATE", map[string]any{"id": snowflake.ID(guildID(1)), "name": "renamed"})
	f := clients[1].nextDispatch(gateway.EventTypeGuildUpdate)
	if f.Msg.S != 4 {
		t.Fatalf("GUILD_UPDATE seq %d, want 4", f.Msg.S)
	}
	if gu := f.Msg.D.(gateway.EventGuildUpdate); gu.Name != "renamed" {
		t.Fatalf("bad GUILD_UPDATE %+v", gu)
	}
	srv.DispatchToShard(0, "TYPING_START", map[string]any{
		"channel_id": "1", "user_id": "2", "timestamp": time.Now().Unix(),
	})
	f = clients[0].nextDispatch(gateway.EventTypeTypingStart)
	if f.Msg.S != 5 {
		t.Fatalf("TYPING_START seq %d, want 5", f.Msg.S)
	}

	st := srv.Stats()
	if st.Identifies != 2 || st.Connections != 2 || st.OpenConnections != 2 {
		t.Fatalf("stats %+v", st)
	}
	// Events are counted once written (asynchronously): wait for the exact counts.
	st = waitStats(t, srv, "events sent", func(s Stats) bool {
		return s.PerShard[0].EventsSent == 4 && s.PerShard[1].EventsSent == 3
	})
	if st.PerShard[0].Identifies != 1 || st.PerShard[0].SessionID == st.PerShard[1].SessionID || st.PerShard[1].LastSeq != 4 {
		t.Fatalf("per shard stats %+v", st.PerShard)
	}
}

func TestResumeReplaysMissedEventsAfterCut(t *testing.T) {
	g := guildID(7)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	c := dial(t, srv, "")
	ready, _ := c.identify(0, 1, 1)

	srv.SendMessage(g, g, "one")
	f := c.nextDispatch(gateway.EventTypeMessageCreate)
	if f.Msg.S != 3 {
		t.Fatalf("seq %d, want 3", f.Msg.S)
	}

	srv.Cut(0)
	c.expectCut()
	if srv.Connected(0) {
		t.Fatal("still connected after Cut")
	}
	// Missed while disconnected: buffered with seq 4 and 5.
	srv.SendMessage(g, g, "two")
	srv.DispatchToShard(0, "MESSAGE_CREATE", json.RawMessage(`{"id":"9","channel_id":"8","author":{"id":"7","username":"dm"},"content":"three","timestamp":"2024-01-01T00:00:00.000000+00:00"}`))

	st := waitStats(t, srv, "cut recorded", func(s Stats) bool { return len(s.PerShard[0].ClientCloseCodes) == 1 })
	if st.PerShard[0].LastCloseCode != 0 {
		t.Fatalf("LastCloseCode %d after a cut, want 0", st.PerShard[0].LastCloseCode)
	}

	c2 := dial(t, srv, "")
	c2.hello()
	c2.resume(ready.SessionID, 3)
	for i, content := range []string{"two", "three"} {
		f := c2.nextDispatch(gateway.EventTypeMessageCreate)
		if f.Msg.S != 4+i {
			t.Fatalf("replayed seq %d, want %d", f.Msg.S, 4+i)
		}
		if m := f.Msg.D.(gateway.EventMessageCreate); m.Content != content {
			t.Fatalf("replayed content %q, want %q", m.Content, content)
		}
	}
	f = c2.nextDispatch(gateway.EventTypeResumed)
	if f.Msg.S != 6 {
		t.Fatalf("RESUMED seq %d, want 6", f.Msg.S)
	}
	if err := srv.WaitConnected(testCtx(t), 0); err != nil {
		t.Fatal(err)
	}
	srv.SendMessage(g, g, "four")
	if f := c2.nextDispatch(gateway.EventTypeMessageCreate); f.Msg.S != 7 {
		t.Fatalf("seq after resume %d, want 7", f.Msg.S)
	}

	st = waitStats(t, srv, "replay counted", func(s Stats) bool { return s.PerShard[0].EventsSent == 5 })
	if st.Resumes != 1 || st.PerShard[0].Resumes != 1 || st.PerShard[0].Replayed != 2 || st.Identifies != 1 ||
		st.PerShard[0].SessionID != ready.SessionID {
		t.Fatalf("stats %+v / %+v", st, st.PerShard[0])
	}

	// Resuming again from an older seq replays everything after it (GUILD_CREATE too),
	// and moves the session off the live connection, which is closed.
	c3 := dial(t, srv, "")
	c3.hello()
	c3.resume(ready.SessionID, 1)
	c3.nextDispatch(gateway.EventTypeGuildCreate)
	for i := 0; i < 4; i++ {
		c3.nextDispatch(gateway.EventTypeMessageCreate)
	}
	if f := c3.nextDispatch(gateway.EventTypeResumed); f.Msg.S != 8 {
		t.Fatalf("RESUMED seq %d, want 8", f.Msg.S)
	}
	c2.expectClose(CloseSessionTimedOut)
}

func TestResumeFailures(t *testing.T) {
	srv := newTestServer(t, Options{ResumeWindow: 200 * time.Millisecond})

	// Unknown session: op 9 d=false; the connection may then identify.
	c := dial(t, srv, "")
	c.hello()
	c.resume("nope", 1)
	if f := c.nextOp(gateway.OpcodeInvalidSession); bool(f.Msg.D.(gateway.MessageDataInvalidSession)) {
		t.Fatal("op 9 d=true for an unknown session")
	}
	c.send(2, identifyPayload(DefaultToken, 0, 1, 0))
	ready := c.nextDispatch(gateway.EventTypeReady).Msg.D.(gateway.EventReady)

	// A seq beyond the session's last: 4007.
	srv.Cut(0)
	c.expectCut()
	c2 := dial(t, srv, "")
	c2.hello()
	c2.resume(ready.SessionID, 99)
	c2.expectClose(CloseInvalidSeq)
	// ... which ended the session.
	c3 := dial(t, srv, "")
	c3.hello()
	c3.resume(ready.SessionID, 1)
	c3.nextOp(gateway.OpcodeInvalidSession)

	// Expired: no resume after ResumeWindow.
	c4 := dial(t, srv, "")
	ready, _ = c4.identify(0, 1, 0)
	srv.Cut(0)
	c4.expectCut()
	time.Sleep(400 * time.Millisecond) // > ResumeWindow; only a lower bound matters
	c5 := dial(t, srv, "")
	c5.hello()
	c5.resume(ready.SessionID, 1)
	c5.nextOp(gateway.OpcodeInvalidSession)

	if st := srv.Stats(); st.ResumeFailures != 4 || st.Resumes != 0 {
		t.Fatalf("stats %+v", st)
	}

	// Bad token on resume: 4004.
	c6 := dial(t, srv, "")
	c6.hello()
	c6.send(6, map[string]any{"token": "wrong", "session_id": ready.SessionID, "seq": 1})
	c6.expectClose(CloseAuthenticationFailed)
}

func TestClientCloseCodeDecidesResumability(t *testing.T) {
	srv := newTestServer(t, Options{})

	// 4000: the session survives and can be resumed.
	c := dial(t, srv, "")
	ready, _ := c.identify(0, 1, 0)
	c.closeHandshake(4000)
	st := waitStats(t, srv, "close recorded", func(s Stats) bool { return len(s.PerShard[0].ClientCloseCodes) == 1 })
	if st.PerShard[0].LastCloseCode != 4000 {
		t.Fatalf("LastCloseCode %d, want 4000", st.PerShard[0].LastCloseCode)
	}
	c2 := dial(t, srv, "")
	c2.hello()
	c2.resume(ready.SessionID, 1)
	c2.nextDispatch(gateway.EventTypeResumed)

	// 1000: the session ends, as on Discord. After a completed close handshake the
	// code is in Stats without waiting.
	c2.closeHandshake(1000)
	st = srv.Stats()
	if st.PerShard[0].LastCloseCode != 1000 || !slices.Equal(st.PerShard[0].ClientCloseCodes, []int{4000, 1000}) {
		t.Fatalf("close codes %+v", st.PerShard[0])
	}
	c3 := dial(t, srv, "")
	c3.hello()
	c3.resume(ready.SessionID, 1)
	c3.nextOp(gateway.OpcodeInvalidSession)
}

func TestIdentifyRejections(t *testing.T) {
	cases := []struct {
		name  string
		opts  Options
		query string
		send  func(c *rawClient)
		code  int
	}{
		{"bad token", Options{}, "", func(c *rawClient) {
			c.send(2, identifyPayload("wrong", 0, 1, 0))
		}, CloseAuthenticationFailed},
		{"shard id >= count", Options{}, "", func(c *rawClient) {
			c.send(2, identifyPayload(DefaultToken, 1, 1, 0))
		}, CloseInvalidShard},
		{"shard count 0", Options{}, "", func(c *rawClient) {
			c.send(2, identifyPayload(DefaultToken, 0, 0, 0))
		}, CloseInvalidShard},
		{"sharding required", Options{RequiredShards: 2}, "", func(c *rawClient) {
			c.send(2, identifyPayload(DefaultToken, 0, 1, 0))
		}, CloseShardingRequired},
		{"invalid intent bit", Options{}, "", func(c *rawClient) {
			c.send(2, identifyPayload(DefaultToken, 0, 1, 1<<18))
		}, CloseInvalidIntents},
		{"disallowed privileged intent", Options{AllowedIntents: IntentGuildMembers}, "", func(c *rawClient) {
			c.send(2, identifyPayload(DefaultToken, 0, 1, IntentMessageContent|1))
		}, CloseDisallowedIntents},
		{"no privileged intents allowed", Options{AllowedIntents: NoPrivilegedIntents}, "", func(c *rawClient) {
			c.send(2, identifyPayload(DefaultToken, 0, 1, IntentGuildMembers))
		}, CloseDisallowedIntents},
		{"not authenticated", Options{}, "", func(c *rawClient) {
			c.send(3, map[string]any{"since": nil, "activities": []any{}, "status": "online", "afk": false})
		}, CloseNotAuthenticated},
		{"already authenticated", Options{}, "", func(c *rawClient) {
			c.send(2, identifyPayload(DefaultToken, 0, 1, 0))
			c.nextDispatch(gateway.EventTypeReady)
			c.send(2, identifyPayload(DefaultToken, 0, 1, 0))
		}, CloseAlreadyAuthenticated},
		{"invalid json", Options{}, "", func(c *rawClient) {
			c.sendRaw([]byte(`{"op":`))
		}, CloseDecodeError},
		{"unknown opcode", Options{}, "", func(c *rawClient) {
			c.send(99, nil)
		}, CloseUnknownOpcode},
		{"server-only opcode", Options{}, "", func(c *rawClient) {
			c.send(11, nil)
		}, CloseUnknownOpcode},
		{"api version", Options{}, "?v=9&encoding=json", func(*rawClient) {}, CloseInvalidAPIVersion},
		{"etf", Options{}, "?v=10&encoding=etf", func(*rawClient) {}, CloseDecodeError},
		{"unknown compression", Options{}, "?v=10&encoding=json&compress=true", func(*rawClient) {}, CloseDecodeError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, tc.opts)
			c := dial(t, srv, tc.query)
			c.hello() // Hello always comes first
			tc.send(c)
			c.expectClose(tc.code)
			if tc.code != CloseAlreadyAuthenticated && srv.Stats().Identifies != 0 {
				t.Fatalf("identify accepted: %+v", srv.Stats())
			}
		})
	}
}

func TestPrivilegedIntentsAllowedByDefault(t *testing.T) {
	srv := newTestServer(t, Options{})
	c := dial(t, srv, "")
	c.hello()
	all := int64(gateway.IntentsAll)
	c.send(2, identifyPayload(DefaultToken, 0, 1, all))
	c.nextDispatch(gateway.EventTypeReady)
	if log := srv.Stats().IdentifyLog; len(log) != 1 || log[0].Intents != all {
		t.Fatalf("identify log %+v", log)
	}
}

func TestReconnectAndInvalidSessionHooks(t *testing.T) {
	g := guildID(3)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	c := dial(t, srv, "")
	ready, _ := c.identify(0, 1, 1)

	srv.Reconnect(0)
	f := c.nextOp(gateway.OpcodeReconnect)
	if string(f.Raw["d"]) != "null" || string(f.Raw["s"]) != "null" || string(f.Raw["t"]) != "null" {
		t.Fatalf("op 7 payload %v", f.Raw)
	}

	// Resumable op 9: the connection is detached, events are buffered, and a resume on a
	// new connection replays them.
	srv.InvalidSession(0, true)
	f = c.nextOp(gateway.OpcodeInvalidSession)
	if string(f.Raw["d"]) != "true" {
		t.Fatalf("op 9 d=%s, want true", f.Raw["d"])
	}
	if srv.Connected(0) {
		t.Fatal("connected after op 9")
	}
	srv.SendMessage(g, g, "buffered")
	c.closeHandshake(4000)
	c2 := dial(t, srv, "")
	c2.hello()
	c2.resume(ready.SessionID, 2)
	if m := c2.nextDispatch(gateway.EventTypeMessageCreate).Msg.D.(gateway.EventMessageCreate); m.Content != "buffered" {
		t.Fatalf("replayed %q", m.Content)
	}
	c2.nextDispatch(gateway.EventTypeResumed)

	// Non-resumable op 9: the session is gone; the same connection may identify again.
	srv.InvalidSession(0, false)
	f = c2.nextOp(gateway.OpcodeInvalidSession)
	if string(f.Raw["d"]) != "false" {
		t.Fatalf("op 9 d=%s, want false", f.Raw["d"])
	}
	c2.send(2, identifyPayload(DefaultToken, 0, 1, 0))
	ready2 := c2.nextDispatch(gateway.EventTypeReady).Msg.D.(gateway.EventReady)
	if ready2.SessionID == ready.SessionID {
		t.Fatal("same session ID after re-identify")
	}
	c3 := dial(t, srv, "")
	c3.hello()
	c3.resume(ready.SessionID, 3)
	c3.nextOp(gateway.OpcodeInvalidSession)
}

func TestCloseWithHook(t *testing.T) {
	srv := newTestServer(t, Options{})
	c := dial(t, srv, "")
	ready, _ := c.identify(0, 1, 0)
	srv.CloseWith(0, 4000, "test")
	c.expectClose(4000)
	// 4000 keeps the session.
	c2 := dial(t, srv, "")
	c2.hello()
	c2.resume(ready.SessionID, 1)
	c2.nextDispatch(gateway.EventTypeResumed)

	// 4009 ends it.
	srv.CloseWith(0, CloseSessionTimedOut, "timed out")
	c2.expectClose(CloseSessionTimedOut)
	c3 := dial(t, srv, "")
	c3.hello()
	c3.resume(ready.SessionID, 1)
	c3.nextOp(gateway.OpcodeInvalidSession)

	// Hooks on a shard that is not connected are no-ops.
	srv.CloseWith(5, 4000, "")
	srv.Cut(5)
	srv.Reconnect(5)
	srv.InvalidSession(5, false)
	srv.SetACKs(5, false)
}

func TestHeartbeatACKToggling(t *testing.T) {
	g := guildID(2)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	c := dial(t, srv, "")
	c.hello()
	// A heartbeat before identify is answered and counted for the shard.
	c.send(1, nil)
	c.nextOp(gateway.OpcodeHeartbeatACK)
	c.send(2, identifyPayload(DefaultToken, 0, 1, 0))
	c.nextDispatch(gateway.EventTypeReady)
	c.nextDispatch(gateway.EventTypeGuildCreate)

	c.send(1, 2)
	f := c.nextOp(gateway.OpcodeHeartbeatACK)
	if string(f.Raw["d"]) != "null" {
		t.Fatalf("ACK d=%s", f.Raw["d"])
	}

	srv.SetACKs(0, false)
	c.send(1, 2)
	c.send(1, 2)
	waitStats(t, srv, "heartbeats", func(s Stats) bool { return s.PerShard[0].Heartbeats == 4 })
	srv.SetACKs(0, true)
	c.send(1, 2)
	c.nextOp(gateway.OpcodeHeartbeatACK)
	// The next frame is the dispatch, not a late ACK for the unanswered heartbeats.
	srv.SendMessage(g, g, "after")
	c.nextDispatch(gateway.EventTypeMessageCreate)

	st := srv.Stats().PerShard[0]
	if st.Heartbeats != 5 || st.ACKs != 3 || len(st.HeartbeatTimes) != 5 {
		t.Fatalf("stats %+v", st)
	}
	if !slices.IsSortedFunc(st.HeartbeatTimes, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Fatalf("heartbeat times not ordered: %v", st.HeartbeatTimes)
	}

	// A new connection of the shard gets ACKs again.
	srv.SetACKs(0, false)
	srv.Cut(0)
	c.expectCut()
	c2 := dial(t, srv, "")
	c2.identify(0, 1, 1)
	c2.send(1, 2)
	c2.nextOp(gateway.OpcodeHeartbeatACK)
}

func TestEnforceHeartbeats(t *testing.T) {
	srv := newTestServer(t, Options{HeartbeatInterval: 50 * time.Millisecond, EnforceHeartbeats: true})
	c := dial(t, srv, "")
	ready, _ := c.identify(0, 1, 0)
	// No heartbeats: closed with 4009 after 2*50ms+1s, and the session is gone.
	c.expectClose(CloseSessionTimedOut)
	c2 := dial(t, srv, "")
	c2.hello()
	c2.resume(ready.SessionID, 1)
	c2.nextOp(gateway.OpcodeInvalidSession)
}

func TestIdentifyLogAndBucketViolations(t *testing.T) {
	srv := newTestServer(t, Options{MaxConcurrency: 2, IdentifyInterval: time.Hour, SessionStartTotal: 10})
	for shard := 0; shard < 4; shard++ {
		c := dial(t, srv, "")
		c.identify(shard, 4, 0)
	}
	st := srv.Stats()
	if len(st.IdentifyLog) != 4 || st.BucketViolations != 2 || st.SessionStartRemaining != 6 {
		t.Fatalf("stats %+v", st)
	}
	for i, rec := range st.IdentifyLog {
		if rec.Shard != i || rec.Bucket != i%2 || rec.ShardCount != 4 || rec.At.IsZero() || rec.Violation != (i >= 2) {
			t.Fatalf("record %d: %+v", i, rec)
		}
	}

	// With a tiny interval nothing is a violation; the budget does not go below 0.
	srv2 := newTestServer(t, Options{IdentifyInterval: time.Nanosecond, SessionStartTotal: 5, SessionStartRemaining: 1})
	for i := 0; i < 3; i++ {
		c := dial(t, srv2, "")
		c.identify(0, 1, 0)
		if i < 2 {
			time.Sleep(time.Millisecond) // identifies must be >1ns apart; the clock may be coarse
		}
	}
	if st := srv2.Stats(); st.BucketViolations != 0 || st.SessionStartRemaining != 0 || st.Identifies != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	baseline := runtime.NumGoroutine()
	srv := NewServer(Options{EnforceHeartbeats: true})
	c := dial(t, srv, "")
	c.identify(0, 1, 0)
	c2 := dial(t, srv, "")
	c2.hello()

	done := make(chan error, 1)
	go func() {
		done <- srv.WaitConnected(testCtx(t), 3)
	}()
	srv.Close()
	srv.Close() // idempotent
	c.expectCut()
	c2.expectCut()
	if err := <-done; err != ErrClosed {
		t.Fatalf("WaitConnected after Close: %v", err)
	}
	if st := srv.Stats(); st.OpenConnections != 0 {
		t.Fatalf("open connections after Close: %d", st.OpenConnections)
	}

	// No goroutine of the server survives Close (the clients' are gone too once their
	// connections are closed). Poll: exiting goroutines take a moment to be reaped.
	_ = c.ws.Close()
	_ = c2.ws.Close()
	deadline := time.Now().Add(testTimeout)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
