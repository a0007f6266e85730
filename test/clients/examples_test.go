package clients

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// exampleBot is one of examples/: a directory, run as its container image runs it (the
// directory is the image's WORKDIR /app).
type exampleBot struct {
	dir  string   // below examples/
	argv []string // the image's entry point, relative to dir
	// env is what the image sets beyond the DISCORD_* variables the operator gives.
	env []string
	// requires is a file (absolute, or relative to the repository's root) the bot cannot
	// run without; make test-clients installs it.
	requires string
}

var exampleBots = []exampleBot{
	{dir: "python-bot", argv: []string{systemPython, "bot.py"}, env: []string{"PYTHONDONTWRITEBYTECODE=1"},
		requires: "/usr/lib/python3/dist-packages/discord/__init__.py"}, // Debian's python3-discord
	{dir: "node-bot", argv: []string{"node", "bot.js"}, requires: "examples/node-bot/node_modules/discord.js/package.json"},
}

// command is the bot's process with only the environment its container would have: no
// writable HOME, TMPDIR the test's scratch directory, and env. It is killed when ctx ends.
func (x exampleBot) command(ctx context.Context, t *testing.T, tmp string, env ...string) *exec.Cmd {
	t.Helper()
	required := x.requires
	if !filepath.IsAbs(required) {
		required = filepath.Join(repoRoot, required)
	}
	if _, err := os.Stat(required); err != nil {
		t.Fatalf("%s cannot run: %v (make test-clients installs it)", x.dir, err)
	}
	cmd := exec.CommandContext(ctx, x.argv[0], x.argv[1:]...)
	cmd.Dir = filepath.Join(repoRoot, "examples", x.dir)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "TMPDIR=" + tmp}, x.env...)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// exampleLogLine is a line the example bots log about themselves: a time, INFO, "bot:",
// and a message whose first word names the event ("ready", "!ping", "unblocked", ...).
var exampleLogLine = regexp.MustCompile(`\bINFO bot: (\S+?):?(?: (.*))?$`)

// exampleEvent reads an example bot's own log lines as events, timed when the test read
// them: the bots write each line before the work it announces, unbuffered.
func exampleEvent(line []byte) (botEvent, bool) {
	m := exampleLogLine.FindSubmatch(line)
	if m == nil {
		return botEvent{}, false
	}
	return botEvent{Event: string(m[1]), At: time.Now(), Fields: map[string]any{"message": string(m[2])}}, true
}

// TestExampleBotsRefuseToStartWithoutTheirSettings: without DISCORD_GATEWAY_URL,
// DISCORD_API_URL and a non-empty token file, a bot says what is missing and exits 2
// (a configuration error, as cmd/bot's exit codes say) instead of reaching Discord.
func TestExampleBotsRefuseToStartWithoutTheirSettings(t *testing.T) {
	enabled(t)
	blank := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(blank, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, x := range exampleBots {
		for _, tc := range []struct {
			name string
			env  []string
			want string
		}{
			{"nothing set", nil, "DISCORD_GATEWAY_URL, DISCORD_API_URL, DISCORD_TOKEN_FILE not set"},
			{"no gateway", []string{"DISCORD_API_URL=http://127.0.0.1:1/api/v10", "DISCORD_TOKEN_FILE=" + blank}, "DISCORD_GATEWAY_URL not set"},
			{"blank token file", []string{"DISCORD_GATEWAY_URL=ws://127.0.0.1:1", "DISCORD_API_URL=http://127.0.0.1:1/api/v10", "DISCORD_TOKEN_FILE=" + blank}, "is empty"},
			{"no token file", []string{"DISCORD_GATEWAY_URL=ws://127.0.0.1:1", "DISCORD_API_URL=http://127.0.0.1:1/api/v10", "DISCORD_TOKEN_FILE=" + blank + ".missing"}, "cannot read the token"},
		} {
			t.Run(x.dir+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				cmd := x.command(ctx, t, t.TempDir(), tc.env...)
				out, err := cmd.CombinedOutput()
				if cmd.ProcessState == nil {
					t.Fatalf("%s did not start: %v", x.dir, err)
				}
				if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), tc.want) {
					t.Errorf("exit code %d, output %q; want 2 and %q", code, out, tc.want)
				}
			})
		}
	}
}

// TestExampleBots: examples/python-bot and examples/node-bot, run as their images run them,
// through a gateway proxy in front of the emulator with heartbeats enforced. Each answers
// !ping, registers /ping and answers it; blocked for 3 heartbeat intervals it answers a
// !ping sent meanwhile once the block ends, with no reconnect or identify upstream; !write
// answers after its synchronous writes and leaves no file behind; SIGTERM ends it with 0.
func TestExampleBots(t *testing.T) {
	enabled(t)
	for _, x := range exampleBots {
		t.Run(x.dir, func(t *testing.T) {
			e, p := proxyWithHeartbeatsEnforced(t)
			// The token file as a Secret written by hand often is: with a trailing newline.
			tokenFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokenFile, []byte(p.token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tmp := t.TempDir()
			// runBot bounds the process's life and stops it.
			b := runBot(t, x.dir, x.command(context.Background(), t, tmp,
				"DISCORD_GATEWAY_URL="+p.gateway, "DISCORD_API_URL="+p.api, "DISCORD_TOKEN_FILE="+tokenFile), exampleEvent)
			b.waitEvent(t, "ready", 1, time.Minute)
			guild := e.guilds[0]

			// !ping
			if first := e.send(t, guild, "!ping"); !e.answered(t, 30*time.Second, first) {
				t.Fatalf("!ping unanswered: replies %+v", e.replies(t))
			}

			// /ping: registered as a global command (PUT, a bulk overwrite), and answered.
			b.waitEvent(t, "registered", 1, 30*time.Second)
			var app struct {
				ID string `json:"id"`
			}
			e.apiGet(t, "/applications/@me", &app)
			var commands []struct {
				Name, Description string
			}
			e.apiGet(t, "/applications/"+app.ID+"/commands", &commands)
			if len(commands) != 1 || commands[0].Name != "ping" || commands[0].Description == "" {
				t.Errorf("global commands %+v, want /ping alone", commands)
			}
			if st := e.stats(t); st.REST.Requests["PUT /applications/{application.id}/commands"] != 1 {
				t.Errorf("REST requests %v, want one bulk overwrite of the global commands", st.REST.Requests)
			}
			if slash := e.slash(t, guild, "ping"); !e.answered(t, 30*time.Second, slash) {
				t.Fatalf("/ping unanswered: replies %+v", e.replies(t))
			}

			// !block for 3 heartbeat intervals, and a !ping sent while the loop is blocked.
			block := 3 * heartbeatInterval
			blockMsg := e.send(t, guild, fmt.Sprintf("!block %g", block.Seconds()))
			blockStart := b.waitEvent(t, "!block", 1, 30*time.Second).At
			during := e.send(t, guild, "!ping")
			blockEnd := b.waitEvent(t, "unblocked", 1, block+30*time.Second).At
			if !during.sentAt.Before(blockEnd) {
				t.Fatalf("the !ping went %v after the block's start, after its end (%v): the test was too slow", during.sentAt.Sub(blockStart), blockEnd.Sub(blockStart))
			}
			if !e.answered(t, 30*time.Second, during) {
				t.Fatalf("the !ping sent during the block was not answered after it: replies %+v", e.replies(t))
			}
			_, first := answers(e.replies(t))
			// The bot logs the start before blocking, so the block ends a full block after
			// the test read that line, less the time the line took to come.
			if late := first[during.id].Sub(blockStart); late < block-500*time.Millisecond {
				t.Errorf("the !ping sent during the block was answered %v after the block started, want no sooner than its end (%v): the loop was not blocked", late, block)
			}
			if r, want := e.awaitReply(t, blockMsg, 30*time.Second), fmt.Sprintf("unblocked after %g s", block.Seconds()); r.Body.Content != want {
				t.Errorf("the answer to !block: %q, want %q", r.Body.Content, want)
			}

			// !write: 64 MiB written, fsynced and removed, on the event loop.
			wrote := e.awaitReply(t, e.send(t, guild, "!write"), time.Minute)
			if !regexp.MustCompile(`^wrote 67108864 bytes in \d+\.\d\d s$`).MatchString(wrote.Body.Content) {
				t.Errorf("the answer to !write: %q, want \"wrote 67108864 bytes in <seconds> s\"", wrote.Body.Content)
			}
			if left, _ := os.ReadDir(tmp); len(left) > 0 {
				t.Errorf("!write left %v in TMPDIR", left)
			}

			// Upstream, the blocked loop never showed: one session, untouched. Downstream, the
			// bot kept its connection to the proxy.
			upstreamQuiet(t, e, 1)
			if connected, resumed := b.eventsNamed("connected"), b.eventsNamed("resumed"); len(connected) != 1 || len(resumed) != 0 {
				t.Errorf("the bot had %d sessions with the proxy and resumed %d times, want 1 and 0", len(connected), len(resumed))
			}
			if code := b.terminate(t, 15*time.Second); code != 0 {
				t.Errorf("exit code %d after SIGTERM, want 0", code)
			}
			b.waitEvent(t, "closed", 1, time.Second)
			t.Logf("%s: blocked %v (3 heartbeat intervals), the !ping sent meanwhile answered %v after it was sent; %s; upstream 1 identify, 0 reconnects",
				x.dir, block, first[during.id].Sub(during.sentAt).Round(10*time.Millisecond), wrote.Body.Content)
		})
	}
}
