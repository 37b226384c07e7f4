"""Salesforce Streaming API client for asyncio, with aiosfstream's API, on
sfstream's Rust core.

Code written for aiosfstream runs unchanged but for the import line::

    from sfstream import SalesforceStreamingClient

    async with SalesforceStreamingClient(
            consumer_key="…", consumer_secret="…",
            username="…", password="…") as client:
        await client.subscribe("/topic/one")
        async for message in client:
            print(message["channel"], message["data"])
"""

import logging

from .auth import (
    AuthenticatorBase,
    ClientCredentialsAuthenticator,
    JwtBearerAuthenticator,
    PasswordAuthenticator,
    RefreshTokenAuthenticator,
    SoapAuthenticator,
)
from .client import Client, Message, SalesforceStreamingClient
from .pubsub import PubSubClient
from .replay import (
    ConstantReplayId,
    DefaultMappingStorage,
    FileStorage,
    MappingStorage,
    NativeStorage,
    RedisStorage,
    ReplayMarker,
    ReplayMarkerStorage,
    ReplayMarkerStoragePolicy,
    ReplayOption,
)

__version__ = "0.1.0"

__all__ = [
    "AuthenticatorBase",
    "Client",
    "ClientCredentialsAuthenticator",
    "ConstantReplayId",
    "DefaultMappingStorage",
    "FileStorage",
    "JwtBearerAuthenticator",
    "MappingStorage",
    "Message",
    "NativeStorage",
    "PasswordAuthenticator",
    "PubSubClient",
    "RedisStorage",
    "RefreshTokenAuthenticator",
    "ReplayMarker",
    "ReplayMarkerStorage",
    "ReplayMarkerStoragePolicy",
    "ReplayOption",
    "SalesforceStreamingClient",
    "SoapAuthenticator",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
