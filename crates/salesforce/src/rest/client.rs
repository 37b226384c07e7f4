//! The shared client: connection pool, timeouts, a bound on concurrent
//! requests, one re-login and retry on `INVALID_SESSION_ID`, and the
//! `Sforce-Limit-Info` usage of the last answer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::error::{self, RestError, parse_error_body};
use super::limits::{ApiUsage, parse_limit_info};
use crate::auth::{AuthError, Authenticator, Session};

/// How long one request may take when no timeout is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How many requests may be in flight at once when no bound is set.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 16;

/// An async Salesforce REST API client: records, queries, search,
/// composite calls, limits, platform events and PushTopics.
///
/// Cheap to clone: clones share the HTTP connection pool, the session (of
/// the [`Authenticator`], which the streaming client may share too), the
/// bound on concurrent requests and the last API usage, so one client
/// serves many tasks. When Salesforce answers 401 `INVALID_SESSION_ID`,
/// the client logs in again (once for all concurrent callers, through
/// [`Authenticator::renew`]) and retries the call once.
///
/// Defaults: the authenticator's API version, a 60 s timeout per request,
/// at most 16 requests in flight.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::TryStreamExt;
/// use serde_json::json;
/// use sfstream_salesforce::rest::{SalesforceClient, format_soql};
/// use sfstream_salesforce::{Authenticator, Credentials, LoginUrl, Secret};
/// # let org = sfstream_emulator::Emulator::start(Default::default()).await?;
/// # let url = org.url();
///
/// let login = Authenticator::new(Credentials::password(
///     "emulator@example.com", "password", Some(Secret::new("token")),
///     "emulator-consumer-key", "emulator-consumer-secret",
/// ))
/// .with_login_url(LoginUrl::parse(&url)?);
/// let client = SalesforceClient::new(login);
///
/// let id = client.create("Contact", &json!({"LastName": "O'Brien", "Email": "ob@example.com"})).await?;
/// client.update("Contact", &id, &json!({"Title": "Engineer"})).await?;
/// let contact = client.get("Contact", &id, Some(&["LastName", "Title"])).await?;
/// assert_eq!(contact["Title"], "Engineer");
///
/// // Values are escaped: the quote in O'Brien cannot break the query.
/// let soql = format_soql("SELECT Id, Name FROM Contact WHERE LastName = {}", &[&"O'Brien"])?;
/// let found: Vec<_> = client.query(soql).try_collect().await?;
/// assert_eq!(found.len(), 1);
/// println!("API usage: {:?}", client.last_api_usage());
/// client.delete("Contact", &id).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SalesforceClient {
    inner: Arc<Inner>,
}

struct Inner {
    auth: Authenticator,
    http: reqwest::Client,
    timeout: Duration,
    max_concurrent: usize,
    permits: Semaphore,
    usage: Mutex<Option<ApiUsage>>,
}

/// Configures a [`SalesforceClient`]; see [`SalesforceClient::builder`].
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder {
    auth: Authenticator,
    timeout: Duration,
    max_concurrent: usize,
    user_agent: Option<String>,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// Gives up on a request after `timeout` (default 60 s) with
    /// [`RestError::Transport`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Lets at most `max` requests be in flight at once across all clones
    /// (default 16; at least 1). Further calls wait for a free slot.
    pub fn max_concurrent_requests(mut self, max: usize) -> Self {
        self.max_concurrent = max.max(1);
        self
    }

    /// Sends `User-Agent: user_agent` (default `sfstream/<version>`).
    /// Ignored when an HTTP client is given.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Sends requests with `client` (its proxy, TLS and pool settings)
    /// instead of a new one. The per-request timeout still applies.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Builds the client.
    pub fn build(self) -> SalesforceClient {
        let http = self.http.unwrap_or_else(|| {
            let agent = self
                .user_agent
                .unwrap_or_else(|| concat!("sfstream/", env!("CARGO_PKG_VERSION")).to_string());
            reqwest::Client::builder()
                // The bearer token must not follow a redirect elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(agent)
                .build()
                .unwrap_or_else(|_| reqwest::Client::new())
        });
        SalesforceClient {
            inner: Arc::new(Inner {
                auth: self.auth,
                http,
                timeout: self.timeout,
                max_concurrent: self.max_concurrent,
                permits: Semaphore::new(self.max_concurrent),
                usage: Mutex::new(None),
            }),
        }
    }
}

/// One request, before the URL is known.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    /// A path relative to `/services/data/vXX.X/`, an absolute path
    /// (`/services/...`) or a URL on the instance.
    pub target: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Call {
    pub(crate) fn new(method: Method, target: impl Into<String>) -> Self {
        Self {
            method,
            target: target.into(),
            query: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn get(target: impl Into<String>) -> Self {
        Self::new(Method::GET, target)
    }

    pub(crate) fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub(crate) fn json(mut self, body: &impl serde::Serialize) -> Result<Self, RestError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| RestError::invalid(format!("the body cannot be serialised: {e}")))?;
        self.body = Some(bytes);
        Ok(self)
    }
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    /// The JSON body; `Null` when empty.
    pub body: Value,
}

/// What one attempt yielded.
enum Attempt {
    Done(Reply),
    /// 401: the session was refused; the message.
    Unauthorized(String),
}

impl SalesforceClient {
    /// A client with the defaults, logging in with `auth`.
    pub fn new(auth: Authenticator) -> Self {
        Self::builder(auth).build()
    }

    /// A builder for a client logging in with `auth`.
    pub fn builder(auth: Authenticator) -> ClientBuilder {
        ClientBuilder {
            auth,
            timeout: DEFAULT_TIMEOUT,
            max_concurrent: DEFAULT_MAX_CONCURRENT_REQUESTS,
            user_agent: None,
            http: None,
        }
    }

    /// The authenticator (shared with clones).
    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.auth
    }

    /// The API version, e.g. `62.0`.
    pub fn api_version(&self) -> &str {
        self.inner.auth.api_version()
    }

    /// The timeout of one request.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The most requests in flight at once.
    pub fn max_concurrent_requests(&self) -> usize {
        self.inner.max_concurrent
    }

    /// How many requests are in flight now (never above
    /// [`SalesforceClient::max_concurrent_requests`]).
    pub fn in_flight(&self) -> usize {
        self.inner
            .max_concurrent
            .saturating_sub(self.inner.permits.available_permits())
    }

    /// The API usage Salesforce reported in the `Sforce-Limit-Info` header
    /// of the last answer (`None` before the first).
    pub fn last_api_usage(&self) -> Option<ApiUsage> {
        *self.inner.usage.lock()
    }

    /// The current session (logging in if needed).
    ///
    /// # Errors
    ///
    /// [`RestError::Auth`], or [`RestError::ExpiredSession`] when an
    /// access token given as is was refused.
    pub async fn session(&self) -> Result<Session, RestError> {
        self.inner.auth.session().await.map_err(auth_error)
    }

    /// A request to any path, for resources without a method of their own
    /// (Apex REST, tooling, newer resources).
    ///
    /// `path` is relative to `/services/data/vXX.X/` (`"sobjects/Account/describe"`),
    /// an absolute path (`"/services/apexrest/Orders/42"`) or a URL on the
    /// instance. `body` is sent as JSON. Returns the status and the JSON
    /// body (`Null` when empty, a string when it is not JSON).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sfstream_salesforce::rest::{Method, SalesforceClient};
    /// # let org = sfstream_emulator::Emulator::start(Default::default()).await?;
    /// # let login = sfstream_testkit::emulator::authenticator(&org.url());
    /// let client = SalesforceClient::new(login);
    /// let (status, versions) = client.request(Method::GET, "/services/data", None).await?;
    /// assert_eq!(status, 200);
    /// assert!(versions.as_array().is_some_and(|v| !v.is_empty()));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As every call: an HTTP error status becomes the matching
    /// [`RestError`] variant.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), RestError> {
        let mut call = Call::new(method, path);
        if let Some(body) = body {
            call = call.json(body)?;
        }
        let reply = self.call(&call).await?;
        Ok((reply.status, reply.body))
    }

    /// Sends a call: waits for a slot, uses the shared session, logs in
    /// again and retries once on 401.
    pub(crate) async fn call(&self, call: &Call) -> Result<Reply, RestError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| RestError::Transport("the client is closed".into()))?;
        let session = self.session().await?;
        match self.attempt(&session, call).await? {
            Attempt::Done(reply) => Ok(reply),
            Attempt::Unauthorized(_) => {
                tracing::debug!("session refused (401): logging in again");
                let session = self.inner.auth.renew(&session).await.map_err(auth_error)?;
                match self.attempt(&session, call).await? {
                    Attempt::Done(reply) => Ok(reply),
                    Attempt::Unauthorized(message) => Err(RestError::ExpiredSession { message }),
                }
            }
        }
    }

    /// A call whose answer is JSON.
    pub(crate) async fn json(&self, call: &Call) -> Result<Value, RestError> {
        Ok(self.call(call).await?.body)
    }

    async fn attempt(&self, session: &Session, call: &Call) -> Result<Attempt, RestError> {
        let url = self.url(session, &call.target)?;
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), url.as_str())
            .bearer_auth(session.access_token.expose())
            .header(ACCEPT, "application/json")
            .timeout(self.inner.timeout);
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&e, &url, self.inner.timeout))?;
        let status = response.status().as_u16();
        self.record_usage(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(&e, &url, self.inner.timeout))?;
        if status == 401 {
            let message = parse_error_body(&bytes).message;
            return Ok(Attempt::Unauthorized(if message.is_empty() {
                "Session expired or invalid".into()
            } else {
                message
            }));
        }
        if !(200..300).contains(&status) {
            return Err(error::from_status(status, &bytes));
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Attempt::Done(Reply { status, body }))
    }

    fn record_usage(&self, headers: &HeaderMap) {
        if let Some(usage) = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info)
        {
            *self.inner.usage.lock() = Some(usage);
        }
    }

    /// The URL of `target` on the session's instance.
    fn url(&self, session: &Session, target: &str) -> Result<reqwest::Url, RestError> {
        let instance = session.instance_url.trim_end_matches('/');
        let target = target.trim();
        if target.chars().any(char::is_control) {
            return Err(RestError::invalid("the path contains control characters"));
        }
        let text = if target.starts_with("http://") || target.starts_with("https://") {
            let on_instance = target
                .strip_prefix(instance)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if !on_instance {
                // The access token is never sent to another host.
                return Err(RestError::invalid(format!(
                    "{target} is not on the instance {instance}"
                )));
            }
            target.to_string()
        } else if target.starts_with('/') {
            format!("{instance}{target}")
        } else {
            format!(
                "{instance}/services/data/v{}/{target}",
                self.inner.auth.api_version()
            )
        };
        reqwest::Url::parse(&text)
            .map_err(|e| RestError::invalid(format!("invalid URL for {target}: {e}")))
    }
}

impl fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SalesforceClient")
            .field("auth", &self.inner.auth)
            .field("timeout", &self.inner.timeout)
            .field("max_concurrent_requests", &self.inner.max_concurrent)
            .field("last_api_usage", &self.last_api_usage())
            .finish_non_exhaustive()
    }
}

/// An expired access token that cannot be renewed is an expired session.
fn auth_error(error: AuthError) -> RestError {
    match error {
        AuthError::CannotRenew => RestError::ExpiredSession {
            message: error.to_string(),
        },
        other => RestError::Auth(other),
    }
}

/// A transport error, described without the query string.
fn transport_error(error: &reqwest::Error, url: &reqwest::Url, timeout: Duration) -> RestError {
    RestError::Transport(crate::http_error::describe(
        error,
        &crate::http_error::shown_url(url),
        timeout,
    ))
}

/// Checks an API name (sobject, field): a letter, then letters, digits and
/// underscores (`__c`, `__e`, namespaces), at most 80 characters.
pub(crate) fn api_name<'a>(what: &str, name: &'a str) -> Result<&'a str, RestError> {
    let ok = name.len() <= 80
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(RestError::invalid(format!(
            "{what} {name:?} is not a valid API name (letters, digits and underscores, starting with a letter)"
        )))
    }
}

/// Checks a record id: 15 or 18 letters and digits.
pub(crate) fn record_id(id: &str) -> Result<&str, RestError> {
    if (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(RestError::invalid(format!(
            "{id:?} is not a record id (15 or 18 letters and digits)"
        )))
    }
}

/// Percent-encodes a value for one URL path segment.
pub(crate) fn segment(value: &str) -> Result<String, RestError> {
    if value.is_empty() {
        return Err(RestError::invalid("an empty value cannot be used in a URL"));
    }
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Credentials;

    #[test]
    fn names_ids_and_segments() {
        assert!(api_name("sobject", "Contact").is_ok());
        assert!(api_name("sobject", "ns__Thing__c").is_ok());
        for bad in ["", "1a", "Con tact", "Contact/../x", "a'b"] {
            assert!(api_name("sobject", bad).is_err(), "{bad}");
        }
        assert!(record_id("003000000000001").is_ok());
        assert!(record_id("003000000000001AAA").is_ok());
        assert!(record_id("003/../x").is_err());
        assert_eq!(segment("a b/c?d").expect("ok"), "a%20b%2Fc%3Fd");
        assert_eq!(segment("..").expect("ok"), "%2E%2E");
        assert!(segment("").is_err());
    }

    #[test]
    fn urls_stay_on_the_instance() {
        let client = SalesforceClient::new(Authenticator::new(Credentials::soap("u", "p", None)));
        let session = Session::new("tok", "https://acme.my.salesforce.com");
        let url = |t: &str| client.url(&session, t).map(|u| u.to_string());
        assert_eq!(
            url("sobjects/Account").expect("ok"),
            "https://acme.my.salesforce.com/services/data/v62.0/sobjects/Account"
        );
        assert_eq!(
            url("/services/apexrest/x").expect("ok"),
            "https://acme.my.salesforce.com/services/apexrest/x"
        );
        assert!(url("https://acme.my.salesforce.com/services/data").is_ok());
        assert!(url("https://evil.example.com/services/data").is_err());
        assert!(url("https://acme.my.salesforce.com.evil.com/x").is_err());
        let shown = format!("{client:?}");
        assert!(!shown.contains("\"p\""), "{shown}");
    }

    #[test]
    fn client_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<SalesforceClient>();
        check::<RestError>();
    }
}
