"""An example discord.py bot for Shardkeeper's gateway proxy (README.md).

It answers "!ping" and the slash command "/ping" with "pong". "!block N" and "!write"
misbehave on purpose, as real handlers do by mistake: they stall the event loop (a sleep,
a burst of synchronous disk writes). Behind the proxy that costs the bot nothing but the
time: the proxy keeps the Discord session alive and hands over what arrived meanwhile.

The bot reads three settings, which the operator gives the bot container:
DISCORD_GATEWAY_URL, DISCORD_API_URL and DISCORD_TOKEN_FILE (a placeholder token that only
the pod's proxy accepts; the real token never reaches this process).
"""

import asyncio
import logging
import os
import signal
import sys
import tempfile
import time

import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands

log = logging.getLogger("bot")

WRITE_BYTES = 64 << 20  # what "!write" writes
WRITE_CHUNK = 1 << 20  # and fsyncs after each chunk
MAX_BLOCK_SECONDS = 600


def read_settings():
    """Returns the gateway URL, the API URL and the token, or exits with code 2."""
    names = ("DISCORD_GATEWAY_URL", "DISCORD_API_URL", "DISCORD_TOKEN_FILE")
    values = {name: os.environ.get(name, "").strip() for name in names}
    missing = [name for name, value in values.items() if not value]
    if missing:
        fail(f"{', '.join(missing)} not set: Shardkeeper sets them in the bot container; on a "
             "laptop set DISCORD_GATEWAY_URL=ws://127.0.0.1:7878, "
             "DISCORD_API_URL=http://127.0.0.1:7878/api/v10 and DISCORD_TOKEN_FILE to the "
             "gateway proxy's --client-token-file")
    token_file = values["DISCORD_TOKEN_FILE"]
    try:
        with open(token_file, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as err:
        fail(f"cannot read the token from DISCORD_TOKEN_FILE: {err}")
    if not token:
        fail(f"DISCORD_TOKEN_FILE {token_file} is empty: it must hold the gateway proxy's placeholder token")
    return values["DISCORD_GATEWAY_URL"], values["DISCORD_API_URL"], token


def fail(message):
    print(f"bot: {message}", file=sys.stderr)
    sys.exit(2)


def write_scratch_file():
    """Writes WRITE_BYTES to a temporary file, fsyncing every chunk, then deletes it.

    It runs on the event loop, synchronously: nothing else happens until it returns.
    """
    chunk = os.urandom(WRITE_CHUNK)
    fd, path = tempfile.mkstemp(prefix="bot-write-")  # in $TMPDIR, else /tmp
    try:
        with os.fdopen(fd, "wb") as f:
            for _ in range(WRITE_BYTES // WRITE_CHUNK):
                f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
    finally:
        os.remove(path)
    return WRITE_BYTES


class ExampleBot(discord.Client):
    def __init__(self):
        # The pod's intents (spec.intents) are what the proxy asks Discord for; these only
        # tell discord.py what to expect. MESSAGE_CONTENT is needed to read "!ping".
        super().__init__(intents=discord.Intents(guilds=True, guild_messages=True, message_content=True))
        self.tree = app_commands.CommandTree(self)

    async def setup_hook(self):
        # A bulk overwrite of the global commands (PUT /applications/{id}/commands).
        commands = await self.tree.sync()
        log.info("registered slash commands: %s", ", ".join("/" + c.name for c in commands))

    async def on_connect(self):
        log.info("connected to the gateway")

    async def on_ready(self):
        log.info("ready as %s in %d guilds", self.user, len(self.guilds))

    async def on_resumed(self):
        log.info("resumed the gateway session")

    async def on_message(self, message):
        if message.author.bot:
            return
        command, _, argument = message.content.partition(" ")
        if command == "!ping":
            log.info("!ping from %s in #%s", message.author, message.channel)
            await message.reply("pong")
        elif command == "!block":
            try:
                seconds = float(argument)
            except ValueError:
                seconds = -1
            if not 0 <= seconds <= MAX_BLOCK_SECONDS:
                await message.reply(f"usage: !block <seconds, at most {MAX_BLOCK_SECONDS}>")
                return
            log.info("!block %g: blocking the event loop", seconds)
            time.sleep(seconds)  # the mistake: no heartbeat, no event, nothing runs meanwhile
            log.info("unblocked after %g s", seconds)
            await message.reply(f"unblocked after {seconds:g} s")
        elif command == "!write":
            log.info("!write: writing %d bytes", WRITE_BYTES)
            start = time.monotonic()
            written = write_scratch_file()
            took = time.monotonic() - start
            log.info("!write: wrote %d bytes in %.2f s", written, took)
            await message.reply(f"wrote {written} bytes in {took:.2f} s")


bot = ExampleBot()


@bot.tree.command(description="Replies with pong")
async def ping(interaction: discord.Interaction):
    log.info("/ping from %s", interaction.user)
    await interaction.response.send_message("pong")


async def main():
    gateway_url, api_url, token = read_settings()
    # discord.py has no setting for either address: these two class attributes are where it
    # reads them (docs/clients.md in the Shardkeeper repository names the lines).
    discord.http.Route.BASE = api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)

    # Kubernetes stops a container with SIGTERM: close the gateway connection, which ends
    # bot.start(), and exit 0.
    loop = asyncio.get_running_loop()
    closing = []  # the close task: asyncio keeps only a weak reference to it

    def shut_down(signal_name):
        log.info("%s: closing the gateway connection", signal_name)
        closing.append(loop.create_task(bot.close()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shut_down, sig.name)
    async with bot:
        await bot.start(token)
    log.info("closed")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
