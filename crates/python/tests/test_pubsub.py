"""PubSubClient against the emulator's Pub/Sub API server: Change Data
Capture with field names decoded, platform events published from Python
and over REST, resuming from a FileStorage after a restart, acknowledged
delivery, dropped streams ridden out; nothing lost or repeated, checked by
replay id."""

import asyncio
import base64

import pytest

from sfstream import (
    FileStorage,
    PasswordAuthenticator,
    PubSubClient,
    ReplayMarkerStoragePolicy,
    ReplayOption,
)
from sfstream.exceptions import ClientInvalidOperation, ServerError

from conftest import collect, run

CONTACTS = "/data/ContactChangeEvent"


def auth():
    return PasswordAuthenticator(
        consumer_key="emulator-consumer-key",
        consumer_secret="emulator-consumer-secret",
        username="emulator@example.com",
        password="password",
        security_token="token",
    )


def position(message):
    """A Pub/Sub replay id as a number (the emulator's: 8 bytes big-endian
    then two zero bytes), to check order."""
    raw = base64.b64decode(message["data"]["event"]["replayId"])
    return int.from_bytes(raw, "big")


def positions(messages):
    return [position(m) for m in messages]


def last_names(messages):
    return [m["data"]["payload"]["Name"]["LastName"] for m in messages]


def assert_increasing(messages):
    ids = positions(messages)
    assert ids == sorted(set(ids)), ids


def test_change_events_arrive_decoded_with_field_names(org):
    async def main():
        async with PubSubClient(auth()) as client:
            assert client.pubsub_url == org.pubsub_url  # SALESFORCE_PUBSUB_URL
            await client.subscribe(CONTACTS)
            assert client.subscriptions == {CONTACTS}
            [record] = await asyncio.to_thread(org.contacts, 1, "Created")
            await asyncio.to_thread(
                org.rest, "PATCH", f"sobjects/Contact/{record}", {"LastName": "Updated"})
            return record, await collect(client, 2)

    record, (created, updated) = run(main())
    for message in (created, updated):
        assert message["channel"] == CONTACTS
        assert set(message["data"]) == {"schema", "payload", "event"}
        assert message["data"]["payload"]["ChangeEventHeader"]["recordIds"] == [record]
    assert created["data"]["payload"]["ChangeEventHeader"]["changeType"] == "CREATE"
    header = updated["data"]["payload"]["ChangeEventHeader"]
    assert header["changeType"] == "UPDATE"
    assert "Name.LastName" in header["changedFields"]  # a bitmap, decoded
    assert last_names([created, updated]) == ["Created 0", "Updated"]
    assert position(updated) > position(created)


def test_file_storage_resumes_after_close_and_reopen(org, tmp_path):
    store = FileStorage(tmp_path / "markers.redb")

    async def consume(count, create=0):
        async with PubSubClient(auth(), replay=store) as client:
            await client.subscribe(CONTACTS)
            if create:
                await asyncio.to_thread(org.contacts, create, "Online")
            got = await collect(client, count)
            # Nothing else is owed: no duplicate is on its way.
            await asyncio.sleep(0.5)
            assert client.pending_count == 0 and not client.has_pending_messages
            return got

    first = run(consume(2, create=2))
    org.contacts(3, "Offline")  # while no client runs
    second = run(consume(3))
    assert last_names(first) == ["Online 0", "Online 1"]
    assert last_names(second) == ["Offline 0", "Offline 1", "Offline 2"]
    assert_increasing(first + second)
    assert position(second[0]) == position(first[-1]) + (1 << 16)  # the next one


def test_manual_policy_resumes_after_the_last_acknowledged_event(org, tmp_path):
    store = FileStorage(tmp_path / "markers.redb", default_id=ReplayOption.ALL_EVENTS)
    org.contacts(3, "Event")

    async def consume(count, ack):
        async with PubSubClient(
            auth(), replay=store, replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL,
        ) as client:
            await client.subscribe(CONTACTS)
            got = await collect(client, count)
            for message in got[:ack]:
                client.ack(message)
            await client.flush()
            return got

    first = run(consume(3, ack=1))
    again = run(consume(2, ack=2))
    assert last_names(first) == ["Event 0", "Event 1", "Event 2"]
    assert positions(again) == positions(first[1:])  # unacknowledged: redelivered


def test_platform_events_published_from_python_and_over_rest(org):
    topic = org.platform_event("Order__e", {"Amount__c": "double", "Note__c": "string"})

    async def main():
        async with PubSubClient(auth()) as client:
            await client.subscribe(topic)
            published = await client.publish(topic, {"Amount__c": 12.5, "Note__c": "python"})
            await asyncio.to_thread(
                org.rest, "POST", "sobjects/Order__e/", {"Amount__c": 7.0, "Note__c": "rest"})
            with pytest.raises(ServerError):
                await client.publish(topic, {"Amount__c": "not a number"})
            return published, await collect(client, 2)

    published, got = run(main())
    assert [m["channel"] for m in got] == [topic, topic]
    assert [m["data"]["payload"]["Note__c"] for m in got] == ["python", "rest"]
    assert [m["data"]["payload"]["Amount__c"] for m in got] == [12.5, 7.0]
    assert got[0]["data"]["event"]["replayId"] == published
    assert_increasing(got)


def test_dropped_streams_are_ridden_out_without_loss(org):
    async def main():
        async with PubSubClient(auth(), replay=ReplayOption.ALL_EVENTS) as client:
            await asyncio.to_thread(org.contacts, 3, "Before")
            await client.subscribe(CONTACTS)
            got = await collect(client, 3)
            subscribes = org.stats()["pubsub"]["subscribes"]
            await asyncio.to_thread(org.fault, "drop-streams")
            await asyncio.to_thread(org.contacts, 3, "After")
            got += await collect(client, 3)
            await asyncio.sleep(0.5)
            assert client.pending_count == 0
            return got, subscribes, org.stats()["pubsub"]["subscribes"]

    got, before, after = run(main())
    assert last_names(got) == [f"Before {i}" for i in range(3)] + [f"After {i}" for i in range(3)]
    assert_increasing(got)
    assert after > before, "the stream was opened again"


def test_python_storages_are_refused_and_closed_client_operations(org):
    for replay in ({}, 5):
        with pytest.raises((TypeError, ValueError)) as raised:
            PubSubClient(auth(), replay=replay)
        assert "Pub/Sub" in str(raised.value)
    with pytest.raises(ValueError):
        PubSubClient(auth(), replay_fallback=42)

    async def main():
        client = PubSubClient(auth(), replay=ReplayOption.ALL_EVENTS)
        assert org.pubsub_url in repr(client) and "'password'" not in repr(client)
        with pytest.raises(ClientInvalidOperation):
            await client.subscribe(CONTACTS)
        await client.open()
        with pytest.raises(ClientInvalidOperation):
            await client.open()
        await client.subscribe(CONTACTS)
        with pytest.raises(ClientInvalidOperation):
            await client.subscribe(CONTACTS)  # one subscription per topic
        with pytest.raises(ServerError):
            await client.subscribe("/data/NoSuchChangeEvent")
        await client.unsubscribe(CONTACTS)
        assert client.subscriptions == set()
        await client.close()
        assert [m async for m in client] == []  # closed: iteration ends

    run(main())
