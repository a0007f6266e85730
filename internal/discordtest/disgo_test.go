package discordtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
)

// disgo v0.19.6's gateway client has data races of its own (heartbeatCancel,
// lastHeartbeatSent/lastHeartbeatReceived and config.LastSequenceReceived are shared
// between its listen and heartbeat goroutines without synchronization). Under -race
// they would fail any test that runs it in-process. So the cross-check runs disgo in
// a child process — this test binary, re-executed with disgoChildEnv set (see
// TestMain) and GORACE=exitcode=0 — while the fake server, which is what these tests
// check, stays in the race-checked parent. The child reports what disgo does as JSON
// lines on stdout; its stderr (disgo's debug log and any race reports) is shown if a
// test fails.

const (
	disgoChildEnv   = "DISCORDTEST_DISGO_CHILD"
	disgoURLEnv     = "DISCORDTEST_DISGO_URL"
	disgoIntentsEnv = "DISCORDTEST_DISGO_INTENTS"
	// disgoCompressionEnv is the transport compression disgo asks for ("" for none).
	disgoCompressionEnv = "DISCORDTEST_DISGO_COMPRESSION"
)

func TestMain(m *testing.M) {
	if os.Getenv(disgoChildEnv) != "" {
		os.Exit(runDisgoChild())
	}
	os.Exit(m.Run())
}

// childEvent is one line the child writes.
type childEvent struct {
	Kind    string `json:"kind"` // "open", "event" or "closed"
	Err     string `json:"err,omitempty"`
	Status  string `json:"status,omitempty"`
	Type    string `json:"type,omitempty"` // event type
	Seq     int    `json:"seq,omitempty"`
	Content string `json:"content,omitempty"` // MESSAGE_CREATE
	GuildID uint64 `json:"guild_id,omitempty"`
	URL     string `json:"url,omitempty"` // READY resume_gateway_url
}

// runDisgoChild runs disgo's gateway client as shard 0 of 1 against the URL in the
// environment until stdin has a line or is closed, then closes it with disgo's Close.
func runDisgoChild() int {
	intents, _ := strconv.ParseInt(os.Getenv(disgoIntentsEnv), 10, 64)
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(ev childEvent) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(ev)
	}
	handler := func(_ gateway.Gateway, eventType gateway.EventType, seq int, data gateway.EventData) {
		ev := childEvent{Kind: "event", Type: string(eventType), Seq: seq}
		switch d := data.(type) {
		case gateway.EventReady:
			ev.URL = d.ResumeGatewayURL
		case gateway.EventGuildCreate:
			ev.GuildID = uint64(d.ID)
		case gateway.EventMessageCreate:
			ev.Content = d.Content
		}
		emit(ev)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw := gateway.New(DefaultToken, handler,
		gateway.WithURL(os.Getenv(disgoURLEnv)),
		gateway.WithCompression(gateway.CompressionType(os.Getenv(disgoCompressionEnv))),
		gateway.WithShardID(0),
		gateway.WithShardCount(1),
		gateway.WithIntents(gateway.Intents(intents)),
		gateway.WithLogger(logger),
	)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	err := gw.Open(ctx)
	cancel()
	open := childEvent{Kind: "open", Status: gw.Status().String()}
	if err != nil {
		open.Err = err.Error()
	}
	emit(open)
	if err == nil {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		gw.Close(ctx)
		cancel()
	}
	emit(childEvent{Kind: "closed"})
	return 0
}

// syncBuffer is a goroutine-safe bytes.Buffer.
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

// disgoProc is a running child with disgo's gateway client.
type disgoProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	events  chan childEvent
	pending []childEvent // read but not yet consumed by next
	stderr  *syncBuffer
	exited  chan struct{}
}

func startDisgo(t *testing.T, srv *Server, intents gateway.Intents, compression gateway.CompressionType) *disgoProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &disgoProc{t: t, events: make(chan childEvent, 1000), stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(exe, "-test.run=^$")
	p.cmd.Env = append(os.Environ(),
		disgoChildEnv+"=1",
		disgoURLEnv+"="+srv.URL(),
		disgoIntentsEnv+"="+strconv.FormatInt(int64(intents), 10),
		disgoCompressionEnv+"="+string(compression),
		"GORACE=halt_on_error=0 exitcode=0", // disgo's own races must not fail the child
	)
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev childEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				p.events <- ev
			}
		}
	}()
	go func() {
		_ = p.cmd.Wait() // after stdout is drained: Wait closes the pipe
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(testTimeout):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		log := p.stderr.String()
		if n := strings.Count(log, "WARNING: DATA RACE"); n > 0 {
			t.Logf("the race detector reported %d data race(s) inside disgo's gateway client (child process)", n)
		}
		if t.Failed() {
			t.Logf("disgo child stderr:\n%s", log)
		}
	})
	return p
}

// next returns the first not yet consumed child event of the given kind (and event
// type, if not empty), in the order the child wrote them; events of other kinds are
// kept for later calls.
func (p *disgoProc) next(kind, eventType string) childEvent {
	p.t.Helper()
	match := func(ev childEvent) bool { return ev.Kind == kind && (eventType == "" || ev.Type == eventType) }
	for i, ev := range p.pending {
		if match(ev) {
			p.pending = append(p.pending[:i], p.pending[i+1:]...)
			return ev
		}
	}
	timeout := time.NewTimer(testTimeout)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				p.t.Fatalf("disgo child exited while waiting for %s %s", kind, eventType)
			}
			if match(ev) {
				return ev
			}
			p.pending = append(p.pending, ev)
		case <-timeout.C:
			p.t.Fatalf("disgo child: no %s %s", kind, eventType)
		}
	}
}

func (p *disgoProc) waitMessage(content string) childEvent {
	p.t.Helper()
	for {
		ev := p.next("event", "MESSAGE_CREATE")
		if ev.Content == content {
			return ev
		}
	}
}

// stop makes the child call disgo's Close and waits for it to exit.
func (p *disgoProc) stop() {
	p.t.Helper()
	_, _ = fmt.Fprintln(p.stdin)
	p.next("closed", "")
	select {
	case <-p.exited:
	case <-time.After(testTimeout):
		p.t.Fatal("disgo child did not exit")
	}
}

// TestDisgoGatewayClient cross-checks the fake against disgo's own gateway client:
// it must identify, become ready, receive GUILD_CREATE and injected messages, and
// resume (with replay) after every kind of disconnect the hooks produce.
//
// On an overloaded machine disgo may miss an ACK deadline and reconnect on its own
// (it declares a connection dead when the ACK of a heartbeat has not arrived by the
// next one), so each step waits for "one more resume/identify than before" rather
// than for absolute counts, and the heartbeat interval is not tiny.
//
// It runs once per transport compression disgo can ask for: disgo's own zlib-stream and
// zstd-stream decoders must read everything the fake sends, on every new connection.
func TestDisgoGatewayClient(t *testing.T) {
	tests := []struct {
		compression gateway.CompressionType
		want        Compression
	}{
		{gateway.CompressionNone, CompressionNone},
		{gateway.CompressionZlibStream, CompressionZlibStream},
		{gateway.CompressionZstdStream, CompressionZstdStream},
	}
	for _, tt := range tests {
		t.Run(tt.compression.String(), func(t *testing.T) {
			testDisgoGatewayClient(t, tt.compression, tt.want)
		})
	}
}

func testDisgoGatewayClient(t *testing.T, compression gateway.CompressionType, want Compression) {
	g := guildID(3)
	srv := newTestServer(t, Options{HeartbeatInterval: 500 * time.Millisecond, Guilds: []uint64{g}})
	intents := gateway.IntentGuilds | gateway.IntentGuildMessages | gateway.IntentMessageContent
	p := startDisgo(t, srv, intents, compression)
	ctx := testCtx(t)

	if open := p.next("open", ""); open.Err != "" || open.Status != gateway.StatusReady.String() {
		t.Fatalf("disgo Open: %+v", open)
	}
	if ready := p.next("event", "READY"); ready.Seq != 1 || ready.URL != srv.URL() {
		t.Fatalf("READY %+v", ready)
	}
	if gc := p.next("event", "GUILD_CREATE"); gc.GuildID != g || gc.Seq != 2 {
		t.Fatalf("GUILD_CREATE %+v", gc)
	}
	srv.SendMessage(g, g, "hello disgo")
	hello := p.waitMessage("hello disgo")
	if hello.Seq < 3 {
		t.Fatalf("MESSAGE_CREATE seq %d, want >= 3", hello.Seq)
	}
	if log := srv.Stats().IdentifyLog; len(log) != 1 || log[0].Intents != int64(intents) {
		t.Fatalf("identify log %+v", log)
	}

	// Heartbeats flow and are ACKed.
	waitStats(t, srv, "heartbeats", func(s Stats) bool { return s.PerShard[0].ACKs >= 2 })

	// step runs a hook on the connected shard and waits until disgo resumed (or, if
	// identify, identified) once more.
	step := func(what string, identify bool, hook func()) {
		t.Helper()
		if err := srv.WaitConnected(ctx, 0); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		before := srv.Stats()
		hook()
		waitStats(t, srv, what, func(s Stats) bool {
			if identify {
				return s.Identifies > before.Identifies
			}
			return s.Resumes > before.Resumes
		})
	}

	// Cut: disgo reconnects, resumes, and gets what it missed, with its seq.
	step("resume after cut", false, func() {
		srv.Cut(0)
		srv.SendMessage(g, g, "missed while cut")
	})
	if ev := p.waitMessage("missed while cut"); ev.Seq <= hello.Seq {
		t.Fatalf("replayed seq %d, want > %d", ev.Seq, hello.Seq)
	}
	p.next("event", "RESUMED")

	// op 7: disgo closes and resumes.
	step("resume after op 7", false, func() { srv.Reconnect(0) })
	p.next("event", "RESUMED")

	// No ACKs: disgo detects the zombie connection, closes and resumes.
	step("resume after missing ACKs", false, func() { srv.SetACKs(0, false) })
	p.next("event", "RESUMED")

	// Resumable op 9: resume again.
	step("resume after op 9 true", false, func() { srv.InvalidSession(0, true) })
	p.next("event", "RESUMED")

	// Non-resumable op 9: a fresh identify.
	step("identify after op 9 false", true, func() { srv.InvalidSession(0, false) })
	p.next("event", "READY")
	if err := srv.WaitConnected(ctx, 0); err != nil {
		t.Fatal(err)
	}
	srv.SendMessage(g, g, "after re-identify")
	p.waitMessage("after re-identify")

	// disgo's Close sends 1000 (which, as on Discord, ends the session).
	p.stop()
	st := waitStats(t, srv, "client close", func(s Stats) bool { return s.OpenConnections == 0 })
	// Expected per connection: cut (nothing sent) 0; op 7, zombie, op 9 true: 1012;
	// op 9 false and Close: 1000. disgo closes the socket right after writing its close
	// frame, without waiting for the server's; if data it has not read yet is pending,
	// the kernel resets the connection and the close frame can be lost (recorded as
	// 0), so 0 is tolerated anywhere, and so are extra 1012s from spurious reconnects.
	codes := st.PerShard[0].ClientCloseCodes
	t.Logf("close codes sent by disgo, per connection: %v", codes)
	for _, code := range codes {
		if code != 0 && code != 1000 && code != 1012 {
			t.Fatalf("close codes sent by disgo %v: unexpected %d", codes, code)
		}
	}
	if last := st.PerShard[0].LastCloseCode; last != 1000 && last != 0 {
		t.Fatalf("LastCloseCode %d, want 1000 (disgo's Close)", last)
	}
	for i, mode := range st.PerShard[0].Compressions {
		if mode != want {
			t.Fatalf("connection %d of disgo used compression %q, want %q", i, mode, want)
		}
	}
	if st.ConnectionsByCompression[want] != st.Connections {
		t.Fatalf("connections by compression %v, want all %d %s", st.ConnectionsByCompression, st.Connections, want)
	}
}

// TestDisgoGatewayClientFatalClose checks that disgo's Open fails (without retrying)
// on a non-reconnectable close code from the fake.
func TestDisgoGatewayClientFatalClose(t *testing.T) {
	srv := newTestServer(t, Options{HeartbeatInterval: 100 * time.Millisecond, AllowedIntents: NoPrivilegedIntents})
	p := startDisgo(t, srv, gateway.IntentGuilds|gateway.IntentMessageContent, gateway.CompressionNone)
	open := p.next("open", "")
	if !strings.Contains(open.Err, "4014") {
		t.Fatalf("disgo Open: %+v, want a 4014 error", open)
	}
	p.next("closed", "")
	if st := srv.Stats(); st.Connections != 1 || st.Identifies != 0 {
		t.Fatalf("stats %+v", st)
	}
}
