package botruntime_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
)

func withCompression(c botruntime.Compression) func(*botruntime.Config) {
	return func(cfg *botruntime.Config) { cfg.Compression = c }
}

// metricValue is the value of the one /metrics line that starts with series, 0 without one.
func metricValue(t *testing.T, rt *botruntime.Runtime, series string) float64 {
	t.Helper()
	line := metric(t, rt, series)
	if line == "" {
		return 0
	}
	var v float64
	if err := json.Unmarshal([]byte(line[strings.LastIndexByte(line, ' ')+1:]), &v); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return v
}

// A shard in each compression mode connects, gets READY and events, loses its connection
// and resumes, follows op 7, and loses no event, every connection asking for its mode.
func TestEveryCompressionModeRunsASession(t *testing.T) {
	for _, mode := range []botruntime.Compression{botruntime.CompressionZstdStream, botruntime.CompressionZlibStream, botruntime.CompressionNone} {
		t.Run(string(mode), func(t *testing.T) {
			g := guildOnShard(1, 0, 1)
			clk := fakeClock()
			// Heartbeats an hour apart: the step below sends one at most, ACKed at once.
			srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour, Guilds: []uint64{g}})
			defer srv.Close()
			rec := newRecorder(0)
			rt := newRuntimeWithConfig(t, srv, discordtest.DefaultToken, []int{0}, 1, withCompression(mode), botruntime.WithClock(clk))
			_ = rt.Handle(rec.handle)
			running(t, rt)
			eventually(t, "shard ready", func() bool { return allReady(rt) })

			for range 10 {
				srv.SendMessage(g, 1, "before")
			}
			eventually(t, "10 events", func() bool { return rec.count() == 10 })
			srv.Cut(0)
			for range 10 {
				srv.SendMessage(g, 1, "while cut") // replayed on the resumed connection
			}
			waitingOnlyFor(t, rt, clk)
			clk.Step(time.Second) // the first backoff's longest
			eventually(t, "20 events after the resume", func() bool { return rec.count() == 20 })
			eventually(t, "resumed", func() bool { return rt.Shards()[0].State == botruntime.StateResumed })

			srv.Reconnect(0) // op 7: at once, no backoff
			eventually(t, "resumed after op 7", func() bool { return srv.Stats().PerShard[0].Resumes == 2 && allReady(rt) })
			for range 5 {
				srv.SendMessage(g, 1, "after op 7")
			}
			eventually(t, "25 events", func() bool { return rec.count() == 25 })

			st := srv.Stats()
			shard := st.PerShard[0]
			want := discordtest.Compression(mode)
			if !slices.Equal(shard.Compressions, []discordtest.Compression{want, want, want}) {
				t.Errorf("the fake saw connections with %v, want 3 with %s", shard.Compressions, want)
			}
			if st.ConnectionsByCompression[want] != 3 || st.Connections != 3 {
				t.Errorf("connections by compression %v of %d", st.ConnectionsByCompression, st.Connections)
			}
			if shard.Identifies != 1 || shard.Resumes != 2 {
				t.Errorf("identifies %d, resumes %d; want 1 and 2", shard.Identifies, shard.Resumes)
			}
			if d := rec.duplicates(); d != 0 {
				t.Errorf("%d events handled twice", d)
			}

			wire := metricValue(t, rt, `shardkeeper_gateway_received_wire_bytes_total{shard="0"}`)
			payload := metricValue(t, rt, `shardkeeper_gateway_received_payload_bytes_total{shard="0"}`)
			switch {
			case wire == 0 || payload == 0:
				t.Errorf("received %v bytes on the wire, %v of payload", wire, payload)
			case mode == botruntime.CompressionNone && wire != payload:
				t.Errorf("without compression, %v bytes on the wire and %v of payload", wire, payload)
			case mode != botruntime.CompressionNone && wire >= payload/2:
				t.Errorf("%s: %v bytes on the wire for %v of payload", mode, wire, payload)
			}
		})
	}
}

func TestTheDefaultCompressionIsZstdStream(t *testing.T) {
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour})
	defer srv.Close()
	rt := newRuntime(t, srv, []int{0}, 1) // a Config with no Compression
	running(t, rt)
	eventually(t, "shard ready", func() bool { return allReady(rt) })
	if got := srv.Stats().PerShard[0].Compressions; !slices.Equal(got, []discordtest.Compression{discordtest.CompressionZstdStream}) {
		t.Errorf("connections with %v, want one with zstd-stream", got)
	}
}

// incompressible is text that no compression makes much smaller.
func incompressible(n int) string {
	raw := make([]byte, n*3/4)
	_, _ = rand.Read(raw)
	return base64.StdEncoding.EncodeToString(raw)
}

// A frame over the read limit, or one that decodes to more JSON than the payload limit
// (the usual way for a compressed one), ends its connection; the session is kept and
// resumed. (Its replay ends the next connection the same way: the shard keeps trying,
// which the reconnect reason shows.)
func TestFramesOverTheReadLimitsEndTheConnectionAndKeepTheSession(t *testing.T) {
	const maxFrame, maxPayload = 64 << 10, 256 << 10
	tests := []struct {
		name    string
		mode    botruntime.Compression
		content string
		reason  string
	}{
		{"zstd-stream, a frame over the frame limit", botruntime.CompressionZstdStream, incompressible(200 << 10), "frame_too_large"},
		{"zstd-stream, a small frame of too much JSON", botruntime.CompressionZstdStream, strings.Repeat("x", 1<<20), "payload_too_large"},
		{"zlib-stream, a small frame of too much JSON", botruntime.CompressionZlibStream, strings.Repeat("x", 1<<20), "payload_too_large"},
		// Without compression the frame is the JSON: the payload limit is its read limit.
		{"none, a frame over the payload limit", botruntime.CompressionNone, strings.Repeat("x", 300<<10), "frame_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := guildOnShard(1, 0, 1)
			srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour, Guilds: []uint64{g}})
			defer srv.Close()
			rec := newRecorder(0)
			rt := newRuntimeWithConfig(t, srv, discordtest.DefaultToken, []int{0}, 1, withCompression(tc.mode),
				botruntime.WithReadLimits(maxFrame, maxPayload))
			_ = rt.Handle(rec.handle)
			running(t, rt)
			eventually(t, "shard ready", func() bool { return allReady(rt) })
			// Just under the limits: read as any other.
			srv.SendMessage(g, 1, strings.Repeat("y", maxFrame-2000))
			eventually(t, "the message under the limits", func() bool { return rec.count() == 1 })

			srv.SendMessage(g, 1, tc.content)
			reconnects := `shardkeeper_gateway_reconnects_total{reason="` + tc.reason + `",shard="0"}`
			eventually(t, "a reconnect for "+tc.reason, func() bool { return metricValue(t, rt, reconnects) >= 1 })
			eventually(t, "the session resumed", func() bool { return srv.Stats().PerShard[0].Resumes >= 1 })
			st := srv.Stats().PerShard[0]
			if st.Identifies != 1 {
				t.Errorf("identified %d times; the session must be kept", st.Identifies)
			}
			if codes := st.ClientCloseCodes; len(codes) == 0 || codes[0] == 1000 || codes[0] == 1001 || codes[0] == 0 {
				t.Errorf("the client's close codes %v; want the first connection ended with one that keeps the session", codes)
			}
			if n := rec.count(); n != 1 {
				t.Errorf("%d messages handled, want only the one under the limits", n)
			}
		})
	}
}

// rawGateway is a gateway that sends whatever a test tells it to, for the frames the fake
// Discord never sends.
type rawGateway struct {
	*httptest.Server
	conns chan *rawConn
}

// rawConn is one connection to a rawGateway. Heartbeats are ACKed at once unless writeMu
// is held; every heartbeat's arrival is recorded.
type rawConn struct {
	ws      *websocket.Conn
	enc     *gatewaycompress.Encoder
	writeMu sync.Mutex
	closed  chan int // the client's close code
	mu      sync.Mutex
	beats   []time.Time
}

func newRawGateway(t *testing.T) *rawGateway {
	g := &rawGateway{conns: make(chan *rawConn, 10)}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		mode, _ := gatewaycompress.Parse(r.URL.Query().Get("compress"))
		c := &rawConn{ws: ws, enc: gatewaycompress.NewEncoder(mode), closed: make(chan int, 1)}
		g.conns <- c
		for {
			_, data, err := ws.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.closed <- ce.Code
			}
			if err != nil {
				return
			}
			var p struct{ Op int }
			if json.Unmarshal(data, &p) == nil && p.Op == 1 {
				arrived := time.Now()
				c.send(t, `{"op":11,"d":null}`)
				c.mu.Lock() // once ACKed: a test that sees it may hold writeMu
				c.beats = append(c.beats, arrived)
				c.mu.Unlock()
			}
		}
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *rawGateway) URL() string { return "ws" + strings.TrimPrefix(g.Server.URL, "http") }

func (g *rawGateway) next(t *testing.T) *rawConn {
	t.Helper()
	select {
	case c := <-g.conns:
		return c
	case <-time.After(waitLimit):
		t.Fatal("no connection to the raw gateway")
		return nil
	}
}

// send writes a payload as the connection's compression asks: compressed in a BINARY
// frame, or as it is in a TEXT frame.
func (c *rawConn) send(t *testing.T, payload string) {
	mt, data := websocket.TextMessage, []byte(payload)
	if c.enc != nil {
		frame, err := c.enc.Encode(data)
		if err != nil {
			t.Error(err)
			return
		}
		mt, data = websocket.BinaryMessage, frame
	}
	c.write(mt, data)
}

func (c *rawConn) write(mt int, data []byte) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.WriteMessage(mt, data)
}

func (c *rawConn) heartbeats() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.beats)
}

func rawRuntime(t *testing.T, g *rawGateway, mode botruntime.Compression) *botruntime.Runtime {
	srv := discordtest.NewServer(discordtest.Options{}) // only for newRuntimeWithConfig's defaults
	t.Cleanup(srv.Close)
	return newRuntimeWithConfig(t, srv, discordtest.DefaultToken, []int{0}, 1, func(cfg *botruntime.Config) {
		cfg.GatewayURL, cfg.Compression = g.URL(), mode
	})
}

// A frame of the wrong type, or one that does not decompress, ends the connection with a
// code that keeps the session, and the shard comes back.
func TestABadFrameEndsTheConnection(t *testing.T) {
	hello := `{"op":10,"d":{"heartbeat_interval":45000}}`
	tests := []struct {
		name   string
		mode   botruntime.Compression
		mt     int
		frame  []byte
		reason string
	}{
		{"TEXT on zstd-stream", botruntime.CompressionZstdStream, websocket.TextMessage, []byte(hello), "unexpected_frame_type"},
		{"TEXT on zlib-stream", botruntime.CompressionZlibStream, websocket.TextMessage, []byte(hello), "unexpected_frame_type"},
		{"BINARY without compression", botruntime.CompressionNone, websocket.BinaryMessage, []byte(hello), "unexpected_frame_type"},
		{"not zstd", botruntime.CompressionZstdStream, websocket.BinaryMessage, []byte(hello), "undecodable_frame"},
		{"not zlib", botruntime.CompressionZlibStream, websocket.BinaryMessage, append([]byte(hello), gatewaycompress.SyncFlush...), "undecodable_frame"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRawGateway(t)
			rt := rawRuntime(t, g, tc.mode)
			running(t, rt)
			c := g.next(t)
			c.write(tc.mt, tc.frame)
			select {
			case code := <-c.closed:
				if code != 4000 {
					t.Errorf("closed with %d, want 4000", code)
				}
			case <-time.After(waitLimit):
				t.Fatal("the connection was not closed")
			}
			reconnects := `shardkeeper_gateway_reconnects_total{reason="` + tc.reason + `",shard="0"}`
			eventually(t, "a reconnect for "+tc.reason, func() bool { return metricValue(t, rt, reconnects) == 1 })
			g.next(t) // and it came back
		})
	}
}

// While the read loop waits on a frame that is slow to come (or to decode), heartbeats go
// out on time: the heartbeat has its own goroutine, and the read loop never writes.
func TestAReadLoopHeldUpByAFrameDoesNotHoldHeartbeats(t *testing.T) {
	const interval = time.Second
	g := newRawGateway(t)
	rt := rawRuntime(t, g, botruntime.CompressionZstdStream)
	running(t, rt)
	c := g.next(t)
	c.send(t, `{"op":10,"d":{"heartbeat_interval":1000}}`)
	eventually(t, "a first heartbeat, ACKed", func() bool { return len(c.heartbeats()) == 1 })

	// A large message, sent in fragments with a pause longer than an interval: the read
	// loop waits for the rest of it while the next heartbeat falls due. Its ACK waits too
	// (it is behind the message on the wire), for less than an interval.
	big, err := c.enc.Encode([]byte(`{"op":0,"s":1,"t":"TYPING_START","d":{"x":"` + incompressible(256<<10) + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	c.writeMu.Lock()
	stallStart := time.Now()
	w, err := c.ws.NextWriter(websocket.BinaryMessage)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(big[:len(big)/2]) // past gorilla's write buffer: fragments go out
	time.Sleep(interval * 3 / 2)
	_, _ = w.Write(big[len(big)/2:])
	_ = w.Close()
	stallEnd := time.Now()
	c.writeMu.Unlock()

	// The server records a heartbeat once it ACKed it, so the one that came during the
	// stall shows now, with the time it came.
	eventually(t, "a second heartbeat", func() bool { return len(c.heartbeats()) >= 2 })
	beats := c.heartbeats()
	var during []time.Time
	for _, b := range beats {
		if b.After(stallStart) && b.Before(stallEnd) {
			during = append(during, b)
		}
	}
	if len(during) != 1 {
		t.Fatalf("%d heartbeats while the read loop waited %s on a frame (%v); want the one due then", len(during), stallEnd.Sub(stallStart), beats)
	}
	if gap := during[0].Sub(beats[0]); gap > interval+interval/2 {
		t.Errorf("the heartbeat due while the read loop waited came %s after the previous one (interval %s)", gap, interval)
	}
	eventually(t, "the next heartbeat, on the same connection", func() bool { return len(c.heartbeats()) >= 3 })
	if n := metricValue(t, rt, `shardkeeper_gateway_zombie_connections_total{shard="0"}`); n != 0 {
		t.Errorf("%v zombie connections", n)
	}
}
