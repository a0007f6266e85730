package discordtest

import (
	"testing"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
)

func TestInjectedEventsUnmarshalWithDisgo(t *testing.T) {
	g := guildID(5)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	c := dial(t, srv, "")
	c.identify(0, 1, 1)

	// MESSAGE_CREATE
	before := time.Now().Add(-time.Second)
	srv.SendMessage(g, 777, "hello bot")
	m := c.nextDispatch(gateway.EventTypeMessageCreate).Msg.D.(gateway.EventMessageCreate)
	if m.Content != "hello bot" || uint64(m.ChannelID) != 777 || m.GuildID == nil || uint64(*m.GuildID) != g ||
		m.ID == 0 || m.Author.Bot || uint64(m.Author.ID) != TestUserID || m.Author.Username != TestUsername ||
		m.CreatedAt.Before(before) || m.Member == nil || m.Type != discord.MessageTypeDefault {
		t.Fatalf("bad MESSAGE_CREATE: %+v", m)
	}
	id := srv.SendMessageWithID(g, 777, "second")
	if m := c.nextDispatch(gateway.EventTypeMessageCreate).Msg.D.(gateway.EventMessageCreate); uint64(m.ID) != id {
		t.Fatalf("message ID %d, want %d", m.ID, id)
	}

	// INTERACTION_CREATE, application command
	iid := srv.SendSlashCommand(g, "ping")
	in := c.nextDispatch(gateway.EventTypeInteractionCreate).Msg.D.(gateway.EventInteractionCreate)
	cmd, ok := in.Interaction.(discord.ApplicationCommandInteraction)
	if !ok {
		t.Fatalf("interaction %T, want ApplicationCommandInteraction", in.Interaction)
	}
	data, ok := cmd.Data.(discord.SlashCommandInteractionData)
	if !ok {
		t.Fatalf("data %T, want SlashCommandInteractionData", cmd.Data)
	}
	if uint64(cmd.ID()) != iid || cmd.Type() != discord.InteractionTypeApplicationCommand ||
		cmd.Token() == "" || cmd.Token() != srv.InteractionToken(iid) ||
		uint64(cmd.ApplicationID()) != DefaultApplicationID || cmd.GuildID() == nil || uint64(*cmd.GuildID()) != g ||
		cmd.Member() == nil || uint64(cmd.Member().User.ID) != TestUserID || cmd.User().ID != cmd.Member().User.ID ||
		cmd.Channel().MessageChannel == nil || uint64(cmd.Channel().ID()) != g ||
		data.CommandName() == "" || data.CommandName() != "ping" || data.CommandID() == 0 || data.Type() != discord.ApplicationCommandTypeSlash {
		t.Fatalf("bad slash command interaction: %+v / %+v", cmd, data)
	}

	// INTERACTION_CREATE, button
	bid := srv.SendButtonPress(g, "confirm:42", 31337)
	in = c.nextDispatch(gateway.EventTypeInteractionCreate).Msg.D.(gateway.EventInteractionCreate)
	comp, ok := in.Interaction.(discord.ComponentInteraction)
	if !ok {
		t.Fatalf("interaction %T, want ComponentInteraction", in.Interaction)
	}
	bd, ok := comp.Data.(discord.ButtonInteractionData)
	if !ok {
		t.Fatalf("data %T, want ButtonInteractionData", comp.Data)
	}
	if uint64(comp.ID()) != bid || bid == iid || comp.Type() != discord.InteractionTypeComponent ||
		comp.Token() != srv.InteractionToken(bid) || bd.CustomID() != "confirm:42" ||
		uint64(comp.Message.ID) != 31337 || !comp.Message.Author.Bot || len(comp.Message.Components) != 1 ||
		comp.Member() == nil || uint64(*comp.GuildID()) != g {
		t.Fatalf("bad button interaction: %+v / %+v", comp, bd)
	}

	if srv.InteractionToken(12345) != "" {
		t.Fatal("token for unknown interaction")
	}
}

func TestSlashCommandUsesRegisteredCommandID(t *testing.T) {
	g := guildID(5)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	status, _ := do(t, "PUT", srv.APIURL()+"/applications/1000/commands", "Bot "+DefaultToken,
		`[{"name":"ping","description":"pong"}]`)
	if status != 200 {
		t.Fatalf("PUT commands: %d", status)
	}
	var registered jsonID
	{
		var cmds []struct {
			ID jsonID `json:"id"`
		}
		raws := srv.Commands()
		if len(raws) != 1 {
			t.Fatalf("commands %s", raws)
		}
		mustUnmarshal(t, "["+string(raws[0])+"]", &cmds)
		registered = cmds[0].ID
	}

	c := dial(t, srv, "")
	c.identify(0, 1, 1)
	srv.SendSlashCommand(g, "ping")
	in := c.nextDispatch(gateway.EventTypeInteractionCreate).Msg.D.(gateway.EventInteractionCreate)
	data := in.Interaction.(discord.ApplicationCommandInteraction).Data.(discord.SlashCommandInteractionData)
	if uint64(data.CommandID()) != uint64(registered) {
		t.Fatalf("command ID %d, want registered %d", data.CommandID(), registered)
	}
}

func TestDispatchWithoutSessionIsDropped(t *testing.T) {
	g := guildID(1)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	srv.SendMessage(g, g, "nobody listens") // no session: dropped, no panic
	c := dial(t, srv, "")
	c.identify(0, 1, 1)
	srv.SendMessage(g, g, "first")
	f := c.nextDispatch(gateway.EventTypeMessageCreate)
	if m := f.Msg.D.(gateway.EventMessageCreate); m.Content != "first" || f.Msg.S != 3 {
		t.Fatalf("got %q seq %d", m.Content, f.Msg.S)
	}
}
