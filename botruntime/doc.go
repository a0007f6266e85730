// Package botruntime runs a Discord bot's gateway shards inside a bot pod.
//
// One Run(ctx) drives everything: a gateway session per assigned shard, the dispatcher
// that hands events to user handlers, and the health server. Nothing here may block a
// shard's heartbeat: the websocket read loop only decodes frames (decompressing them,
// within read limits) and enqueues events, the heartbeat has its own goroutine and timer,
// and user handlers run on the dispatcher's workers, never on the read loop.
package botruntime
