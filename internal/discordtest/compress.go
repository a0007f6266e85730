package discordtest

import (
	"bytes"
	"fmt"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Compression is a gateway connection's transport compression, from the compress query
// parameter of its URL.
type Compression string

const (
	// CompressionNone: no compress parameter; every payload is a TEXT frame of JSON.
	CompressionNone Compression = "none"
	// CompressionZlibStream: compress=zlib-stream. One zlib stream (RFC 1950: a 2-byte
	// header, then deflate) per connection carries everything the server sends; each
	// message is a BINARY frame ending with a sync flush (00 00 ff ff), so a client
	// inflates it at once with the context it keeps for the whole connection.
	CompressionZlibStream Compression = "zlib-stream"
	// CompressionZstdStream: compress=zstd-stream. One zstd frame per connection, never
	// ended; each message is a BINARY frame holding the blocks flushed for it, so a
	// client decodes it at once with the context it keeps for the whole connection.
	CompressionZstdStream Compression = "zstd-stream"
)

// parseCompression reads the compress query parameter. Discord documents zlib-stream
// and zstd-stream as its only accepted values; anything else is refused (ok false).
// compress=true in particular is not transport compression: payload compression is asked
// for with identify's "compress": true, which the fake ignores (it may, as Discord says
// "not all payloads will be compressed").
func parseCompression(v string) (Compression, bool) {
	switch v {
	case "":
		return CompressionNone, true
	case string(CompressionZlibStream):
		return CompressionZlibStream, true
	case string(CompressionZstdStream):
		return CompressionZstdStream, true
	}
	return "", false
}

// zstdWindow bounds the history a zstd-stream connection keeps (and so its memory): a
// whole GUILD_CREATE of a large guild still fits, and the fake may hold many connections.
const zstdWindow = 1 << 20

// streamCompressor turns each message a connection sends into the bytes of its frame,
// through one compression context for the connection's lifetime. It is used by the
// connection's writer goroutine only.
type streamCompressor interface {
	// compress returns the frame for msg; it stays valid until the next call.
	compress(msg []byte) ([]byte, error)
	// release frees the context when the connection ends.
	release()
}

func newStreamCompressor(c Compression) streamCompressor {
	switch c {
	case CompressionZlibStream:
		z := &zlibStream{}
		z.w = zlib.NewWriter(&z.out)
		return z
	case CompressionZstdStream:
		z := &zstdStream{}
		w, err := zstd.NewWriter(&z.out, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow))
		if err != nil {
			panic(fmt.Sprintf("discordtest: zstd encoder: %v", err)) // the options above are valid
		}
		z.w = w
		return z
	}
	return nil
}

type zlibStream struct {
	out bytes.Buffer
	w   *zlib.Writer
}

func (z *zlibStream) compress(msg []byte) ([]byte, error) {
	z.out.Reset()
	if _, err := z.w.Write(msg); err != nil {
		return nil, err
	}
	// A sync flush ends the message on a byte boundary with an empty stored block,
	// 00 00 ff ff: the suffix Discord's clients wait for before inflating.
	if err := z.w.Flush(); err != nil {
		return nil, err
	}
	return z.out.Bytes(), nil
}

func (z *zlibStream) release() {}

type zstdStream struct {
	out bytes.Buffer
	w   *zstd.Encoder
}

func (z *zstdStream) compress(msg []byte) ([]byte, error) {
	z.out.Reset()
	if _, err := z.w.Write(msg); err != nil {
		return nil, err
	}
	// Flush writes the message's blocks without ending the frame: the client decodes
	// them now and keeps the frame (and its history) for the next message.
	if err := z.w.Flush(); err != nil {
		return nil, err
	}
	return z.out.Bytes(), nil
}

func (z *zstdStream) release() { _ = z.w.Close() }
