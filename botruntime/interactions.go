package botruntime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/rest"
)

// InteractionTokenLifetime is how long Discord accepts edits of an interaction's response.
const InteractionTokenLifetime = 15 * time.Minute

// REST is a Discord REST client authenticated with the bot's token, for replies,
// messages and commands. It honours the API URL override.
func (r *Runtime) REST() rest.Rest { return r.rest }

// ReplyLater acknowledges an interaction at once (Discord drops it after 3 seconds
// otherwise), then runs work, which may take up to the token's lifetime, and puts its
// result in the response. Call it from a handler; it returns when the reply is sent.
func (r *Runtime) ReplyLater(ctx context.Context, interaction discord.Interaction, ephemeral bool,
	work func(ctx context.Context) discord.MessageUpdate) error {
	if interaction == nil || work == nil {
		return errors.New("ReplyLater needs an interaction and work")
	}
	var flags discord.MessageFlags
	if ephemeral {
		flags = discord.MessageFlagEphemeral
	}
	// Both deadlines are Discord's (3 s to acknowledge, the token's lifetime counted from
	// the interaction's snowflake), so wall times, whatever the runtime's clock.
	ackCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := r.rest.CreateInteractionResponse(interaction.ID(), interaction.Token(), discord.InteractionResponse{
		Type: discord.InteractionResponseTypeDeferredCreateMessage,
		Data: discord.MessageCreate{Flags: flags},
	}, rest.WithCtx(ackCtx))
	if err != nil {
		return fmt.Errorf("acknowledging interaction %s: %w", interaction.ID(), err)
	}

	workCtx, cancelWork := context.WithDeadline(ctx, interaction.CreatedAt().Add(InteractionTokenLifetime))
	defer cancelWork()
	update := work(workCtx)
	if _, err := r.rest.UpdateInteractionResponse(interaction.ApplicationID(), interaction.Token(), update, rest.WithCtx(workCtx)); err != nil {
		return fmt.Errorf("replying to interaction %s: %w", interaction.ID(), err)
	}
	return nil
}
