package clients

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// systemPython is Debian's interpreter, the one python3-discord is installed for (a
// python3 earlier on PATH, such as a pyenv shim, has no discord.py).
const systemPython = "/usr/bin/python3"

// withoutZstandard, first on PYTHONPATH, makes `import zstandard` fail although Debian's
// python3-zstandard is installed (docs/clients.md).
const withoutZstandard = "test/clients/python/without-zstandard"

// target is where a bot connects: the emulator itself, or a gateway proxy in front of it.
type target struct{ api, gateway, token string }

func (e *emulator) target() target {
	return target{api: e.api, gateway: e.gateway, token: realToken}
}

// discordPy starts test/clients/python/bot.py against to. -s keeps a user's own
// site-packages out: only Debian's discord.py and zstandard are importable.
func discordPy(t *testing.T, to target, zstandard bool) *bot {
	t.Helper()
	if _, err := os.Stat(systemPython); err != nil {
		t.Fatalf("%s: %v (make test-clients installs python3-discord)", systemPython, err)
	}
	env := []string{"DISCORD_TOKEN=" + to.token, "DISCORD_API_URL=" + to.api, "DISCORD_GATEWAY_URL=" + to.gateway, "PYTHONPATH="}
	if !zstandard {
		env[len(env)-1] = "PYTHONPATH=" + filepath.Join(repoRoot, withoutZstandard)
	}
	b := startBot(t, "discord.py", []string{systemPython, "-s", "test/clients/python/bot.py"}, env...)
	start := b.waitEvent(t, "start", 1, 30*time.Second)
	if start.Fields["discord"] != "2.2.2" || start.Fields["zstandard"] != zstandard {
		t.Fatalf("discord.py %v with zstandard importable %v, want 2.2.2 and %v (make test-clients installs python3-discord and python3-zstandard)",
			start.Fields["discord"], start.Fields["zstandard"], zstandard)
	}
	return b
}

// discordJS starts test/clients/node/bot.js with the packages of test/clients/node/<dir>.
// discord.js takes the REST API root without the version (rest.api) and finds the
// gateway through GET /gateway/bot.
func discordJS(t *testing.T, to target, dir string, zlibSync bool) *bot {
	t.Helper()
	modules := filepath.Join(repoRoot, "test/clients/node", dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "discord.js")); err != nil {
		t.Fatalf("discord.js is not installed in %s: run make test-clients (%v)", modules, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node: %v", err)
	}
	b := startBot(t, "discord.js/"+dir, []string{"node", "test/clients/node/bot.js"},
		"DISCORD_TOKEN="+to.token, "DISCORD_API_URL="+strings.TrimSuffix(to.api, "/v10"), "NODE_PATH="+modules)
	start := b.waitEvent(t, "start", 1, 30*time.Second)
	if v, _ := start.Fields["discordjs"].(string); !strings.HasPrefix(v, "14.") || start.Fields["zlibSync"] != zlibSync {
		t.Fatalf("discord.js %v with zlib-sync %v, want 14.x and %v", start.Fields["discordjs"], start.Fields["zlibSync"], zlibSync)
	}
	return b
}

// TestDiscordPy: discord.py 2.2.2 asks for zlib-stream whether or not zstandard is
// importable (zstd-stream support came in later releases), answers !ping and resumes
// after a cut with no event lost.
func TestDiscordPy(t *testing.T) {
	enabled(t)
	for _, zstandard := range []bool{false, true} {
		t.Run(fmt.Sprintf("zstandard importable %v", zstandard), func(t *testing.T) {
			e := startEmulator(t)
			b := discordPy(t, e.target(), zstandard)
			pingAndResume(t, e, b, "zlib-stream")
		})
	}
}

// TestDiscordJS: discord.js 14 asks for no transport compression without zlib-sync and
// for zlib-stream with it; either way it answers !ping and resumes after a cut with no
// event lost.
func TestDiscordJS(t *testing.T) {
	enabled(t)
	for _, tc := range []struct {
		dir         string
		zlibSync    bool
		compression string
	}{
		{dir: "plain", zlibSync: false, compression: "none"},
		{dir: "zlib-sync", zlibSync: true, compression: "zlib-stream"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			e := startEmulator(t)
			b := discordJS(t, e.target(), tc.dir, tc.zlibSync)
			pingAndResume(t, e, b, tc.compression)
		})
	}
}

// perPhase is how many messages are sent before the cut, right after it (while the bot
// has no connection) and once it resumed: 12 in all, 3 per guild channel, under the
// emulator's 5 messages per 5 s per channel.
const perPhase = 4

// pingAndResume: the bot answers !ping; then messages sent before, across and after a
// cut of its connection are each answered exactly once, on a resumed session.
func pingAndResume(t *testing.T, e *emulator, b *bot, compression string) {
	t.Helper()
	b.waitEvent(t, "ready", 1, time.Minute)

	first := e.send(t, e.guilds[0], "!ping")
	if !e.answered(t, 30*time.Second, first) {
		t.Fatalf("%s did not answer !ping: replies %+v", b.name, e.replies(t))
	}

	sent := []ping{first}
	burst := func() {
		for i := range perPhase {
			sent = append(sent, e.send(t, e.guilds[i%len(e.guilds)], "!ping"))
		}
	}
	burst()
	cutAt := time.Now()
	e.cut(t, 0)
	burst()
	var resumedAfter time.Duration
	if !eventually(30*time.Second, func() bool {
		st := e.stats(t)
		resumedAfter = time.Since(cutAt)
		return st.Resumes > 0 && st.Shards[0].Connected
	}) {
		t.Fatalf("%s did not resume within 30s of the cut: stats %+v", b.name, e.stats(t))
	}
	burst()

	var count map[uint64]int
	if !eventually(time.Minute, func() bool {
		count, _ = answers(e.replies(t))
		return !slices.ContainsFunc(sent, func(p ping) bool { return count[p.id] == 0 })
	}) {
		var lost []uint64
		for _, p := range sent {
			if count[p.id] == 0 {
				lost = append(lost, p.id)
			}
		}
		t.Fatalf("%s: %d of %d messages unanswered across the cut: %v", b.name, len(lost), len(sent), lost)
	}
	time.Sleep(time.Second) // a duplicate answer would come now
	count, _ = answers(e.replies(t))
	for _, p := range sent {
		if count[p.id] != 1 {
			t.Errorf("%s answered message %d %d times, want once", b.name, p.id, count[p.id])
		}
	}
	if len(count) != len(sent) {
		t.Errorf("%s answered %d messages, %d were sent", b.name, len(count), len(sent))
	}

	st := e.stats(t)
	shard := st.Shards[0]
	if st.Identifies != 1 || st.Resumes != 1 || st.ResumeFailures != 0 || shard.Connections != 2 {
		t.Errorf("%s across one cut: %d identifies, %d resumes, %d failed resumes, %d connections; want 1, 1, 0, 2",
			b.name, st.Identifies, st.Resumes, st.ResumeFailures, shard.Connections)
	}
	for _, c := range shard.Compressions {
		if c != compression {
			t.Errorf("%s connected with compression %v, want %s on every connection", b.name, shard.Compressions, compression)
			break
		}
	}
	t.Logf("%s (%s): %d messages across a cut, each answered once; resumed within %v of the cut, %d events replayed",
		b.name, compression, len(sent), resumedAfter.Round(time.Millisecond), shard.Replayed)
}
