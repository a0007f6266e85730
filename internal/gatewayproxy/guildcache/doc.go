// Package guildcache keeps what a gateway proxy needs to send a bot client that
// identifies to it: one GUILD_CREATE per guild of the shard, as Discord would send it
// now. A Cache is fed the shard's dispatches in gateway order (Reset on READY, Apply
// for the rest) and rebuilds a guild's GUILD_CREATE on demand.
//
// It works on the payloads' raw JSON and must never round-trip them through typed
// structs: a field the proxy does not know about (Discord adds them all the time) has
// to reach the client as Discord sent it. Objects are stored as their JSON, keyed by
// ID within each guild's lists, and partial updates are merged field by field at the
// top level of the object.
//
// What is not cached: messages, guild bans, invites, integrations, webhooks, auto
// moderation rules, soundboard sounds beyond what GUILD_CREATE carried, the members of
// threads other than the bot's own entry, and anything outside guilds (direct messages,
// the bot's user beyond READY).
package guildcache
