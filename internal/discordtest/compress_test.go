package discordtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/disgoorg/disgo/gateway"
	"github.com/gorilla/websocket"
)

var streamCompressions = []Compression{CompressionZlibStream, CompressionZstdStream}

func compressQuery(mode Compression) string {
	return "?v=10&encoding=json&compress=" + string(mode)
}

// bigGuildCreate is the GUILD_CREATE of a guild with members members, a few hundred KB
// of JSON for a few thousand members, as a large guild sends on connect.
func bigGuildCreate(srv *Server, guild uint64, members int) guildObject {
	g := srv.guildCreatePayload(guild)
	joined := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range members {
		name := "member-" + strconv.Itoa(i)
		u := userObject{ID: jsonID(guild + uint64(i) + 1), Username: name, Discriminator: "0", GlobalName: &name}
		g.Members = append(g.Members, newMember(&u, joined.Add(time.Duration(i)*time.Minute)))
	}
	g.MemberCount = len(g.Members)
	g.Large = true
	return g
}

func TestTransportCompression(t *testing.T) {
	for _, mode := range streamCompressions {
		t.Run(string(mode), func(t *testing.T) {
			g := guildID(1)
			srv := newTestServer(t, Options{Guilds: []uint64{g}})
			c := dial(t, srv, compressQuery(mode))
			c.identify(0, 1, 1)

			// One GUILD_CREATE of several hundred KB comes through whole.
			big := bigGuildCreate(srv, g, 3000)
			want := mustMarshal(big)
			if len(want) < 300<<10 {
				t.Fatalf("test payload is only %d bytes", len(want))
			}
			srv.Dispatch(g, "GUILD_CREATE", big)
			f := c.nextDispatch(gateway.EventTypeGuildCreate)
			if !bytes.Equal(f.Raw["d"], want) {
				t.Fatalf("the big GUILD_CREATE decoded to %d bytes, want the %d dispatched", len(f.Raw["d"]), len(want))
			}
			if gc := f.Msg.D.(gateway.EventGuildCreate); len(gc.Members) != 3001 {
				t.Fatalf("GUILD_CREATE has %d members, want 3001", len(gc.Members))
			}
			if c.wireSize >= len(want)/2 {
				t.Fatalf("the big GUILD_CREATE took %d bytes on the wire for %d of JSON: not compressed", c.wireSize, len(want))
			}

			// Many messages on one connection, each decoded as it arrives, in order.
			const n = 300
			for i := range n {
				srv.SendMessage(g, g, "message "+strconv.Itoa(i))
			}
			for i := range n {
				f := c.nextDispatch(gateway.EventTypeMessageCreate)
				if got := f.Msg.D.(gateway.EventMessageCreate).Content; got != "message "+strconv.Itoa(i) {
					t.Fatalf("message %d: content %q", i, got)
				}
			}

			// Heartbeat ACKs (not dispatches) are compressed through the same context.
			c.send(1, nil)
			c.nextOp(gateway.OpcodeHeartbeatACK)

			st := srv.Stats()
			shard := st.PerShard[0]
			if shard.Compression != mode || len(shard.Compressions) != 1 || shard.Compressions[0] != mode || shard.Connections != 1 {
				t.Fatalf("shard stats say compression %q %v over %d connections, want %s once", shard.Compression, shard.Compressions, shard.Connections, mode)
			}
			if st.ConnectionsByCompression[mode] != 1 || st.ConnectionsByCompression[CompressionNone] != 0 {
				t.Fatalf("connections by compression %v", st.ConnectionsByCompression)
			}
			if shard.BytesSent <= 0 || shard.BytesSent > st.BytesSent || st.BytesSent > int64(len(want)) {
				t.Fatalf("bytes sent: shard %d, all %d, for more than %d bytes of JSON", shard.BytesSent, st.BytesSent, len(want))
			}
		})
	}
}

// TestTransportCompressionSharesOneContext: a message sent twice costs little the second
// time, which it only can if the compressor remembers the first (one context for the
// connection, not one per message).
func TestTransportCompressionSharesOneContext(t *testing.T) {
	for _, mode := range streamCompressions {
		t.Run(string(mode), func(t *testing.T) {
			g := guildID(1)
			srv := newTestServer(t, Options{Guilds: []uint64{g}})
			c := dial(t, srv, compressQuery(mode))
			c.identify(0, 1, 1)

			// About 8 KB of text that does not compress on its own, within deflate's 32 KB
			// window.
			var sb strings.Builder
			for i := range 1000 {
				fmt.Fprintf(&sb, "%x", uint32(i)*2654435761)
			}
			text := sb.String()
			srv.Dispatch(g, "X_TEST", map[string]string{"text": text})
			srv.Dispatch(g, "X_TEST", map[string]string{"text": text})
			c.nextDispatch("X_TEST")
			first := c.wireSize
			c.nextDispatch("X_TEST")
			second := c.wireSize
			t.Logf("%s: %d bytes of text: %d bytes the first time, %d the second", mode, len(text), first, second)
			if second*4 > first {
				t.Fatalf("the repeated message took %d bytes after %d: the context is not shared", second, first)
			}
		})
	}
}

// TestTransportCompressionPerConnection: each connection has its own context, so a
// shard that resumes on a new connection (with a fresh decoder, in another mode even)
// decodes everything, replay included; the stats keep one mode per connection.
func TestTransportCompressionPerConnection(t *testing.T) {
	g := guildID(1)
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	a := dial(t, srv, compressQuery(CompressionZlibStream))
	ready, _ := a.identify(0, 1, 1)
	srv.SendMessage(g, g, "before the cut")
	before := a.nextDispatch(gateway.EventTypeMessageCreate)
	srv.Cut(0)
	a.expectCut()
	srv.SendMessage(g, g, "missed")

	b := dial(t, srv, compressQuery(CompressionZstdStream))
	b.hello()
	b.resume(ready.SessionID, before.Msg.S)
	if got := b.nextDispatch(gateway.EventTypeMessageCreate).Msg.D.(gateway.EventMessageCreate).Content; got != "missed" {
		t.Fatalf("replayed %q, want the missed message", got)
	}
	b.nextDispatch(gateway.EventTypeResumed)

	c := dial(t, srv, "")
	c.hello() // a plain connection beside them still gets plain TEXT frames

	st := waitStats(t, srv, "three connections", func(s Stats) bool { return s.Connections == 3 })
	shard := st.PerShard[0]
	want := []Compression{CompressionZlibStream, CompressionZstdStream}
	if fmt.Sprint(shard.Compressions) != fmt.Sprint(want) || shard.Compression != CompressionZstdStream || shard.Connections != 2 {
		t.Fatalf("shard 0: compressions %v (latest %q) over %d connections, want %v", shard.Compressions, shard.Compression, shard.Connections, want)
	}
	if byMode := st.ConnectionsByCompression; byMode[CompressionZlibStream] != 1 || byMode[CompressionZstdStream] != 1 || byMode[CompressionNone] != 1 {
		t.Fatalf("connections by compression %v", byMode)
	}
}

// TestUnknownCompressIsRefused: compress takes zlib-stream or zstd-stream; anything else
// (compress=true is identify's payload compression, not a transport) gets a plain Hello
// and a 4002 close.
func TestUnknownCompressIsRefused(t *testing.T) {
	values := []string{"true", "zlib", "zstd", "gzip", "ZLIB-STREAM"}
	srv := newTestServer(t, Options{})
	for _, v := range values {
		c := dial(t, srv, "?v=10&encoding=json&compress="+v)
		_ = c.ws.SetReadDeadline(time.Now().Add(testTimeout))
		mt, data, err := c.ws.ReadMessage()
		if err != nil || mt != websocket.TextMessage {
			t.Fatalf("compress=%s: first frame %d %v, want a plain Hello", v, mt, err)
		}
		var hello struct{ Op int }
		if err := json.Unmarshal(data, &hello); err != nil || hello.Op != 10 {
			t.Fatalf("compress=%s: first frame %s, want Hello", v, data)
		}
		c.expectClose(CloseDecodeError)
	}
	st := waitStats(t, srv, "every connection closed", func(s Stats) bool { return s.OpenConnections == 0 })
	if st.ServerCloseCodes[CloseDecodeError] != len(values) || st.ConnectionsByCompression[CompressionNone] != len(values) {
		t.Fatalf("server close codes %v, connections by compression %v", st.ServerCloseCodes, st.ConnectionsByCompression)
	}
}
