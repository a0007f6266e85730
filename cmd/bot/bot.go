package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/disgo/rest"
	"github.com/disgoorg/snowflake/v2"
	"github.com/go-logr/logr"

	"github.com/shardkeeper/shardkeeper/botruntime"
)

// confirmTimeout is how long /confirm waits for its button.
const confirmTimeout = 30 * time.Second

// commands are the slash commands the default bot registers at start.
var commands = []discord.ApplicationCommandCreate{
	discord.SlashCommandCreate{Name: "ping", Description: "Answers pong, with the shard's heartbeat latency"},
	discord.SlashCommandCreate{Name: "shard", Description: "Which shard serves this server, its guild count and latency"},
	discord.SlashCommandCreate{Name: "confirm", Description: "Shows a button and waits 30 seconds for it"},
}

// pingBot is the default bot: /ping, !ping, /shard and /confirm.
type pingBot struct {
	rt       *botruntime.Runtime
	log      logr.Logger
	register sync.Once
	// confirmWait is how long /confirm waits (confirmTimeout; shorter in tests).
	confirmWait time.Duration
}

func (b *pingBot) handle(ctx context.Context, ev botruntime.Event) {
	switch data := ev.Data.(type) {
	case gateway.EventReady:
		b.register.Do(func() { b.registerCommands(ctx, data.Application.ID) })
	case gateway.EventMessageCreate:
		if data.Author.Bot || strings.TrimSpace(data.Content) != "!ping" {
			return
		}
		_, err := b.rt.REST().CreateMessage(data.ChannelID, discord.MessageCreate{
			Content:          b.pong(ev.Shard),
			MessageReference: &discord.MessageReference{MessageID: &data.ID},
		}, rest.WithCtx(ctx))
		if err != nil {
			b.log.Error(err, "replying to !ping", "channel", data.ChannelID)
		}
	case gateway.EventInteractionCreate:
		if cmd, ok := data.Interaction.(discord.ApplicationCommandInteraction); ok {
			b.command(ctx, ev, cmd)
		}
		// Button presses are taken by the WaitFor of the /confirm that showed them.
	}
}

func (b *pingBot) registerCommands(ctx context.Context, appID snowflake.ID) {
	if _, err := b.rt.REST().SetGlobalCommands(appID, commands, rest.WithCtx(ctx)); err != nil {
		b.log.Error(err, "registering slash commands")
		return
	}
	b.log.Info("slash commands registered", "count", len(commands))
}

func (b *pingBot) command(ctx context.Context, ev botruntime.Event, cmd discord.ApplicationCommandInteraction) {
	var err error
	switch cmd.Data.CommandName() {
	case "ping":
		err = b.respond(ctx, cmd, discord.MessageCreate{Content: b.pong(ev.Shard)})
	case "shard":
		st := b.shardStatus(ev.Shard)
		err = b.respond(ctx, cmd, discord.MessageCreate{Content: fmt.Sprintf("shard %d of %d: %d guilds, heartbeat latency %s",
			ev.Shard, b.shardCount(), st.Guilds, latency(st))})
	case "confirm":
		err = b.confirm(ctx, cmd)
	}
	if err != nil {
		b.log.Error(err, "answering a command", "command", cmd.Data.CommandName())
	}
}

// confirm shows a button and waits for it with WaitFor, bounded by confirmTimeout.
func (b *pingBot) confirm(ctx context.Context, cmd discord.ApplicationCommandInteraction) error {
	customID := "confirm:" + cmd.ID().String()
	// Watch for the press before showing the button, so a quick press cannot slip by.
	press := b.rt.Expect(func(ev botruntime.Event) bool {
		in, ok := ev.Data.(gateway.EventInteractionCreate)
		if !ok {
			return false
		}
		button, ok := in.Interaction.(discord.ComponentInteraction)
		return ok && button.Data.CustomID() == customID
	})
	err := b.respond(ctx, cmd, discord.MessageCreate{
		Content:    "Press the button within 30 seconds.",
		Components: []discord.LayoutComponent{discord.NewActionRow(discord.NewSuccessButton("Confirm", customID))},
	})
	if err != nil {
		press.Cancel()
		return err
	}
	// Wait off the dispatcher worker: this guild's other events go on meanwhile.
	go func() {
		if err := b.awaitConfirm(ctx, cmd, press); err != nil {
			b.log.Error(err, "finishing /confirm")
		}
	}()
	return nil
}

// awaitConfirm waits for the button of one /confirm and answers the press or the timeout.
func (b *pingBot) awaitConfirm(ctx context.Context, cmd discord.ApplicationCommandInteraction, press *botruntime.Expectation) error {
	waitCtx, cancel := context.WithTimeout(ctx, b.confirmWait)
	defer cancel()
	ev, err := press.Wait(waitCtx)
	if errors.Is(err, botruntime.ErrWaitTimeout) {
		timedOut := "Not confirmed: no press within 30 seconds."
		empty := []discord.LayoutComponent{}
		_, err = b.rt.REST().UpdateInteractionResponse(cmd.ApplicationID(), cmd.Token(),
			discord.MessageUpdate{Content: &timedOut, Components: &empty}, rest.WithCtx(ctx))
		return err
	}
	if err != nil {
		return err
	}
	pressed := ev.Data.(gateway.EventInteractionCreate).Interaction
	done := fmt.Sprintf("Confirmed by %s.", pressed.User().Username)
	return b.rt.REST().CreateInteractionResponse(pressed.ID(), pressed.Token(), discord.InteractionResponse{
		Type: discord.InteractionResponseTypeUpdateMessage,
		Data: discord.MessageUpdate{Content: &done, Components: &[]discord.LayoutComponent{}},
	}, rest.WithCtx(ctx))
}

func (b *pingBot) respond(ctx context.Context, in discord.Interaction, msg discord.MessageCreate) error {
	return b.rt.REST().CreateInteractionResponse(in.ID(), in.Token(), discord.InteractionResponse{
		Type: discord.InteractionResponseTypeCreateMessage, Data: msg,
	}, rest.WithCtx(ctx))
}

func (b *pingBot) pong(shard int) string {
	return fmt.Sprintf("pong (shard %d, heartbeat latency %s)", shard, latency(b.shardStatus(shard)))
}

// latency is the shard's last heartbeat round trip, or says there was none yet (the first
// heartbeat goes out up to one interval, 41.25 s on Discord, after connecting).
func latency(st botruntime.ShardStatus) string {
	if st.Latency <= 0 {
		return "not measured yet"
	}
	return st.Latency.Round(time.Millisecond).String()
}

func (b *pingBot) shardStatus(shard int) botruntime.ShardStatus {
	for _, st := range b.rt.Shards() {
		if st.ID == shard {
			return st
		}
	}
	return botruntime.ShardStatus{ID: shard}
}

func (b *pingBot) shardCount() int { return b.rt.Config().ShardCount }
