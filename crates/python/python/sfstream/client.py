"""The streaming client: aiosfstream's :class:`Client` and
:class:`SalesforceStreamingClient`, on sfstream's Rust core."""

import asyncio
import collections
import json
import logging
from collections import abc
from typing import Any, AsyncIterator, Deque, Optional, Set, Union

from . import _sfstream
from .auth import AuthenticatorBase, PasswordAuthenticator
from .exceptions import ClientInvalidOperation, ServerError
from .replay import (
    ConstantReplayId,
    MappingStorage,
    NativeStorage,
    ReplayMarkerStorage,
    ReplayMarkerStoragePolicy,
    ReplayOption,
)

__all__ = ["Client", "SalesforceStreamingClient", "Message"]

LOGGER = logging.getLogger(__name__)
#: ``max_pending_count`` <= 0 (unbounded in aiosfstream) keeps this many.
UNBOUNDED_PENDING = 10_000
#: Gaps kept in :attr:`Client.gaps`.
MAX_GAPS = 100


class Message(dict):
    """A received message (a ``dict``: ``channel``, ``data``) that can be
    acknowledged with :meth:`Client.ack` (``ReplayMarkerStoragePolicy.MANUAL``)."""

    __slots__ = ("_handle",)


class _ClientBase:
    """What :class:`Client` and :class:`~sfstream.PubSubClient` share: the
    open/closed state, subscriptions, ``receive()``, ``async for``,
    ``async with``, :meth:`ack` and :meth:`flush`, over a native core whose
    ``take()`` returns ``(channel, data_json, handle, is_gap)``."""

    def _init_state(self, json_loads) -> None:
        self._json_loads = json_loads
        self._core = None
        self._closed = True
        self._subscriptions: Set[str] = set()
        #: Windows of events that may have been missed: a stored replay id
        #: was refused and ``replay_fallback`` took over (newest last)
        self.gaps: Deque[dict] = collections.deque(maxlen=MAX_GAPS)

    def _max_pending(self) -> int:
        max_pending = self.max_pending_count
        if max_pending is None or max_pending <= 0:
            return UNBOUNDED_PENDING
        return max_pending

    def _started(self, core) -> None:
        self._core = core
        self._closed = False
        self._subscriptions = set()
        self.auth.instance_url = core.instance_url

    @property
    def closed(self) -> bool:
        """Marks whether the client is open or closed"""
        return self._closed

    @property
    def subscriptions(self) -> Set[str]:
        """Set of subscribed channels"""
        return set(self._subscriptions)

    @property
    def pending_count(self) -> int:
        """The number of pending incoming messages"""
        return self._core.pending_count if self._core is not None else 0

    @property
    def has_pending_messages(self) -> bool:
        """Marks whether the client has any pending incoming messages"""
        return self.pending_count > 0

    async def close(self) -> None:
        """Disconnect from the server; markers not stored yet are stored
        (for up to 10 s) and the replay store is released"""
        if self._closed:
            return
        self._closed = True
        if self._core is not None:
            await self._core.close()
        self._subscriptions = set()

    def _open_core(self):
        if self._closed or self._core is None:
            raise ClientInvalidOperation("Client is closed.")
        return self._core

    def _take(self, core) -> Optional[dict]:
        try:
            item = core.take()
        except ServerError as error:
            response = error.response or {}
            self._subscriptions.discard(response.get("subscription"))
            raise
        if item is None:
            return None
        channel, data, handle, is_gap = item
        if is_gap:
            gap = self._json_loads(data).get("gap", {})
            LOGGER.warning(
                "Events of %s may have been missed (replay fallback): %r", channel, gap
            )
            self.gaps.append(gap)
            return self._take(core)
        if handle is None:
            return {"channel": channel, "data": self._json_loads(data)}
        message = Message(channel=channel, data=self._json_loads(data))
        message._handle = handle
        return message

    async def receive(self) -> dict:
        """Wait for the next message

        :return: The message: ``{"channel": …, "data": {"event": …, …}}``
        :raise ClientInvalidOperation: If the client is closed and has no
            more pending messages
        :raise ServerError: If a subscription was refused for good (e.g. an
            automatic resubscribe with an expired replay id and no
            ``replay_fallback``; the other subscriptions go on)
        :raise TransportTimeoutError: If the connection could not be
            re-established within ``connection_timeout``
        :raise AuthenticationError: If logging in again was refused
        """
        core = self._core
        if core is None:
            raise ClientInvalidOperation("Client is closed.")
        while True:
            message = self._take(core)
            if message is not None:
                return message
            if self._closed:
                raise ClientInvalidOperation(
                    "The client is closed and there are no pending messages."
                )
            await core.wait()

    def ack(self, message: dict) -> None:
        """Store the replay marker of *message* (with
        ``ReplayMarkerStoragePolicy.MANUAL``; a no-op otherwise): call it once
        the message is handled, for at-least-once delivery"""
        handle = getattr(message, "_handle", None)
        if handle is not None:
            handle.ack()

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until every marker committed so far is stored

        :raise ReplayError: Naming the markers not stored within *timeout*
        """
        await self._open_core().flush(timeout)

    async def __aiter__(self) -> AsyncIterator[dict]:
        while True:
            try:
                message = await self.receive()
            except ClientInvalidOperation:
                break
            yield message

    async def __aenter__(self) -> "_ClientBase":
        try:
            await self.open()
        except Exception:
            await self.close()
            raise
        return self

    async def __aexit__(self, exc_type, exc_val, exc_tb) -> None:
        await self.close()


class Client(_ClientBase):
    """Salesforce Streaming API client

    :param authenticator: An authenticator object
    :param replay: A :class:`ReplayOption`, a ``MutableMapping`` (``dict``,
        ``shelve`` file, …), a :class:`ReplayMarkerStorage`, a native
        :class:`~sfstream.replay.FileStorage` / ``RedisStorage``, or ``None``
    :param replay_fallback: The :class:`ReplayOption` to resubscribe with
        when a stored replay id is outside the retention window (on
        ``subscribe`` and on automatic resubscribes alike)
    :param replay_storage_policy: When markers are stored: as messages are
        handed out (``AUTOMATIC``), or on :meth:`ack` (``MANUAL``)
    :param connection_timeout: Seconds to keep trying to re-establish a
        lost connection before ``receive()`` raises
        :class:`TransportTimeoutError` (``None``: forever)
    :param max_pending_count: Messages to prefetch; polling pauses while
        this many wait (``<= 0``: 10,000)
    :param json_loads: Function decoding the data of messages
    :param loop: Accepted for compatibility and ignored (the running loop
        is used)
    """

    def __init__(
        self,
        authenticator: AuthenticatorBase,
        *,
        replay: Any = ReplayOption.NEW_EVENTS,
        replay_fallback: Optional[ReplayOption] = None,
        replay_storage_policy: ReplayMarkerStoragePolicy = ReplayMarkerStoragePolicy.AUTOMATIC,
        connection_timeout: Union[int, float, None] = 10.0,
        max_pending_count: int = 100,
        json_loads=json.loads,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        **_ignored,
    ) -> None:
        if not isinstance(authenticator, AuthenticatorBase):
            raise TypeError(
                f"authenticator should be an instance of {AuthenticatorBase.__name__}."
            )
        self.auth = authenticator
        self.replay_fallback = replay_fallback
        self.replay_storage_policy = replay_storage_policy
        self.connection_timeout = connection_timeout
        self.max_pending_count = max_pending_count
        self._store, self._default_id, self.replay_storage = self._replay_settings(replay)
        self._init_state(json_loads)

    @staticmethod
    def _replay_settings(replay):
        """(store for the core, default replay id, replay_storage)"""
        if replay is None:
            return None, int(ReplayOption.NEW_EVENTS), None
        if isinstance(replay, NativeStorage):
            return replay._uri, int(replay.default_id), replay
        if isinstance(replay, ConstantReplayId):
            return None, int(replay.default_id), replay
        if isinstance(replay, ReplayMarkerStorage):
            default = getattr(replay, "default_id", ReplayOption.NEW_EVENTS)
            return replay, int(default), replay
        if isinstance(replay, abc.MutableMapping):
            storage = MappingStorage(replay)
            return storage, int(ReplayOption.NEW_EVENTS), storage
        if isinstance(replay, int) and not isinstance(replay, bool):
            return None, int(replay), ConstantReplayId(replay)
        raise TypeError(f"{type(replay).__name__!r} is not a valid type for the replay parameter.")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.auth!r}, replay={self.replay_storage!r}, "
            f"replay_fallback={self.replay_fallback!r}, closed={self._closed})"
        )

    @property
    def connection_type(self) -> Optional[str]:
        """The current connection type if the client is open, else ``None``"""
        return None if self._closed else "long-polling"

    async def open(self) -> None:
        """Log in and establish a connection with the Streaming API endpoint

        :raise ClientInvalidOperation: If the client is already open
        :raise AuthenticationError: If the login is refused or the login
            server cannot be reached
        :raise TransportError: If a network or transport related error occurs
        :raise ServerError: If the handshake gets rejected by the server
        """
        if not self._closed:
            raise ClientInvalidOperation("Client is already open.")
        fallback = None if self.replay_fallback is None else int(self.replay_fallback)
        core = _sfstream.Core(
            self.auth._login(),
            self._store,
            self._default_id,
            fallback,
            self.replay_storage_policy == ReplayMarkerStoragePolicy.MANUAL,
            self._max_pending(),
            None if self.connection_timeout is None else float(self.connection_timeout),
        )
        await core.open()
        self._started(core)
        LOGGER.info("Client opened. Instance URL: %r.", core.instance_url)

    async def subscribe(self, channel: str) -> None:
        """Subscribe to *channel*, from its stored replay marker, else from
        the ``replay`` option

        :raise ClientInvalidOperation: If the client is closed
        :raise TransportError: If a network or transport related error occurs
        :raise ServerError: If the subscribe request gets rejected by the
            server (an expired replay id without ``replay_fallback``
            included)
        """
        await self._open_core().subscribe(channel)
        self._subscriptions.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        """Unsubscribe from *channel*

        :raise ClientInvalidOperation: If the client is closed
        :raise ServerError: If the unsubscribe request gets rejected
        """
        await self._open_core().unsubscribe(channel)
        self._subscriptions.discard(channel)

    async def publish(self, channel: str, data: dict) -> None:
        """Publish *data* on *channel* (Salesforce refuses CometD publishing:
        use the REST API for platform events and generic streaming)"""
        await self._open_core().publish(channel, json.dumps(data))

class SalesforceStreamingClient(Client):
    """Salesforce Streaming API client with username/password authentication

    :param consumer_key: Consumer key of the connected app
    :param consumer_secret: Consumer secret of the connected app
    :param username: Salesforce username
    :param password: Salesforce password (with the security token appended)
    :param sandbox: Log in to a sandbox
    :param login_url: The login URL (overrides ``sandbox`` and
        ``SALESFORCE_LOGIN_URL``)

    The other parameters are :class:`Client`'s.
    """

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        username: str,
        password: str,
        sandbox: bool = False,
        login_url: Optional[str] = None,
        **kwargs,
    ) -> None:
        authenticator = PasswordAuthenticator(
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            username=username,
            password=password,
            sandbox=sandbox,
            login_url=login_url,
        )
        super().__init__(authenticator, **kwargs)
