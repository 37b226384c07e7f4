"""The Pub/Sub API client: :class:`PubSubClient`, the shape of
:class:`~sfstream.Client` on sfstream's Rust Pub/Sub (gRPC) client.

Topics are Change Data Capture channels (``/data/ContactChangeEvent``,
``/data/ChangeEvents``) and platform events (``/event/Order__e``).
Messages are dicts as ``sfstream listen --pubsub`` writes them::

    {"channel": "/data/ContactChangeEvent",
     "data": {"schema": "<schema id>",
              "payload": {"ChangeEventHeader": {"changedFields": ["Name"], …}, …},
              "event": {"replayId": "<base64>"}}}

Pub/Sub replay ids are opaque bytes (base64 in messages): they are kept in
memory, or in a native store (:class:`~sfstream.FileStorage`,
:class:`~sfstream.RedisStorage`); Python storages and mappings, which hold
aiosfstream's integer ``ReplayMarker``\\ s, are refused.
"""

import json
import logging
import os
from typing import Any, Optional, Union

from . import _sfstream
from .auth import AuthenticatorBase
from .client import _ClientBase
from .exceptions import ClientInvalidOperation
from .replay import NativeStorage, ReplayMarkerStoragePolicy, ReplayOption

__all__ = ["PubSubClient", "PUBSUB_URL"]

LOGGER = logging.getLogger(__name__)
#: Salesforce's Pub/Sub endpoint (the Rust core's), used when neither
#: ``pubsub_url`` nor ``SALESFORCE_PUBSUB_URL`` is set.
PUBSUB_URL = _sfstream.PUBSUB_URL


class PubSubClient(_ClientBase):
    """Salesforce Pub/Sub API client (gRPC), with :class:`~sfstream.Client`'s API

    :param authenticator: An authenticator object (any login flow)
    :param replay: Where a topic starts when nothing is stored for it, and
        where replay ids are kept: a :class:`ReplayOption` (``NEW_EVENTS``,
        the default, is ``LATEST``; ``ALL_EVENTS`` is ``EARLIEST``; ids kept
        in memory), or a native :class:`~sfstream.FileStorage` /
        :class:`~sfstream.RedisStorage` (its ``default_id`` is where topics
        start)
    :param replay_fallback: The :class:`ReplayOption` to resubscribe with
        when a stored replay id is refused (corrupt or outside retention);
        the window that may be missed is logged and kept in :attr:`gaps`.
        Without it, ``receive()`` raises :class:`ServerError` and the topic
        leaves :attr:`subscriptions`
    :param replay_storage_policy: When replay ids are stored: as events are
        handed out (``AUTOMATIC``), or on :meth:`ack` (``MANUAL``)
    :param connection_timeout: Seconds to keep trying to re-establish a
        lost stream before ``receive()`` raises
        :class:`TransportTimeoutError` (``None``: forever)
    :param max_pending_count: Events per topic requested from the server or
        waiting to be received (``<= 0``: 10,000)
    :param pubsub_url: The Pub/Sub endpoint, else ``SALESFORCE_PUBSUB_URL``,
        else :data:`PUBSUB_URL` (plain ``http://`` to loopback hosts only)
    :param json_loads: Function decoding the data of messages
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
        pubsub_url: Optional[str] = None,
        json_loads=json.loads,
    ) -> None:
        if not isinstance(authenticator, AuthenticatorBase):
            raise TypeError(
                f"authenticator should be an instance of {AuthenticatorBase.__name__}."
            )
        self.auth = authenticator
        self.replay_fallback = _preset(replay_fallback, "replay_fallback")
        self.replay_storage_policy = replay_storage_policy
        self.connection_timeout = connection_timeout
        self.max_pending_count = max_pending_count
        self.pubsub_url = (
            pubsub_url or os.environ.get("SALESFORCE_PUBSUB_URL") or PUBSUB_URL
        )
        if replay is None:
            replay = ReplayOption.NEW_EVENTS
        if isinstance(replay, NativeStorage):
            self._store = replay._uri
            self._default_id = _preset(replay.default_id, "the storage's default_id")
        elif isinstance(replay, int) and not isinstance(replay, bool):
            self._store = None
            self._default_id = _preset(replay, "replay")
        else:
            raise TypeError(
                f"{type(replay).__name__!r} is not a valid replay for Pub/Sub: its replay "
                "ids are opaque bytes, kept in memory (a ReplayOption) or in a native "
                "FileStorage or RedisStorage; Python storages and mappings hold "
                "integer CometD replay ids only."
            )
        #: The ``replay`` argument
        self.replay_storage = replay
        self._init_state(json_loads)

    def __repr__(self) -> str:
        from ._sfstream import redact_url

        return (
            f"{type(self).__name__}({self.auth!r}, replay={self.replay_storage!r}, "
            f"replay_fallback={self.replay_fallback!r}, "
            f"pubsub_url={redact_url(self.pubsub_url)!r}, closed={self._closed})"
        )

    async def open(self) -> None:
        """Log in and set up the connection to the Pub/Sub endpoint

        :raise ClientInvalidOperation: If the client is already open
        :raise AuthenticationError: If the login is refused
        :raise TransportError: If the endpoint's URL or TLS policy is refused
        """
        if not self._closed:
            raise ClientInvalidOperation("Client is already open.")
        core = _sfstream.PubSubCore(
            self.auth._login(),
            self._store,
            self.pubsub_url,
            int(self._default_id),
            None if self.replay_fallback is None else int(self.replay_fallback),
            self.replay_storage_policy == ReplayMarkerStoragePolicy.MANUAL,
            self._max_pending(),
            None if self.connection_timeout is None else float(self.connection_timeout),
        )
        await core.open()
        self._started(core)
        LOGGER.info("Pub/Sub client opened. Instance URL: %r.", core.instance_url)

    async def subscribe(self, topic: str) -> None:
        """Subscribe to *topic* (``/data/…ChangeEvent``, ``/event/…__e``),
        after its stored replay id, else from the ``replay`` option; returns
        once its stream is open (new events from then on are received)

        :raise ClientInvalidOperation: If the client is closed, or *topic*
            is subscribed already
        :raise ServerError: If the server refuses the topic (unknown, not
            permitted)
        """
        await self._open_core().subscribe(topic)
        self._subscriptions.add(topic)

    async def unsubscribe(self, topic: str) -> None:
        """End the subscription of *topic*; events already received are
        still delivered

        :raise ClientInvalidOperation: If the client is closed
        """
        self._open_core().unsubscribe(topic)
        self._subscriptions.discard(topic)

    async def publish(self, topic: str, data: dict) -> str:
        """Publish the event *data* (field values by name) to the platform
        event *topic*, encoded with its schema; ``CreatedDate`` (now) and
        ``CreatedById`` (the logged-in user) are filled in when missing

        :return: The event's replay id (base64)
        :raise ServerError: If the event is refused (by the schema or the
            server)
        """
        return await self._open_core().publish(topic, json.dumps(data))


def _preset(value, what):
    """A :class:`ReplayOption` (or ``None``), refusing replay ids."""
    if value is None:
        return None
    try:
        return ReplayOption(int(value))
    except ValueError:
        raise ValueError(
            f"{what}={value!r}: Pub/Sub starts from ReplayOption.NEW_EVENTS (LATEST) "
            "or ReplayOption.ALL_EVENTS (EARLIEST); a replay id is resumed from a "
            "FileStorage or RedisStorage"
        ) from None
