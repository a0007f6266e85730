// Package proxy benchmarks the gateway proxy (internal/gatewayproxy) against the bot's
// process connecting to Discord itself. A fake Discord (internal/discordtest) sends
// MESSAGE_CREATE as the real one shapes them to a raw gateway client (gorilla websocket,
// the transport compression undone, every payload parsed), either directly or through
// the proxy wired as cmd/gateway-proxy wires it (internal/gatewayproxy/proxytest), the
// proxy's upstream asking for the same compression as the client. Everything runs in one
// process on loopback, so the fake's CPU and the client's share the machine with the
// proxy's: the figures compare the two paths, they are not Discord's.
//
//   - BenchmarkThroughput: events/s one client reads, at most a window ahead of it.
//   - BenchmarkLatency: at 1,000 events/s, the time from the fake's send (stamped into
//     the message's content) to the client's read, p50 and p99.
//   - BenchmarkReplayBuffer: heap per MESSAGE_CREATE held for a client that is away.
//     The guild cache's per-guild cost is guildcache's BenchmarkGuildMemory.
//
// Run them with make bench-proxy, or:
//
//	go test ./bench/proxy -run '^$' -bench . -benchtime 3s -count 3
//
// There are no tests here and never a timed assertion: the numbers are for reading.
package proxy
