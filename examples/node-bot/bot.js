// An example discord.js bot for Shardkeeper's gateway proxy (README.md).
//
// It answers "!ping" and the slash command "/ping" with "pong". "!block N" and "!write"
// misbehave on purpose, as real handlers do by mistake: they stall the event loop (a busy
// loop, a burst of synchronous disk writes). Behind the proxy that costs the bot nothing
// but the time: the proxy keeps the Discord session alive and hands over what arrived
// meanwhile.
//
// The bot reads three settings, which the operator gives the bot container:
// DISCORD_GATEWAY_URL, DISCORD_API_URL and DISCORD_TOKEN_FILE (a placeholder token that
// only the pod's proxy accepts; the real token never reaches this process).
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client, Events, GatewayIntentBits } = require('discord.js');

const WRITE_BYTES = 64 << 20; // what "!write" writes
const WRITE_CHUNK = 1 << 20; // and fsyncs after each chunk
const MAX_BLOCK_SECONDS = 600;

function log(message) {
  console.log(`${new Date().toISOString()} INFO bot: ${message}`);
}

function logError(message) {
  console.error(`${new Date().toISOString()} ERROR bot: ${message}`);
}

function fail(message) {
  console.error(`bot: ${message}`);
  process.exit(2);
}

// readSettings returns the gateway URL, the API URL and the token, or exits with code 2.
function readSettings() {
  const names = ['DISCORD_GATEWAY_URL', 'DISCORD_API_URL', 'DISCORD_TOKEN_FILE'];
  const missing = names.filter((name) => !(process.env[name] ?? '').trim());
  if (missing.length > 0) {
    fail(`${missing.join(', ')} not set: Shardkeeper sets them in the bot container; on a laptop ` +
      'set DISCORD_GATEWAY_URL=ws://127.0.0.1:7878, DISCORD_API_URL=http://127.0.0.1:7878/api/v10 ' +
      "and DISCORD_TOKEN_FILE to the gateway proxy's --client-token-file");
  }
  const tokenFile = process.env.DISCORD_TOKEN_FILE.trim();
  let token;
  try {
    token = fs.readFileSync(tokenFile, 'utf8').trim();
  } catch (err) {
    fail(`cannot read the token from DISCORD_TOKEN_FILE: ${err.message}`);
  }
  if (!token) {
    fail(`DISCORD_TOKEN_FILE ${tokenFile} is empty: it must hold the gateway proxy's placeholder token`);
  }
  return {
    gatewayUrl: process.env.DISCORD_GATEWAY_URL.trim(),
    apiUrl: process.env.DISCORD_API_URL.trim(),
    token,
  };
}

// writeScratchFile writes WRITE_BYTES to a temporary file, fsyncing every chunk, then
// deletes it. It is synchronous: nothing else runs until it returns.
function writeScratchFile() {
  const chunk = crypto.randomBytes(WRITE_CHUNK);
  const file = path.join(os.tmpdir(), `bot-write-${process.pid}-${Date.now()}`); // $TMPDIR, else /tmp
  const fd = fs.openSync(file, 'wx', 0o600);
  let written = 0;
  try {
    while (written < WRITE_BYTES) {
      written += fs.writeSync(fd, chunk);
      fs.fsyncSync(fd);
    }
  } finally {
    fs.closeSync(fd);
    fs.unlinkSync(file);
  }
  return written;
}

const settings = readSettings();
const client = new Client({
  // The pod's intents (spec.intents) are what the proxy asks Discord for; these only tell
  // discord.js what to expect. MessageContent is needed to read "!ping".
  intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages, GatewayIntentBits.MessageContent],
  // discord.js takes the REST root without the version, and appends /v10 itself. It has no
  // gateway option: it asks GET /gateway/bot, which the proxy answers with its own address.
  rest: { api: settings.apiUrl.replace(/\/v\d+\/?$/, '') },
});

client.on(Events.ShardReady, (shard) => {
  log(`connected to the gateway ${client.ws.gateway} (shard ${shard})`);
  if (client.ws.gateway.replace(/\/$/, '') !== settings.gatewayUrl.replace(/\/$/, '')) {
    logError(`GET /gateway/bot named ${client.ws.gateway}, not DISCORD_GATEWAY_URL ${settings.gatewayUrl}: ` +
      'is DISCORD_API_URL the gateway proxy?');
  }
});
client.on(Events.ShardResume, (shard) => log(`resumed the gateway session (shard ${shard})`));
client.on(Events.ShardDisconnect, (event, shard) => log(`disconnected from the gateway, code ${event.code} (shard ${shard})`));
client.on(Events.Warn, (message) => logError(message));
client.on(Events.Error, (err) => logError(err.stack ?? err));

client.once(Events.ClientReady, async () => {
  log(`ready as ${client.user.tag} in ${client.guilds.cache.size} guilds`);
  try {
    // A bulk overwrite of the global commands (PUT /applications/{id}/commands).
    const commands = await client.application.commands.set([{ name: 'ping', description: 'Replies with pong' }]);
    log(`registered slash commands: ${commands.map((c) => `/${c.name}`).join(', ')}`);
  } catch (err) {
    logError(`registering slash commands: ${err.stack ?? err}`);
  }
});

client.on(Events.InteractionCreate, async (interaction) => {
  if (!interaction.isChatInputCommand() || interaction.commandName !== 'ping') return;
  log(`/ping from ${interaction.user.tag}`);
  await interaction.reply('pong').catch((err) => logError(`/ping: ${err.stack ?? err}`));
});

client.on(Events.MessageCreate, (message) => {
  if (message.author.bot) return;
  onMessage(message).catch((err) => logError(`${message.content}: ${err.stack ?? err}`));
});

async function onMessage(message) {
  const [command, argument] = message.content.split(' ', 2);
  if (command === '!ping') {
    log(`!ping from ${message.author.tag} in #${message.channel.name}`);
    await message.reply('pong');
  } else if (command === '!block') {
    const seconds = Number(argument);
    if (!(seconds >= 0 && seconds <= MAX_BLOCK_SECONDS)) {
      await message.reply(`usage: !block <seconds, at most ${MAX_BLOCK_SECONDS}>`);
      return;
    }
    log(`!block ${seconds}: blocking the event loop`);
    const until = Date.now() + seconds * 1000;
    while (Date.now() < until) {
      // The mistake: no heartbeat, no event, nothing runs meanwhile.
    }
    log(`unblocked after ${seconds} s`);
    await message.reply(`unblocked after ${seconds} s`);
  } else if (command === '!write') {
    log(`!write: writing ${WRITE_BYTES} bytes`);
    const start = performance.now();
    const written = writeScratchFile();
    const took = ((performance.now() - start) / 1000).toFixed(2);
    log(`!write: wrote ${written} bytes in ${took} s`);
    await message.reply(`wrote ${written} bytes in ${took} s`);
  }
}

// Kubernetes stops a container with SIGTERM: close the gateway connection, then exit 0.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, async () => {
    log(`${signal}: closing the gateway connection`);
    await client.destroy();
    log('closed');
    process.exit(0);
  });
}

client.login(settings.token).catch((err) => {
  logError(`login: ${err.stack ?? err}`);
  process.exit(1);
});
