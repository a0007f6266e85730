package discordtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/disgoorg/disgo/gateway"
)

// Every guild mutation changes the state, dispatches its event as Discord shapes it
// (disgo decodes each frame), and a client identifying afterwards gets a GUILD_CREATE
// that is exactly GuildCreate.
func TestGuildMutationsDispatchAndShowInGuildCreate(t *testing.T) {
	g := guildID(1)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	c := dial(t, srv, "")
	c.identify(0, 1, 1)

	topic := "chat"
	nick := "nick"
	var channel, thread, role, member uint64
	steps := []struct {
		name  string
		event gateway.EventType
		do    func() error
		check func(d json.RawMessage) bool
	}{
		{"rename guild", gateway.EventTypeGuildUpdate, func() error {
			return srv.UpdateGuild(g, func(s *GuildSettings) { s.Name = "renamed" })
		}, func(d json.RawMessage) bool {
			return bytes.Contains(d, []byte(`"name":"renamed"`)) && !bytes.Contains(d, []byte(`"members"`))
		}},
		{"create channel", gateway.EventTypeChannelCreate, func() (err error) {
			channel, err = srv.CreateChannel(g, Channel{Name: "second", Topic: &topic})
			return err
		}, func(d json.RawMessage) bool { return bytes.Contains(d, []byte(`"topic":"chat"`)) }},
		{"update channel", gateway.EventTypeChannelUpdate, func() error {
			return srv.UpdateChannel(g, channel, func(c *Channel) { c.NSFW = true })
		}, func(d json.RawMessage) bool { return bytes.Contains(d, []byte(`"nsfw":true`)) }},
		{"create thread", gateway.EventTypeThreadCreate, func() (err error) {
			thread, err = srv.CreateThread(g, Thread{ParentID: channel, Name: "t", OwnerID: TestUserID})
			return err
		}, func(d json.RawMessage) bool { return bytes.Contains(d, []byte(`"newly_created":true`)) }},
		{"archive thread", gateway.EventTypeThreadUpdate, func() error {
			return srv.UpdateThread(g, thread, func(t *Thread) { t.Archived = true })
		}, func(d json.RawMessage) bool { return bytes.Contains(d, []byte(`"archived":true`)) }},
		{"create role", gateway.EventTypeGuildRoleCreate, func() (err error) {
			role, err = srv.CreateRole(g, Role{Name: "mods", Hoist: true})
			return err
		}, func(d json.RawMessage) bool { return bytes.Contains(d, []byte(`"name":"mods"`)) }},
		{"add member", gateway.EventTypeGuildMemberAdd, func() (err error) {
			member, err = srv.AddMember(g, Member{Roles: []uint64{role}})
			return err
		}, func(d json.RawMessage) bool { return bytes.Contains(d, []byte(`"guild_id"`)) }},
		{"update member", gateway.EventTypeGuildMemberUpdate, func() error {
			return srv.UpdateMember(g, member, func(m *Member) { m.Nick = &nick })
		}, func(d json.RawMessage) bool { return bytes.Contains(d, []byte(`"nick":"nick"`)) }},
		{"set emojis", gateway.EventTypeGuildEmojisUpdate, func() error {
			return srv.SetEmojis(g, []Emoji{{Name: "wave", Available: true}})
		}, func(d json.RawMessage) bool { return bytes.Contains(d, []byte(`"name":"wave"`)) }},
		{"delete role", gateway.EventTypeGuildRoleDelete, func() error { return srv.DeleteRole(g, role) }, nil},
		{"delete channel", gateway.EventTypeChannelDelete, func() error { return srv.DeleteChannel(g, channel) }, nil},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		f := c.nextDispatch(step.event)
		if step.check != nil && !step.check(f.Raw["d"]) {
			t.Fatalf("%s: %s %s", step.name, step.event, f.Raw["d"])
		}
	}
	if err := srv.UpdateChannel(g, channel, func(*Channel) {}); !errors.Is(err, ErrUnknownObject) {
		t.Fatalf("updating a deleted channel: %v", err)
	}

	want := srv.GuildCreate(g)
	var gc gateway.EventGuildCreate
	if err := json.Unmarshal(want, &gc); err != nil {
		t.Fatal(err)
	}
	if gc.Name != "renamed" || len(gc.Channels) != 1 || len(gc.Threads) != 0 || len(gc.Roles) != 1 ||
		len(gc.Members) != 2 || gc.MemberCount != 3 || len(gc.Emojis) != 1 || len(gc.Members[1].RoleIDs) != 0 {
		t.Fatalf("GuildCreate after the changes: %s", want)
	}
	again := dial(t, srv, "")
	again.hello()
	again.send(2, identifyPayload(DefaultToken, 0, 1, int64(gateway.IntentsNonPrivileged)))
	again.nextDispatch(gateway.EventTypeReady)
	if got := again.nextDispatch(gateway.EventTypeGuildCreate).Raw["d"]; !bytes.Equal(got, want) {
		t.Fatalf("GUILD_CREATE on identify:\n%s\nGuildCreate:\n%s", got, want)
	}
}

// An outage sends GUILD_DELETE unavailable and keeps the guild out of GUILD_CREATEs on
// identify until it ends; a removed guild leaves READY.
func TestGuildOutageAndRemoval(t *testing.T) {
	g1, g2 := guildID(1), guildID(2)
	srv := newTestServer(t, Options{Guilds: []uint64{g1, g2}})
	c := dial(t, srv, "")
	c.identify(0, 1, 2)

	if err := srv.SetGuildUnavailable(g1, true); err != nil {
		t.Fatal(err)
	}
	if d := c.nextDispatch(gateway.EventTypeGuildDelete).Msg.D.(gateway.EventGuildDelete); !d.Unavailable || uint64(d.ID) != g1 {
		t.Fatalf("GUILD_DELETE %+v", d)
	}
	if _, err := srv.CreateChannel(g1, Channel{Name: "x"}); !errors.Is(err, ErrGuildUnavailable) {
		t.Fatalf("a change during the outage: %v", err)
	}
	if got := string(srv.GuildCreate(g1)); got != `{"id":"`+jsonIDString(g1)+`","unavailable":true}` {
		t.Fatalf("GuildCreate during the outage: %s", got)
	}
	if err := srv.RemoveGuild(g2); err != nil {
		t.Fatal(err)
	}
	if d := c.nextDispatch(gateway.EventTypeGuildDelete).Msg.D.(gateway.EventGuildDelete); d.Unavailable || uint64(d.ID) != g2 {
		t.Fatalf("GUILD_DELETE %+v", d)
	}

	again := dial(t, srv, "")
	again.hello()
	again.send(2, identifyPayload(DefaultToken, 0, 1, int64(gateway.IntentsNonPrivileged)))
	ready := again.nextDispatch(gateway.EventTypeReady).Msg.D.(gateway.EventReady)
	if len(ready.Guilds) != 1 || uint64(ready.Guilds[0].ID) != g1 {
		t.Fatalf("READY guilds %+v, want only %d", ready.Guilds, g1)
	}
	if err := srv.SetGuildUnavailable(g1, false); err != nil {
		t.Fatal(err)
	}
	// The first dispatch after READY is the end of the outage, not a GUILD_CREATE sent
	// at identify.
	if f := again.nextDispatch(gateway.EventTypeGuildCreate); f.Msg.S != 2 || !bytes.Equal(f.Raw["d"], srv.GuildCreate(g1)) {
		t.Fatalf("GUILD_CREATE at the end of the outage: seq %d %s", f.Msg.S, f.Raw["d"])
	}
}
