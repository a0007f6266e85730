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

// SyncFlush ends every zlib-stream message.
var SyncFlush = []byte{0x00, 0x00, 0xff, 0xff}

// Decoder decompresses the frames of one connection, through one context, into one JSON
// payload each. It is not safe for concurrent use.
type Decoder struct {
	mode Mode
	in   frameBytes
	r    io.Reader // created on the first frame (zlib reads its header there)
	zstd *zstd.Decoder
	json *json.Decoder
}

// NewDecoder returns the decoder for a mode; None passes frames through.
func NewDecoder(mode Mode) *Decoder { return &Decoder{mode: mode} }

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
			z, err := zstd.NewReader(&d.in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdWindow*8))
			if err != nil {
				return nil, fmt.Errorf("%s: opening the stream: %w", d.mode, err)
			}
			d.zstd, d.r = z, z
		default:
			return nil, fmt.Errorf("unknown gateway compression %q", d.mode)
		}
		d.json = json.NewDecoder(d.r)
	}
	var payload json.RawMessage
	if err := d.json.Decode(&payload); err != nil {
		return nil, fmt.Errorf("%s: decoding a frame of %d bytes: %w", d.mode, len(frame), err)
	}
	// A zlib reader may stop before the empty stored block that ends the message (5
	// bytes at most); the next frame reads on from it. More is a second message.
	if n := d.in.buf.Len(); n > 5 || (n > 0 && d.mode != ZlibStream) {
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
