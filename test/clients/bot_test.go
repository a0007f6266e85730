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

// bot is a client library's bot (test/clients/python/bot.py, test/clients/node/bot.js)
// running as a process. It prints one JSON object per lifecycle event on stdout.
type bot struct {
	name   string
	stderr *syncBuffer
	cmd    *exec.Cmd

	mu      sync.Mutex
	events  []botEvent
	changed chan struct{} // closed and replaced on every new event, and when the output ends
	done    bool          // the bot's output ended: it exited
}

// botEvent is one line the bot printed: {"event": "ready", "at": <unix seconds>, ...}.
type botEvent struct {
	Event  string
	At     time.Time
	Fields map[string]any
}

// startBot runs argv in the repository's root with env added to the test's own
// environment. It is stopped when the test ends, its output shown if the test failed.
func startBot(t *testing.T, name string, argv []string, env ...string) *bot {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
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
			t.Logf("%s (%s %s)\nstdout:\n%s\nstderr:\n%s", name, strings.Join(env, " "), strings.Join(argv, " "),
				raw.String(), tail(b.stderr.String(), 200))
		}
	})
	t.Cleanup(func() { stop(cmd, 5*time.Second) })
	go b.read(io.TeeReader(stdout, &raw))
	timer := time.AfterFunc(botLifetime, func() { _ = cmd.Process.Kill() })
	t.Cleanup(func() { timer.Stop() })
	return b
}

// read collects the bot's events until its stdout closes.
func (b *bot) read(stdout io.Reader) {
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for lines.Scan() {
		var fields map[string]any
		if json.Unmarshal(lines.Bytes(), &fields) != nil {
			continue
		}
		ev := botEvent{Fields: fields}
		ev.Event, _ = fields["event"].(string)
		if at, ok := fields["at"].(float64); ok {
			ev.At = time.Unix(0, int64(at*1e9))
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
