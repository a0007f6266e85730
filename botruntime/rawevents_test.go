package botruntime_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// With WithRawEvents, every dispatch reaches the handlers with its payload as sent, the
// ones disgo cannot decode included; without it, those are skipped and Raw stays empty.
func TestRawEventsCarryThePayloadAsSent(t *testing.T) {
	for _, raw := range []bool{true, false} {
		t.Run(map[bool]string{true: "raw", false: "decoded only"}[raw], func(t *testing.T) {
			g := guildOnShard(1, 0, 1)
			srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour, Guilds: []uint64{g}})
			defer srv.Close()
			var opts []botruntime.Option
			if raw {
				opts = append(opts, botruntime.WithRawEvents())
			}
			rt := newRuntime(t, srv, []int{0}, 1, opts...)
			var mu sync.Mutex
			var got []botruntime.Event
			_ = rt.Handle(func(_ context.Context, ev botruntime.Event) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, ev)
			})
			running(t, rt)
			eventually(t, "shard ready", func() bool { return allReady(rt) })

			// A field disgo does not know survives only in Raw; a channel ID that is not a
			// snowflake makes the event undecodable.
			srv.DispatchToShard(0, "MESSAGE_CREATE", map[string]any{
				"id": "1", "channel_id": "2", "guild_id": json.Number("0"), "content": "x", "nonstandard": true,
			})
			srv.DispatchToShard(0, "MESSAGE_CREATE", map[string]any{"id": "3", "channel_id": "not a snowflake"})
			srv.DispatchToShard(0, "MESSAGE_DELETE", map[string]any{"id": "4", "channel_id": "2"})
			var byType map[gateway.EventType][]botruntime.Event
			eventually(t, "the last event", func() bool {
				mu.Lock()
				defer mu.Unlock()
				byType = map[gateway.EventType][]botruntime.Event{}
				for _, ev := range got {
					byType[ev.Type] = append(byType[ev.Type], ev)
				}
				return len(byType[gateway.EventTypeMessageDelete]) == 1
			})
			creates := byType[gateway.EventTypeMessageCreate]
			if !raw {
				if len(creates) != 1 || creates[0].Raw != nil || byType[gateway.EventTypeReady][0].Raw != nil {
					t.Fatalf("without raw events: %d MESSAGE_CREATE (want the decodable one), raw %q", len(creates), creates[0].Raw)
				}
				return
			}
			if len(creates) != 2 {
				t.Fatalf("%d MESSAGE_CREATE, want both", len(creates))
			}
			var first map[string]any
			if err := json.Unmarshal(creates[0].Raw, &first); err != nil || first["nonstandard"] != true {
				t.Errorf("first MESSAGE_CREATE raw %s (%v): the unknown field is gone", creates[0].Raw, err)
			}
			if creates[1].Data != nil || !json.Valid(creates[1].Raw) {
				t.Errorf("undecodable MESSAGE_CREATE: data %v, raw %s", creates[1].Data, creates[1].Raw)
			}
			ready := byType[gateway.EventTypeReady]
			if len(ready) != 1 || !json.Valid(ready[0].Raw) || ready[0].Data == nil {
				t.Errorf("READY: %+v", ready)
			}
		})
	}
}
