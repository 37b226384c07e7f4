"""Drains a backlog with aiosfstream-ng 0.7.5, as its documentation shows.

Usage: aiosfstream_drain.py URL CHANNEL EVENTS

Logs in with the OAuth username-password flow, subscribes to CHANNEL with
ReplayOption.ALL_EVENTS, writes each message as one JSON line on stdout
(like `sfstream listen`), and exits after EVENTS messages (or fails after
600 s). Two changes, the same as crates/emulator/tests/clients/
aiosfstream_check.py makes and for the same reasons: the authenticator's
`_token_url` points at the emulator (the library only knows
login/test.salesforce.com), and the HTTP session gets aiohttp's documented
`CookieJar(unsafe=True)` (aiohttp refuses cookies from IP hosts, and the
BAYEUX_BROWSER cookie must come back).
"""

import asyncio
import json
import sys

import aiohttp
from aiosfstream_ng import Client, PasswordAuthenticator, ReplayOption

DEADLINE_SECONDS = 600


class EmulatorPasswordAuthenticator(PasswordAuthenticator):
    def __init__(self, login_url, **kwargs):
        super().__init__(**kwargs)
        self._login_url = login_url.rstrip("/")

    @property
    def _token_url(self):
        return f"{self._login_url}/services/oauth2/token"


class EmulatorClient(Client):
    async def _get_http_session(self):
        if self._http_session is None:
            self._http_session = aiohttp.ClientSession(
                json_serialize=self._json_dumps,
                cookie_jar=aiohttp.CookieJar(unsafe=True),
            )
        return self._http_session


async def drain(url, channel, events):
    auth = EmulatorPasswordAuthenticator(
        url,
        consumer_key="emulator-consumer-key",
        consumer_secret="emulator-consumer-secret",
        username="emulator@example.com",
        password="passwordtoken",
    )
    loop = asyncio.get_running_loop()
    # Closing the client cancels its pending /meta/connect; stay quiet about it.
    loop.set_exception_handler(
        lambda loop, ctx: None
        if isinstance(ctx.get("exception"), asyncio.CancelledError)
        else loop.default_exception_handler(ctx)
    )
    out = sys.stdout
    received = 0
    async with EmulatorClient(auth, replay=ReplayOption.ALL_EVENTS) as client:
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
    print(f"aiosfstream-ng: {received} events", file=sys.stderr)


if __name__ == "__main__":
    main()
