package clients

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// placeholderToken is what the bots behind the proxy are given; the emulator accepts only
// the real one (realToken), which only the proxy holds.
const placeholderToken = "placeholder-for-the-bot-process"

// gatewayProxy is a cmd/gateway-proxy process in front of an emulator.
type gatewayProxy struct {
	target
	log *syncBuffer
}

// startProxy runs cmd/gateway-proxy for the shards (of count) against the emulator, on a
// free loopback port, with flags added.
func startProxy(t *testing.T, e *emulator, shards string, count int, flags ...string) *gatewayProxy {
	t.Helper()
	dir := t.TempDir()
	tokenFile, clientTokenFile := filepath.Join(dir, "token"), filepath.Join(dir, "client-token")
	if err := os.WriteFile(tokenFile, []byte(realToken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(clientTokenFile, []byte(placeholderToken), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--listen", "127.0.0.1:0", "--health-addr", "", "--termination-log", "",
		"--token-file", tokenFile, "--client-token-file", clientTokenFile,
		"--gateway-url", e.gateway, "--api-url", e.api,
		"--shards", shards, "--shard-count", fmt.Sprint(count), "--max-concurrency", fmt.Sprint(count),
		"--intents", "GUILDS,GUILD_MESSAGES,MESSAGE_CONTENT",
	}, flags...)
	cmd := exec.Command(proxyBin, args...)
	cmd.Env = []string{} // the SHARDKEEPER_* contract stays out: flags only
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &gatewayProxy{log: &syncBuffer{}}
	t.Cleanup(func() {
		stop(cmd, 5*time.Second)
		if t.Failed() {
			t.Logf("gateway-proxy %s:\n%s", strings.Join(args, " "), tail(p.log.String(), 200))
		}
	})
	lines := bufio.NewScanner(io.TeeReader(stderr, p.log))
	for lines.Scan() {
		var line struct {
			Msg, Gateway, API string
		}
		if json.Unmarshal(lines.Bytes(), &line) == nil && line.Msg == "serving the bot's process" {
			p.target = target{api: line.API, gateway: line.Gateway, token: placeholderToken}
			break
		}
	}
	if p.gateway == "" {
		t.Fatalf("gateway-proxy never said where it serves:\n%s", p.log.String())
	}
	go func() { _, _ = io.Copy(p.log, stderr) }()
	return p
}

// upstreamQuiet checks that the emulator saw one session per shard and nothing more: the
// bot's own troubles never reached Discord.
func upstreamQuiet(t *testing.T, e *emulator, shards int) {
	t.Helper()
	st := e.stats(t)
	if st.Identifies != shards || st.Resumes != 0 || st.Connections != shards {
		t.Errorf("the emulator saw %d identifies, %d resumes, %d connections; want %d, 0 and %d (one session per shard, untouched)",
			st.Identifies, st.Resumes, st.Connections, shards, shards)
	}
	for id, sh := range st.Shards {
		if len(sh.CloseCodes.Server) > 0 || len(sh.CloseCodes.Client) > 0 {
			t.Errorf("shard %d: close codes %+v", id, sh.CloseCodes)
		}
	}
}

// TestClientsThroughTheProxy: discord.py and discord.js, unmodified but for their URLs and
// token, answer !ping through the proxy in the compression each asks for; a cut of the
// proxy's own connection upstream is resumed by the proxy and the bot sees nothing.
func TestClientsThroughTheProxy(t *testing.T) {
	enabled(t)
	for _, tc := range []struct {
		name  string
		start func(t *testing.T, to target) *bot
	}{
		{"discord.py", func(t *testing.T, to target) *bot { return discordPy(t, to, false) }},
		{"discord.py with zstandard", func(t *testing.T, to target) *bot { return discordPy(t, to, true) }},
		{"discord.js", func(t *testing.T, to target) *bot { return discordJS(t, to, "plain", false) }},
		{"discord.js with zlib-sync", func(t *testing.T, to target) *bot { return discordJS(t, to, "zlib-sync", true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEmulator(t)
			p := startProxy(t, e, "0", 1)
			b := tc.start(t, p.target)
			// The emulator's side is the proxy's: botruntime asks for zstd-stream.
			pingAndResume(t, e, b, "zstd-stream")
			if resumes := b.eventsNamed("resumed"); len(resumes) > 0 {
				t.Errorf("%s saw %d resumes: the cut upstream reached it", b.name, len(resumes))
			}
		})
	}
}

// TestPlainClientInAPodOfFourShards: a proxy holding four shards; a discord.py Client,
// which sends no shard, gets all four in one stream, and discord.js, which shards itself
// from GET /gateway/bot, one connection per shard. Each answers in every guild.
func TestPlainClientInAPodOfFourShards(t *testing.T) {
	enabled(t)
	for _, tc := range []struct {
		name  string
		start func(t *testing.T, to target) *bot
	}{
		{"discord.py", func(t *testing.T, to target) *bot { return discordPy(t, to, false) }},
		{"discord.js", func(t *testing.T, to target) *bot { return discordJS(t, to, "plain", false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEmulator(t, "--guilds", "8", "--max-concurrency", "4")
			p := startProxy(t, e, "0,1,2,3", 4)
			b := tc.start(t, p.target)
			b.waitEvent(t, "ready", 1, time.Minute)
			var sent []ping
			for _, g := range e.guilds {
				sent = append(sent, e.send(t, g, "!ping"))
			}
			if !e.answered(t, 30*time.Second, sent...) {
				n, _ := answers(e.replies(t))
				t.Fatalf("%s: answers per message %v for %d guilds on 4 shards", b.name, n, len(e.guilds))
			}
			upstreamQuiet(t, e, 4)
		})
	}
}

// proxyWithHeartbeatsEnforced is an emulator that closes a connection whose heartbeats
// stop (2 heartbeatIntervals + 1 s), and a proxy for shard 0 in front of it that tells its
// client the same interval: a bot whose loop is blocked misses its heartbeats to the proxy,
// and the emulator would see it if the proxy passed that on.
func proxyWithHeartbeatsEnforced(t *testing.T) (*emulator, *gatewayProxy) {
	t.Helper()
	e := startEmulator(t, "--enforce-heartbeats", "--heartbeat-interval", heartbeatInterval.String())
	return e, startProxy(t, e, "0", 1, "--client-heartbeat-interval", heartbeatInterval.String())
}

// blockedBehindProxy is TestDiscordPyBlockedEventLoop's run behind the proxy: the same bot
// blocks its loop, the emulator enforces heartbeats, a user pings every half second.
func blockedBehindProxy(t *testing.T, block time.Duration) {
	e, p := proxyWithHeartbeatsEnforced(t)
	b := discordPy(t, p.target, false)
	b.waitEvent(t, "ready", 1, time.Minute)
	warm := e.send(t, e.guilds[0], "!ping")
	if !e.answered(t, 30*time.Second, warm) {
		t.Fatalf("discord.py did not answer !ping before the block")
	}
	e.send(t, e.guilds[0], fmt.Sprintf("!block %g", block.Seconds()))
	blockStart := b.waitEvent(t, "block_start", 1, 30*time.Second).At

	var pings []ping
	for time.Since(blockStart) < block+3*time.Second {
		pings = append(pings, e.send(t, e.guilds[len(pings)%len(e.guilds)], "!ping"))
		time.Sleep(500 * time.Millisecond)
	}
	blockEnd := b.waitEvent(t, "block_end", 1, 30*time.Second).At
	if !e.answered(t, time.Minute, pings...) {
		n, _ := answers(e.replies(t))
		t.Fatalf("pings unanswered after the block: %v", n)
	}
	time.Sleep(time.Second) // a duplicate would come now
	count, first := answers(e.replies(t))
	var during int
	var slowest time.Duration
	for _, p := range pings {
		if count[p.id] != 1 {
			t.Errorf("message %d answered %d times", p.id, count[p.id])
		}
		if p.sentAt.Before(blockEnd) {
			during++
		}
		slowest = max(slowest, first[p.id].Sub(p.sentAt))
	}
	upstreamQuiet(t, e, 1)
	if d := b.eventsNamed("disconnect"); len(d) > 0 {
		t.Errorf("discord.py disconnected %d times", len(d))
	}
	t.Logf("discord.py 2.2.2 behind the proxy, heartbeat interval %v, event loop blocked %v: %d pings (%d sent during the block), all answered once, the slowest %v after it was sent; upstream 1 identify, 0 reconnects",
		heartbeatInterval, block, len(pings), during, slowest.Round(10*time.Millisecond))
}

// TestDiscordPyBlockedBehindTheProxy: the seed's failure, beaten. Blocked for 3x and 10x
// the heartbeat interval, the bot loses nothing: no 4009 upstream, no new identify, every
// ping sent during the block answered after it (docs/performance.md compares it with the
// bot connected directly).
func TestDiscordPyBlockedBehindTheProxy(t *testing.T) {
	enabled(t)
	for _, n := range []int{3, 10} {
		t.Run(fmt.Sprintf("%dx", n), func(t *testing.T) {
			blockedBehindProxy(t, time.Duration(n)*heartbeatInterval)
		})
	}
}

// TestBotProcessRestartedBehindTheProxy: the bot's process killed, messages sent while it
// is gone, a new process started: upstream saw nothing, and every message is answered once.
func TestBotProcessRestartedBehindTheProxy(t *testing.T) {
	enabled(t)
	e := startEmulator(t)
	p := startProxy(t, e, "0", 1)
	first := discordPy(t, p.target, false)
	first.waitEvent(t, "ready", 1, time.Minute)
	sent := []ping{e.send(t, e.guilds[0], "!ping")}
	if !e.answered(t, 30*time.Second, sent[0]) {
		t.Fatal("no answer before the restart")
	}
	first.kill(syscall.SIGKILL)
	killedAt := time.Now()
	time.Sleep(200 * time.Millisecond) // the proxy sees the connection end
	for i := range 4 {
		sent = append(sent, e.send(t, e.guilds[i%len(e.guilds)], "!ping"))
	}
	second := discordPy(t, p.target, false)
	second.waitEvent(t, "ready", 1, time.Minute)
	sent = append(sent, e.send(t, e.guilds[0], "!ping"))
	if !e.answered(t, time.Minute, sent...) {
		n, _ := answers(e.replies(t))
		for i, p := range sent {
			if n[p.id] == 0 {
				t.Errorf("message %d (%d, sent %v after the kill) unanswered", i, p.id, p.sentAt.Sub(killedAt))
			}
		}
		t.FailNow()
	}
	time.Sleep(time.Second)
	count, _ := answers(e.replies(t))
	for _, p := range sent {
		if count[p.id] != 1 {
			t.Errorf("message %d answered %d times", p.id, count[p.id])
		}
	}
	upstreamQuiet(t, e, 1)
}
