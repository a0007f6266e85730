package botruntime_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/snowflake/v2"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// opsOn returns what shard's connection number conn (from 0) sent, by opcode.
func opsOn(srv *discordtest.Server, shard, conn int) map[int]int {
	ops := srv.Stats().PerShard[shard].OpsReceived
	if conn >= len(ops) {
		return map[int]int{}
	}
	return ops[conn]
}

func total(ops map[int]int) int {
	n := 0
	for _, c := range ops {
		n += c
	}
	return n
}

// 200 presence updates queued at once go out at no more than 120 payloads per 60 s on the
// connection, heartbeats included, and every heartbeat goes out when due all the while.
func TestPresenceUpdatesStayWithinTheSendLimitAndHeartbeatsKeepTime(t *testing.T) {
	const interval = 10 * time.Second // 7 beats a window: commands get 110 of its 120
	clk := fakeClock()
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: interval})
	defer srv.Close()
	rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithClock(clk))
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })

	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	defer cancel()
	const updates = 200
	errs := make(chan error, updates)
	for i := range updates {
		go func() {
			errs <- rt.UpdatePresence(ctx, 0, gateway.MessageDataPresenceUpdate{
				Activities: []discord.Activity{{Name: fmt.Sprintf("round %d", i), Type: discord.ActivityTypeGame}},
			})
		}()
	}
	eventually(t, "the first window's share of updates", func() bool { return opsOn(srv, 0, 0)[3] == 110 })
	waitForTimers(t, clk, 2) // the next heartbeat, and the updates' wait for room
	time.Sleep(50 * time.Millisecond)
	if n := opsOn(srv, 0, 0)[3]; n != 110 {
		t.Fatalf("%d presence updates before the clock moved; commands get 110 of a window", n)
	}

	// The clock stands still between steps, so what the fake counted after a step went
	// out at that instant. Each step of an interval brings exactly one heartbeat: none
	// waits behind the 90 updates that wait for the window.
	perInstant := []int{total(opsOn(srv, 0, 0))}
	rtts := func() string { return metric(t, rt, `shardkeeper_heartbeat_rtt_seconds_count{shard="0"}`) }
	for step := 1; step <= 13; step++ {
		clk.Step(interval)
		wantUpdates := 110
		if time.Duration(step)*interval > 61*time.Second {
			wantUpdates = updates
		}
		eventually(t, fmt.Sprintf("heartbeat %d sent and ACKed", step), func() bool {
			ops := opsOn(srv, 0, 0)
			return ops[1] == step && ops[3] == wantUpdates &&
				rtts() == fmt.Sprintf(`shardkeeper_heartbeat_rtt_seconds_count{shard="0"} %d`, step)
		})
		timers := 1
		if wantUpdates < updates {
			timers = 2
		}
		waitForTimers(t, clk, timers)
		sent := total(opsOn(srv, 0, 0))
		perInstant = append(perInstant, sent-sumOf(perInstant))
	}
	for i := range updates {
		if err := <-errs; err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	// Any 60 s, ends included, holds at most 7 of these instants 10 s apart.
	for from := range perInstant {
		to := min(from+7, len(perInstant))
		if n := sumOf(perInstant[from:to]); n > 120 {
			t.Errorf("%d payloads within 60 s from %s on (%v per 10 s); Discord allows 120", n, time.Duration(from)*interval, perInstant)
		}
	}
	if st := srv.Stats().PerShard[0]; st.Connections != 1 || st.Identifies != 1 {
		t.Errorf("connections %d, identifies %d: the connection did not hold", st.Connections, st.Identifies)
	}
	if m := metric(t, rt, "shardkeeper_gateway_zombie_connections_total"); m != "" {
		t.Errorf("zombie connections: %s", m)
	}
}

func sumOf(ns []int) int {
	s := 0
	for _, n := range ns {
		s += n
	}
	return s
}

// Commands go to the shard that serves the guild, never to a connection that cannot take
// them, and fail with errors a bot can tell apart.
func TestCommandsGoToTheirShardOrFailClearly(t *testing.T) {
	clk := fakeClock()
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour})
	defer srv.Close()
	// Shard 2 runs elsewhere; a bucket per shard, so neither waits on the clock to identify.
	rt := newRuntimeWithConfig(t, srv, discordtest.DefaultToken, []int{0, 1}, 3,
		func(c *botruntime.Config) { c.MaxConcurrency = 3 }, botruntime.WithClock(clk))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	if err := rt.UpdatePresence(ctx, 0, gateway.MessageDataPresenceUpdate{}); !errors.Is(err, botruntime.ErrNotConnected) {
		t.Fatalf("a presence update before Run: %v, want ErrNotConnected", err)
	}
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })

	onShard1 := snowflake.ID(guildOnShard(4, 1, 3))
	if err := rt.RequestGuildMembers(ctx, gateway.MessageDataRequestGuildMembers{GuildID: onShard1, Query: new(string), Limit: new(int)}); err != nil {
		t.Fatal(err)
	}
	onShard0 := snowflake.ID(guildOnShard(4, 0, 3))
	if err := rt.UpdateVoiceState(ctx, gateway.MessageDataVoiceStateUpdate{GuildID: onShard0}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "each command on its guild's shard", func() bool {
		return opsOn(srv, 1, 0)[8] == 1 && opsOn(srv, 0, 0)[4] == 1
	})
	if opsOn(srv, 0, 0)[8] != 0 || opsOn(srv, 1, 0)[4] != 0 {
		t.Errorf("a command went to the wrong shard: shard 0 %v, shard 1 %v", opsOn(srv, 0, 0), opsOn(srv, 1, 0))
	}

	onShard2 := snowflake.ID(guildOnShard(4, 2, 3))
	if err := rt.UpdateVoiceState(ctx, gateway.MessageDataVoiceStateUpdate{GuildID: onShard2}); !errors.Is(err, botruntime.ErrShardNotHere) {
		t.Errorf("a command for shard 2: %v, want ErrShardNotHere", err)
	}
	if err := rt.SendCommand(ctx, 0, gateway.MessageDataHeartbeat(1)); err == nil {
		t.Error("a bot sent a heartbeat of its own")
	}

	// Fill shard 0's share (116 beside hourly heartbeats, the voice state update one of
	// them); the next command waits, and fails when its connection ends: it belonged to
	// that session.
	for i := range 115 {
		if err := rt.UpdatePresence(ctx, 0, gateway.MessageDataPresenceUpdate{}); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	waiting := make(chan error, 1)
	go func() { waiting <- rt.UpdatePresence(ctx, 0, gateway.MessageDataPresenceUpdate{}) }()
	waitForTimers(t, clk, 3) // two heartbeats and the command's wait for room
	srv.SetResumeAnswer(0, discordtest.ResumeUnanswered)
	srv.Cut(0)
	if err := <-waiting; !errors.Is(err, botruntime.ErrNotConnected) {
		t.Fatalf("a waiting command whose connection was cut: %v, want ErrNotConnected", err)
	}
	eventually(t, "shard 0 waiting to reconnect", func() bool { return rt.Shards()[0].State == botruntime.StateReconnecting })
	clk.Step(time.Second)
	eventually(t, "shard 0 resuming", func() bool { return rt.Shards()[0].State == botruntime.StateResuming })
	err := rt.UpdatePresence(ctx, 0, gateway.MessageDataPresenceUpdate{})
	if !errors.Is(err, botruntime.ErrNotConnected) || !strings.Contains(err.Error(), "Resuming") {
		t.Errorf("a command while the shard resumes: %v, want ErrNotConnected naming the state", err)
	}
	if n := opsOn(srv, 0, 1)[3]; n != 0 {
		t.Errorf("%d presence updates sent on a connection that has not resumed", n)
	}
}
