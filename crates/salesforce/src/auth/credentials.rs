//! What a login presents.

use std::fmt;

use crate::Secret;

/// What to log in with: one variant per Salesforce login flow.
///
/// Every password, token, secret and key is a [`Secret`], so neither
/// `Debug` nor `Display` ever shows one.
///
/// | Variant | Flow | Needs a connected app |
/// |---|---|---|
/// | [`Password`](Credentials::Password) | OAuth 2.0 username-password | yes |
/// | [`Soap`](Credentials::Soap) | SOAP `login` (as the Python Nameko extension) | no |
/// | [`RefreshToken`](Credentials::RefreshToken) | OAuth 2.0 refresh token | yes |
/// | [`JwtBearer`](Credentials::JwtBearer) | OAuth 2.0 JWT bearer (RS256) | yes, with a certificate |
/// | [`ClientCredentials`](Credentials::ClientCredentials) | OAuth 2.0 client credentials (My Domain URL only) | yes, with a run-as user |
/// | [`AccessToken`](Credentials::AccessToken) | none: a session obtained elsewhere | no |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// The OAuth 2.0 username-password flow. The password is sent with the
    /// security token appended (leave the token out when the login comes
    /// from a trusted IP range).
    Password {
        /// The Salesforce username, e.g. `user@example.com`.
        username: String,
        /// The user's password.
        password: Secret,
        /// The user's security token, appended to the password.
        security_token: Option<Secret>,
        /// The connected app's consumer key (`client_id`).
        consumer_key: String,
        /// The connected app's consumer secret (`client_secret`).
        consumer_secret: Secret,
    },

    /// SOAP `login` to the partner API with username, password and security
    /// token, no connected app: what the Python Nameko Salesforce extension
    /// does. Salesforce is retiring SOAP login; prefer an OAuth flow.
    Soap {
        /// The Salesforce username.
        username: String,
        /// The user's password.
        password: Secret,
        /// The user's security token, appended to the password.
        security_token: Option<Secret>,
    },

    /// The OAuth 2.0 refresh token flow.
    RefreshToken {
        /// The connected app's consumer key (`client_id`).
        consumer_key: String,
        /// The connected app's consumer secret, when the app requires it.
        consumer_secret: Option<Secret>,
        /// The refresh token.
        refresh_token: Secret,
    },

    /// The OAuth 2.0 JWT bearer flow: an RS256 assertion with `iss` = the
    /// consumer key, `sub` = the username, `aud` = the login URL and `exp`
    /// three minutes ahead, signed with the private key whose certificate
    /// the connected app holds.
    JwtBearer {
        /// The Salesforce username the token is for.
        username: String,
        /// The connected app's consumer key (`client_id`).
        consumer_key: String,
        /// The PEM-encoded RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1
        /// `RSA PRIVATE KEY`).
        private_key_pem: Secret,
    },

    /// The OAuth 2.0 client credentials flow (the consumer key and secret
    /// go as the form fields `client_id` and `client_secret`, as Salesforce
    /// documents it). Salesforce serves it on My Domain URLs only.
    ClientCredentials {
        /// The connected app's consumer key (`client_id`).
        consumer_key: String,
        /// The connected app's consumer secret (`client_secret`).
        consumer_secret: Secret,
    },

    /// An access token obtained elsewhere (e.g. `sf org display`). No login
    /// takes place; once the token expires it cannot be renewed, and
    /// [`Authenticator::renew`](super::Authenticator::renew) fails with
    /// [`AuthError::CannotRenew`](super::AuthError::CannotRenew).
    AccessToken {
        /// The access (session) token.
        access_token: Secret,
        /// The instance URL the token belongs to, e.g.
        /// `https://acme.my.salesforce.com`.
        instance_url: String,
    },
}

impl Credentials {
    /// OAuth username-password credentials.
    pub fn password(
        username: impl Into<String>,
        password: impl Into<Secret>,
        security_token: Option<Secret>,
        consumer_key: impl Into<String>,
        consumer_secret: impl Into<Secret>,
    ) -> Self {
        Self::Password {
            username: username.into(),
            password: password.into(),
            security_token,
            consumer_key: consumer_key.into(),
            consumer_secret: consumer_secret.into(),
        }
    }

    /// SOAP login credentials.
    pub fn soap(
        username: impl Into<String>,
        password: impl Into<Secret>,
        security_token: Option<Secret>,
    ) -> Self {
        Self::Soap {
            username: username.into(),
            password: password.into(),
            security_token,
        }
    }

    /// Refresh token credentials.
    pub fn refresh_token(
        consumer_key: impl Into<String>,
        consumer_secret: Option<Secret>,
        refresh_token: impl Into<Secret>,
    ) -> Self {
        Self::RefreshToken {
            consumer_key: consumer_key.into(),
            consumer_secret,
            refresh_token: refresh_token.into(),
        }
    }

    /// JWT bearer credentials.
    pub fn jwt_bearer(
        username: impl Into<String>,
        consumer_key: impl Into<String>,
        private_key_pem: impl Into<Secret>,
    ) -> Self {
        Self::JwtBearer {
            username: username.into(),
            consumer_key: consumer_key.into(),
            private_key_pem: private_key_pem.into(),
        }
    }

    /// Client credentials.
    pub fn client_credentials(
        consumer_key: impl Into<String>,
        consumer_secret: impl Into<Secret>,
    ) -> Self {
        Self::ClientCredentials {
            consumer_key: consumer_key.into(),
            consumer_secret: consumer_secret.into(),
        }
    }

    /// An access token with its instance URL.
    pub fn access_token(access_token: impl Into<Secret>, instance_url: impl Into<String>) -> Self {
        Self::AccessToken {
            access_token: access_token.into(),
            instance_url: instance_url.into(),
        }
    }

    /// A short name of the flow: `password`, `soap`, `refresh_token`,
    /// `jwt_bearer`, `client_credentials` or `access_token`.
    pub fn flow(&self) -> &'static str {
        match self {
            Self::Password { .. } => "password",
            Self::Soap { .. } => "soap",
            Self::RefreshToken { .. } => "refresh_token",
            Self::JwtBearer { .. } => "jwt_bearer",
            Self::ClientCredentials { .. } => "client_credentials",
            Self::AccessToken { .. } => "access_token",
        }
    }

    /// Whether a new session can be obtained once the current one expires
    /// (every flow but [`Credentials::AccessToken`]).
    pub fn can_renew(&self) -> bool {
        !matches!(self, Self::AccessToken { .. })
    }

    /// Every secret these credentials hold, for scrubbing server answers.
    pub(crate) fn secrets(&self) -> Vec<&Secret> {
        match self {
            Self::Password {
                password,
                security_token,
                consumer_secret,
                ..
            } => {
                let mut all = vec![password, consumer_secret];
                all.extend(security_token);
                all
            }
            Self::Soap {
                password,
                security_token,
                ..
            } => {
                let mut all = vec![password];
                all.extend(security_token);
                all
            }
            Self::RefreshToken {
                consumer_secret,
                refresh_token,
                ..
            } => {
                let mut all = vec![refresh_token];
                all.extend(consumer_secret);
                all
            }
            Self::JwtBearer {
                private_key_pem, ..
            } => vec![private_key_pem],
            Self::ClientCredentials {
                consumer_secret, ..
            } => vec![consumer_secret],
            Self::AccessToken { access_token, .. } => vec![access_token],
        }
    }
}

/// The password with the security token appended, as both password flows
/// send it.
pub(crate) fn password_with_token(password: &Secret, token: Option<&Secret>) -> Secret {
    match token {
        Some(token) => Secret::new(format!("{}{}", password.expose(), token.expose())),
        None => password.clone(),
    }
}

impl fmt::Display for Credentials {
    /// Names the flow and the user or app, never a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password {
                username,
                consumer_key,
                ..
            } => write!(
                f,
                "OAuth username-password login as {username} (consumer key {consumer_key})"
            ),
            Self::Soap { username, .. } => write!(f, "SOAP login as {username}"),
            Self::RefreshToken { consumer_key, .. } => {
                write!(f, "OAuth refresh-token login (consumer key {consumer_key})")
            }
            Self::JwtBearer {
                username,
                consumer_key,
                ..
            } => write!(
                f,
                "OAuth JWT bearer login as {username} (consumer key {consumer_key})"
            ),
            Self::ClientCredentials { consumer_key, .. } => write!(
                f,
                "OAuth client-credentials login (consumer key {consumer_key})"
            ),
            Self::AccessToken { instance_url, .. } => {
                write!(f, "access token for {instance_url}")
            }
        }
    }
}
