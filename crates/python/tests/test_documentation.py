"""The examples of aiosfstream's documentation (the project's second seed
document), run against the emulated org with only the import line changed
(`aiosfstream` -> `sfstream`). The placeholders ("<consumer key>", …) are
the emulator's credentials; SALESFORCE_LOGIN_URL (set by the `org`
fixture) points the default login URL at the emulator. Where an example
loops forever (`async for message in client: # process message`), the
loop stops after the events the test raised.
"""

import asyncio
import shelve

import pytest

from sfstream import (
    Client,
    DefaultMappingStorage,
    PasswordAuthenticator,
    RefreshTokenAuthenticator,
    ReplayMarker,
    ReplayMarkerStorage,
    ReplayOption,
    SalesforceStreamingClient,
)
from sfstream.exceptions import ServerError

from conftest import collect, replay_ids, run

CONSUMER_KEY = "emulator-consumer-key"
CONSUMER_SECRET = "emulator-consumer-secret"
USERNAME = "emulator@example.com"
PASSWORD = "passwordtoken"  # the password followed by the security token


def test_usage_streams_two_topics(org, capsys):
    org.push_topic("one")
    org.push_topic("two", "SELECT Id, Name FROM Contact WHERE Name LIKE '%Two%'")
    seen = []

    async def stream_events():
        # connect to Streaming API
        async with SalesforceStreamingClient(
                consumer_key=CONSUMER_KEY,
                consumer_secret=CONSUMER_SECRET,
                username=USERNAME,
                password=PASSWORD) as client:
            # subscribe to topics
            await client.subscribe("/topic/one")
            await client.subscribe("/topic/two")
            await asyncio.to_thread(org.contacts, 2, "Two")
            # listen for incoming messages
            async for message in client:
                topic = message["channel"]
                data = message["data"]
                print(f"{topic}: {data}")
                seen.append(message)
                if len(seen) == 4:
                    break

    run(stream_events())
    assert sorted(m["channel"] for m in seen) == ["/topic/one"] * 2 + ["/topic/two"] * 2
    for message in seen:
        assert set(message) == {"channel", "data"}
        assert message["data"]["event"]["type"] == "created"
        assert message["data"]["sobject"]["Name"].startswith("Two")
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and printed[0].startswith("/topic/")


def test_client_with_password_authenticator(org):
    topic = org.push_topic("Foo")

    async def main():
        auth = PasswordAuthenticator(
            consumer_key=CONSUMER_KEY,
            consumer_secret=CONSUMER_SECRET,
            username=USERNAME,
            password=PASSWORD,
        )
        client = Client(auth)
        await client.open()
        assert not client.closed and client.connection_type == "long-polling"
        assert auth.instance_url == org.url
        await client.subscribe(topic)
        ids = await asyncio.to_thread(org.contacts, 1)
        message = await client.receive()
        await client.close()
        assert client.closed
        return message, ids

    message, ids = run(main())
    assert message["data"]["sobject"]["Id"] == ids[0]


def test_client_with_refresh_token_authenticator(org):
    topic = org.push_topic("Foo")

    async def main():
        auth = RefreshTokenAuthenticator(
            consumer_key=CONSUMER_KEY,
            consumer_secret=CONSUMER_SECRET,
            refresh_token="emulator-refresh-token",
        )
        client = Client(auth)
        async with client:
            await client.subscribe(topic)
            await asyncio.to_thread(org.contacts, 1)
            return await client.receive()

    assert run(main())["channel"] == "/topic/Foo"


def test_subscriptions_and_unsubscribe(org):
    org.push_topic("foo")
    org.push_topic("bar")

    async def main():
        async with SalesforceStreamingClient(
                consumer_key=CONSUMER_KEY,
                consumer_secret=CONSUMER_SECRET,
                username=USERNAME,
                password=PASSWORD) as client:
            await client.subscribe("/topic/foo")
            await client.subscribe("/topic/bar")
            assert client.subscriptions == {"/topic/foo", "/topic/bar"}
            await client.unsubscribe("/topic/foo")
            assert client.subscriptions == {"/topic/bar"}
            await asyncio.to_thread(org.contacts, 2)
            got = await collect(client, 2)
            # Nothing more arrives on the unsubscribed channel.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.receive(), 2)
            return got

    got = run(main())
    assert [m["channel"] for m in got] == ["/topic/bar", "/topic/bar"]


def test_shelve_replay_resumes_where_it_left_off(org, tmp_path):
    org.push_topic("foo")
    path = str(tmp_path / "replay.db")

    async def consume(count):
        with shelve.open(path) as replay:
            async with SalesforceStreamingClient(
                consumer_key=CONSUMER_KEY,
                consumer_secret=CONSUMER_SECRET,
                username=USERNAME,
                password=PASSWORD,
                replay=replay) as client:
                await client.subscribe("/topic/foo")
                if count == 2:
                    await asyncio.to_thread(org.contacts, 2, "First")
                return await collect(client, count)

    first = run(consume(2))
    with shelve.open(path) as replay:
        stored = replay["/topic/foo"]
    assert isinstance(stored, ReplayMarker)
    assert stored.replay_id == replay_ids(first)[-1]
    assert stored.date == first[-1]["data"]["event"]["createdDate"]
    # Raised while no client runs: the next run replays them, and only them.
    org.contacts(3, "Offline")
    second = run(consume(3))
    assert [m["data"]["sobject"]["Name"] for m in second] == [
        "Offline 0", "Offline 1", "Offline 2"]
    assert replay_ids(second)[0] > replay_ids(first)[-1]


def test_replay_all_events(org):
    org.push_topic("foo")
    org.contacts(3, "Earlier")

    async def main():
        async with SalesforceStreamingClient(
            consumer_key=CONSUMER_KEY,
            consumer_secret=CONSUMER_SECRET,
            username=USERNAME,
            password=PASSWORD,
            replay=ReplayOption.ALL_EVENTS) as client:

            await client.subscribe("/topic/foo")
            return await collect(client, 3)

    got = run(main())
    assert [m["data"]["sobject"]["Name"] for m in got] == ["Earlier 0", "Earlier 1", "Earlier 2"]


def test_default_mapping_storage(org, tmp_path):
    org.push_topic("foo")
    org.contacts(2, "Retained")
    path = str(tmp_path / "replay.db")

    async def main(count):
        with shelve.open(path) as replay:

            default_mapping = DefaultMappingStorage(
                replay,
                ReplayOption.ALL_EVENTS
            )

            async with SalesforceStreamingClient(
                    consumer_key=CONSUMER_KEY,
                    consumer_secret=CONSUMER_SECRET,
                    username=USERNAME,
                    password=PASSWORD,
                    replay=default_mapping) as client:

                await client.subscribe("/topic/foo")
                return await collect(client, count)

    first = run(main(2))  # nothing stored: all retained events
    assert [m["data"]["sobject"]["Name"] for m in first] == ["Retained 0", "Retained 1"]
    org.contacts(1, "Later")
    second = run(main(1))  # stored: continues after it
    assert second[0]["data"]["sobject"]["Name"] == "Later 0"


class MyReplayMarkerStorage(ReplayMarkerStorage):
    """The documentation's own storage, kept in a dict, that logs its calls."""

    def __init__(self):
        self.markers = {}
        self.calls = []

    async def set_replay_marker(self, subscription, replay_marker):
        # store *replay_marker* for the given *subscription*
        self.calls.append(("set", subscription, replay_marker, asyncio.get_running_loop()))
        self.markers[subscription] = replay_marker

    async def get_replay_marker(self, subscription):
        # retrieve the replay marker for the given *subscription*
        self.calls.append(("get", subscription, None, asyncio.get_running_loop()))
        return self.markers.get(subscription)


def test_custom_replay_marker_storage(org):
    org.push_topic("foo")
    replay = MyReplayMarkerStorage()

    async def main():
        async with SalesforceStreamingClient(
            consumer_key=CONSUMER_KEY,
            consumer_secret=CONSUMER_SECRET,
            username=USERNAME,
            password=PASSWORD,
            replay=replay) as client:
            await client.subscribe("/topic/foo")
            await asyncio.to_thread(org.contacts, 3)
            got = await collect(client, 3)
            await client.flush()
            return got, asyncio.get_running_loop()

    got, loop = run(main())
    assert replay.markers["/topic/foo"].replay_id == replay_ids(got)[-1]
    assert replay.calls[0][:2] == ("get", "/topic/foo")
    # Every call ran on the client's own event loop.
    assert all(call[3] is loop for call in replay.calls)


def test_expired_replay_id_raises_server_error_and_recovers(org, capsys):
    org.push_topic("foo")
    first = org.contacts(2)
    replay = {}

    async def main():
        async with SalesforceStreamingClient(
            consumer_key=CONSUMER_KEY,
            consumer_secret=CONSUMER_SECRET,
            username=USERNAME,
            password=PASSWORD,
            replay=replay) as client:
            try:
                await client.subscribe("/topic/foo")
            except ServerError as error:
                print(error.error_message)
                assert error.error_code == 400
                del replay["/topic/foo"]
                await client.subscribe("/topic/foo")
            await asyncio.to_thread(org.contacts, 1, "Fresh")
            return await collect(client, 1)

    # A marker from a day ago: its event has left the retention window.
    replay["/topic/foo"] = ReplayMarker(date="2024-01-01T00:00:00.000Z", replay_id=1)
    org.fault("expire", {"channel": "/topic/foo"})
    got = run(main())
    printed = capsys.readouterr().out
    assert printed.startswith("The replayId {1} you provided was invalid.")
    assert "-2 to replay all events, or -1 to replay only new events." in printed
    assert got[0]["data"]["sobject"]["Name"] == "Fresh 0"
    assert first


def test_replay_fallback_resubscribes(org):
    org.push_topic("foo")
    replay = {}

    async def main(count):
        async with SalesforceStreamingClient(
            consumer_key=CONSUMER_KEY,
            consumer_secret=CONSUMER_SECRET,
            username=USERNAME,
            password=PASSWORD,
            replay=replay,
            replay_fallback=ReplayOption.ALL_EVENTS) as client:
            await client.subscribe("/topic/foo")
            if count == 1:
                await asyncio.to_thread(org.contacts, 1, "Old")
            got = await collect(client, count)
            await client.flush()
            return got, list(client.gaps)

    old, _ = run(main(1))
    assert replay["/topic/foo"].replay_id == replay_ids(old)[0]
    # Offline for too long: the stored marker and the next event expire.
    org.contacts(2, "Retained")
    org.fault("expire", {"channel": "/topic/foo", "through": replay_ids(old)[0] + 1})
    got, gaps = run(main(2))
    # ALL_EVENTS: every retained event, then the marker moves on.
    assert [m["data"]["sobject"]["Name"] for m in got] == ["Retained 0", "Retained 1"]
    assert replay["/topic/foo"].replay_id == replay_ids(got)[-1]
    assert [g["channel"] for g in gaps] == ["/topic/foo"]
    assert gaps[0]["expired_replay_id"] == replay_ids(old)[0]


def test_max_pending_count_pauses_polling(org):
    org.push_topic("foo")
    org.contacts(60, "Burst")

    async def main():
        client = SalesforceStreamingClient(
            consumer_key=CONSUMER_KEY,
            consumer_secret=CONSUMER_SECRET,
            username=USERNAME,
            password=PASSWORD,
            replay=ReplayOption.ALL_EVENTS,
            max_pending_count=42
        )
        async with client:
            await client.subscribe("/topic/foo")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while client.pending_count < 60 and loop.time() < deadline:
                await asyncio.sleep(0.05)
            # 60 pending (one connect response) >= 42: polling pauses, so
            # what is raised now waits on the server.
            connects = (await asyncio.to_thread(org.stats))["connects"]
            await asyncio.to_thread(org.contacts, 60, "Later")
            await asyncio.sleep(2)
            paused = client.pending_count, (await asyncio.to_thread(org.stats))["connects"]
            assert client.has_pending_messages
            got = await collect(client, 120)
            return connects, paused, got, client.pending_count

    connects, (pending, connects_after), got, left = run(main())
    assert pending == 60
    assert connects_after == connects
    assert [m["data"]["sobject"]["Name"] for m in got] == (
        [f"Burst {i}" for i in range(60)] + [f"Later {i}" for i in range(60)])
    assert left == 0


def test_connection_timeout_raises_transport_timeout(org):
    from sfstream.exceptions import TransportTimeoutError

    org.push_topic("foo")

    async def main():
        async with SalesforceStreamingClient(
                consumer_key=CONSUMER_KEY,
                consumer_secret=CONSUMER_SECRET,
                username=USERNAME,
                password=PASSWORD,
                connection_timeout=2) as client:
            await client.subscribe("/topic/foo")
            await asyncio.to_thread(org.stop)  # the server goes away for good
            started = asyncio.get_running_loop().time()
            with pytest.raises(TransportTimeoutError):
                await client.receive()
            return asyncio.get_running_loop().time() - started

    elapsed = run(main())
    assert elapsed < 30
