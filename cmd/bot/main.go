// Command bot is Shardkeeper's default Discord bot, built on botruntime: /ping, !ping,
// /shard and /confirm. The operator configures it through SHARDKEEPER_* variables;
// outside Kubernetes, flags do (bot --help).
//
// Exit codes: 0 clean shutdown, 1 unexpected error, 2 bad configuration, 3 replaced by a
// pod of the same name while still running (force-deleted), and when no shard can run:
// 10 token invalid (4004), 11 invalid shard (4010), 12 sharding required (4011),
// 13 invalid API version (4012), 14 invalid intents (4013), 15 disallowed intents (4014).
package main

import (
	"context"
	"os"

	"github.com/go-logr/logr"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/botmain"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	return botmain.Main(botmain.Program{
		Name: "bot",
		Start: func(_ context.Context, rt *botruntime.Runtime, log logr.Logger) (func(), error) {
			bot := &pingBot{rt: rt, log: log.WithName("bot"), confirmWait: confirmTimeout}
			return nil, rt.Handle(bot.handle)
		},
	}, args)
}
