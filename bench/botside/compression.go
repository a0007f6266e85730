package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/bench/internal/proc"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// compressionModes are the transports a bot can ask for, measured side by side.
var compressionModes = []botruntime.Compression{botruntime.CompressionNone, botruntime.CompressionZlibStream, botruntime.CompressionZstdStream}

// compressionGuild is the one guild of the compression runs: one guild is one dispatcher
// worker, handled in order, so the reply to the last message of a round says that every
// message before it was handled.
const compressionGuild uint64 = 1 << 22

// compressionBot is a cmd/bot process asking for one transport compression, against a
// fake Discord of its own (in this process: the fake's encoding is not the bot's CPU).
type compressionBot struct {
	mode   botruntime.Compression
	srv    *discordtest.Server
	bot    *proc.Child
	health string
	rounds []compressionRound
	// wire and payload are the bot's own counts over the whole run, from its /metrics.
	wire, payload float64
}

// compressionRound is one batch of MESSAGE_CREATE delivered to one bot.
type compressionRound struct {
	events  int
	wire    int64         // bytes of websocket messages the fake wrote for them
	cpu     time.Duration // the bot process's CPU from the first message sent to the reply
	elapsed time.Duration
}

func (r compressionRound) wirePer1000() float64 { return float64(r.wire) * 1000 / float64(r.events) }
func (r compressionRound) cpuPerEvent() float64 {
	return float64(r.cpu) / float64(time.Microsecond) / float64(r.events)
}

// runCompression runs cmd/bot once per compression mode, all at once and idle but for the
// bot being measured, and delivers the same batches of MESSAGE_CREATE to each in turn: a
// warm-up batch, then o.compressionRounds measured ones, the modes' order rotating.
func runCompression(ctx context.Context, o options, bin, dir string) error {
	var bots []*compressionBot
	defer func() {
		for _, b := range bots {
			b.bot.Stop()
			b.srv.Close()
		}
	}()
	for _, mode := range compressionModes {
		b, err := startCompressionBot(ctx, o, bin, dir, mode)
		if b != nil {
			bots = append(bots, b)
		}
		if err != nil {
			return err
		}
	}
	for round := 0; round <= o.compressionRounds; round++ {
		for i := range bots {
			b := bots[(i+round)%len(bots)]
			r, err := b.deliver(ctx, o, round)
			if err != nil {
				return err
			}
			if round == 0 {
				continue // warm-up: connections' first frames, lazy allocations
			}
			b.rounds = append(b.rounds, r)
			fmt.Printf("round %d: %-12s %8.0f bytes on the wire per 1,000 events, %.1f µs CPU per event (%d events in %s)\n",
				round, b.mode, r.wirePer1000(), r.cpuPerEvent(), r.events, r.elapsed.Round(time.Millisecond))
		}
	}
	for _, b := range bots {
		if err := b.check(ctx); err != nil {
			return err
		}
	}
	printCompression(os.Stdout, o, bots)
	return nil
}

func startCompressionBot(ctx context.Context, o options, bin, dir string, mode botruntime.Compression) (*compressionBot, error) {
	srv := discordtest.NewServer(discordtest.Options{Guilds: []uint64{compressionGuild}})
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(discordtest.DefaultToken), 0o600); err != nil {
		srv.Close()
		return nil, err
	}
	port, err := proc.FreePort()
	if err != nil {
		srv.Close()
		return nil, err
	}
	name := "bot-" + string(mode)
	// No Lease (not in a pod) and nothing inherited from a SHARDKEEPER_* environment.
	env := []string{shardkeeperv1.EnvLeaseName + "=", shardkeeperv1.EnvShardIDs + "=", shardkeeperv1.EnvShardCount + "=",
		shardkeeperv1.EnvGatewayCompression + "="}
	bot, err := proc.Start(name, dir, env, bin,
		"--shards=0", "--shard-count=1", "--token-file="+tokenFile, "--intents=GUILDS,GUILD_MESSAGES",
		"--gateway-url="+srv.URL(), "--api-url="+srv.APIURL(), "--gateway-compression="+string(mode),
		fmt.Sprintf("--health-addr=127.0.0.1:%d", port), "--termination-log=")
	if err != nil {
		srv.Close()
		return nil, err
	}
	b := &compressionBot{mode: mode, srv: srv, bot: bot, health: fmt.Sprintf("http://127.0.0.1:%d", port)}
	if err := bot.WaitHTTP(ctx, b.health+"/readyz", o.readyTimeout); err != nil {
		return b, err
	}
	return b, nil
}

// deliver sends o.compressionEvents MESSAGE_CREATE to the bot, the last one "!ping", and
// waits for its reply. Every round sends the same messages to every bot.
func (b *compressionBot) deliver(ctx context.Context, o options, round int) (compressionRound, error) {
	channel := uint64(100 + round) // the reply names the round; the fake's 5-per-5s message bucket is per channel
	lines := chatLines(round, o.compressionEvents-1)
	wireBefore := b.srv.Stats().PerShard[0].BytesSent
	cpuBefore, err := proc.ThreadsCPU(b.bot.Pid())
	if err != nil {
		return compressionRound{}, err
	}
	start := time.Now()
	for _, line := range lines {
		b.srv.SendMessage(compressionGuild, channel, line)
	}
	b.srv.SendMessage(compressionGuild, channel, "!ping")
	waitCtx, cancel := context.WithTimeout(ctx, o.drainTimeout)
	_, err = b.srv.WaitReply(waitCtx, func(r discordtest.Reply) bool {
		return r.Path == fmt.Sprintf("/channels/%d/messages", channel)
	})
	cancel()
	elapsed := time.Since(start)
	if err != nil {
		return compressionRound{}, fmt.Errorf("%s: no reply to round %d's last message within %s: %w\n%s", b.mode, round, o.drainTimeout, err, b.bot.Tail())
	}
	cpuAfter, err := proc.ThreadsCPU(b.bot.Pid())
	if err != nil {
		return compressionRound{}, err
	}
	return compressionRound{
		events: len(lines) + 1, wire: b.srv.Stats().PerShard[0].BytesSent - wireBefore,
		cpu: cpuAfter - cpuBefore, elapsed: elapsed,
	}, nil
}

// check makes sure the bot ran one connection, in its mode, and reads its own byte counts.
func (b *compressionBot) check(ctx context.Context) error {
	st := b.srv.Stats().PerShard[0]
	if want := []discordtest.Compression{discordtest.Compression(b.mode)}; !slices.Equal(st.Compressions, want) {
		return fmt.Errorf("%s: the fake saw connections with %v, want one with %s", b.mode, st.Compressions, b.mode)
	}
	m, err := proc.Scrape(ctx, b.health+"/metrics", nil)
	if err != nil {
		return err
	}
	if n := m["shardkeeper_gateway_reconnects_total"]; n != 0 {
		return fmt.Errorf("%s: %v reconnects", b.mode, n)
	}
	b.wire, b.payload = m["shardkeeper_gateway_received_wire_bytes_total"], m["shardkeeper_gateway_received_payload_bytes_total"]
	if b.wire == 0 || b.payload == 0 {
		return fmt.Errorf("%s: /metrics counts %v bytes on the wire, %v of JSON", b.mode, b.wire, b.payload)
	}
	return nil
}

// chatWords make messages of a chat's shape: short, repetitive words, none the same.
var chatWords = strings.Fields(`the a to and of is it you that in for on this with was have be are not
	but just so what lol can get like do gg raid tonight at my your we they was ok yes no when who
	how why now up out ping pong server bot role channel voice game play stream patch update boss
	loot drop team win lose anyone here there help thanks please see new old good bad fun time`)

// chatLines are n message contents, the same for every bot in a round: 1 to 16 words.
func chatLines(round, n int) []string {
	rng := rand.New(rand.NewPCG(uint64(round), 13))
	lines := make([]string, n)
	for i := range lines {
		words := make([]string, 1+rng.IntN(16))
		for j := range words {
			words[j] = chatWords[rng.IntN(len(chatWords))]
		}
		lines[i] = strings.Join(words, " ")
	}
	return lines
}

func printCompression(w io.Writer, o options, bots []*compressionBot) {
	fmt.Fprintf(w, "\n### Transport compression: cmd/bot, one shard, %d MESSAGE_CREATE per round, median of %d rounds, %d CPUs\n\n",
		o.compressionEvents, o.compressionRounds, runtime.NumCPU())
	fmt.Fprintln(w, "| compression | bytes on the wire per 1,000 events | of the JSON | client CPU per event, median | all rounds, lowest-highest |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, b := range bots {
		byWire := slices.SortedFunc(slices.Values(b.rounds), func(x, y compressionRound) int { return cmp.Compare(x.wire, y.wire) })
		byCPU := slices.SortedFunc(slices.Values(b.rounds), func(x, y compressionRound) int { return cmp.Compare(x.cpu, y.cpu) })
		fmt.Fprintf(w, "| %s | %s | %.1f%% | %.1f µs | %.1f-%.1f µs |\n", b.mode, thousands(byWire[len(byWire)/2].wirePer1000()),
			100*b.wire/b.payload, byCPU[len(byCPU)/2].cpuPerEvent(), byCPU[0].cpuPerEvent(), byCPU[len(byCPU)-1].cpuPerEvent())
	}
}

// thousands writes a count as the docs do: 702,170.
func thousands(v float64) string {
	digits := strconv.FormatFloat(v, 'f', 0, 64)
	var out []byte
	for i := range len(digits) {
		if i > 0 && (len(digits)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, digits[i])
	}
	return string(out)
}
