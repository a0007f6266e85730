// A plain discord.js 14 bot, as its users write one, for make test-clients.
//
// It answers "!ping" with a reply "pong". It is given only what a user gives discord.js: a
// token and the REST API root (`rest.api`); the gateway address comes from GET /gateway/bot.
// Which package directory it runs from (NODE_PATH) decides whether zlib-sync is there,
// and so whether discord.js asks for zlib-stream. Besides discord.js's debug log (stderr),
// it prints one JSON line per lifecycle event on stdout, for the test driver to read.
'use strict';

const { Client, Events, GatewayIntentBits, version } = require('discord.js');

function report(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, at: Date.now() / 1000, ...fields }) + '\n');
}

// zlibSyncLoads tells whether discord.js's own require('zlib-sync') works: installed, and
// its native module built.
function zlibSyncLoads() {
  try {
    require(require.resolve('zlib-sync', { paths: [require.resolve('discord.js')] }));
    return true;
  } catch {
    return false;
  }
}

const client = new Client({
  intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages, GatewayIntentBits.MessageContent],
  rest: { api: process.env.DISCORD_API_URL },
});

client.on(Events.Debug, (line) => process.stderr.write(`[debug] ${line}\n`));
client.on(Events.Warn, (line) => process.stderr.write(`[warn] ${line}\n`));
client.on(Events.Error, (err) => process.stderr.write(`[error] ${err.stack ?? err}\n`));
client.on(Events.ClientReady, () => report('ready'));
client.on(Events.ShardResume, (shard, replayed) => report('resumed', { shard, replayed }));
client.on(Events.ShardDisconnect, (ev, shard) => report('disconnect', { shard, code: ev.code }));
client.on(Events.ShardReconnecting, (shard) => report('reconnecting', { shard }));

client.on(Events.MessageCreate, async (message) => {
  if (message.author.bot) return;
  if (message.content === '!ping') {
    await message.reply('pong');
    report('pong', { message: message.id });
  }
});

report('start', { discordjs: version, node: process.version, zlibSync: zlibSyncLoads() });
client.login(process.env.DISCORD_TOKEN).catch((err) => {
  process.stderr.write(`login: ${err.stack ?? err}\n`);
  process.exit(1);
});
