"""Exception types, as aiosfstream names them.

Exception hierarchy::

    AiosfstreamException
        AuthenticationError
        ClientError
            ClientInvalidOperation
        TransportError
            TransportInvalidOperation
            TransportTimeoutError
            TransportConnectionClosed
        ServerError
        ReplayError

Messages are the Rust core's, which never carry a password, secret, token
or key; a :class:`ServerError` keeps the server's reply in ``response``.
"""

from typing import Any, List, Optional

__all__ = [
    "AiosfstreamException",
    "AuthenticationError",
    "ClientError",
    "ClientInvalidOperation",
    "TransportError",
    "TransportInvalidOperation",
    "TransportTimeoutError",
    "TransportConnectionClosed",
    "ServerError",
    "ReplayError",
]


class AiosfstreamException(Exception):
    """Base exception type. All exceptions of the package inherit from it."""


class AuthenticationError(AiosfstreamException):
    """Authentication failure"""


class ClientError(AiosfstreamException):
    """Client side error"""


class ClientInvalidOperation(ClientError):
    """The requested operation can't be executed on the current state of the
    client"""


class TransportError(AiosfstreamException):
    """Error during the transportation of messages"""


class TransportInvalidOperation(TransportError):
    """The requested operation can't be executed on the current state of the
    transport"""


class TransportTimeoutError(TransportError):
    """Transport timeout"""


class TransportConnectionClosed(TransportError):
    """The connection unexpectedly closed"""


class ReplayError(AiosfstreamException):
    """Message replay or replay marker storage related error"""


class ServerError(AiosfstreamException):
    """Streaming API server side error

    The ``error`` field of the *response* is parsed according to the Bayeux
    specification (``code:args:message``).

    :param str message: Error description
    :param dict response: Server response message
    """

    @property
    def message(self) -> str:
        """Error description"""
        return self.args[0]

    @property
    def response(self) -> Optional[dict]:
        """Server response message"""
        return self.args[1] if len(self.args) > 1 else None

    @property
    def error(self) -> Optional[str]:
        """Error field in the response"""
        response = self.response
        if not isinstance(response, dict):
            return None
        return response.get("error")

    def _parts(self) -> Optional[List[str]]:
        error = self.error
        if not error:
            return None
        parts = error.split(":", 2)
        return parts if len(parts) == 3 else None

    @property
    def error_code(self) -> Optional[int]:
        """Error code part of the error"""
        parts = self._parts()
        if parts is None:
            return None
        try:
            return int(parts[0])
        except ValueError:
            return None

    @property
    def error_args(self) -> Optional[List[str]]:
        """Arguments part of the error"""
        parts = self._parts()
        if parts is None:
            return None
        return [arg for arg in parts[1].split(",") if arg] if parts[1] else []

    @property
    def error_message(self) -> Optional[str]:
        """Description part of the error"""
        parts = self._parts()
        return parts[2] if parts is not None else self.error

    def __str__(self) -> str:
        error = self.error
        return f"{self.message} {error}" if error else self.message
