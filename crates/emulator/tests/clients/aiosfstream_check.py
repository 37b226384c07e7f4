"""aiosfstream-ng against the emulator's Streaming API.

Usage: aiosfstream_check.py URL CHANNEL REPLAY EXPECT [TRIGGER_JSON]

Logs in with the OAuth username-password flow, subscribes to CHANNEL
(e.g. /topic/ContactChanges or /u/notifications) with REPLAY ("new" for
-1, "all" for -2), and once subscribed makes the REST call TRIGGER_JSON
describes, {"method": "POST", "path": "sobjects/Contact", "body": {...}}
(path relative to /services/data/vXX.X/), with the session it logged in
with. Then it collects EXPECT messages (bounded by a timeout) and prints
one JSON object: the instance URL, the trigger's response and the
messages exactly as the library yielded them.

aiosfstream-ng's authenticators post to https://login.salesforce.com (or
test.salesforce.com with sandbox=True) and offer no other login URL; the
token URL is the `_token_url` property of AuthenticatorBase. So the first
change made here is a subclass overriding that property.

The second: the emulator's instance URL is http://127.0.0.1:PORT, and
aiohttp's default CookieJar refuses every cookie from a host that is an IP
address (RFC 2109), so the BAYEUX_BROWSER cookie the handshake sets would
never be sent back and the first /meta/connect would fail with
"400::... no BAYEUX_BROWSER cookie present". Real orgs have host names, so
this never shows against Salesforce; here the HTTP session aiocometd-ng
creates gets aiohttp's documented `CookieJar(unsafe=True)`, which accepts
them. Everything else, the CometD URL built from the token response's
instance_url included, is the library's own.
"""

import asyncio
import json
import sys

import aiohttp
from aiosfstream_ng import Client, PasswordAuthenticator, ReplayOption

USERNAME = "emulator@example.com"
PASSWORD = "password"
SECURITY_TOKEN = "token"
CONSUMER_KEY = "emulator-consumer-key"
CONSUMER_SECRET = "emulator-consumer-secret"
VERSION = "62.0"
# Seconds to wait for the expected messages.
RECEIVE_TIMEOUT = 30


class EmulatorPasswordAuthenticator(PasswordAuthenticator):
    """PasswordAuthenticator with the token endpoint of a given login URL."""

    def __init__(self, login_url, **kwargs):
        super().__init__(**kwargs)
        self._login_url = login_url.rstrip("/")

    @property
    def _token_url(self):
        return f"{self._login_url}/services/oauth2/token"


class EmulatorClient(Client):
    """aiosfstream-ng's Client whose HTTP session keeps cookies of IP hosts."""

    async def _get_http_session(self):
        if self._http_session is None:
            self._http_session = aiohttp.ClientSession(
                json_serialize=self._json_dumps,
                cookie_jar=aiohttp.CookieJar(unsafe=True),
            )
        return self._http_session


async def trigger(auth, spec):
    """Makes the REST call `spec` describes with the streaming login's session."""
    url = f"{auth.instance_url}/services/data/v{VERSION}/{spec['path']}"
    headers = {"Authorization": f"{auth.token_type} {auth.access_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.request(
            spec.get("method", "POST"), url, json=spec.get("body"), headers=headers
        ) as response:
            text = await response.text()
            return {"status": response.status, "body": json.loads(text) if text else None}


async def run(url, channel, replay, expect, trigger_spec):
    auth = EmulatorPasswordAuthenticator(
        url,
        consumer_key=CONSUMER_KEY,
        consumer_secret=CONSUMER_SECRET,
        username=USERNAME,
        password=PASSWORD + SECURITY_TOKEN,
    )
    # Closing the client cancels its pending /meta/connect; asyncio would
    # print that cancellation's traceback. Anything else is still reported.
    loop = asyncio.get_running_loop()

    def quiet_cancellations(loop, context):
        if not isinstance(context.get("exception"), asyncio.CancelledError):
            loop.default_exception_handler(context)

    loop.set_exception_handler(quiet_cancellations)
    replay_option = {"new": ReplayOption.NEW_EVENTS, "all": ReplayOption.ALL_EVENTS}[replay]
    out = {"messages": []}
    async with EmulatorClient(auth, replay=replay_option) as client:
        out["instance_url"] = auth.instance_url
        out["cometd_url"] = client.url
        await client.subscribe(channel)
        out["subscriptions"] = sorted(client.subscriptions)
        if trigger_spec is not None:
            out["trigger"] = await trigger(auth, trigger_spec)

        async def collect():
            async for message in client:
                out["messages"].append(message)
                if len(out["messages"]) >= expect:
                    return

        try:
            await asyncio.wait_for(collect(), RECEIVE_TIMEOUT)
        except asyncio.TimeoutError:
            out["timed_out"] = True
    return out


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(f"usage: {sys.argv[0]} URL CHANNEL new|all EXPECT [TRIGGER_JSON]")
    url, channel, replay, expect = sys.argv[1:5]
    trigger_spec = json.loads(sys.argv[5]) if len(sys.argv) == 6 else None
    out = asyncio.run(run(url, channel, replay, int(expect), trigger_spec))
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
