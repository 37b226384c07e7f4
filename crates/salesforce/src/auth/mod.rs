//! Logins: every Salesforce login flow, behind one [`Authenticator`].
//!
//! - OAuth 2.0 username-password, refresh token, JWT bearer and client
//!   credentials, against `{login URL}/services/oauth2/token`;
//! - SOAP `login` (partner API), as the Python Nameko extension does;
//! - an access token obtained elsewhere, used as is.
//!
//! Passwords, tokens, secrets and keys are [`Secret`](crate::Secret)s: they never show in
//! `Debug`, `Display`, logs or errors. Logins use TLS: plain `http://` is
//! accepted only for loopback hosts unless
//! [`Authenticator::allow_insecure_http`] says otherwise.

mod credentials;
mod error;
mod jwt;
mod login_parts;
mod login_url;
mod oauth;
mod session;
mod soap;

pub use credentials::Credentials;
pub use error::AuthError;
pub use login_parts::{CredentialsError, LoginPart, LoginParts};
pub use login_url::LoginUrl;
pub use session::Session;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use credentials::password_with_token;
use error::{Redactor, truncate};

/// How long a login may take when no timeout is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Logs in to Salesforce with one set of [`Credentials`].
///
/// Cheap to clone (clones share the HTTP connection pool and the cached
/// session), `Send` and `Sync`: the REST and streaming clients share one
/// and call [`Authenticator::renew`] when a session is refused (HTTP 401),
/// so that concurrent renewals log in once.
///
/// Defaults: login URL `https://login.salesforce.com`, API version
/// [`DEFAULT_API_VERSION`](crate::DEFAULT_API_VERSION), timeout 30 s,
/// HTTPS only (plain HTTP to loopback hosts excepted), redirects not
/// followed.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use sfstream_salesforce::Secret;
/// use sfstream_salesforce::auth::{AuthError, Authenticator, Credentials, LoginUrl};
///
/// # async fn example() -> Result<(), AuthError> {
/// let auth = Authenticator::new(Credentials::password(
///     "user@example.com",
///     "password",
///     Some(Secret::new("security-token")),
///     "consumer-key",
///     "consumer-secret",
/// ))
/// .with_login_url(LoginUrl::sandbox())
/// .with_timeout(Duration::from_secs(10));
///
/// match auth.login().await {
///     Ok(session) => println!("logged in: {session}"),
///     Err(e) if e.is_auth_failure() => eprintln!("credentials refused: {e}"),
///     Err(e) => eprintln!("try again later: {e}"),
/// }
///
/// // A My Domain URL, parsed and checked.
/// let my_domain: LoginUrl = "https://acme.my.salesforce.com".parse()?;
/// let jwt = Authenticator::new(Credentials::jwt_bearer(
///     "integration@acme.com",
///     "consumer-key",
///     std::fs::read_to_string("server.key").unwrap_or_default(),
/// ))
/// .with_login_url(my_domain);
/// let session = jwt.session().await?; // logs in once, then cached
/// # let _ = session;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Authenticator {
    config: Arc<Config>,
    state: Arc<Mutex<State>>,
}

/// What an authenticator is configured with.
#[derive(Clone)]
struct Config {
    client: reqwest::Client,
    login_url: LoginUrl,
    api_version: String,
    credentials: Credentials,
    timeout: Duration,
    allow_insecure_http: bool,
    jwt_audience: Option<String>,
}

/// The session shared by clones.
#[derive(Default)]
struct State {
    current: Option<Session>,
    /// An access token given as is was refused: nothing more to hand out.
    access_token_dead: bool,
}

/// What the flows need to make one request.
pub(crate) struct Call<'a> {
    client: &'a reqwest::Client,
    timeout: Duration,
    redactor: &'a Redactor,
    allow_insecure_http: bool,
}

/// The HTTP client used when none is given: no redirects (a login must not
/// be forwarded elsewhere), a recognisable user agent.
fn default_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sfstream/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

impl Authenticator {
    /// An authenticator for `credentials` with the defaults (see the type's
    /// documentation).
    pub fn new(credentials: Credentials) -> Self {
        Self {
            config: Arc::new(Config {
                client: default_client(),
                login_url: LoginUrl::default(),
                api_version: crate::DEFAULT_API_VERSION.to_string(),
                credentials,
                timeout: DEFAULT_TIMEOUT,
                allow_insecure_http: false,
                jwt_audience: None,
            }),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// The configuration, to change; forgets any cached session.
    fn config_mut(&mut self) -> &mut Config {
        self.state = Arc::new(Mutex::new(State::default()));
        Arc::make_mut(&mut self.config)
    }

    /// Logs in at `login_url` (production, sandbox or My Domain).
    pub fn with_login_url(mut self, login_url: LoginUrl) -> Self {
        self.config_mut().login_url = login_url;
        self
    }

    /// Uses API version `version` (e.g. `"62.0"`; a leading `v` is
    /// dropped). It is checked when logging in.
    pub fn with_api_version(mut self, version: impl Into<String>) -> Self {
        self.config_mut().api_version = bare_api_version(&version.into()).to_string();
        self
    }

    /// Gives up on a login request after `timeout` (default 30 s), with an
    /// [`AuthError::Transport`] error.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().timeout = timeout;
        self
    }

    /// Accepts plain `http://` login and instance URLs to any host, not
    /// only to loopback ones. Passwords and tokens then travel
    /// unencrypted: for test servers and TLS-terminating proxies only.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.config_mut().allow_insecure_http = allow;
        self
    }

    /// Sends requests with `client` instead of the default one (which
    /// follows no redirects). Its own timeout, proxy and redirect settings
    /// apply; [`Authenticator::with_timeout`] still bounds each login.
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.config_mut().client = client;
        self
    }

    /// Sets the `aud` claim of JWT bearer assertions, which defaults to the
    /// login URL (e.g. `https://login.salesforce.com` when logging in at a
    /// My Domain URL whose org expects it).
    pub fn with_jwt_audience(mut self, audience: impl Into<String>) -> Self {
        self.config_mut().jwt_audience = Some(audience.into());
        self
    }

    /// The credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.config.credentials
    }

    /// The login URL.
    pub fn login_url(&self) -> &LoginUrl {
        &self.config.login_url
    }

    /// The API version, e.g. `62.0`.
    pub fn api_version(&self) -> &str {
        &self.config.api_version
    }

    /// The timeout of one login.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// Whether plain `http://` is accepted for any host.
    pub fn insecure_http_allowed(&self) -> bool {
        self.config.allow_insecure_http
    }

    /// The HTTP client logins use (to share its connection pool).
    pub fn http_client(&self) -> &reqwest::Client {
        &self.config.client
    }

    /// Checks the configuration without touching the network: the login
    /// URL's transport policy, the API version, the JWT private key, and an
    /// access token's instance URL.
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidLoginUrl`], [`AuthError::InvalidApiVersion`] or
    /// [`AuthError::InvalidKey`].
    pub fn check(&self) -> Result<(), AuthError> {
        let config = &*self.config;
        check_api_version(&config.api_version)?;
        match &config.credentials {
            Credentials::AccessToken { instance_url, .. } => {
                login_url::instance_url(instance_url, config.allow_insecure_http)?;
            }
            Credentials::JwtBearer {
                private_key_pem, ..
            } => {
                config.login_url.check_tls(config.allow_insecure_http)?;
                jwt::signing_key(private_key_pem)?;
            }
            _ => config.login_url.check_tls(config.allow_insecure_http)?,
        }
        Ok(())
    }

    /// Logs in and returns a new session (every call logs in; see
    /// [`Authenticator::session`] for a cached one).
    ///
    /// With [`Credentials::AccessToken`] no request is made: the given token
    /// is returned as a session.
    ///
    /// # Errors
    ///
    /// [`AuthError::Rejected`] or [`AuthError::SoapFault`] when Salesforce
    /// refuses the credentials, [`AuthError::Transport`] when it cannot be
    /// reached in time, [`AuthError::Http`] or
    /// [`AuthError::MalformedResponse`] for other answers, and
    /// [`AuthError::InvalidLoginUrl`], [`AuthError::InvalidApiVersion`] or
    /// [`AuthError::InvalidKey`] for an unusable configuration.
    pub async fn login(&self) -> Result<Session, AuthError> {
        let flow = self.config.credentials.flow();
        let outcome = self.login_once().await;
        match &outcome {
            Ok(session) => tracing::debug!(
                flow,
                instance_url = %session.instance_url,
                "Salesforce login succeeded"
            ),
            Err(error) => tracing::debug!(flow, %error, "Salesforce login failed"),
        }
        outcome
    }

    async fn login_once(&self) -> Result<Session, AuthError> {
        let config = &*self.config;
        check_api_version(&config.api_version)?;
        if let Credentials::AccessToken {
            access_token,
            instance_url,
        } = &config.credentials
        {
            return Ok(Session::new(
                access_token.clone(),
                login_url::instance_url(instance_url, config.allow_insecure_http)?,
            ));
        }
        config.login_url.check_tls(config.allow_insecure_http)?;

        let mut redactor = Redactor::new(config.credentials.secrets());
        let token_url = config.login_url.endpoint(oauth::TOKEN_PATH);
        match &config.credentials {
            Credentials::Password {
                username,
                password,
                security_token,
                consumer_key,
                consumer_secret,
            } => {
                let password = password_with_token(password, security_token.as_ref());
                redactor.add(password.expose());
                let form = [
                    ("grant_type", "password"),
                    ("client_id", consumer_key.as_str()),
                    ("client_secret", consumer_secret.expose()),
                    ("username", username.as_str()),
                    ("password", password.expose()),
                ];
                oauth::request_token(&self.call(&redactor), &token_url, &form).await
            }
            Credentials::Soap {
                username,
                password,
                security_token,
            } => {
                let password = password_with_token(password, security_token.as_ref());
                redactor.add(password.expose());
                warn_soap_retirement();
                let version = crate::defaults::soap_login_api_version(&config.api_version);
                let url = config
                    .login_url
                    .endpoint(&format!("/services/Soap/u/{version}"));
                soap::login(&self.call(&redactor), &url, username, &password).await
            }
            Credentials::RefreshToken {
                consumer_key,
                consumer_secret,
                refresh_token,
            } => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", consumer_key.as_str()),
                ];
                if let Some(secret) = consumer_secret {
                    form.push(("client_secret", secret.expose()));
                }
                form.push(("refresh_token", refresh_token.expose()));
                oauth::request_token(&self.call(&redactor), &token_url, &form).await
            }
            Credentials::JwtBearer {
                username,
                consumer_key,
                private_key_pem,
            } => {
                let key = jwt::signing_key(private_key_pem)?;
                let audience = config
                    .jwt_audience
                    .as_deref()
                    .unwrap_or(config.login_url.as_str());
                let now = chrono::Utc::now().timestamp();
                let assertion = jwt::assertion(&key, consumer_key, username, audience, now)?;
                redactor.add(assertion.expose());
                let form = [
                    ("grant_type", oauth::JWT_BEARER_GRANT),
                    ("assertion", assertion.expose()),
                ];
                oauth::request_token(&self.call(&redactor), &token_url, &form).await
            }
            Credentials::ClientCredentials {
                consumer_key,
                consumer_secret,
            } => {
                // Form fields, as Salesforce documents the flow: servers
                // that follow the documentation refuse HTTP Basic alone.
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", consumer_key.as_str()),
                    ("client_secret", consumer_secret.expose()),
                ];
                oauth::request_token(&self.call(&redactor), &token_url, &form).await
            }
            Credentials::AccessToken { .. } => Err(AuthError::CannotRenew),
        }
    }

    fn call<'a>(&'a self, redactor: &'a Redactor) -> Call<'a> {
        Call {
            client: &self.config.client,
            timeout: self.config.timeout,
            redactor,
            allow_insecure_http: self.config.allow_insecure_http,
        }
    }

    /// The current session, shared by all clones: logs in on the first
    /// call and returns the same session afterwards, until
    /// [`Authenticator::renew`] replaces it. Concurrent callers wait for
    /// one login.
    ///
    /// # Errors
    ///
    /// As [`Authenticator::login`]; [`AuthError::CannotRenew`] once an
    /// access token given as is has been refused.
    pub async fn session(&self) -> Result<Session, AuthError> {
        let mut state = self.state.lock().await;
        if let Some(session) = &state.current {
            return Ok(session.clone());
        }
        if state.access_token_dead {
            return Err(AuthError::CannotRenew);
        }
        let session = self.login().await?;
        state.current = Some(session.clone());
        Ok(session)
    }

    /// A session to replace `rejected`, which the server refused (HTTP 401
    /// `INVALID_SESSION_ID`, Bayeux `401::Authentication invalid`).
    ///
    /// When another caller already renewed it, that newer session is
    /// returned without logging in again; otherwise this logs in once for
    /// all concurrent callers.
    ///
    /// # Errors
    ///
    /// [`AuthError::CannotRenew`] for [`Credentials::AccessToken`]: the
    /// token expired and there is nothing to log in with. Otherwise as
    /// [`Authenticator::login`].
    pub async fn renew(&self, rejected: &Session) -> Result<Session, AuthError> {
        let mut state = self.state.lock().await;
        if let Some(current) = &state.current
            && current.access_token != rejected.access_token
        {
            return Ok(current.clone());
        }
        state.current = None;
        if !self.config.credentials.can_renew() {
            state.access_token_dead = true;
            return Err(AuthError::CannotRenew);
        }
        let session = self.login().await?;
        state.current = Some(session.clone());
        Ok(session)
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &*self.config;
        f.debug_struct("Authenticator")
            .field("login_url", &config.login_url)
            .field("api_version", &config.api_version)
            .field("credentials", &config.credentials)
            .field("timeout", &config.timeout)
            .field("allow_insecure_http", &config.allow_insecure_http)
            .field("jwt_audience", &config.jwt_audience)
            .finish_non_exhaustive()
    }
}

/// An API version as written (`62.0`, `v62.0`) without blanks or `v`.
fn bare_api_version(version: &str) -> &str {
    let version = version.trim();
    version.strip_prefix(['v', 'V']).unwrap_or(version)
}

/// An API version as written (`62.0`, ` v62.0`), checked and bare
/// (`62.0`), as [`Authenticator::with_api_version`] takes it.
///
/// ```
/// use sfstream_salesforce::auth::parse_api_version;
///
/// assert_eq!(parse_api_version("v37.0").ok().as_deref(), Some("37.0"));
/// assert!(parse_api_version("latest").is_err());
/// ```
///
/// # Errors
///
/// [`AuthError::InvalidApiVersion`] when it is not like `62.0`.
pub fn parse_api_version(version: &str) -> Result<String, AuthError> {
    let version = bare_api_version(version);
    check_api_version(version)?;
    Ok(version.to_string())
}

/// Checks an API version such as `62.0`.
fn check_api_version(version: &str) -> Result<(), AuthError> {
    let ok = version.split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty()
            && !minor.is_empty()
            && major.len() <= 4
            && minor.len() <= 2
            && major.bytes().all(|b| b.is_ascii_digit())
            && minor.bytes().all(|b| b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidApiVersion(truncate(
            version.to_string(),
            20,
        )))
    }
}

/// A transport error, described without secrets (our URLs carry none, and
/// the text is scrubbed anyway).
pub(crate) fn transport_error(error: &reqwest::Error, call: &Call<'_>) -> AuthError {
    let url = error
        .url()
        .map(crate::http_error::shown_url)
        .unwrap_or_else(|| "the login server".to_string());
    let text = crate::http_error::describe(error, &url, call.timeout);
    AuthError::Transport(truncate(call.redactor.scrub(&text), 300))
}

/// Says once per process that SOAP `login()` is being retired, and what
/// replaces it.
fn warn_soap_retirement() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            retirement = crate::defaults::SOAP_LOGIN_RETIREMENT,
            "{}",
            crate::defaults::SOAP_LOGIN_RETIREMENT_NOTICE
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn authenticator_is_send_sync_and_clone() {
        assert_send_sync::<Authenticator>();
        assert_send_sync::<AuthError>();
        assert_send_sync::<Session>();
        assert_send_sync::<Credentials>();
    }

    #[test]
    fn api_versions() {
        for ok in ["62.0", "20.0", "9.0", "100.5"] {
            assert!(check_api_version(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "62",
            "v62.0",
            "62.",
            ".0",
            "62.0/../x",
            "6 2.0",
            "62.0.1",
        ] {
            assert!(
                matches!(check_api_version(bad), Err(AuthError::InvalidApiVersion(_))),
                "{bad}"
            );
        }
        let auth = Authenticator::new(Credentials::soap("u", "p", None)).with_api_version("v61.0");
        assert_eq!(auth.api_version(), "61.0");
    }

    #[test]
    fn defaults() {
        let auth = Authenticator::new(Credentials::soap("u", "p", None));
        assert_eq!(auth.login_url(), &LoginUrl::production());
        assert_eq!(auth.api_version(), crate::DEFAULT_API_VERSION);
        assert_eq!(auth.timeout(), DEFAULT_TIMEOUT);
        assert!(!auth.insecure_http_allowed());
        assert!(auth.check().is_ok());
        let shown = format!("{auth:?}");
        assert!(!shown.contains("\"p\""), "{shown}");
    }

    #[test]
    fn secret_type_is_used() {
        // Compile-time: every secret field is a `Secret`.
        let _: fn(&Credentials) -> Vec<&Secret> = Credentials::secrets;
    }
}
