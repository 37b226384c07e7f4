"""Authenticators: how the client logs in to Salesforce.

aiosfstream's :class:`PasswordAuthenticator` and
:class:`RefreshTokenAuthenticator`, plus the Rust core's other flows:
:class:`JwtBearerAuthenticator`, :class:`ClientCredentialsAuthenticator`
and :class:`SoapAuthenticator` (no connected app; Salesforce retires SOAP
``login()`` in June 2027).

Every authenticator logs in at ``login_url`` when given, else at the
``SALESFORCE_LOGIN_URL`` environment variable when set, else at
``https://test.salesforce.com`` with ``sandbox=True``, else at
``https://login.salesforce.com``. Plain ``http://`` is accepted for
loopback hosts only (an emulated org). Secrets never appear in ``repr``.
"""

import os
from abc import ABC, abstractmethod
from typing import Optional

from . import _sfstream

__all__ = [
    "AuthenticatorBase",
    "PasswordAuthenticator",
    "RefreshTokenAuthenticator",
    "JwtBearerAuthenticator",
    "ClientCredentialsAuthenticator",
    "SoapAuthenticator",
    "LOGIN_URL",
    "SANDBOX_LOGIN_URL",
]

LOGIN_URL = "https://login.salesforce.com"
SANDBOX_LOGIN_URL = "https://test.salesforce.com"
_REDACTED = "'<redacted>'"


class AuthenticatorBase(ABC):
    """Abstract base class of the authenticators

    :param sandbox: Log in to a sandbox (``https://test.salesforce.com``)
    :param login_url: The login URL (a My Domain URL, an emulated org);
        overrides ``sandbox`` and ``SALESFORCE_LOGIN_URL``
    :param api_version: The Salesforce API version (default: the core's)
    """

    def __init__(
        self,
        sandbox: bool = False,
        *,
        login_url: Optional[str] = None,
        api_version: Optional[str] = None,
        **_ignored,
    ) -> None:
        self._sandbox = sandbox
        self._login_url = login_url
        self.api_version = api_version
        #: The instance URL of the org, once the client logged in
        self.instance_url: Optional[str] = None

    @property
    def login_url(self) -> str:
        """Where this authenticator logs in"""
        if self._login_url:
            return self._login_url
        from_env = os.environ.get("SALESFORCE_LOGIN_URL")
        if from_env:
            return from_env
        return SANDBOX_LOGIN_URL if self._sandbox else LOGIN_URL

    @abstractmethod
    def _credentials(self) -> dict:
        """The flow and the credentials, for the core"""

    def _login(self) -> "_sfstream.Login":
        credentials = dict(self._credentials())
        flow = credentials.pop("flow")
        return _sfstream.Login(
            flow, self.login_url, api_version=self.api_version, **credentials
        )

    def _repr(self, **fields) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in fields.items())
        return f"{type(self).__name__}({shown}, login_url={self.login_url!r})"


class PasswordAuthenticator(AuthenticatorBase):
    """OAuth 2.0 Username-Password Flow

    :param consumer_key: Consumer key of the connected app
    :param consumer_secret: Consumer secret of the connected app
    :param username: Salesforce username
    :param password: Salesforce password (followed by the security token,
        as Salesforce expects, or give ``security_token`` apart)
    """

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        username: str,
        password: str,
        sandbox: bool = False,
        *,
        security_token: Optional[str] = None,
        **kwargs,
    ) -> None:
        super().__init__(sandbox, **kwargs)
        #: OAuth2 client id
        self.client_id = consumer_key
        #: OAuth2 client secret
        self.client_secret = consumer_secret
        #: Salesforce username
        self.username = username
        #: Salesforce password
        self.password = password
        self.security_token = security_token

    def _credentials(self) -> dict:
        return {
            "flow": "password",
            "username": self.username,
            "password": self.password,
            "security_token": self.security_token,
            "consumer_key": self.client_id,
            "consumer_secret": self.client_secret,
        }

    def __repr__(self) -> str:
        return self._repr(
            consumer_key=repr(self.client_id),
            consumer_secret=_REDACTED,
            username=repr(self.username),
            password=_REDACTED,
        )


class RefreshTokenAuthenticator(AuthenticatorBase):
    """OAuth 2.0 Refresh Token Flow

    :param consumer_key: Consumer key of the connected app
    :param consumer_secret: Consumer secret of the connected app
    :param refresh_token: A refresh token obtained from Salesforce
    """

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: Optional[str],
        refresh_token: str,
        sandbox: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(sandbox, **kwargs)
        #: OAuth2 client id
        self.client_id = consumer_key
        #: OAuth2 client secret
        self.client_secret = consumer_secret
        #: Salesforce refresh token
        self.refresh_token = refresh_token

    def _credentials(self) -> dict:
        return {
            "flow": "refresh_token",
            "consumer_key": self.client_id,
            "consumer_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }

    def __repr__(self) -> str:
        return self._repr(
            consumer_key=repr(self.client_id),
            consumer_secret=_REDACTED,
            refresh_token=_REDACTED,
        )


class JwtBearerAuthenticator(AuthenticatorBase):
    """OAuth 2.0 JWT Bearer Flow (RS256): no password, no secret

    :param consumer_key: Consumer key of the connected app (the ``iss``)
    :param username: Salesforce username (the ``sub``)
    :param private_key: The PEM-encoded RSA private key whose certificate
        the connected app holds
    """

    def __init__(
        self, consumer_key: str, username: str, private_key: str, sandbox: bool = False, **kwargs
    ) -> None:
        super().__init__(sandbox, **kwargs)
        self.client_id = consumer_key
        self.username = username
        self.private_key = private_key

    def _credentials(self) -> dict:
        return {
            "flow": "jwt_bearer",
            "consumer_key": self.client_id,
            "username": self.username,
            "private_key": self.private_key,
        }

    def __repr__(self) -> str:
        return self._repr(
            consumer_key=repr(self.client_id), username=repr(self.username), private_key=_REDACTED
        )


class ClientCredentialsAuthenticator(AuthenticatorBase):
    """OAuth 2.0 Client Credentials Flow (a My Domain ``login_url``)

    :param consumer_key: Consumer key of the connected app
    :param consumer_secret: Consumer secret of the connected app
    """

    def __init__(
        self, consumer_key: str, consumer_secret: str, sandbox: bool = False, **kwargs
    ) -> None:
        super().__init__(sandbox, **kwargs)
        self.client_id = consumer_key
        self.client_secret = consumer_secret

    def _credentials(self) -> dict:
        return {
            "flow": "client_credentials",
            "consumer_key": self.client_id,
            "consumer_secret": self.client_secret,
        }

    def __repr__(self) -> str:
        return self._repr(consumer_key=repr(self.client_id), consumer_secret=_REDACTED)


class SoapAuthenticator(AuthenticatorBase):
    """SOAP ``login()`` with username, password and security token (what the
    Python Nameko Salesforce extension uses; no connected app)

    :param username: Salesforce username
    :param password: Salesforce password
    :param security_token: The user's security token
    """

    def __init__(
        self,
        username: str,
        password: str,
        security_token: Optional[str] = None,
        sandbox: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(sandbox, **kwargs)
        self.username = username
        self.password = password
        self.security_token = security_token

    def _credentials(self) -> dict:
        return {
            "flow": "soap",
            "username": self.username,
            "password": self.password,
            "security_token": self.security_token,
        }

    def __repr__(self) -> str:
        return self._repr(username=repr(self.username), password=_REDACTED, security_token=_REDACTED)
