package clients

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/emulatorapi"
)

// realToken is the bot token the emulator accepts (its default --token).
const realToken = "test-token"

// emulator is a cmd/discord-emulator process, driven through its control API.
type emulator struct {
	api, gateway, control string // REST base (…/api/v10), gateway (ws://…), control API (http://…)
	guilds                []uint64
	log                   *syncBuffer
}

// firstLine is what cmd/discord-emulator prints once it listens.
var firstLine = regexp.MustCompile(`gateway (\S+), API (\S+), control on (\S+), (\d+) guilds`)

// startEmulator runs the emulator on free loopback ports with flags; it is stopped when
// the test ends, and its output shown if the test failed.
func startEmulator(t *testing.T, flags ...string) *emulator {
	t.Helper()
	args := append([]string{"--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"}, flags...)
	cmd := exec.Command(emulatorBin, args...)
	log := &syncBuffer{}
	cmd.Stderr = log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop(cmd, 5*time.Second)
		if t.Failed() {
			t.Logf("discord-emulator %s:\n%s", strings.Join(args, " "), log.String())
		}
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("discord-emulator printed nothing: %v\n%s", lines.Err(), log.String())
	}
	m := firstLine.FindStringSubmatch(lines.Text())
	if m == nil {
		t.Fatalf("discord-emulator's first line %q names no addresses", lines.Text())
	}
	go func() { _, _ = io.Copy(log, stdout) }()
	e := &emulator{gateway: m[1], api: m[2], control: "http://" + m[3], log: log}
	n, _ := strconv.Atoi(m[4])
	for k := 1; k <= n; k++ {
		e.guilds = append(e.guilds, uint64(k)<<22|1) // the emulator's guild IDs (--guilds)
	}
	return e
}

// stop ends a process with SIGTERM, then SIGKILL after grace.
func stop(cmd *exec.Cmd, grace time.Duration) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// ping is a user's message; the bot answers in the channel it came from, the guild's
// "general" channel, whose ID is the guild's.
type ping struct {
	id     uint64
	sentAt time.Time
}

// send plays a user writing content in guild's general channel.
func (e *emulator) send(t *testing.T, guild uint64, content string) ping {
	t.Helper()
	sentAt := time.Now()
	var out struct {
		ID uint64 `json:"id"`
	}
	e.post(t, "/control/messages", fmt.Sprintf(`{"guild": %d, "channel": %d, "content": %q}`, guild, guild, content), http.StatusCreated, &out)
	return ping{id: out.ID, sentAt: sentAt}
}

// post sends body to the control API and decodes the answer, which must have status want.
func (e *emulator) post(t *testing.T, path, body string, want int, out any) {
	t.Helper()
	resp, err := http.Post(e.control+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s %s: %s %s", path, body, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s: %v in %s", path, err, raw)
		}
	}
}

// slash plays a user running the slash command /command in guild's general channel; the
// ping's ID is the interaction's.
func (e *emulator) slash(t *testing.T, guild uint64, command string) ping {
	t.Helper()
	sentAt := time.Now()
	var out struct {
		ID uint64 `json:"id"`
	}
	e.post(t, "/control/interactions", fmt.Sprintf(`{"guild": %d, "command": %q}`, guild, command), http.StatusCreated, &out)
	return ping{id: out.ID, sentAt: sentAt}
}

// cut drops the shard's connection without a close frame.
func (e *emulator) cut(t *testing.T, shard int) {
	t.Helper()
	e.post(t, "/control/cut", fmt.Sprintf(`{"shard": %d}`, shard), http.StatusNoContent, nil)
}

// reply is one entry of GET /control/replies, with what the bots here send: a message
// replying to another (message_reference), or an interaction's response (its callback).
type reply struct {
	Kind string    `json:"kind"`
	Path string    `json:"path"`
	At   time.Time `json:"at"`
	Body struct {
		Content   string `json:"content"`
		Reference *struct {
			MessageID snowflake `json:"message_id"`
		} `json:"message_reference"`
		Data struct {
			Content string `json:"content"`
		} `json:"data"`
	} `json:"body"`
}

// interactionCallback is the path of an interaction's response: the ID, then the token.
var interactionCallback = regexp.MustCompile(`^/interactions/(\d+)/[^/]+/callback$`)

// inReplyTo is the message or interaction the reply answers, and what it says.
func (r reply) inReplyTo() (id uint64, content string, ok bool) {
	if r.Body.Reference != nil {
		return uint64(r.Body.Reference.MessageID), r.Body.Content, true
	}
	if m := interactionCallback.FindStringSubmatch(r.Path); m != nil {
		id, err := strconv.ParseUint(m[1], 10, 64)
		return id, r.Body.Data.Content, err == nil
	}
	return 0, "", false
}

// awaitReply waits up to timeout for the first reply to the message or interaction m; the
// test fails without one.
func (e *emulator) awaitReply(t *testing.T, m ping, timeout time.Duration) reply {
	t.Helper()
	var found reply
	if !eventually(timeout, func() bool {
		for _, r := range e.replies(t) {
			if to, _, ok := r.inReplyTo(); ok && to == m.id {
				found = r
				return true
			}
		}
		return false
	}) {
		t.Fatalf("message %d unanswered after %v: replies %+v", m.id, timeout, e.replies(t))
	}
	return found
}

// snowflake reads an ID sent as a string (discord.js) or a number (discord.py).
type snowflake uint64

func (s *snowflake) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseUint(strings.Trim(string(b), `"`), 10, 64)
	*s = snowflake(n)
	return err
}

func (e *emulator) replies(t *testing.T) []reply {
	t.Helper()
	var out []reply
	e.get(t, "/control/replies", &out)
	return out
}

// stats reads GET /control/stats (docs/discord-emulator.md).
func (e *emulator) stats(t *testing.T) emulatorapi.Stats {
	t.Helper()
	var st emulatorapi.Stats
	e.get(t, "/control/stats", &st)
	return st
}

func (e *emulator) get(t *testing.T, path string, v any) {
	t.Helper()
	getJSON(t, e.control+path, "", v)
}

// apiGet reads the REST API as the bot: with the real token, which only the emulator and
// the proxy know.
func (e *emulator) apiGet(t *testing.T, path string, v any) {
	t.Helper()
	getJSON(t, e.api+path, "Bot "+realToken, v)
}

func getJSON(t *testing.T, url, authorization string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// answers counts the pong replies to each message or interaction, and when the first came.
func answers(replies []reply) (count map[uint64]int, first map[uint64]time.Time) {
	count, first = map[uint64]int{}, map[uint64]time.Time{}
	for _, r := range replies {
		id, content, ok := r.inReplyTo()
		if !ok || content != "pong" {
			continue
		}
		if count[id] == 0 {
			first[id] = r.At
		}
		count[id]++
	}
	return count, first
}

// answered waits up to timeout for a pong to each of pings.
func (e *emulator) answered(t *testing.T, timeout time.Duration, pings ...ping) bool {
	t.Helper()
	return eventually(timeout, func() bool {
		n, _ := answers(e.replies(t))
		return !slices.ContainsFunc(pings, func(p ping) bool { return n[p.id] == 0 })
	})
}

// eventually polls cond every 100ms until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer written by a process's output copier and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
