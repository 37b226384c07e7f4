"""Fixtures: an emulated org (`sfstream emulator --faults`) per test, and
helpers that drive it over its REST and fault-control APIs.

The emulator binary is SFSTREAM_BIN, else <repo>/target/debug/sfstream
(`cargo build -p sfstream`). Every test talks to 127.0.0.1 only and every
wait is bounded (pytest-timeout is not needed: `run` bounds each test).
"""

import asyncio
import json
import os
import pathlib
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
USERNAME = "emulator@example.com"
PASSWORD = "password"
SECURITY_TOKEN = "token"
CONSUMER_KEY = "emulator-consumer-key"
CONSUMER_SECRET = "emulator-consumer-secret"
REFRESH_TOKEN = "emulator-refresh-token"
API = "v62.0"
#: Most seconds one test's coroutine may run.
TEST_DEADLINE = 90


def run(coro, deadline=TEST_DEADLINE):
    """Runs `coro` on a fresh event loop, bounded by `deadline` seconds."""
    return asyncio.run(asyncio.wait_for(coro, deadline))


class Org:
    """One emulated org, started for a test and stopped after it."""

    def __init__(self, tmp_path, extra_args=()):
        binary = os.environ.get("SFSTREAM_BIN") or str(REPO / "target" / "debug" / "sfstream")
        if not os.path.exists(binary):
            pytest.fail(f"{binary} is missing: cargo build -p sfstream (or set SFSTREAM_BIN)")
        self.stderr = open(tmp_path / "emulator.stderr", "wb")
        self.process = subprocess.Popen(
            [binary, "emulator", "--bind", "127.0.0.1:0", "--faults",
             "--connect-hold-secs", "1", "--pubsub-bind", "127.0.0.1:0", *extra_args],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL,
        )
        line = self.process.stdout.readline().decode()
        if not line.startswith("listening on "):
            self.stop()
            pytest.fail(f"the emulator did not start: {line!r}")
        self.url = line.split()[-1]
        line = self.process.stdout.readline().decode()
        if not line.startswith("pubsub on "):
            self.stop()
            pytest.fail(f"the emulator's Pub/Sub server did not start: {line!r}")
        #: The Pub/Sub API endpoint (the emulator's second stdout line).
        self.pubsub_url = line.split()[-1]
        self._token = None

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process.stdout.close()
        self.stderr.close()

    def _request(self, method, url, body=None, headers=None, form=False):
        headers = dict(headers or {})
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return json.loads(text) if text else None

    @property
    def token(self):
        if self._token is None:
            self._token = self.login()["access_token"]
        return self._token

    def login(self):
        return self._request("POST", f"{self.url}/services/oauth2/token", {
            "grant_type": "password", "client_id": CONSUMER_KEY,
            "client_secret": CONSUMER_SECRET, "username": USERNAME,
            "password": PASSWORD + SECURITY_TOKEN,
        }, form=True)

    def rest(self, method, path, body=None):
        try:
            return self._request(method, f"{self.url}/services/data/{API}/{path}", body,
                                 {"Authorization": f"Bearer {self.token}"})
        except urllib.error.HTTPError as error:
            if error.code == 401:  # tokens invalidated by a fault: log in again
                self._token = None
                return self._request(method, f"{self.url}/services/data/{API}/{path}", body,
                                     {"Authorization": f"Bearer {self.token}"})
            raise

    def push_topic(self, name, query="SELECT Id, Name FROM Contact"):
        self.rest("POST", "sobjects/PushTopic/",
                  {"Name": name, "Query": query, "ApiVersion": 62.0})
        return f"/topic/{name}"

    def contacts(self, count, prefix="Contact"):
        """Creates `count` Contacts; returns their ids in order."""
        return [self.rest("POST", "sobjects/Contact/", {"LastName": f"{prefix} {i}"})["id"]
                for i in range(count)]

    def platform_event(self, name, fields):
        """Defines the platform event `name` (`Order__e`) with `fields`
        (`{"Amount__c": "double"}`); returns its topic."""
        self._request("POST", f"{self.url}/_emulator/platform-events/{name}", {"fields": fields})
        return f"/event/{name}"

    def fault(self, name, body=None):
        return self._request("POST", f"{self.url}/_emulator/faults/{name}", body or {})

    def load(self, channel, count):
        """Appends `count` events to `channel` at once; returns the last replay id."""
        return self._request("POST", f"{self.url}/_emulator/load",
                             {"channel": channel, "count": count})["last_replay_id"]

    def stats(self):
        return self._request("GET", f"{self.url}/_emulator/stats")


@pytest.fixture
def org(tmp_path, monkeypatch):
    """An emulated org; SALESFORCE_LOGIN_URL points the authenticators at it,
    so the documentation's examples run without a login URL, and
    SALESFORCE_PUBSUB_URL points PubSubClient at its Pub/Sub server."""
    org = Org(tmp_path)
    monkeypatch.setenv("SALESFORCE_LOGIN_URL", org.url)
    monkeypatch.setenv("SALESFORCE_PUBSUB_URL", org.pubsub_url)
    try:
        yield org
    finally:
        org.stop()


async def collect(client, count, seconds=30):
    """The next `count` messages of `client` (fails after `seconds`)."""
    async def take():
        out = []
        async for message in client:
            out.append(message)
            if len(out) >= count:
                break
        return out

    return await asyncio.wait_for(take(), seconds)


def replay_ids(messages):
    return [m["data"]["event"]["replayId"] for m in messages]
