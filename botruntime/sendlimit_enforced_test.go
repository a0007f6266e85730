package botruntime_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"
	"github.com/gorilla/websocket"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// Against a gateway that enforces Discord's send limit, a flood of commands from the bot
// keeps its connection: the limiter sends what the window has room for and holds the rest,
// heartbeats still going out. A raw client that floods the same gateway is closed with
// 4008. (The bot runs on a fake clock the fake does not share, so the flood is tested
// within one window: a step past it would send the next window's share within the same
// wall-clock minute.)
func TestTheSendLimiterKeepsAFloodUnderAnEnforcedLimit(t *testing.T) {
	clk := fakeClock()
	srv := discordtest.NewServer(discordtest.Options{EnforceSendLimit: true}) // Discord's 41.25 s heartbeat
	defer srv.Close()
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk))
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })

	ctx, cancel := context.WithCancel(context.Background())
	const flood = 300
	errs := make(chan error, flood)
	for i := range flood {
		go func() {
			if i%2 == 0 {
				errs <- rt.UpdatePresence(ctx, 0, gateway.MessageDataPresenceUpdate{
					Activities: []discord.Activity{{Name: fmt.Sprintf("round %d", i), Type: discord.ActivityTypeGame}},
				})
				return
			}
			errs <- rt.SendCommand(ctx, 0, gateway.MessageDataRequestGuildMembers{GuildID: snowflake.ID(1 << 22), Query: new(string), Limit: new(int)})
		}()
	}
	const share = 115 // of 120: 2 beats a window, 2 Discord may ask for, the identify
	commands := func() int { ops := opsOn(srv, 0, 0); return ops[3] + ops[8] }
	eventually(t, "the window's share of the flood sent", func() bool { return commands() == share })
	waitForTimers(t, clk, 2) // the next heartbeat, and the flood's wait for room
	clk.Step(41250 * time.Millisecond)
	eventually(t, "the heartbeat due sent and ACKed", func() bool { return opsOn(srv, 0, 0)[1] == 1 })
	waitForTimers(t, clk, 2)
	time.Sleep(100 * time.Millisecond) // time for a 4008 to arrive, were there one
	ops := opsOn(srv, 0, 0)
	if n := total(ops); n > discordtest.SendLimit || commands() != share {
		t.Fatalf("%d payloads (%v) within the window, %d of them commands; want at most %d, %d commands", n, ops, commands(), discordtest.SendLimit, share)
	}
	st := srv.Stats()
	if st.ServerCloseCodes[discordtest.CloseRateLimited] != 0 || st.PerShard[0].Connections != 1 || !srv.Connected(0) || !allReady(rt) {
		t.Fatalf("close codes %v, connections %d, connected %v: the bot's connection did not hold", st.ServerCloseCodes, st.PerShard[0].Connections, srv.Connected(0))
	}
	cancel()
	for range flood - share {
		if err := <-errs; !errors.Is(err, context.Canceled) && err != nil {
			t.Fatalf("a command of the flood: %v", err)
		}
	}

	// A raw client, on shard 1 of 2, sends the identify and then commands without a limiter.
	ws, _, err := websocket.DefaultDialer.Dial(srv.URL()+"?v=10&encoding=json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"op": 2, "d": map[string]any{
		"token": discordtest.DefaultToken, "intents": 1, "shard": []int{1, 2},
		"properties": map[string]string{"os": "linux", "browser": "test", "device": "test"},
	}}); err != nil {
		t.Fatal(err)
	}
	for range discordtest.SendLimit {
		presence := map[string]any{"since": nil, "activities": []any{}, "status": "online", "afk": false}
		if err := ws.WriteJSON(map[string]any{"op": 3, "d": presence}); err != nil {
			break // closed under us
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitLimit))
	var closed *websocket.CloseError
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !errors.As(err, &closed) {
				t.Fatalf("the raw client's connection ended with %v, want close 4008", err)
			}
			break
		}
	}
	if closed.Code != discordtest.CloseRateLimited {
		t.Fatalf("the raw client's connection closed with %d, want 4008", closed.Code)
	}
}
