package discordtest

import "github.com/shardkeeper/shardkeeper/internal/gatewaycompress"

// Compression is a gateway connection's transport compression, from the compress query
// parameter of its URL (internal/gatewaycompress: the same code botruntime decodes with).
type Compression = gatewaycompress.Mode

const (
	// CompressionNone: no compress parameter; every payload is a TEXT frame of JSON.
	CompressionNone = gatewaycompress.None
	// CompressionZlibStream: compress=zlib-stream, one zlib stream per connection, each
	// message a BINARY frame ending with a sync flush (00 00 ff ff).
	CompressionZlibStream = gatewaycompress.ZlibStream
	// CompressionZstdStream: compress=zstd-stream, one zstd frame per connection, never
	// ended, each message a BINARY frame of the blocks flushed for it.
	CompressionZstdStream = gatewaycompress.ZstdStream
)
