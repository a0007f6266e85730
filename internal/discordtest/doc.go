// Package discordtest is a scriptable, in-process FAKE of Discord's gateway
// (websocket) and of the small part of its REST API that a bot runtime needs. It
// exists so that tests of shardkeeper's bot runtime and operator can exercise real
// network code — identify, heartbeats, resume after a dropped connection, op 7 / op 9,
// close codes, identify rate limits — deterministically and without touching
// discord.com.
//
// # What it does
//
// NewServer starts an HTTP server on 127.0.0.1 with a random port. Server.URL is the
// gateway URL ("ws://127.0.0.1:PORT"; clients append "?v=10&encoding=json"),
// Server.APIURL the REST base ("http://127.0.0.1:PORT/api/v10").
//
// The gateway follows Discord's documented protocol (API v10, JSON encoding): Hello on
// connect; Identify creates a session and is answered with
// READY and then one GUILD_CREATE for every configured guild that routes to the
// identifying shard (shard_id = (guild_id >> 22) % num_shards); heartbeats are
// answered with op 11; Resume replays every stored dispatch newer than the client's
// seq with its original seq and then sends RESUMED; unknown or expired sessions get
// op 9 d=false. Protocol violations close the connection with Discord's close codes
// (4001 unknown opcode, 4002 decode error, 4003 not authenticated, 4004 bad token,
// 4005 already authenticated, 4007 bad resume seq, 4009 heartbeat timeout when
// Options.EnforceHeartbeats is set, 4010 invalid shard, 4011 sharding required, 4012
// bad API version, 4013 invalid intents, 4014 disallowed intents).
//
// Transport compression is honoured per connection, as the compress query parameter
// asks: compress=zlib-stream sends every message as a BINARY frame out of one zlib
// stream per connection, each ending with a sync flush (00 00 ff ff); compress=zstd-stream
// sends every message as a BINARY frame out of one zstd frame per connection, flushed
// so that each message decodes at once. Without compress, frames are TEXT JSON. Any
// other value (compress=true included: that is identify's payload compression, which the
// fake ignores) gets a plain Hello and a 4002 close. Stats records the compression of
// every connection (ShardStats.Compressions, Stats.ConnectionsByCompression) and the
// bytes written after compression (BytesSent).
//
// Sequence numbers are per session and start at 1 with READY. Every dispatch is
// stored in its session, so a client that resumes after Server.Cut (or any other
// disconnect) gets exactly the events it missed. A session whose connection ended
// stays resumable for Options.ResumeWindow, except when the client itself closed
// with 1000 or 1001, which — as on Discord — ends the session.
//
// The close code a client sends is recorded (ShardStats.LastCloseCode) before the
// server echoes the close frame, so a client that completes the close handshake can be
// checked right after. A client that closes its socket right after writing its close
// frame may lose that frame (with unread data pending, the kernel resets the
// connection), and the server then records 0 — exactly what Discord would see.
//
// Tests script failures through hooks that act on a shard's current connection
// (SetACKs, Cut, CloseWith, Reconnect, InvalidSession), on its identifies
// (SetIdentifyAnswer: never answered) or on the resumes of its sessions
// (SetResumeAnswer: never answered, or replayed without RESUMED), inject events (Dispatch,
// DispatchToShard, SendMessage, SendSlashCommand, SendButtonPress) and observe the
// client through Stats (identifies, resumes, heartbeat arrival times, the payloads
// received on each connection by opcode, the close code the client sent, the identify
// log with bucket violations, ...), WaitConnected,
// WaitStats, Replies and WaitReply. Every method is safe for concurrent use.
//
// The REST side serves what discord.py and discord.js call from login to a reply:
// GET /gateway, GET /gateway/bot, GET /users/@me, GET /applications/@me and GET
// /oauth2/applications/@me (discord.py's login), global and guild application commands
// (GET/PUT/POST), the interaction callback, the interaction webhook (original response
// edit, follow-ups), POST /channels/{id}/typing and POST /channels/{id}/messages,
// recording every reply a bot sends. A message the bot creates comes back as Discord
// returns it: its nonce echoed, its message_reference filled in, and the guild_id of the
// channel (a channel belongs to the guild SendMessage last used it with).
//
// REST rate limits work as Discord's (developers/topics/rate-limits): every response
// carries X-RateLimit-Limit, -Remaining, -Reset (epoch seconds, milliseconds in the
// fraction), -Reset-After and -Bucket for the request's route, whose bucket counts per
// top-level resource (channel, guild, webhook; other IDs in the path do not split it);
// every request but those to interaction endpoints also counts against the global limit
// (Options.GlobalRateLimit, 50 per second by default). A request over a limit gets 429
// with {"message", "retry_after" (seconds, fractional), "global"}, Retry-After (whole
// seconds) and X-RateLimit-Scope, plus X-RateLimit-Global: true for the global limit;
// Stats counts them (RESTRateLimited, RESTGlobalRateLimited). Responses carry Via, as
// Discord's do: discord.py takes a 429 without it for a Cloudflare ban.
//
// All payloads the fake sends are checked in its tests to unmarshal with disgo's
// (github.com/disgoorg/disgo) gateway and discord types, and disgo's own gateway and
// REST clients are run against it.
//
// # What it does not do
//
//   - No payload compression (identify's "compress": true is ignored: frames stay
//     plain), no ETF encoding: a client asking for encoding=etf is closed with 4002
//     (with a reason saying so) right after Hello. Clients' own frames must be TEXT
//     JSON.
//   - No TLS; URLs are ws:// and http:// on loopback.
//   - Intents are validated at identify (4013/4014) but not used to filter events:
//     every dispatched event is delivered whatever the session's intents, and message
//     content is never blanked.
//   - Identify rate limits and the session start budget are observed, never enforced:
//     identifies in one bucket closer than Options.IdentifyInterval are counted in
//     Stats.BucketViolations and SessionStartRemaining stops at 0, but identifies are
//     still accepted. The budget refills to SessionStartTotal when reset_after runs out,
//     and SetSessionStartLimit starts a new period. SetRecommendedShards and
//     SetRequiredShards change GET /gateway/bot and 4011 while bots run.
//   - CoverageGaps records every moment a guild in Options.Guilds had no connected
//     session (after it was first covered), for tests of resharding and failover.
//   - The server never sends op 1 (heartbeat request) to the client, and heartbeats are
//     only policed when Options.EnforceHeartbeats is set.
//   - REST rate limits are Discord's in form, not in number: Discord's per-route
//     limits are undocumented and dynamic, so the fake's buckets are 5 per 5s for
//     POST /channels/{id}/messages and 10 per second for any other route unless
//     Options.RouteRateLimits says otherwise. Sub-limits (shared-resource 429s with
//     X-RateLimit-Scope: shared), the invalid-request (Cloudflare) ban and per-IP limits
//     of unauthenticated requests are not modelled.
//   - Guilds are modelled only as far as a gateway cache needs: settings, channels,
//     threads, roles, listed members and member_count, emojis (guilds.go). Each change
//     (UpdateGuild, Create/Update/DeleteChannel, ...Thread, ...Role, Add/Update/
//     RemoveMember, SetEmojis, SetGuildUnavailable, AddGuild, RemoveGuild) dispatches
//     its event to the guild's shard, and GuildCreate is the GUILD_CREATE sent on
//     identify. A new guild has a text channel "general" and an @everyone role whose
//     IDs are the guild's, and the bot listed as a member. Voice states, presences,
//     stickers, stage instances and scheduled events stay empty; REST does not read or
//     change this state.
//   - Gateway commands other than Heartbeat, Identify and Resume (presence update,
//     voice state update, request guild members, ...) are accepted once authenticated
//     and counted (ShardStats.OpsReceived). Request guild members is answered with one
//     GUILD_MEMBERS_CHUNK of the listed members (query or user_ids, limit, nonce); the
//     others are otherwise ignored. Discord's send limit (120
//     payloads per connection every 60 s, else a 4008 close) is counted, and enforced
//     only with Options.EnforceSendLimit: tests of a client's limiter may run it on a
//     fake clock the server does not share.
//   - Voice, sharded "max_concurrency" waiting rooms, guild subscriptions and
//     everything else Discord does are out of scope.
package discordtest
