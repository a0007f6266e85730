package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/guildcache"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/proxytest"
)

const (
	guild, channel = uint64(1) << 22, uint64(1)<<22 + 1
	// window is the most events sent and not yet read in the throughput runs: well under
	// the proxy's client queue (half its replay buffer), past which it drops a client.
	window    = 1000
	waitLimit = 20 * time.Second
)

var modes = []gatewaycompress.Mode{gatewaycompress.None, gatewaycompress.ZlibStream, gatewaycompress.ZstdStream}

// route is one way for the bot's process to get the shard's events: it starts what the
// route needs and gives the fake Discord, and the gateway URL and token to connect with.
type route struct {
	name  string
	start func(b *testing.B, mode gatewaycompress.Mode) (srv *discordtest.Server, url, token string)
}

var routes = []route{
	{"direct", func(b *testing.B, _ gatewaycompress.Mode) (*discordtest.Server, string, string) {
		srv := discordtest.NewServer(discordtest.Options{Guilds: []uint64{guild}, HeartbeatInterval: time.Hour})
		b.Cleanup(srv.Close)
		return srv, srv.URL(), srv.Options().Token
	}},
	{"proxy", func(b *testing.B, mode gatewaycompress.Mode) (*discordtest.Server, string, string) {
		r := proxytest.New(b, proxytest.Config{Discord: discordtest.Options{Guilds: []uint64{guild}}, Compression: botruntime.Compression(mode)})
		return r.Discord, r.URL(), proxytest.ClientToken
	}},
}

// chat are message contents of a chat's shape; sendStamped rotates them.
var chat = []string{
	"anyone up for the raid tonight at 9?", "gg", "lol that boss drop though",
	"can someone give me the role for the voice channel", "brb", "patch notes are out, the new map looks good",
	"thanks!", "who is streaming tonight",
}

// sendStamped has the fake send a MESSAGE_CREATE whose content starts with the time of
// sending, in nanoseconds.
func sendStamped(srv *discordtest.Server, i int) {
	srv.SendMessage(guild, channel, strconv.FormatInt(time.Now().UnixNano(), 10)+" "+chat[i%len(chat)])
}

// sentAt reads the time sendStamped put into a MESSAGE_CREATE.
func sentAt(d json.RawMessage) (time.Time, error) {
	var m struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(d, &m); err != nil {
		return time.Time{}, err
	}
	stamp, _, _ := strings.Cut(m.Content, " ")
	ns, err := strconv.ParseInt(stamp, 10, 64)
	return time.Unix(0, ns), err
}

// arrival is a MESSAGE_CREATE the client read, and when.
type arrival struct {
	at time.Time
	d  json.RawMessage
}

// client is the bot's process reduced to its gateway reads.
type client struct {
	ready    json.RawMessage // the READY's data
	arrivals chan arrival
	failed   chan error
}

// connect identifies to url and waits for the guild, then reads every payload on its own
// goroutine, parses it and passes on each MESSAGE_CREATE (at most queue unread).
func connect(b *testing.B, url, token string, mode gatewaycompress.Mode, queue int) *client {
	b.Helper()
	conn, err := proxytest.Dial(url, mode)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	if err := conn.WriteJSON(map[string]any{"op": 2, "d": map[string]any{
		"token": token, "intents": 1 | 1<<9, "shard": []int{0, 1}, "properties": map[string]string{"os": "linux"},
	}}); err != nil {
		b.Fatal(err)
	}
	type payload struct {
		T string          `json:"t"`
		D json.RawMessage `json:"d"`
	}
	c := &client{arrivals: make(chan arrival, queue), failed: make(chan error, 1)}
	for p := (payload{}); p.T != "GUILD_CREATE"; {
		data, err := conn.ReadPayload()
		if err == nil {
			err = json.Unmarshal(data, &p)
		}
		if err != nil {
			b.Fatalf("before the guild: %v", err)
		}
		if p.T == "READY" {
			c.ready = p.D
		}
	}
	go func() {
		for {
			data, err := conn.ReadPayload()
			at := time.Now()
			var p payload
			if err == nil {
				err = json.Unmarshal(data, &p)
			}
			if err != nil {
				c.failed <- err // the end of the run too: nobody reads it then
				return
			}
			if p.T == "MESSAGE_CREATE" {
				c.arrivals <- arrival{at, p.D}
			}
		}
	}()
	return c
}

// next is the next MESSAGE_CREATE read.
func (c *client) next(b *testing.B) arrival {
	select {
	case a := <-c.arrivals:
		return a
	case err := <-c.failed:
		b.Fatalf("client: %v", err)
	case <-time.After(waitLimit):
		b.Fatalf("no MESSAGE_CREATE within %s", waitLimit)
	}
	return arrival{}
}

// Events per second one client reads, directly and through the proxy, by the compression
// it asks for. An op is one event, from the fake's send to the client's read.
func BenchmarkThroughput(b *testing.B) {
	for _, mode := range modes {
		for _, rt := range routes {
			b.Run(fmt.Sprintf("%s/%s", mode, rt.name), func(b *testing.B) {
				srv, url, token := rt.start(b, mode)
				c := connect(b, url, token, mode, window)
				b.ResetTimer()
				unread := 0
				for i := range b.N {
					if unread == window {
						c.next(b)
						unread--
					}
					sendStamped(srv, i)
					unread++
				}
				for ; unread > 0; unread-- {
					c.next(b)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// The time from the fake's send to the client's read at 1,000 events/s, directly and
// through the proxy, by the compression the client asks for. An op is one event.
func BenchmarkLatency(b *testing.B) {
	const every = time.Millisecond
	for _, mode := range modes {
		for _, rt := range routes {
			b.Run(fmt.Sprintf("%s/%s", mode, rt.name), func(b *testing.B) {
				srv, url, token := rt.start(b, mode)
				c := connect(b, url, token, mode, b.N)
				b.ResetTimer()
				start := time.Now()
				for i := range b.N {
					time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
					sendStamped(srv, i)
				}
				latencies := make([]time.Duration, b.N)
				for i := range latencies {
					a := c.next(b)
					sent, err := sentAt(a.d)
					if err != nil {
						b.Fatal(err)
					}
					latencies[i] = a.at.Sub(sent)
				}
				b.StopTimer()
				slices.Sort(latencies)
				quantile := func(q float64) float64 {
					return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Microsecond)
				}
				b.ReportMetric(quantile(0.5), "p50-µs")
				b.ReportMetric(quantile(0.99), "p99-µs")
			})
		}
	}
}

// Heap each MESSAGE_CREATE costs in a shard's replay buffer, held while no client reads
// (up to gatewayproxy.DefaultReplayEvents of them), beside its JSON. The payloads are
// the fake's, as the runtime hands them over: a copy of the event's "d" each.
func BenchmarkReplayBuffer(b *testing.B) {
	const events = gatewayproxy.DefaultReplayEvents
	srv, url, token := routes[0].start(b, gatewaycompress.None)
	c := connect(b, url, token, gatewaycompress.None, 1)
	sendStamped(srv, 0)
	message := c.next(b).d
	b.ResetTimer()
	for range b.N {
		p, err := gatewayproxy.New(gatewayproxy.Options{
			ShardIDs: []int{0}, ShardCount: 1, ClientToken: proxytest.ClientToken, RealToken: token,
			ReplayEvents: events, ReplayBytes: gatewayproxy.DefaultReplayBytes,
			NewCache: func(int) gatewayproxy.Cache { return guildcache.New(guildcache.Options{}) },
		})
		if err != nil {
			b.Fatal(err)
		}
		p.HandleEvent(context.Background(), botruntime.Event{Shard: 0, Type: "READY", Raw: c.ready})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range events {
			p.HandleEvent(context.Background(), botruntime.Event{Shard: 0, Type: "MESSAGE_CREATE", Raw: bytes.Clone(message)})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/events, "heap-bytes/event")
		b.ReportMetric(float64(len(message)), "json-bytes/event")
		runtime.KeepAlive(p)
	}
}
