"""A plain discord.py bot, as its users write one, for make test-clients.

It answers "!ping" with a reply "pong", and "!block N" by blocking its event loop for N
seconds (time.sleep in a handler: the seed's failure). It is given only what a user gives
discord.py: a token, and the REST base and gateway address through discord.py's two patch
points (docs/clients.md). Besides discord.py's own log (stderr), it prints one JSON line
per lifecycle event on stdout, for the test driver to read.
"""

import asyncio
import json
import logging
import os
import sys
import time

import discord
import discord.gateway
import discord.http
import yarl


def report(event, **fields):
    print(json.dumps({"event": event, "at": time.time(), **fields}), flush=True)


def zstandard_importable():
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def main():
    token = os.environ["DISCORD_TOKEN"]
    # discord.py has no setting for either address: these class attributes are where it
    # reads them (docs/clients.md names the lines).
    discord.http.Route.BASE = os.environ["DISCORD_API_URL"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])

    intents = discord.Intents.default()
    intents.message_content = True
    client = discord.Client(intents=intents)

    @client.event
    async def on_connect():
        report("connect")

    @client.event
    async def on_ready():
        report("ready", session=client.ws.session_id)

    @client.event
    async def on_resumed():
        report("resumed")

    @client.event
    async def on_disconnect():
        report("disconnect")

    @client.event
    async def on_message(message):
        if message.author.bot:
            return
        if message.content == "!ping":
            await message.reply("pong")
            report("pong", message=str(message.id))
        elif message.content.startswith("!block "):
            seconds = float(message.content.split()[1])
            report("block_start", seconds=seconds)
            time.sleep(seconds)  # blocks the event loop, and with it the heartbeats
            report("block_end")

    discord.utils.setup_logging(level=logging.INFO)
    report("start", discord=discord.__version__, python=sys.version.split()[0],
           zstandard=zstandard_importable(), file=discord.__file__)
    asyncio.run(client.start(token))


if __name__ == "__main__":
    main()
