"""Drains a backlog with the sfstream Python package (crates/python), as
aiosfstream's documentation shows: the same loop as aiosfstream_drain.py.

Usage: sfstream_py_drain.py URL CHANNEL EVENTS

Logs in with the OAuth username-password flow at URL (login_url=, no
patching needed), subscribes to CHANNEL with ReplayOption.ALL_EVENTS,
writes each message as one JSON line on stdout, and exits after EVENTS
messages (or fails after 600 s).
"""

import asyncio
import json
import sys

from sfstream import Client, PasswordAuthenticator, ReplayOption

DEADLINE_SECONDS = 600


async def drain(url, channel, events):
    auth = PasswordAuthenticator(
        consumer_key="emulator-consumer-key",
        consumer_secret="emulator-consumer-secret",
        username="emulator@example.com",
        password="passwordtoken",
        login_url=url,
    )
    out = sys.stdout
    received = 0
    async with Client(auth, replay=ReplayOption.ALL_EVENTS) as client:
        await client.subscribe(channel)
        async for message in client:
            out.write(json.dumps(message))
            out.write("\n")
            received += 1
            if received >= events:
                break
    out.flush()
    return received


def main():
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} URL CHANNEL EVENTS")
    url, channel, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
    received = asyncio.run(asyncio.wait_for(drain(url, channel, events), DEADLINE_SECONDS))
    print(f"sfstream (python): {received} events", file=sys.stderr)


if __name__ == "__main__":
    main()
