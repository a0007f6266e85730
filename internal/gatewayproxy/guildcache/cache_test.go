package guildcache_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/guildcache"
)

const guildID = "100"

// baseGuild is a GUILD_CREATE with a field of every kind, one the proxy does not know
// ("x_new_field") included.
const baseGuild = `{"id":"100","name":"g","x_new_field":{"a":[1,2]},"joined_at":"2024-01-01T00:00:00.000000+00:00",
"large":false,"member_count":2,"unavailable":false,
"channels":[{"id":"1","type":0,"name":"general","x_chan":true},{"id":"2","type":4,"name":"cat"}],
"threads":[{"id":"50","parent_id":"1","name":"t","thread_metadata":{"archived":false},"member":{"id":"50","flags":0}}],
"roles":[{"id":"100","name":"@everyone"},{"id":"10","name":"mods"}],
"emojis":[{"id":"20","name":"e"}],"stickers":[],
"members":[{"user":{"id":"7","username":"a"},"roles":["10"],"nick":null,"x_mem":1},{"user":{"id":"8","username":"b"},"roles":[]}],
"voice_states":[{"user_id":"7","channel_id":"1","session_id":"s"}],
"presences":[{"user":{"id":"7"},"status":"online"}],
"stage_instances":[],"guild_scheduled_events":[{"id":"60","name":"ev"}]}`

func newCache(t *testing.T, opts guildcache.Options) *guildcache.Cache {
	t.Helper()
	c := guildcache.New(opts)
	if err := c.Reset(json.RawMessage(`{"v":10,"guilds":[{"id":"100","unavailable":true},{"id":"200","unavailable":true}]}`)); err != nil {
		t.Fatal(err)
	}
	apply(t, c, "GUILD_CREATE", baseGuild)
	return c
}

func apply(t *testing.T, c *guildcache.Cache, typ, data string) {
	t.Helper()
	if err := c.Apply(typ, json.RawMessage(data)); err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
}

// cached is the guild's GUILD_CREATE decoded.
func cached(t *testing.T, c *guildcache.Cache, id string) map[string]any {
	t.Helper()
	raw, ok := c.GuildCreate(id)
	if !ok {
		t.Fatalf("guild %s not cached", id)
	}
	return normalize(t, raw).(map[string]any)
}

// ids lists the keys of a list of the cached guild, in order.
func ids(t *testing.T, g map[string]any, field string) string {
	t.Helper()
	list, _ := g[field].([]any)
	var out []string
	for _, el := range list {
		k, _ := sortKey(el)
		out = append(out, k)
	}
	return strings.Join(out, ",")
}

func asJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestGuildCreateRoundTrips(t *testing.T) {
	c := newCache(t, guildcache.Options{Presences: true})
	if d := jsonDiff(cached(t, c, guildID), normalize(t, json.RawMessage(baseGuild))); d != "" {
		t.Fatal(d)
	}
	// Without presences, the list is there and empty.
	c = newCache(t, guildcache.Options{})
	if got := ids(t, cached(t, c, guildID), "presences"); got != "" {
		t.Fatalf("presences without the intent: %s", got)
	}
	if got := c.Guilds(); len(got) != 2 || got[0] != (guildcache.Guild{ID: "100"}) || got[1] != (guildcache.Guild{ID: "200", Unavailable: true}) {
		t.Fatalf("Guilds() = %v", got)
	}
	if raw, _ := c.GuildCreate("200"); string(raw) != `{"id":"200","unavailable":true}` {
		t.Fatalf("unavailable guild: %s", raw)
	}
	if st := c.Stats(); st.Guilds != 2 || st.Unavailable != 1 || st.Bytes < int64(len(baseGuild)) {
		t.Fatalf("Stats() = %+v", st)
	}
}

func TestEvents(t *testing.T) {
	tests := []struct {
		name      string
		presences bool
		events    [][2]string
		check     func(t *testing.T, g map[string]any)
	}{
		{name: "GUILD_UPDATE merges and keeps GUILD_CREATE's fields", events: [][2]string{{"GUILD_UPDATE",
			`{"id":"100","name":"renamed","roles":[{"id":"100","name":"@everyone"}],"emojis":[],"x_other":2}`}},
			check: func(t *testing.T, g map[string]any) {
				if g["name"] != "renamed" || asJSON(g["x_new_field"]) != `{"a":[1,2]}` || g["x_other"] == nil ||
					g["joined_at"] == nil || ids(t, g, "channels") != "1,2" || ids(t, g, "members") != "7,8" ||
					asJSON(g["member_count"]) != "2" || ids(t, g, "roles") != "100" || ids(t, g, "emojis") != "" {
					t.Fatal(asJSON(g))
				}
			}},
		{name: "CHANNEL_CREATE, _UPDATE merges, _DELETE takes its threads", events: [][2]string{
			{"CHANNEL_CREATE", `{"id":"3","guild_id":"100","type":0,"name":"new"}`},
			{"CHANNEL_UPDATE", `{"id":"1","guild_id":"100","type":0,"name":"renamed"}`},
			{"CHANNEL_DELETE", `{"id":"1","guild_id":"100","type":0}`},
			{"CHANNEL_CREATE", `{"id":"900","type":1,"recipients":[]}`}, // a DM: not a guild's
		}, check: func(t *testing.T, g map[string]any) {
			if ids(t, g, "channels") != "2,3" || ids(t, g, "threads") != "" {
				t.Fatal(asJSON(g))
			}
		}},
		{name: "CHANNEL_UPDATE keeps fields it lacks", events: [][2]string{
			{"CHANNEL_UPDATE", `{"id":"1","guild_id":"100","name":"renamed"}`},
		}, check: func(t *testing.T, g map[string]any) {
			if ch := g["channels"].([]any)[0].(map[string]any); ch["name"] != "renamed" || ch["x_chan"] != true {
				t.Fatal(asJSON(ch))
			}
		}},
		{name: "threads: create, update keeps member, archive removes, delete", events: [][2]string{
			{"THREAD_CREATE", `{"id":"51","guild_id":"100","parent_id":"2","name":"n","newly_created":true,"thread_metadata":{"archived":false}}`},
			{"THREAD_UPDATE", `{"id":"50","guild_id":"100","parent_id":"1","name":"renamed","thread_metadata":{"archived":false}}`},
			{"THREAD_CREATE", `{"id":"52","guild_id":"100","parent_id":"2","name":"n","thread_metadata":{"archived":false}}`},
			{"THREAD_UPDATE", `{"id":"52","guild_id":"100","parent_id":"2","thread_metadata":{"archived":true}}`},
			{"THREAD_CREATE", `{"id":"53","guild_id":"100","parent_id":"2","name":"n","thread_metadata":{"archived":false}}`},
			{"THREAD_DELETE", `{"id":"53","guild_id":"100","parent_id":"2","type":11}`},
			{"THREAD_MEMBERS_UPDATE", `{"id":"51","guild_id":"100","member_count":4}`},
		}, check: func(t *testing.T, g map[string]any) {
			ts := g["threads"].([]any)
			if ids(t, g, "threads") != "50,51" || ts[0].(map[string]any)["member"] == nil ||
				ts[0].(map[string]any)["name"] != "renamed" || ts[1].(map[string]any)["newly_created"] != nil ||
				asJSON(ts[1].(map[string]any)["member_count"]) != "4" {
				t.Fatal(asJSON(ts))
			}
		}},
		{name: "THREAD_LIST_SYNC replaces the named channels' threads", events: [][2]string{
			{"THREAD_CREATE", `{"id":"51","guild_id":"100","parent_id":"2","name":"n"}`},
			{"THREAD_LIST_SYNC", `{"guild_id":"100","channel_ids":["1"],"threads":[{"id":"55","parent_id":"1","name":"s"}],"members":[{"id":"55","user_id":"1","flags":0}]}`},
		}, check: func(t *testing.T, g map[string]any) {
			ts := g["threads"].([]any)
			if ids(t, g, "threads") != "51,55" || ts[1].(map[string]any)["member"] == nil {
				t.Fatal(asJSON(ts))
			}
		}},
		{name: "THREAD_LIST_SYNC without channel_ids replaces every thread", events: [][2]string{
			{"THREAD_LIST_SYNC", `{"guild_id":"100","threads":[{"id":"56","parent_id":"2"}],"members":[]}`},
		}, check: func(t *testing.T, g map[string]any) {
			if ids(t, g, "threads") != "56" {
				t.Fatal(asJSON(g["threads"]))
			}
		}},
		{name: "roles: create, update, delete takes the role off members", events: [][2]string{
			{"GUILD_ROLE_CREATE", `{"guild_id":"100","role":{"id":"11","name":"new"}}`},
			{"GUILD_ROLE_UPDATE", `{"guild_id":"100","role":{"id":"11","name":"renamed"}}`},
			{"GUILD_ROLE_DELETE", `{"guild_id":"100","role_id":"10"}`},
		}, check: func(t *testing.T, g map[string]any) {
			if ids(t, g, "roles") != "11,100" || asJSON(g["members"].([]any)[0].(map[string]any)["roles"]) != "[]" ||
				g["members"].([]any)[0].(map[string]any)["x_mem"] == nil {
				t.Fatal(asJSON(g))
			}
		}},
		{name: "emojis and stickers are replaced", events: [][2]string{
			{"GUILD_EMOJIS_UPDATE", `{"guild_id":"100","emojis":[{"id":"21","name":"x"},{"id":"22","name":"y"}]}`},
			{"GUILD_STICKERS_UPDATE", `{"guild_id":"100","stickers":[{"id":"30","name":"s"}]}`},
		}, check: func(t *testing.T, g map[string]any) {
			if ids(t, g, "emojis") != "21,22" || ids(t, g, "stickers") != "30" {
				t.Fatal(asJSON(g))
			}
		}},
		{name: "members: add, update merges, remove, member_count in step", events: [][2]string{
			{"GUILD_MEMBER_ADD", `{"guild_id":"100","user":{"id":"9","username":"c"},"roles":[],"joined_at":"x"}`},
			{"GUILD_MEMBER_UPDATE", `{"guild_id":"100","user":{"id":"7","username":"a2"},"roles":["10"],"nick":"n"}`},
			{"GUILD_MEMBER_REMOVE", `{"guild_id":"100","user":{"id":"8","username":"b"}}`},
			{"GUILD_MEMBER_ADD", `{"guild_id":"100","user":{"id":"5"},"roles":[]}`},
		}, check: func(t *testing.T, g map[string]any) {
			ms := g["members"].([]any)
			first := ms[1].(map[string]any) // sorted by user ID: 5, 7, 9
			if ids(t, g, "members") != "5,7,9" || asJSON(g["member_count"]) != "3" || first["nick"] != "n" ||
				first["x_mem"] == nil || first["guild_id"] != nil || ms[2].(map[string]any)["guild_id"] != nil {
				t.Fatal(asJSON(g))
			}
		}},
		{name: "GUILD_MEMBERS_CHUNK adds members, presences when kept", presences: true, events: [][2]string{
			{"GUILD_MEMBERS_CHUNK", `{"guild_id":"100","members":[{"user":{"id":"12"},"roles":[]}],"presences":[{"user":{"id":"12"},"status":"idle"}],"chunk_index":0,"chunk_count":1}`},
		}, check: func(t *testing.T, g map[string]any) {
			if ids(t, g, "members") != "7,8,12" || ids(t, g, "presences") != "7,12" || asJSON(g["member_count"]) != "2" {
				t.Fatal(asJSON(g))
			}
		}},
		{name: "presences are dropped without the intent", events: [][2]string{
			{"PRESENCE_UPDATE", `{"guild_id":"100","user":{"id":"8"},"status":"online"}`},
			{"GUILD_MEMBERS_CHUNK", `{"guild_id":"100","members":[],"presences":[{"user":{"id":"12"},"status":"idle"}]}`},
		}, check: func(t *testing.T, g map[string]any) {
			if ids(t, g, "presences") != "" {
				t.Fatal(asJSON(g["presences"]))
			}
		}},
		{name: "PRESENCE_UPDATE with the intent", presences: true, events: [][2]string{
			{"PRESENCE_UPDATE", `{"guild_id":"100","user":{"id":"8"},"status":"dnd"}`},
			{"PRESENCE_UPDATE", `{"guild_id":"100","user":{"id":"7"},"status":"idle"}`},
		}, check: func(t *testing.T, g map[string]any) {
			ps := g["presences"].([]any)
			if ids(t, g, "presences") != "7,8" || ps[0].(map[string]any)["status"] != "idle" || ps[1].(map[string]any)["guild_id"] != nil {
				t.Fatal(asJSON(ps))
			}
		}},
		{name: "voice states: join, move, leave", events: [][2]string{
			{"VOICE_STATE_UPDATE", `{"guild_id":"100","user_id":"8","channel_id":"1","session_id":"t"}`},
			{"VOICE_STATE_UPDATE", `{"guild_id":"100","user_id":"8","channel_id":"2","session_id":"t"}`},
			{"VOICE_STATE_UPDATE", `{"guild_id":"100","user_id":"7","channel_id":null,"session_id":"s"}`},
		}, check: func(t *testing.T, g map[string]any) {
			vs := g["voice_states"].([]any)
			if ids(t, g, "voice_states") != "8" || vs[0].(map[string]any)["channel_id"] != "2" || vs[0].(map[string]any)["guild_id"] != nil {
				t.Fatal(asJSON(vs))
			}
		}},
		{name: "stage instances and scheduled events", events: [][2]string{
			{"STAGE_INSTANCE_CREATE", `{"id":"70","guild_id":"100","channel_id":"2","topic":"a"}`},
			{"STAGE_INSTANCE_UPDATE", `{"id":"70","guild_id":"100","channel_id":"2","topic":"b"}`},
			{"STAGE_INSTANCE_CREATE", `{"id":"71","guild_id":"100","channel_id":"2","topic":"c"}`},
			{"STAGE_INSTANCE_DELETE", `{"id":"71","guild_id":"100","channel_id":"2","topic":"c"}`},
			{"GUILD_SCHEDULED_EVENT_CREATE", `{"id":"61","guild_id":"100","name":"x"}`},
			{"GUILD_SCHEDULED_EVENT_UPDATE", `{"id":"60","guild_id":"100","name":"renamed"}`},
			{"GUILD_SCHEDULED_EVENT_DELETE", `{"id":"61","guild_id":"100","name":"x"}`},
		}, check: func(t *testing.T, g map[string]any) {
			if ids(t, g, "stage_instances") != "70" || g["stage_instances"].([]any)[0].(map[string]any)["topic"] != "b" ||
				ids(t, g, "guild_scheduled_events") != "60" || g["guild_scheduled_events"].([]any)[0].(map[string]any)["name"] != "renamed" {
				t.Fatal(asJSON(g))
			}
		}},
		{name: "unknown events and other guilds' events are ignored", events: [][2]string{
			{"MESSAGE_CREATE", `{"id":"1","channel_id":"1","guild_id":"100"}`},
			{"SOMETHING_NEW", `not even JSON`},
			{"CHANNEL_CREATE", `{"id":"3","guild_id":"200","name":"in an unavailable guild"}`},
			{"CHANNEL_CREATE", `{"id":"4","guild_id":"300","name":"in a guild not held"}`},
		}, check: func(t *testing.T, g map[string]any) {
			if ids(t, g, "channels") != "1,2" {
				t.Fatal(asJSON(g["channels"]))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, guildcache.Options{Presences: tt.presences})
			for _, ev := range tt.events {
				apply(t, c, ev[0], ev[1])
			}
			tt.check(t, cached(t, c, guildID))
			if raw, _ := c.GuildCreate("200"); string(raw) != `{"id":"200","unavailable":true}` {
				t.Fatalf("the unavailable guild: %s", raw)
			}
		})
	}
}

func TestGuildDelete(t *testing.T) {
	c := newCache(t, guildcache.Options{})
	apply(t, c, "GUILD_DELETE", `{"id":"100","unavailable":true}`)
	if raw, ok := c.GuildCreate(guildID); !ok || string(raw) != `{"id":"100","unavailable":true}` {
		t.Fatalf("after an outage began: %s %v", raw, ok)
	}
	apply(t, c, "CHANNEL_CREATE", `{"id":"3","guild_id":"100","name":"during the outage"}`)
	apply(t, c, "GUILD_CREATE", baseGuild)
	if got := ids(t, cached(t, c, guildID), "channels"); got != "1,2" {
		t.Fatalf("channels after the outage: %s", got)
	}
	apply(t, c, "GUILD_DELETE", `{"id":"100"}`)
	if _, ok := c.GuildCreate(guildID); ok {
		t.Fatal("a guild the bot left is still cached")
	}
	if got := c.Guilds(); len(got) != 1 || got[0].ID != "200" {
		t.Fatalf("Guilds() = %v", got)
	}
	// A guild the bot joins comes last.
	apply(t, c, "GUILD_CREATE", strings.Replace(baseGuild, `"id":"100"`, `"id":"300"`, 1))
	if got := c.Guilds(); len(got) != 2 || got[1] != (guildcache.Guild{ID: "300"}) {
		t.Fatalf("Guilds() = %v", got)
	}
}

func TestMalformedEventsChangeNothing(t *testing.T) {
	bad := [][2]string{
		{"GUILD_CREATE", `{"id":"100","channels":[{"name":"no id"}]}`},
		{"GUILD_CREATE", `{"id":"nope"}`},
		{"GUILD_CREATE", `[]`},
		{"GUILD_CREATE", `null`},
		{"GUILD_UPDATE", `{"id":"100","name":"x","roles":{"not":"a list"}}`},
		{"GUILD_UPDATE", `{"name":"no id"}`},
		{"GUILD_DELETE", `{"unavailable":true}`},
		{"CHANNEL_CREATE", `{"guild_id":"100","name":"no id"}`},
		{"CHANNEL_UPDATE", `{"id":"1","guild_id":"100",`},
		{"CHANNEL_DELETE", `{"guild_id":"100"}`},
		{"THREAD_CREATE", `{"id":"51","parent_id":"1"}`},
		{"THREAD_UPDATE", `{"id":"50","guild_id":"100","thread_metadata":"archived"}`},
		{"THREAD_LIST_SYNC", `{"guild_id":"100","channel_ids":["x"],"threads":[]}`},
		{"GUILD_ROLE_CREATE", `{"guild_id":"100","role":null}`},
		{"GUILD_ROLE_DELETE", `{"guild_id":"100"}`},
		{"GUILD_EMOJIS_UPDATE", `{"guild_id":"100"}`},
		{"GUILD_EMOJIS_UPDATE", `{"guild_id":"100","emojis":[{"id":"21"},{"name":"no id"}]}`},
		{"GUILD_MEMBER_ADD", `{"guild_id":"100","roles":[]}`},
		{"GUILD_MEMBER_UPDATE", `{"guild_id":"100","user":{"id":""}}`},
		{"GUILD_MEMBER_REMOVE", `{"guild_id":"100","user":"7"}`},
		{"GUILD_MEMBERS_CHUNK", `{"guild_id":"100","members":[{"user":{"id":"12"}},{"roles":[]}]}`},
		{"VOICE_STATE_UPDATE", `{"guild_id":"100","channel_id":"1"}`},
		{"STAGE_INSTANCE_DELETE", `{"guild_id":"100"}`},
		{"GUILD_SCHEDULED_EVENT_CREATE", `{"id":"61"}`},
		{"GUILD_SCHEDULED_EVENT_CREATE", `{"id":"61","guild_id":5.5}`},
	}
	c := newCache(t, guildcache.Options{Presences: true})
	before, _ := c.GuildCreate(guildID)
	for _, ev := range bad {
		if err := c.Apply(ev[0], json.RawMessage(ev[1])); err == nil {
			t.Errorf("%s %s: no error", ev[0], ev[1])
		}
	}
	if after, _ := c.GuildCreate(guildID); string(after) != string(before) {
		t.Fatalf("malformed events changed the guild:\n%s\n%s", before, after)
	}
	if got := c.Guilds(); len(got) != 2 {
		t.Fatalf("Guilds() = %v", got)
	}
	for _, ready := range []string{`{"guilds":[{"unavailable":true}]}`, `{"guilds":{}}`, `"x"`} {
		if err := c.Reset(json.RawMessage(ready)); err == nil {
			t.Errorf("Reset(%s): no error", ready)
		}
	}
	if got := c.Guilds(); len(got) != 2 {
		t.Fatalf("a bad READY changed the guilds: %v", got)
	}
}
