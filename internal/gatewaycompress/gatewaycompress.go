// Package gatewaycompress is Discord's gateway transport compression, both ways:
// compress=zlib-stream and compress=zstd-stream keep one compression context for the
// whole connection, and every message is one BINARY frame that decodes on its own given
// the frames before it. The fake Discord encodes with it; botruntime decodes with it.
package gatewaycompress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Mode is a connection's transport compression, the compress query parameter of its URL.
type Mode string

const (
	// None: no compress parameter; every payload is a TEXT frame of JSON.
	None Mode = "none"
	// ZlibStream: compress=zlib-stream. One zlib stream (RFC 1950: a 2-byte header, then
	// deflate) per connection; each message ends with a sync flush (00 00 ff ff), so it
	// inflates at once with the context kept for the whole connection.
	ZlibStream Mode = "zlib-stream"
	// ZstdStream: compress=zstd-stream. One zstd frame per connection, never ended; each
	// message holds the blocks flushed for it.
	ZstdStream Mode = "zstd-stream"
)

// Parse reads a compress query parameter. Discord documents zlib-stream and zstd-stream
// as its only accepted values; anything else is refused (ok false). compress=true is not
// transport compression: payload compression is asked for with identify's "compress".
func Parse(v string) (mode Mode, ok bool) {
	switch v {
	case "":
		return None, true
	case string(ZlibStream):
		return ZlibStream, true
	case string(ZstdStream):
		return ZstdStream, true
	}
	return "", false
}

// Query is the compress query parameter that asks for the mode, "" for None.
func (m Mode) Query() string {
	if m == None {
		return ""
	}
	return string(m)
}

// zstdWindow bounds the history a zstd-stream keeps, and so its memory on both sides: a
// whole GUILD_CREATE of a large guild still fits.
const zstdWindow = 1 << 20

// flushWriter is what both compressors are: a stream that can end a message on demand.
type flushWriter interface {
	io.WriteCloser
	Flush() error
}

// Encoder compresses the messages of one connection, through one context. It is not
// safe for concurrent use: one writer goroutine per connection owns it.
type Encoder struct {
	out bytes.Buffer
	w   flushWriter
}

// NewEncoder returns the encoder for a mode, nil for None.
func NewEncoder(mode Mode) *Encoder {
	e := &Encoder{}
	switch mode {
	case ZlibStream:
		e.w = zlib.NewWriter(&e.out)
	case ZstdStream:
		w, err := zstd.NewWriter(&e.out, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow))
		if err != nil {
			panic(fmt.Sprintf("gatewaycompress: zstd encoder: %v", err)) // the options above are valid
		}
		e.w = w
	default:
		return nil
	}
	return e
}

// Encode returns the frame for msg; it stays valid until the next call. A zlib sync
// flush ends the message on a byte boundary with an empty stored block, 00 00 ff ff (the
// suffix clients wait for); a zstd flush writes its blocks without ending the frame.
func (e *Encoder) Encode(msg []byte) ([]byte, error) {
	e.out.Reset()
	if _, err := e.w.Write(msg); err != nil {
		return nil, err
	}
	if err := e.w.Flush(); err != nil {
		return nil, err
	}
	return e.out.Bytes(), nil
}

// Close frees the context when the connection ends.
func (e *Encoder) Close() { _ = e.w.Close() }

// ErrIncomplete means a frame did not hold a whole message: the decompressor asked for
// bytes the peer has not sent. The connection's context is unusable after it.
var ErrIncomplete = errors.New("a compressed gateway frame does not hold a whole message")

// ErrPayloadTooLarge means a frame decoded to more than the decoder's payload limit
// (Decoder.LimitPayload). Decoding stops at the limit, so a small frame that inflates to
// gigabytes costs no more memory than the limit.
var ErrPayloadTooLarge = errors.New("a gateway payload is larger than the limit")

// SyncFlush ends every zlib-stream message.
var SyncFlush = []byte{0x00, 0x00, 0xff, 0xff}

// Decoder decompresses the frames of one connection, through one context, into one JSON
// payload each. It is not safe for concurrent use.
type Decoder struct {
	mode   Mode
	in     frameBytes
	r      io.Reader // created on the first frame (zlib reads its header there)
	zstd   *zstd.Decoder
	json   *json.Decoder
	budget payloadBudget
}

// NewDecoder returns the decoder for a mode; None passes frames through.
func NewDecoder(mode Mode) *Decoder { return &Decoder{mode: mode} }

// LimitPayload bounds the JSON a single frame may decode to, in bytes (0, the default,
// leaves it unbounded), and returns d. A frame over it is an ErrPayloadTooLarge.
func (d *Decoder) LimitPayload(maxBytes int) *Decoder {
	d.budget.limit = int64(maxBytes)
	return d
}

// payloadBudget is what the JSON decoder reads through: the decompressed bytes of one
// payload, at most limit of them (while limit > 0).
type payloadBudget struct {
	r           io.Reader
	limit, left int64
}

func (b *payloadBudget) Read(p []byte) (int, error) {
	if b.limit <= 0 {
		return b.r.Read(p)
	}
	if b.left <= 0 {
		return 0, ErrPayloadTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// frameBytes hands the decompressor the received bytes and nothing more; an io.ByteReader
// so that flate reads it directly, with no read-ahead past the frame.
type frameBytes struct{ buf bytes.Buffer }

func (f *frameBytes) Read(p []byte) (int, error) {
	if f.buf.Len() == 0 {
		return 0, ErrIncomplete
	}
	return f.buf.Read(p)
}

func (f *frameBytes) ReadByte() (byte, error) {
	if f.buf.Len() == 0 {
		return 0, ErrIncomplete
	}
	return f.buf.ReadByte()
}

// Decode returns the JSON payload of one frame. After an error the decoder is unusable:
// the connection must be dropped.
func (d *Decoder) Decode(frame []byte) (json.RawMessage, error) {
	if d.mode == None || d.mode == "" {
		if d.budget.limit > 0 && int64(len(frame)) > d.budget.limit {
			return nil, fmt.Errorf("a frame of %d bytes, over the limit of %d: %w", len(frame), d.budget.limit, ErrPayloadTooLarge)
		}
		return frame, nil
	}
	if d.mode == ZlibStream && !bytes.HasSuffix(frame, SyncFlush) {
		return nil, fmt.Errorf("%s: a frame of %d bytes does not end with the sync flush: %w", d.mode, len(frame), ErrIncomplete)
	}
	d.in.buf.Write(frame)
	if d.r == nil {
		switch d.mode {
		case ZlibStream:
			r, err := zlib.NewReader(&d.in)
			if err != nil {
				return nil, fmt.Errorf("%s: opening the stream: %w", d.mode, err)
			}
			d.r = r
		case ZstdStream:
			// The history a decoder keeps is what the peer's window asks for: twice the
			// window up to 2 MiB windows, the window plus 1 MiB in low-memory mode above
			// (without it, twice: 16 MiB a connection for an 8 MiB window).
			z, err := zstd.NewReader(&d.in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdWindow*8), zstd.WithDecoderLowmem(true))
			if err != nil {
				return nil, fmt.Errorf("%s: opening the stream: %w", d.mode, err)
			}
			d.zstd, d.r = z, z
		default:
			return nil, fmt.Errorf("unknown gateway compression %q", d.mode)
		}
		d.budget.r = d.r
		d.json = json.NewDecoder(&d.budget)
	}
	d.budget.left = d.budget.limit
	var payload json.RawMessage
	if err := d.json.Decode(&payload); err != nil {
		if errors.Is(err, ErrPayloadTooLarge) {
			return nil, fmt.Errorf("%s: a frame of %d bytes decodes to more than the limit of %d: %w", d.mode, len(frame), d.budget.limit, err)
		}
		return nil, fmt.Errorf("%s: decoding a frame of %d bytes: %w", d.mode, len(frame), err)
	}
	// A zlib reader may stop right after the payload's last byte, before the block's
	// end-of-block code (up to 15 bits) and the empty stored block that ends the message
	// (3 bits of header, padding, 00 00 ff ff): 7 bytes at most, which the next frame
	// reads on from. More is a second message.
	if n := d.in.buf.Len(); n > 7 || (n > 0 && d.mode != ZlibStream) {
		return nil, fmt.Errorf("%s: %d bytes left in a frame after its payload", d.mode, n)
	}
	return payload, nil
}

// Close frees the context when the connection ends.
func (d *Decoder) Close() {
	if d.zstd != nil {
		d.zstd.Close()
	}
}
