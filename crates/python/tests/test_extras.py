"""What the Rust core adds to aiosfstream's API: the other logins, the
native replay stores, acknowledged delivery; and secrets kept out of repr."""

import asyncio
import os
import uuid

import pytest

from sfstream import (
    Client,
    ClientCredentialsAuthenticator,
    FileStorage,
    PasswordAuthenticator,
    RedisStorage,
    ReplayMarkerStoragePolicy,
    ReplayOption,
    SoapAuthenticator,
)
from sfstream.exceptions import AuthenticationError, ClientInvalidOperation

from conftest import collect, replay_ids, run


def password_auth(**kwargs):
    return PasswordAuthenticator(
        consumer_key="emulator-consumer-key",
        consumer_secret="emulator-consumer-secret",
        username="emulator@example.com",
        password="password",
        security_token="token",
        **kwargs,
    )


async def one_event(org, auth, topic):
    async with Client(auth) as client:
        await client.subscribe(topic)
        await asyncio.to_thread(org.contacts, 1)
        return (await collect(client, 1))[0]


def test_soap_and_client_credentials_logins(org):
    topic = org.push_topic("Contacts")
    soap = SoapAuthenticator("emulator@example.com", "password", "token")
    assert run(one_event(org, soap, topic))["channel"] == topic
    creds = ClientCredentialsAuthenticator("emulator-consumer-key", "emulator-consumer-secret")
    assert run(one_event(org, creds, topic))["channel"] == topic


def test_login_url_argument_overrides_the_environment(org, monkeypatch):
    topic = org.push_topic("Contacts")
    monkeypatch.setenv("SALESFORCE_LOGIN_URL", "http://127.0.0.1:9")  # nothing there
    assert password_auth().login_url == "http://127.0.0.1:9"
    assert password_auth(login_url=org.url).login_url == org.url
    assert run(one_event(org, password_auth(login_url=org.url), topic))["channel"] == topic
    monkeypatch.delenv("SALESFORCE_LOGIN_URL")
    assert password_auth().login_url == "https://login.salesforce.com"
    assert password_auth(sandbox=True).login_url == "https://test.salesforce.com"


def test_secrets_never_in_repr(org):
    auths = [
        password_auth(),
        SoapAuthenticator("emulator@example.com", "password", "token"),
        ClientCredentialsAuthenticator("emulator-consumer-key", "emulator-consumer-secret"),
    ]
    for auth in auths:
        for text in (repr(auth), repr(Client(auth)), repr(auth._login())):
            assert "emulator-consumer-secret" not in text
            assert "'password'" not in text and "'token'" not in text
    store = RedisStorage("redis://user:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in repr(store) and "127.0.0.1" in repr(store)


def test_file_storage_resumes_after_a_restart(org, tmp_path):
    topic = org.push_topic("Contacts")
    store = FileStorage(tmp_path / "markers.redb")

    async def consume(count, raise_first=0):
        async with Client(password_auth(), replay=store) as client:
            await client.subscribe(topic)
            if raise_first:
                await asyncio.to_thread(org.contacts, raise_first, "Online")
            return await collect(client, count)

    first = run(consume(2, raise_first=2))
    org.contacts(2, "Offline")
    second = run(consume(2))
    assert [m["data"]["sobject"]["Name"] for m in second] == ["Offline 0", "Offline 1"]
    assert replay_ids(second)[0] > replay_ids(first)[-1]


def test_redis_storage_keeps_markers_in_the_nameko_extension_format(org):
    redis = pytest.importorskip("redis")
    name = f"Py{uuid.uuid4().hex[:12]}"
    topic = org.push_topic(name)
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    key = f"salesforce:replay_id:{topic}"
    connection = redis.Redis.from_url(url)
    try:
        async def consume():
            async with Client(password_auth(), replay=RedisStorage(url)) as client:
                await client.subscribe(topic)
                await asyncio.to_thread(org.contacts, 2)
                got = await collect(client, 2)
                await client.flush()
                return got

        got = run(consume())
        assert int(connection.get(key)) == replay_ids(got)[-1]
    finally:
        connection.delete(key, f"salesforce:replay_created:{topic}")
        connection.close()


def test_manual_policy_stores_only_acknowledged_markers(org):
    topic = org.push_topic("Contacts")
    replay = {}

    async def main():
        async with Client(
            password_auth(), replay=replay,
            replay_storage_policy=ReplayMarkerStoragePolicy.MANUAL,
        ) as client:
            await client.subscribe(topic)
            await asyncio.to_thread(org.contacts, 3)
            got = await collect(client, 3)
            await client.flush()
            nothing = dict(replay)
            client.ack(got[1])
            await client.flush()
            after_ack = replay[topic].replay_id
            client.ack(got[0])  # older: the marker never moves back
            await client.flush()
            return got, nothing, after_ack, replay[topic].replay_id

    got, nothing, after_ack, final = run(main())
    assert nothing == {}
    assert after_ack == final == replay_ids(got)[1]
    assert isinstance(got[0], dict) and set(got[0]) == {"channel", "data"}


def test_operations_on_a_closed_client(org):
    async def main():
        client = Client(password_auth(), replay=ReplayOption.ALL_EVENTS)
        with pytest.raises(ClientInvalidOperation):
            await client.subscribe("/topic/X")
        with pytest.raises(ClientInvalidOperation):
            await client.receive()
        await client.open()
        with pytest.raises(ClientInvalidOperation):
            await client.open()
        await client.close()
        assert [m async for m in client] == []  # closed: iteration ends

    run(main())


def test_refused_refresh_token(org):
    from sfstream import RefreshTokenAuthenticator

    async def main():
        auth = RefreshTokenAuthenticator("emulator-consumer-key", "emulator-consumer-secret",
                                         "not-the-refresh-token")
        with pytest.raises(AuthenticationError) as raised:
            await Client(auth).open()
        return raised.value

    error = run(main())
    assert "not-the-refresh-token" not in str(error)


def test_jwt_bearer_login(tmp_path, monkeypatch):
    """An org that trusts a generated key's public half: the JWT bearer flow
    logs in with the private half (no password, no secret)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from conftest import Org
    from sfstream import JwtBearerAuthenticator

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = tmp_path / "public.pem"
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    org = Org(tmp_path, ["--jwt-certificate", str(public)])
    try:
        monkeypatch.setenv("SALESFORCE_LOGIN_URL", org.url)
        topic = org.push_topic("Contacts")
        auth = JwtBearerAuthenticator("emulator-consumer-key", "emulator@example.com", private)
        assert "PRIVATE KEY" not in repr(auth)
        assert run(one_event(org, auth, topic))["channel"] == topic
    finally:
        org.stop()
