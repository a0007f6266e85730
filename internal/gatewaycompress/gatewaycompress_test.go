package gatewaycompress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func payload(i, size int) []byte {
	b, _ := json.Marshal(map[string]any{"op": 0, "s": i, "t": "MESSAGE_CREATE", "d": map[string]any{"content": strings.Repeat("x", size), "i": i}})
	return b
}

// Every message decodes from its own frame, through the one context of the connection,
// large ones included, and the context carries over: a repeated message gets small.
func TestRoundTripThroughOneContext(t *testing.T) {
	for _, mode := range []Mode{ZlibStream, ZstdStream} {
		t.Run(string(mode), func(t *testing.T) {
			enc, dec := NewEncoder(mode), NewDecoder(mode)
			defer enc.Close()
			defer dec.Close()
			sizes := []int{10, 4000, 600_000, 3, 4000, 4000}
			var lastSize int
			for i, size := range sizes {
				msg := payload(0, size)
				frame, err := enc.Encode(msg)
				if err != nil {
					t.Fatal(err)
				}
				if mode == ZlibStream && !bytes.HasSuffix(frame, SyncFlush) {
					t.Fatalf("message %d does not end with 00 00 ff ff", i)
				}
				frameCopy := append([]byte(nil), frame...) // Encode's result is reused
				got, err := dec.Decode(frameCopy)
				if err != nil {
					t.Fatalf("message %d (%d bytes): %v", i, len(msg), err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("message %d decoded to %d bytes, want the %d sent", i, len(got), len(msg))
				}
				lastSize = len(frameCopy)
			}
			if lastSize > 100 {
				t.Errorf("a message repeated on the connection took %d bytes: the context is not shared", lastSize)
			}
			for i := range 1000 {
				msg := payload(i, 200)
				frame, _ := enc.Encode(msg)
				if got, err := dec.Decode(append([]byte(nil), frame...)); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("message %d of 1000: %v", i, err)
				}
			}
		})
	}
}

func TestNonePassesFramesThrough(t *testing.T) {
	if NewEncoder(None) != nil {
		t.Error("None has an encoder")
	}
	msg := payload(1, 10)
	if got, err := NewDecoder(None).Decode(msg); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("None changed the frame: %v", err)
	}
}

// A frame cut short is an error, not a wait: the connection is dropped and resumed.
func TestAnIncompleteFrameIsAnError(t *testing.T) {
	for _, mode := range []Mode{ZlibStream, ZstdStream} {
		t.Run(string(mode), func(t *testing.T) {
			enc := NewEncoder(mode)
			frame, _ := enc.Encode(payload(1, 5000))
			half := append([]byte(nil), frame[:len(frame)/2]...)
			if mode == ZlibStream {
				half = append(half, SyncFlush...) // the suffix alone does not make a message
			}
			_, err := NewDecoder(mode).Decode(half)
			if err == nil {
				t.Fatal("half a message decoded")
			}
			if !errors.Is(err, ErrIncomplete) && !strings.Contains(err.Error(), "unexpected EOF") {
				t.Logf("error: %v", err)
			}
		})
	}
	if _, err := NewDecoder(ZlibStream).Decode([]byte("not compressed")); !errors.Is(err, ErrIncomplete) {
		t.Errorf("a zlib-stream frame without the sync flush: %v", err)
	}
}

func TestParse(t *testing.T) {
	for v, want := range map[string]Mode{"": None, "zlib-stream": ZlibStream, "zstd-stream": ZstdStream} {
		if got, ok := Parse(v); !ok || got != want {
			t.Errorf("Parse(%q) = %q, %v", v, got, ok)
		}
		if q := want.Query(); q != v {
			t.Errorf("%s.Query() = %q, want %q", want, q, v)
		}
	}
	for _, v := range []string{"true", "zlib", "zstd", "ZLIB-STREAM"} {
		if _, ok := Parse(v); ok {
			t.Errorf("Parse(%q) accepted", v)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, mode := range []Mode{None, ZlibStream, ZstdStream} {
		b.Run(string(mode), func(b *testing.B) {
			enc, dec := NewEncoder(mode), NewDecoder(mode)
			frames := make([][]byte, 1000)
			var wire int
			for i := range frames {
				msg := payload(i, 300)
				if enc == nil {
					frames[i] = msg
				} else {
					f, _ := enc.Encode(msg)
					frames[i] = append([]byte(nil), f...)
				}
				wire += len(frames[i])
			}
			b.ReportMetric(float64(wire)/1000, "wire-B/msg")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%len(frames) == 0 && i > 0 {
					b.StopTimer()
					dec = NewDecoder(mode)
					b.StartTimer()
				}
				if _, err := dec.Decode(frames[i%len(frames)]); err != nil {
					b.Fatal(fmt.Errorf("frame %d: %w", i%len(frames), err))
				}
			}
		})
	}
}

// The payload limit holds in every mode, at the byte: a frame that decodes to exactly the
// limit passes, one more byte is ErrPayloadTooLarge, and a small frame that inflates far
// past it (a few KiB of zstd or zlib for a MiB of JSON) is refused too.
func TestPayloadLimit(t *testing.T) {
	const limit = 64 << 10
	atLimit := payload(0, 0)
	atLimit = payload(0, limit-len(atLimit))
	if len(atLimit) != limit {
		t.Fatalf("built a %d-byte payload, want %d", len(atLimit), limit)
	}
	overLimit := payload(0, limit-len(payload(0, 0))+1)
	bomb := payload(0, 1<<20)
	for _, mode := range []Mode{None, ZlibStream, ZstdStream} {
		t.Run(string(mode), func(t *testing.T) {
			frame := func(enc *Encoder, msg []byte) []byte {
				if enc == nil {
					return msg
				}
				f, err := enc.Encode(msg)
				if err != nil {
					t.Fatal(err)
				}
				return append([]byte(nil), f...)
			}
			enc, dec := NewEncoder(mode), NewDecoder(mode).LimitPayload(limit)
			for i := range 3 { // the budget is per payload, not per connection
				if got, err := dec.Decode(frame(enc, atLimit)); err != nil || !bytes.Equal(got, atLimit) {
					t.Fatalf("payload %d at the limit: %v", i, err)
				}
			}
			if _, err := dec.Decode(frame(enc, overLimit)); !errors.Is(err, ErrPayloadTooLarge) {
				t.Errorf("a payload one byte over the limit: %v", err)
			}

			enc, dec = NewEncoder(mode), NewDecoder(mode).LimitPayload(limit)
			f := frame(enc, bomb)
			if _, err := dec.Decode(f); !errors.Is(err, ErrPayloadTooLarge) {
				t.Errorf("a %d-byte frame of a %d-byte payload: %v", len(f), len(bomb), err)
			}
			if mode != None && len(f) > limit/4 {
				t.Errorf("the compressed frame took %d bytes; the test wants one far under the limit", len(f))
			}
		})
	}
}
