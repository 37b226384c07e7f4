"""How the client recovers from what Salesforce does, checked by replay id
(nothing lost, nothing repeated) against the emulator's faults."""

import asyncio

import pytest

from sfstream import ReplayMarker, ReplayOption, SalesforceStreamingClient
from sfstream.exceptions import ServerError

from conftest import collect, replay_ids, run


def client(**kwargs):
    return SalesforceStreamingClient(
        consumer_key="emulator-consumer-key",
        consumer_secret="emulator-consumer-secret",
        username="emulator@example.com",
        password="passwordtoken",
        **kwargs,
    )


def test_unknown_client_403_handshakes_again_and_loses_nothing(org):
    topic = org.push_topic("Contacts")

    async def main():
        async with client() as c:
            await c.subscribe(topic)
            await asyncio.to_thread(org.contacts, 2, "Before")
            before = await collect(c, 2)
            handshakes = (await asyncio.to_thread(org.stats))["handshakes"]
            await asyncio.to_thread(org.fault, "forget-clients")
            await asyncio.to_thread(org.contacts, 3, "After")
            after = await collect(c, 3)
            return before, after, handshakes, await asyncio.to_thread(org.stats)

    before, after, handshakes, stats = run(main())
    names = [m["data"]["sobject"]["Name"] for m in before + after]
    assert names == ["Before 0", "Before 1", "After 0", "After 1", "After 2"]
    ids = replay_ids(before + after)
    assert ids == sorted(set(ids))
    assert stats["handshakes"] > handshakes


def test_invalid_token_401_logs_in_again(org):
    topic = org.push_topic("Contacts")

    async def main():
        async with client() as c:
            await c.subscribe(topic)
            await asyncio.to_thread(org.contacts, 1, "Before")
            before = await collect(c, 1)
            await asyncio.to_thread(org.fault, "invalidate-tokens")
            await asyncio.to_thread(org.contacts, 2, "After")
            return before + await collect(c, 2)

    got = run(main())
    assert [m["data"]["sobject"]["Name"] for m in got] == ["Before 0", "After 0", "After 1"]


def test_wrong_password_is_an_authentication_error_without_the_password(org):
    from sfstream.exceptions import AuthenticationError

    async def main():
        c = SalesforceStreamingClient(
            consumer_key="emulator-consumer-key",
            consumer_secret="emulator-consumer-secret",
            username="emulator@example.com",
            password="s3cr3t-wrong-password",
        )
        with pytest.raises(AuthenticationError) as raised:
            await c.open()
        return raised.value, c

    error, c = run(main())
    assert "authentication failure" in str(error)
    for text in (str(error), repr(error), repr(c), repr(c.auth)):
        assert "s3cr3t" not in text
        assert "emulator-consumer-secret" not in text
    assert c.closed


def expire_all_but_last(org, topic, last_replay_id_seen):
    # Events through the id after the marker leave the window: the marker's
    # replay id is no longer valid; the events raised since are retained
    # (replay ids are not contiguous: the next event's id is higher still).
    org.fault("expire", {"channel": topic, "through": last_replay_id_seen + 1})


@pytest.mark.parametrize("fallback", [None, ReplayOption.ALL_EVENTS])
def test_expired_replay_id_on_an_automatic_resubscribe(org, fallback):
    topic = org.push_topic("Contacts")

    async def main():
        async with client(replay={}, replay_fallback=fallback) as c:
            await c.subscribe(topic)
            await asyncio.to_thread(org.contacts, 1, "Seen")
            seen = await collect(c, 1)
            last = seen[0]["data"]["event"]["replayId"]
            await asyncio.to_thread(org.fault, "delay", {"ms": 1500, "count": 1})
            await asyncio.to_thread(org.fault, "forget-clients")
            await asyncio.to_thread(org.contacts, 2, "Missed")
            await asyncio.to_thread(expire_all_but_last, org, topic, last)
            if fallback is None:
                with pytest.raises(ServerError) as raised:
                    await asyncio.wait_for(c.receive(), 20)
                return raised.value, c.subscriptions, list(c.gaps)
            got = await collect(c, 2, 20)
            return got, c.subscriptions, list(c.gaps)

    outcome, subscriptions, gaps = run(main())
    if fallback is None:
        # Never silently: the refusal surfaces, in the server's words, and
        # the channel is no longer listed.
        assert outcome.error_code == 400
        assert outcome.error_message.startswith("The replayId {")
        assert outcome.response["subscription"] == topic
        assert subscriptions == set()
        assert gaps == []
    else:
        # Resubscribed with ALL_EVENTS: the retained events, and a gap noted.
        assert [m["data"]["sobject"]["Name"] for m in outcome] == ["Missed 0", "Missed 1"]
        assert subscriptions == {topic}
        assert len(gaps) == 1 and gaps[0]["channel"] == topic


def test_expired_replay_id_on_subscribe_without_fallback_keeps_the_server_message(org):
    topic = org.push_topic("Contacts")
    org.contacts(2)
    org.fault("expire", {"channel": topic})
    replay = {topic: ReplayMarker("2024-01-01T00:00:00.000Z", 1)}

    async def main():
        async with client(replay=replay) as c:
            with pytest.raises(ServerError) as raised:
                await c.subscribe(topic)
            return raised.value, c.subscriptions

    error, subscriptions = run(main())
    assert error.error == (
        "400::The replayId {1} you provided was invalid.  Please provide a valid ID, "
        "-2 to replay all events, or -1 to replay only new events."
    )
    assert subscriptions == set()
    assert replay[topic].replay_id == 1  # untouched without a fallback
