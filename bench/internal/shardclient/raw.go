package shardclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// messageCreate marks a MESSAGE_CREATE frame as the fake Discord writes it.
var messageCreate = []byte(`"t":"MESSAGE_CREATE"`)

// RawReader is not a bot: it identifies, heartbeats, and counts MESSAGE_CREATE frames
// without decoding them. What it reads per second is the ceiling the fake Discord's send
// path and the websocket framing put on any client in the same process.
func RawReader(ctx context.Context, srv *discordtest.Server, onMessage func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, srv.URL()+"?v=10&encoding=json", nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	var hello struct {
		D struct {
			HeartbeatInterval int64 `json:"heartbeat_interval"`
		} `json:"d"`
	}
	if err := ws.ReadJSON(&hello); err != nil || hello.D.HeartbeatInterval <= 0 {
		return fmt.Errorf("reading Hello: %v (interval %d)", err, hello.D.HeartbeatInterval)
	}
	var writeMu sync.Mutex
	write := func(v any) error {
		writeMu.Lock()
		defer writeMu.Unlock()
		return ws.WriteJSON(v)
	}
	identify := map[string]any{"op": 2, "d": map[string]any{
		"token": srv.Options().Token, "intents": 1 | 1<<9, "shard": [2]int{0, 1},
		"properties": map[string]string{"os": "linux", "browser": "bench", "device": "bench"},
	}}
	if err := write(identify); err != nil {
		return err
	}

	var heartbeats sync.WaitGroup
	heartbeats.Add(1)
	go func() {
		defer heartbeats.Done()
		tick := time.NewTicker(time.Duration(hello.D.HeartbeatInterval) * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				writeMu.Lock()
				_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bench done"), time.Now().Add(time.Second))
				writeMu.Unlock()
				_ = ws.Close()
				return
			case <-tick.C:
				_ = write(map[string]any{"op": 1, "d": json.RawMessage("null")})
			}
		}
	}()
	defer heartbeats.Wait()
	defer cancel() // before the Wait: a read error stops the heartbeats too
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if bytes.Contains(data, messageCreate) {
			onMessage()
		}
	}
}
