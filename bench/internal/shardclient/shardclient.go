// Package shardclient connects one shard (shard 0 of 1) to a fake Discord
// (internal/discordtest) the ways the benchmarks compare: with botruntime, and with plain
// disgo v0.19.6 as a disgo bot is usually written. Each calls onMessage for every
// MESSAGE_CREATE on its handler path, so a benchmark can slow handlers down or count what
// they got.
package shardclient

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/disgoorg/disgo"
	"github.com/disgoorg/disgo/bot"
	"github.com/disgoorg/disgo/events"
	"github.com/disgoorg/disgo/gateway"
	"github.com/disgoorg/disgo/rest"
	"github.com/go-logr/logr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// Token is a bot token shaped like Discord's (base64 of the application ID, then two
// more parts), which disgo's bot.New insists on. Give it to the fake Discord as
// discordtest.Options.Token when a benchmark runs DisgoBot.
var Token = base64.RawStdEncoding.EncodeToString([]byte(strconv.Itoa(discordtest.DefaultApplicationID))) + ".bench.token"

// Client runs one shard against srv until ctx ends, calling onMessage for every
// MESSAGE_CREATE a handler receives.
type Client func(ctx context.Context, srv *discordtest.Server, onMessage func()) error

// Botruntime runs the shard with botruntime, onMessage on its dispatcher's handler workers.
func Botruntime(ctx context.Context, srv *discordtest.Server, onMessage func()) error {
	dir, err := os.MkdirTemp("", "shardclient")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(srv.Options().Token), 0o600); err != nil {
		return err
	}
	rt, err := botruntime.New(botruntime.Config{
		ShardIDs: []int{0}, ShardCount: 1, TokenFile: tokenFile,
		Intents:    []shardkeeperv1.Intent{"GUILDS", "GUILD_MESSAGES"},
		GatewayURL: srv.URL(), APIURL: srv.APIURL(), MaxConcurrency: 1, IdentifyInterval: time.Millisecond,
		// As the disgo clients here and the raw reader: compression is measured on its own.
		Compression: botruntime.CompressionNone,
	}, botruntime.WithLogger(logr.Discard()), botruntime.WithShutdownTimeout(time.Second))
	if err != nil {
		return err
	}
	if err := rt.Handle(func(_ context.Context, ev botruntime.Event) {
		if _, ok := ev.Data.(gateway.EventMessageCreate); ok {
			onMessage()
		}
	}); err != nil {
		return err
	}
	return rt.Run(ctx)
}

// DisgoGateway runs the shard with disgo's gateway alone: its event callback, which runs
// on the gateway's read loop, is the handler.
func DisgoGateway(ctx context.Context, srv *discordtest.Server, onMessage func()) error {
	gw := gateway.New(srv.Options().Token, func(_ gateway.Gateway, _ gateway.EventType, _ int, ev gateway.EventData) {
		if _, ok := ev.(gateway.EventMessageCreate); ok {
			onMessage()
		}
	},
		gateway.WithURL(srv.URL()), gateway.WithCompression(gateway.CompressionNone),
		gateway.WithShardID(0), gateway.WithShardCount(1),
		gateway.WithIntents(gateway.IntentGuilds, gateway.IntentGuildMessages),
		gateway.WithLogger(discardLogger()),
	)
	if err := gw.Open(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	gw.CloseWithCode(closeCtx, 4000, "bench done")
	return nil
}

// DisgoBot runs the shard the way disgo's README writes a bot: disgo.New with an event
// listener, so events go through disgo's event manager (synchronous listeners, its
// default; no caches, its default). srv's token must be Token.
func DisgoBot(ctx context.Context, srv *discordtest.Server, onMessage func()) error {
	client, err := disgo.New(srv.Options().Token,
		bot.WithLogger(discardLogger()),
		bot.WithRestClientConfigOpts(rest.WithURL(srv.APIURL())),
		bot.WithGatewayConfigOpts(
			gateway.WithURL(srv.URL()), gateway.WithCompression(gateway.CompressionNone),
			gateway.WithIntents(gateway.IntentGuilds, gateway.IntentGuildMessages),
		),
		bot.WithEventListenerFunc(func(*events.MessageCreate) { onMessage() }),
	)
	if err != nil {
		return err
	}
	if err := client.OpenGateway(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	client.Gateway.CloseWithCode(closeCtx, 4000, "bench done")
	client.Rest.Close(closeCtx)
	return nil
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
