package guildcache_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/guildcache"
)

// benchGuild is a GUILD_CREATE shaped like Discord's for a mid-sized guild: channels
// channels, roles roles and members members, each with the fields Discord sends.
func benchGuild(id uint64, channels, roles, members int) json.RawMessage {
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":"%d","name":"guild %d","icon":"a1b2c3d4e5f60718293a4b5c6d7e8f90","splash":null,"discovery_splash":null,`+
		`"owner_id":"80351110224678912","afk_channel_id":null,"afk_timeout":300,"verification_level":1,`+
		`"default_message_notifications":1,"explicit_content_filter":2,"features":["COMMUNITY","NEWS"],"mfa_level":0,`+
		`"application_id":null,"system_channel_id":"%d","system_channel_flags":0,"rules_channel_id":null,"max_members":500000,`+
		`"vanity_url_code":null,"description":null,"banner":null,"premium_tier":1,"premium_subscription_count":3,`+
		`"preferred_locale":"en-US","public_updates_channel_id":null,"nsfw_level":0,"premium_progress_bar_enabled":false,`+
		`"joined_at":"2024-01-02T03:04:05.000000+00:00","large":false,"unavailable":false,"member_count":%d,`, id, id, id, members)
	b.WriteString(`"channels":[`)
	for i := range channels {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","type":0,"name":"channel-%d","position":%d,"permission_overwrites":[{"id":"%d","type":0,"allow":"0","deny":"2048"}],`+
			`"topic":"the topic of channel %d","nsfw":false,"last_message_id":"1234567890123456789","rate_limit_per_user":0,"parent_id":null,"flags":0}`,
			id+uint64(i)+1, i, i, id, i)
	}
	b.WriteString(`],"roles":[`)
	for i := range roles {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","name":"role-%d","color":3447003,"colors":{"primary_color":3447003,"secondary_color":null,"tertiary_color":null},`+
			`"hoist":false,"icon":null,"unicode_emoji":null,"position":%d,"permissions":"2248473465835073","managed":false,"mentionable":false,"flags":0}`,
			id+1000+uint64(i), i, i)
	}
	b.WriteString(`],"members":[`)
	for i := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"user":{"id":"%d","username":"member%d","discriminator":"0","global_name":"Member %d","avatar":"0123456789abcdef0123456789abcdef","public_flags":0},`+
			`"nick":null,"avatar":null,"roles":["%d","%d"],"joined_at":"2024-01-02T03:04:05.000000+00:00","premium_since":null,`+
			`"deaf":false,"mute":false,"flags":0,"pending":false,"communication_disabled_until":null}`,
			id+100000+uint64(i), i, i, id+1000+uint64(i%roles), id+1000+uint64((i+1)%roles))
	}
	b.WriteString(`],"emojis":[],"stickers":[],"threads":[],"voice_states":[],"presences":[],"stage_instances":[],"guild_scheduled_events":[]}`)
	return json.RawMessage(b.String())
}

// Memory one cached guild of 50 channels, 20 roles and 100 members costs, measured
// on the Go heap, beside the cache's own estimate (Stats.Bytes).
func BenchmarkGuildMemory(b *testing.B) {
	const guilds = 200
	payloads := make([]json.RawMessage, guilds)
	for i := range payloads {
		payloads[i] = benchGuild(uint64(i+1)<<22, 50, 20, 100)
	}
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := guildcache.New(guildcache.Options{})
		for _, p := range payloads {
			if err := c.Apply("GUILD_CREATE", p); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/guilds, "heap-bytes/guild")
		b.ReportMetric(float64(c.Stats().Bytes)/guilds, "est-bytes/guild")
		b.ReportMetric(float64(len(payloads[0])), "json-bytes/guild")
		runtime.KeepAlive(c)
	}
}

// What one event costs to apply to a cache of such a guild, by event type.
func BenchmarkApply(b *testing.B) {
	const id = uint64(1) << 22
	events := map[string]func(i int) string{
		"GUILD_MEMBER_UPDATE": func(i int) string {
			return fmt.Sprintf(`{"guild_id":"%d","user":{"id":"%d","username":"member"},"nick":"n%d","roles":["%d"],"joined_at":"2024-01-02T03:04:05.000000+00:00"}`,
				id, id+100000+uint64(i%100), i, id+1000)
		},
		"GUILD_MEMBER_ADD": func(i int) string {
			return fmt.Sprintf(`{"guild_id":"%d","user":{"id":"%d","username":"new"},"roles":[],"joined_at":"2024-01-02T03:04:05.000000+00:00","deaf":false,"mute":false}`,
				id, id+500000+uint64(i))
		},
		"CHANNEL_UPDATE": func(i int) string {
			return fmt.Sprintf(`{"id":"%d","guild_id":"%d","type":0,"name":"renamed-%d","position":3,"topic":"t","nsfw":false,"permission_overwrites":[]}`,
				id+uint64(i%50)+1, id, i)
		},
		"GUILD_ROLE_UPDATE": func(i int) string {
			return fmt.Sprintf(`{"guild_id":"%d","role":{"id":"%d","name":"role-%d","color":1,"hoist":true,"position":2,"permissions":"8","managed":false,"mentionable":true}}`,
				id, id+1000+uint64(i%20), i)
		},
		"GUILD_UPDATE": func(i int) string {
			return fmt.Sprintf(`{"id":"%d","name":"guild %d","afk_timeout":60,"verification_level":2}`, id, i)
		},
		"GUILD_CREATE": func(int) string { return string(benchGuild(id, 50, 20, 100)) },
	}
	for _, name := range []string{"GUILD_MEMBER_UPDATE", "GUILD_MEMBER_ADD", "CHANNEL_UPDATE", "GUILD_ROLE_UPDATE", "GUILD_UPDATE", "GUILD_CREATE"} {
		b.Run(name, func(b *testing.B) {
			c := guildcache.New(guildcache.Options{})
			if err := c.Apply("GUILD_CREATE", benchGuild(id, 50, 20, 100)); err != nil {
				b.Fatal(err)
			}
			data := make([]json.RawMessage, 1000)
			for i := range data {
				data[i] = json.RawMessage(events[name](i))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := c.Apply(name, data[i%len(data)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("GuildCreate rebuild", func(b *testing.B) {
		c := guildcache.New(guildcache.Options{})
		if err := c.Apply("GUILD_CREATE", benchGuild(id, 50, 20, 100)); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for range b.N {
			if _, ok := c.GuildCreate(strconv.FormatUint(id, 10)); !ok {
				b.Fatal("not cached")
			}
		}
	})
}
