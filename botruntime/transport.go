package botruntime

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardkeeper/shardkeeper/internal/gatewaycompress"
)

// Read limits: the most one frame can make a shard hold in memory. Discord's largest
// payloads, the GUILD_CREATE of a large guild, are a few MiB of JSON, and compress 5-10
// times; these leave room for several times that.
const (
	// DefaultMaxFrameBytes bounds one websocket message as received, compressed when the
	// transport is.
	DefaultMaxFrameBytes = 16 << 20
	// DefaultMaxPayloadBytes bounds the JSON one message decodes to. Without compression
	// the message is the JSON, and this is its only bound.
	DefaultMaxPayloadBytes = 64 << 20
)

// WithReadLimits sets the read limits (DefaultMaxFrameBytes, DefaultMaxPayloadBytes; zero
// keeps a default). A frame over either limit ends its connection, logged, and the shard
// resumes; a shard that keeps being sent one keeps reconnecting, so raise them rather than
// lower them.
func WithReadLimits(maxFrameBytes, maxPayloadBytes int) Option {
	return func(r *Runtime) {
		if maxFrameBytes > 0 {
			r.maxFrameBytes = maxFrameBytes
		}
		if maxPayloadBytes > 0 {
			r.maxPayloadBytes = maxPayloadBytes
		}
	}
}

// transport is how a shard's connections carry payloads: the compression it asks for and
// the read limits.
type transport struct {
	compression          gatewaycompress.Mode
	maxFrame, maxPayload int
}

// frameReader reads one connection's payloads on its read loop. It owns the connection's
// decompression context: decoding is the read loop's work, and a slow decode holds up
// only the frames behind it, never a heartbeat (that goroutine writes and times on its own).
type frameReader struct {
	ws          *websocket.Conn
	compression gatewaycompress.Mode
	frameType   int // the one type of data frame the connection may carry
	frameLimit  int
	dec         *gatewaycompress.Decoder
	log         logr.Logger

	wireBytes, payloadBytes prometheus.Counter
	// broken is set by a frame the connection cannot go on after: later frames are
	// discarded until the connection, which is being closed, ends.
	broken bool
}

// reader starts reading a new connection: its read limit, and a decompression context of
// its own, which close frees.
func (t transport) reader(ws *websocket.Conn, shard int, m *metrics, log logr.Logger) *frameReader {
	r := &frameReader{
		ws: ws, compression: t.compression, frameType: websocket.BinaryMessage, frameLimit: t.maxFrame,
		dec: gatewaycompress.NewDecoder(t.compression).LimitPayload(t.maxPayload), log: log,
		wireBytes:    m.wireBytes.WithLabelValues(shardLabel(shard)),
		payloadBytes: m.payloadBytes.WithLabelValues(shardLabel(shard)),
	}
	if t.compression == gatewaycompress.None {
		r.frameType, r.frameLimit = websocket.TextMessage, t.maxPayload
	}
	ws.SetReadLimit(int64(r.frameLimit))
	return r
}

// badFrameError is a frame that ends its connection: the shard closes it and resumes.
type badFrameError struct {
	reason string // the reconnect's metric label
	err    error
}

func (e *badFrameError) Error() string { return e.err.Error() }
func (e *badFrameError) Unwrap() error { return e.err }

// next returns the next payload's JSON. An error from the websocket ends the connection
// as it is (websocket.ErrReadLimit for a frame over the limit: gorilla has closed with
// 1009, which keeps the session); a *badFrameError asks the caller to close it.
func (r *frameReader) next() (json.RawMessage, error) {
	for {
		mt, data, err := r.ws.ReadMessage()
		if errors.Is(err, websocket.ErrReadLimit) {
			r.log.Error(err, "the gateway sent a frame over the read limit; the connection is dropped and the session resumed (WithReadLimits raises it)",
				"limitBytes", r.frameLimit, "compression", r.compression)
		}
		if err != nil {
			return nil, err
		}
		r.wireBytes.Add(float64(len(data)))
		if r.broken {
			continue
		}
		if mt != r.frameType {
			r.broken = true
			return nil, r.bad("unexpected_frame_type", fmt.Errorf("a %s frame on a connection with compression %s, which carries %s frames only",
				frameTypeName(mt), r.compression, frameTypeName(r.frameType)))
		}
		payload, err := r.dec.Decode(data)
		if err != nil {
			r.broken = true
			if errors.Is(err, gatewaycompress.ErrPayloadTooLarge) {
				return nil, r.bad("payload_too_large", err)
			}
			return nil, r.bad("undecodable_frame", err)
		}
		r.payloadBytes.Add(float64(len(payload)))
		return payload, nil
	}
}

func (r *frameReader) bad(reason string, err error) *badFrameError {
	r.log.Error(err, "the gateway sent a frame this connection cannot go on after; it is closed and the session resumed", "reason", reason)
	return &badFrameError{reason: reason, err: err}
}

// close frees the decompression context once the read loop is done with it.
func (r *frameReader) close() { r.dec.Close() }

func frameTypeName(mt int) string {
	switch mt {
	case websocket.TextMessage:
		return "TEXT"
	case websocket.BinaryMessage:
		return "BINARY"
	}
	return fmt.Sprintf("type-%d", mt)
}
