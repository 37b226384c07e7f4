"""Replay options, markers and marker storages (aiosfstream's, plus the
Rust core's native stores).

A ``replay=`` argument of :class:`~sfstream.Client` may be a
:class:`ReplayOption`, any :class:`collections.abc.MutableMapping` (a
``dict``, a ``shelve`` file, …), a :class:`ReplayMarkerStorage`
implementation, or a native store: :class:`FileStorage` (a crash-safe redb
file) or :class:`RedisStorage` (keys compatible with the Python Nameko
Salesforce extension). Native stores never call back into Python.

Python storages are called by the core on the client's event loop, as
aiosfstream calls them: when a subscription starts (``get_replay_marker``)
and when markers are committed (batched, at most every 50 ms, newest
marker per subscription; ``set_replay_marker`` is only called for a marker
newer than the stored one, comparing creation dates as times).
"""

import reprlib
from abc import ABC, abstractmethod
from collections import abc
from enum import Enum, IntEnum, auto, unique
from typing import Iterable, MutableMapping, NamedTuple, Optional, Tuple

__all__ = [
    "ReplayOption",
    "ReplayMarker",
    "ReplayMarkerStorage",
    "MappingStorage",
    "DefaultMappingStorage",
    "ConstantReplayId",
    "ReplayMarkerStoragePolicy",
    "NativeStorage",
    "FileStorage",
    "RedisStorage",
]


@unique
class ReplayOption(IntEnum):
    """Replay options supported by Salesforce"""

    #: Receive new events that are broadcast after the client subscribes
    NEW_EVENTS = -1
    #: Receive all events, including past events that are within the 24-hour
    #: retention window and new events sent after subscription
    ALL_EVENTS = -2


class ReplayMarker(NamedTuple):
    """A message's replay id and creation date"""

    #: Creation date of a message, as an ISO 8601 datetime string (or epoch
    #: milliseconds as a string, for change events)
    date: Optional[str]
    #: Replay id of a message
    replay_id: int


@unique
class ReplayMarkerStoragePolicy(Enum):
    """When replay markers are stored (aiosfstream-ng's option)"""

    #: When the message is handed out by ``receive()``
    AUTOMATIC = auto()
    #: When the consumer calls :meth:`Client.ack` with the message, after
    #: handling it (at-least-once delivery)
    MANUAL = auto()


class ReplayMarkerStorage(ABC):
    """Abstract base class for replay marker storage implementations"""

    @abstractmethod
    async def get_replay_marker(self, subscription: str) -> Optional[ReplayMarker]:
        """Retrieve a stored replay marker for the given *subscription*

        :param subscription: Name of the subscribed channel
        :return: A replay marker or ``None`` if there is nothing stored
        """

    @abstractmethod
    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        """Store the *replay_marker* for the given *subscription*"""

    async def get_replay_id(self, subscription: str) -> Optional[int]:
        """The stored replay id of *subscription*, or ``None``"""
        marker = await self.get_replay_marker(subscription)
        return marker.replay_id if marker else None


class MappingStorage(ReplayMarkerStorage):
    """Mapping based replay marker storage

    :param mapping: A MutableMapping object for storing replay markers
    """

    def __init__(self, mapping: MutableMapping[str, ReplayMarker]) -> None:
        if not isinstance(mapping, abc.MutableMapping):
            raise TypeError("mapping parameter should be an instance of MutableMapping.")
        super().__init__()
        #: A MutableMapping object for storing replay markers
        self.mapping = mapping

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mapping={reprlib.repr(self.mapping)})"

    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        self.mapping[subscription] = replay_marker

    async def get_replay_marker(self, subscription: str) -> Optional[ReplayMarker]:
        try:
            return self.mapping[subscription]
        except KeyError:
            return None

    async def delete_replay_marker(self, subscription: str) -> None:
        """Forget the marker of *subscription* (used when a stored replay id
        left the retention window and ``replay_fallback`` took over)"""
        self.mapping.pop(subscription, None)

    def replay_markers(self) -> Iterable[Tuple[str, ReplayMarker]]:
        """Every stored ``(subscription, marker)``"""
        return list(self.mapping.items())


class DefaultReplayIdMixin:
    """Returns a default, constant replay id when nothing is stored"""

    def __init__(self, default_id: int, **kwargs) -> None:
        super().__init__(**kwargs)
        #: A replay id
        self.default_id = default_id

    async def get_replay_id(self, subscription: str) -> int:
        marker = await self.get_replay_marker(subscription)
        return marker.replay_id if marker else self.default_id


class ConstantReplayId(DefaultReplayIdMixin, ReplayMarkerStorage):
    """A replay marker storage which returns a constant replay id for every
    subscription (and stores nothing)

    :param default_id: A replay id
    """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(default_id={reprlib.repr(self.default_id)})"

    async def set_replay_marker(self, subscription: str, replay_marker: ReplayMarker) -> None:
        pass

    async def get_replay_marker(self, subscription: str) -> Optional[ReplayMarker]:
        return None


class DefaultMappingStorage(DefaultReplayIdMixin, MappingStorage):
    """Mapping based replay marker storage which returns *default_id* when
    nothing is stored for a subscription

    :param mapping: A MutableMapping object for storing replay markers
    :param default_id: A replay id
    """

    def __init__(self, mapping: MutableMapping[str, ReplayMarker], default_id: int) -> None:
        super().__init__(mapping=mapping, default_id=default_id)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(mapping={reprlib.repr(self.mapping)}, "
            f"default_id={reprlib.repr(self.default_id)})"
        )


class NativeStorage:
    """A store of the Rust core, given by URI; it never calls back into
    Python. Markers are read and written by the core only (inspect them
    with ``sfstream replay list --replay-store URI``).

    :param uri: ``memory:``, ``file:PATH`` or
        ``redis://[USER:PASSWORD@]HOST[:PORT][/DB][?ttl=SECONDS]``
    :param default_id: Where a subscription with nothing stored starts
        (:class:`ReplayOption`), ``NEW_EVENTS`` by default
    """

    def __init__(self, uri: str, default_id: int = ReplayOption.NEW_EVENTS) -> None:
        self._uri = uri
        self.default_id = default_id

    def __repr__(self) -> str:
        from ._sfstream import redact_url  # the core's redaction: no password

        return f"{type(self).__name__}({redact_url(self._uri)!r}, default_id={self.default_id!r})"


class FileStorage(NativeStorage):
    """Markers in a crash-safe redb file (one process at a time)

    :param path: The file, created when missing
    :param default_id: Where a subscription with nothing stored starts
    """

    def __init__(self, path, default_id: int = ReplayOption.NEW_EVENTS) -> None:
        super().__init__(f"file:{path}", default_id)


class RedisStorage(NativeStorage):
    """Markers in Redis under ``salesforce:replay_id:<channel>``, the keys of
    the Python Nameko Salesforce extension

    :param url: ``redis://[USER:PASSWORD@]HOST[:PORT][/DB][?ttl=SECONDS]``
        (or ``rediss://``)
    :param default_id: Where a subscription with nothing stored starts
    """
