package discordtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// streamDecoder is the client side of transport compression: every binary message of
// one connection goes through one decompression context, and each message must decode
// to exactly one JSON payload with nothing but its own bytes (what Discord's clients
// rely on: discord.py inflates at the 00 00 ff ff suffix, disgo and others decode each
// zstd message as it arrives).
type streamDecoder struct {
	t    *testing.T
	mode Compression
	in   messageBytes
	r    io.Reader // the decompressor, created on the first message (zlib reads its header)
	json *json.Decoder
}

func newStreamDecoder(t *testing.T, mode Compression) *streamDecoder {
	return &streamDecoder{t: t, mode: mode}
}

// errNeedsMore means the decompressor asked for bytes past the end of the messages
// received so far: the last message cannot be decoded on its own.
var errNeedsMore = errors.New("the decompressor needs bytes the server has not sent: the message was not flushed")

// messageBytes hands the decompressor the received bytes and nothing more. It is an
// io.ByteReader too, so that flate reads from it directly rather than through a
// read-ahead buffer.
type messageBytes struct{ buf bytes.Buffer }

func (m *messageBytes) Read(p []byte) (int, error) {
	if m.buf.Len() == 0 {
		return 0, errNeedsMore
	}
	return m.buf.Read(p)
}

func (m *messageBytes) ReadByte() (byte, error) {
	if m.buf.Len() == 0 {
		return 0, errNeedsMore
	}
	return m.buf.ReadByte()
}

// decode inflates one websocket message into its JSON payload.
func (d *streamDecoder) decode(messageType int, data []byte) []byte {
	d.t.Helper()
	if messageType != websocket.BinaryMessage {
		d.t.Fatalf("%s: frame type %d, want binary: %.80s", d.mode, messageType, data)
	}
	if d.mode == CompressionZlibStream && !bytes.HasSuffix(data, []byte{0x00, 0x00, 0xff, 0xff}) {
		d.t.Fatalf("zlib-stream message does not end with the sync flush 00 00 ff ff: ...% x", data[max(0, len(data)-8):])
	}
	d.in.buf.Write(data)
	if d.r == nil {
		var err error
		switch d.mode {
		case CompressionZlibStream:
			d.r, err = zlib.NewReader(&d.in)
		case CompressionZstdStream:
			d.r, err = zstd.NewReader(&d.in, zstd.WithDecoderConcurrency(1))
		}
		if err != nil {
			d.t.Fatalf("%s: opening the stream: %v", d.mode, err)
		}
		d.json = json.NewDecoder(d.r)
	}
	var payload json.RawMessage
	if err := d.json.Decode(&payload); err != nil {
		d.t.Fatalf("%s: decoding a message of %d bytes: %v", d.mode, len(data), err)
	}
	if n := d.in.buf.Len(); n != 0 && !(d.mode == CompressionZlibStream && n <= 5) {
		// A zlib decoder may stop before the empty stored block that ends the message
		// (at most 5 bytes); anything more is a second message in one frame.
		d.t.Fatalf("%s: %d bytes of the message left after its payload", d.mode, n)
	}
	return payload
}
