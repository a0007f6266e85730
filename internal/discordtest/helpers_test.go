package discordtest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/gorilla/websocket"

	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
)

// testTimeout bounds every wait in these tests. It is generous: a busy 2-core CI
// machine running -race must never hit it while things work.
const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newTestServer(t *testing.T, opts Options) *Server {
	t.Helper()
	srv := NewServer(opts)
	t.Cleanup(srv.Close)
	return srv
}

// guildOnShard returns a guild ID (with a non-zero low part, like a real snowflake)
// whose upper bits are k, so that it routes to shard k % n.
func guildID(k uint64) uint64 { return k<<22 | 4242 }

// rawClient is a minimal hand-driven gateway client. With transport compression in
// its URL it inflates every message through one context, as a Discord client does.
type rawClient struct {
	t       *testing.T
	ws      *websocket.Conn
	inflate *gatewaycompress.Decoder // nil without compress=
	// wireSize is the size of the last message as it came over the wire.
	wireSize int
}

// frameIn is one received frame: raw and parsed by disgo.
type frameIn struct {
	Raw map[string]json.RawMessage
	Msg gateway.Message
}

func dial(t *testing.T, srv *Server, query string) *rawClient {
	t.Helper()
	if query == "" {
		query = "?v=10&encoding=json"
	}
	d := websocket.Dialer{HandshakeTimeout: testTimeout}
	ws, resp, err := d.Dial(srv.URL()+query, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = resp.Body.Close()
	c := &rawClient{t: t, ws: ws}
	if u, err := url.Parse(query); err == nil {
		if mode, ok := gatewaycompress.Parse(u.Query().Get("compress")); ok && mode != CompressionNone {
			c.inflate = gatewaycompress.NewDecoder(mode)
		}
	}
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

func (c *rawClient) send(op int, d any) {
	c.t.Helper()
	b, err := json.Marshal(map[string]any{"op": op, "d": d})
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *rawClient) sendRaw(b []byte) {
	c.t.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(testTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads a frame, failing the test on errors; every frame must unmarshal with
// disgo's gateway.Message.
func (c *rawClient) next() frameIn {
	c.t.Helper()
	f, err := c.tryNext()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *rawClient) tryNext() (frameIn, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(testTimeout))
	mt, data, err := c.ws.ReadMessage()
	if err != nil {
		return frameIn{}, err
	}
	c.wireSize = len(data)
	switch {
	case c.inflate != nil:
		if mt != websocket.BinaryMessage {
			c.t.Fatalf("compressed frame type %d, want binary: %.80s", mt, data)
		}
		// Each frame must decode on its own, given the ones before it.
		if data, err = c.inflate.Decode(data); err != nil {
			c.t.Fatalf("decoding a frame of %d bytes: %v", c.wireSize, err)
		}
	case mt != websocket.TextMessage:
		c.t.Fatalf("frame type %d, want text", mt)
	}
	var f frameIn
	if err := json.Unmarshal(data, &f.Raw); err != nil {
		c.t.Fatalf("frame is not a JSON object: %v: %s", err, data)
	}
	for _, k := range []string{"op", "d", "s", "t"} {
		if _, ok := f.Raw[k]; !ok {
			c.t.Fatalf("frame lacks %q: %s", k, data)
		}
	}
	if err := f.Msg.UnmarshalJSON(data); err != nil {
		c.t.Fatalf("disgo cannot unmarshal frame: %v", err)
	}
	return f, nil
}

// nextOp reads a frame and checks its opcode.
func (c *rawClient) nextOp(op gateway.Opcode) frameIn {
	c.t.Helper()
	f := c.next()
	if f.Msg.Op != op {
		c.t.Fatalf("got op %d (%s), want %d", f.Msg.Op, f.Msg.T, op)
	}
	return f
}

// nextDispatch reads a dispatch and checks its type.
func (c *rawClient) nextDispatch(eventType gateway.EventType) frameIn {
	c.t.Helper()
	f := c.nextOp(gateway.OpcodeDispatch)
	if f.Msg.T != eventType {
		c.t.Fatalf("got dispatch %s (seq %d), want %s", f.Msg.T, f.Msg.S, eventType)
	}
	return f
}

func (c *rawClient) hello() gateway.MessageDataHello {
	c.t.Helper()
	return c.nextOp(gateway.OpcodeHello).Msg.D.(gateway.MessageDataHello)
}

// expectClose reads until the connection ends and checks it ended with a close frame
// with code.
func (c *rawClient) expectClose(code int) {
	c.t.Helper()
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(testTimeout))
		_, data, err := c.ws.ReadMessage()
		if err == nil {
			c.t.Logf("frame before close: %s", data)
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("connection ended with %v, want close code %d", err, code)
		}
		if ce.Code != code {
			c.t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Text, code)
		}
		return
	}
}

// expectCut reads until the connection ends and checks that it ended without a close
// frame.
func (c *rawClient) expectCut() {
	c.t.Helper()
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(testTimeout))
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure { // 1006: no close frame
			c.t.Fatalf("got close frame %d, want an abrupt end", ce.Code)
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open: %v", err)
		}
		return
	}
}

// closeHandshake sends a close frame with code and reads until the server's echo
// before closing the socket; the server has then recorded the code. (Closing the
// socket right after the close frame is not reliable: with unread data in its receive
// buffer the kernel resets the connection and may drop the close frame.)
func (c *rawClient) closeHandshake(code int) {
	c.t.Helper()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
	c.expectClose(code)
	_ = c.ws.Close()
}

func identifyPayload(token string, shard, count int, intents int64) map[string]any {
	return map[string]any{
		"token":      token,
		"properties": map[string]string{"os": "linux", "browser": "discordtest", "device": "discordtest"},
		"intents":    intents,
		"shard":      [2]int{shard, count},
	}
}

// identify reads Hello, identifies, and returns the READY and the GUILD_CREATEs
// (nGuilds of them).
func (c *rawClient) identify(shard, count int, nGuilds int) (gateway.EventReady, []gateway.EventGuildCreate) {
	c.t.Helper()
	c.hello()
	c.send(2, identifyPayload(DefaultToken, shard, count, int64(gateway.IntentsNonPrivileged)))
	f := c.nextDispatch(gateway.EventTypeReady)
	if f.Msg.S != 1 {
		c.t.Fatalf("READY seq %d, want 1", f.Msg.S)
	}
	ready := f.Msg.D.(gateway.EventReady)
	var guilds []gateway.EventGuildCreate
	for i := 0; i < nGuilds; i++ {
		g := c.nextDispatch(gateway.EventTypeGuildCreate)
		if g.Msg.S != 2+i {
			c.t.Fatalf("GUILD_CREATE seq %d, want %d", g.Msg.S, 2+i)
		}
		guilds = append(guilds, g.Msg.D.(gateway.EventGuildCreate))
	}
	return ready, guilds
}

func (c *rawClient) resume(sessionID string, seq int) {
	c.t.Helper()
	c.send(6, map[string]any{"token": DefaultToken, "session_id": sessionID, "seq": seq})
}

// waitStats waits for cond and fails the test on timeout.
func waitStats(t *testing.T, srv *Server, what string, cond func(Stats) bool) Stats {
	t.Helper()
	st, err := srv.WaitStats(testCtx(t), cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v; stats: %+v", what, err, st)
	}
	return st
}

// do makes a REST request and returns status and body.
func do(t *testing.T, method, url, auth string, body string) (int, []byte) {
	t.Helper()
	status, _, b := doFull(t, method, url, auth, body)
	return status, b
}

// doFull makes a REST request and returns status, headers and body.
func doFull(t *testing.T, method, url, auth string, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: testTimeout}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}
