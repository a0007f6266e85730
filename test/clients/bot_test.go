package clients

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// botLifetime bounds a bot process: a client that hangs cannot hold the run.
const botLifetime = 5 * time.Minute

// bot is a Discord bot running as a process: a client library's test bot
// (test/clients/python/bot.py, test/clients/node/bot.js), which prints one JSON object per
// lifecycle event on stdout, or an example bot (examples/), whose log lines are its events.
type bot struct {
	name   string
	stderr *syncBuffer
	cmd    *exec.Cmd

	mu      sync.Mutex
	events  []botEvent
	changed chan struct{} // closed and replaced on every new event, and when the output ends
	done    bool          // the bot's output ended: it exited
}

// botEvent is one event the bot printed: for a test bot {"event": "ready", "at": <unix
// seconds>, ...}.
type botEvent struct {
	Event  string
	At     time.Time
	Fields map[string]any
}

// eventParser reads an event from a line of the bot's stdout; false for lines that are not
// events.
type eventParser func(line []byte) (botEvent, bool)

// jsonEvent reads the test bots' JSON lines.
func jsonEvent(line []byte) (botEvent, bool) {
	var fields map[string]any
	if json.Unmarshal(line, &fields) != nil {
		return botEvent{}, false
	}
	ev := botEvent{Fields: fields}
	ev.Event, _ = fields["event"].(string)
	if at, ok := fields["at"].(float64); ok {
		ev.At = time.Unix(0, int64(at*1e9))
	}
	return ev, true
}

// startBot runs a test bot, argv in the repository's root with env added to the test's own
// environment. It is stopped when the test ends, its output shown if the test failed.
func startBot(t *testing.T, name string, argv []string, env ...string) *bot {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	return runBot(t, name, cmd, jsonEvent)
}

// runBot starts cmd and reads its events from its stdout with parse. It is stopped when
// the test ends, its output shown if the test failed.
func runBot(t *testing.T, name string, cmd *exec.Cmd, parse eventParser) *bot {
	t.Helper()
	b := &bot{name: name, stderr: &syncBuffer{}, cmd: cmd, changed: make(chan struct{})}
	cmd.Stderr = b.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	var raw syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s (in %s: %s %s)\nstdout:\n%s\nstderr:\n%s", name, cmd.Dir, strings.Join(ownEnv(cmd), " "), strings.Join(cmd.Args, " "),
				raw.String(), tail(b.stderr.String(), 200))
		}
	})
	t.Cleanup(func() { stop(cmd, 5*time.Second) })
	go b.read(io.TeeReader(stdout, &raw), parse)
	timer := time.AfterFunc(botLifetime, func() { _ = cmd.Process.Kill() })
	t.Cleanup(func() { timer.Stop() })
	return b
}

// ownEnv is the part of cmd's environment that is not the test's own.
func ownEnv(cmd *exec.Cmd) []string {
	inherited := map[string]bool{}
	for _, kv := range os.Environ() {
		inherited[kv] = true
	}
	var own []string
	for _, kv := range cmd.Env {
		if !inherited[kv] {
			own = append(own, kv)
		}
	}
	return own
}

// read collects the bot's events until its stdout closes.
func (b *bot) read(stdout io.Reader, parse eventParser) {
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for lines.Scan() {
		ev, ok := parse(lines.Bytes())
		if !ok {
			continue
		}
		b.mu.Lock()
		b.events = append(b.events, ev)
		b.notifyLocked()
		b.mu.Unlock()
	}
	b.mu.Lock()
	b.done = true
	b.notifyLocked()
	b.mu.Unlock()
}

func (b *bot) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// waitEvent returns the n-th (from 1) event of that name, waiting up to timeout; the test
// fails if it does not come or the bot's output ends first.
func (b *bot) waitEvent(t *testing.T, name string, n int, timeout time.Duration) botEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		b.mu.Lock()
		seen := 0
		for _, ev := range b.events {
			if ev.Event == name {
				if seen++; seen == n {
					b.mu.Unlock()
					return ev
				}
			}
		}
		done, ch := b.done, b.changed
		b.mu.Unlock()
		if done {
			t.Fatalf("%s ended before event %q #%d", b.name, name, n)
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: no event %q #%d within %v", b.name, name, n, timeout)
		}
	}
}

// terminate stops the bot as Kubernetes stops a container, with SIGTERM, and returns its
// exit code once its output ended; the test fails if it has not exited within grace.
func (b *bot) terminate(t *testing.T, grace time.Duration) int {
	t.Helper()
	b.kill(syscall.SIGTERM)
	deadline := time.After(grace)
	for {
		b.mu.Lock()
		done, ch := b.done, b.changed
		b.mu.Unlock()
		if done {
			break
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s did not exit within %v of SIGTERM", b.name, grace)
		}
	}
	// Its stdout is read to the end: Wait may close it now.
	_ = b.cmd.Wait()
	return b.cmd.ProcessState.ExitCode()
}

// kill sends the bot's process a signal.
func (b *bot) kill(sig syscall.Signal) { _ = b.cmd.Process.Signal(sig) }

// eventsNamed are the bot's events of that name so far.
func (b *bot) eventsNamed(name string) []botEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []botEvent
	for _, ev := range b.events {
		if ev.Event == name {
			out = append(out, ev)
		}
	}
	return out
}
