//! The connection: a tonic channel (TLS with webpki roots, plain HTTP/2
//! only to loopback hosts) with HTTP/2 keepalive pings, and the session
//! whose `accesstoken`, `instanceurl` and `tenantid` go with every call.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sfstream_common::Backoff;
use sfstream_pubsub::proto::pub_sub_client::PubSubClient;
use tokio::time::Instant;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::error::PubSubError;
use super::event::{Emitter, PubSubEvent};
use crate::auth::{Authenticator, Session};

/// How the channel is set up.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub(crate) url: String,
    pub(crate) keepalive_interval: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// PEM certificates trusted besides the webpki roots.
    pub(crate) extra_roots: Vec<String>,
}

/// A lazily connected channel to `transport.url`; the connection is made
/// (and made again after a loss) by the first call that needs it.
pub(crate) fn channel(transport: &Transport, allow_insecure: bool) -> Result<Channel, PubSubError> {
    let bad = |why: String| PubSubError::Connection(format!("{}: {why}", transport.url));
    let endpoint = Endpoint::from_shared(transport.url.clone()).map_err(|e| bad(e.to_string()))?;
    let uri = endpoint.uri().clone();
    let endpoint = match uri.scheme_str() {
        Some("https") => {
            let roots = transport.extra_roots.iter().map(Certificate::from_pem);
            let tls = ClientTlsConfig::new()
                .with_webpki_roots()
                .ca_certificates(roots);
            endpoint.tls_config(tls).map_err(|e| bad(e.to_string()))?
        }
        Some("http") if allow_insecure || uri.host().is_some_and(is_loopback) => endpoint,
        Some("http") => {
            return Err(bad(
                "plain http:// to a host that is not loopback; use https:// (or Authenticator::allow_insecure_http(true))".into(),
            ));
        }
        _ => {
            return Err(bad(
                "the URL must be https:// (or http:// to loopback)".into()
            ));
        }
    };
    Ok(endpoint
        .connect_timeout(transport.connect_timeout)
        // Pings detect a half-open connection (a stream that would
        // otherwise die silently) within interval + timeout.
        .http2_keep_alive_interval(transport.keepalive_interval)
        .keep_alive_timeout(transport.keepalive_timeout)
        .keep_alive_while_idle(false)
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .connect_lazy())
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The org id of a session: given, else the prefix of a Salesforce access
/// token (`00D…!…`, the org id before the `!`), which costs no request.
pub(crate) fn org_id(session: &Session, given: Option<&str>) -> Option<String> {
    if let Some(org) = given.or(session.org_id.as_deref()) {
        return Some(org.to_string());
    }
    let (prefix, _) = session.access_token.expose().split_once('!')?;
    let looks_like_org = prefix.starts_with("00D")
        && matches!(prefix.len(), 15 | 18)
        && prefix.chars().all(|c| c.is_ascii_alphanumeric());
    looks_like_org.then(|| prefix.to_string())
}

/// A session and the metadata of its calls.
pub(crate) struct Auth {
    pub(crate) session: Session,
    metadata: MetadataMap,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("instance_url", &self.session.instance_url)
            .finish_non_exhaustive()
    }
}

impl Auth {
    fn new(session: Session, given_org: Option<&str>) -> Result<Self, PubSubError> {
        let org = org_id(&session, given_org).ok_or(PubSubError::NoOrgId)?;
        let value = |text: &str, what: &str| {
            AsciiMetadataValue::try_from(text)
                .map_err(|_| PubSubError::Connection(format!("the {what} is not valid metadata")))
        };
        let mut token = value(session.access_token.expose(), "access token")?;
        // Keeps the token out of `Debug` of requests and headers.
        token.set_sensitive(true);
        let mut metadata = MetadataMap::new();
        metadata.insert("accesstoken", token);
        metadata.insert("instanceurl", value(&session.instance_url, "instance URL")?);
        metadata.insert("tenantid", value(&org, "org id")?);
        Ok(Self { session, metadata })
    }

    /// `message` as a request carrying the session's metadata.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        for key in ["accesstoken", "instanceurl", "tenantid"] {
            if let Some(value) = self.metadata.get(key) {
                request.metadata_mut().insert(key, value.clone());
            }
        }
        request
    }
}

/// The channel and the current session, shared by every RPC and stream.
pub(crate) struct Connection {
    pub(crate) channel: Channel,
    pub(crate) authenticator: Authenticator,
    pub(crate) org_id: Option<String>,
    pub(crate) current: Mutex<Option<Arc<Auth>>>,
    pub(crate) emit: Emitter,
    pub(crate) backoff: Backoff,
    pub(crate) connection_timeout: Option<Duration>,
    pub(crate) rpc_timeout: Duration,
    /// One re-login at a time: concurrent streams refused together wait
    /// for it and reuse its session.
    relogin: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("authenticator", &self.authenticator)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub(crate) fn new(
        channel: Channel,
        authenticator: Authenticator,
        org_id: Option<String>,
        emit: Emitter,
        backoff: Backoff,
        connection_timeout: Option<Duration>,
        rpc_timeout: Duration,
    ) -> Self {
        Self {
            channel,
            authenticator,
            org_id,
            current: Mutex::new(None),
            emit,
            backoff,
            connection_timeout,
            rpc_timeout,
            relogin: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn client(&self) -> PubSubClient<Channel> {
        // Events up to 1 MB, publish requests up to 3 MB: above tonic's 4 MB
        // default only for batches of large events.
        PubSubClient::new(self.channel.clone()).max_decoding_message_size(16 * 1024 * 1024)
    }

    /// The current session (logging in the first time).
    pub(crate) async fn auth(&self) -> Result<Arc<Auth>, PubSubError> {
        if let Some(auth) = self.current.lock().clone() {
            return Ok(auth);
        }
        let session = self.authenticator.session().await?;
        self.install(session)
    }

    fn install(&self, session: Session) -> Result<Arc<Auth>, PubSubError> {
        let instance_url = session.instance_url.clone();
        let auth = Arc::new(Auth::new(session, self.org_id.as_deref())?);
        *self.current.lock() = Some(auth.clone());
        self.emit.send(PubSubEvent::LoggedIn { instance_url });
        Ok(auth)
    }

    /// A session replacing `rejected`: logs in again, retrying transient
    /// failures with backoff until the connection timeout; refused
    /// credentials fail at once.
    pub(crate) async fn relogin(&self, rejected: &Arc<Auth>) -> Result<Arc<Auth>, PubSubError> {
        let _one = self.relogin.lock().await;
        if let Some(current) = self.current.lock().clone()
            && !Arc::ptr_eq(&current, rejected)
        {
            return Ok(current);
        }
        let deadline = self.connection_timeout.map(|t| Instant::now() + t);
        let mut attempt = 0u32;
        loop {
            let renew = self.authenticator.renew(&rejected.session);
            let outcome = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, renew)
                    .await
                    .map_err(|_| self.login_timeout())?,
                None => renew.await,
            };
            let error = match outcome {
                Ok(session) => return self.install(session),
                Err(error) if error.is_auth_failure() => return Err(error.into()),
                Err(error) => error,
            };
            attempt += 1;
            let delay = self.backoff.delay(attempt);
            if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                return Err(error.into());
            }
            tracing::warn!(%error, attempt, retry_in = ?delay, "Pub/Sub: logging in again failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    fn login_timeout(&self) -> PubSubError {
        PubSubError::Timeout {
            what: "re-login".into(),
            timeout: self.connection_timeout.unwrap_or_default(),
        }
    }

    /// Runs a unary RPC with the session, bounded by the RPC timeout; logs
    /// in again once when the token is refused.
    pub(crate) async fn unary<T, R, F, Fut>(
        &self,
        name: &str,
        message: T,
        call: F,
    ) -> Result<R, PubSubError>
    where
        T: Clone,
        F: Fn(PubSubClient<Channel>, tonic::Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let mut auth = self.auth().await?;
        let mut relogged = false;
        loop {
            let call = call(self.client(), auth.request(message.clone()));
            let status = match tokio::time::timeout(self.rpc_timeout, call).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => status,
                Err(_) => {
                    return Err(PubSubError::Timeout {
                        what: name.to_string(),
                        timeout: self.rpc_timeout,
                    });
                }
            };
            use sfstream_pubsub::errors::{Remedy, remedy};
            if remedy(&status) == Remedy::LogInAgain && !relogged {
                relogged = true;
                auth = self.relogin(&auth).await?;
                continue;
            }
            return Err(PubSubError::rpc(name, &status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(url: &str) -> Transport {
        Transport {
            url: url.into(),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            extra_roots: Vec::new(),
        }
    }

    #[tokio::test]
    async fn plain_http_only_to_loopback() {
        assert!(channel(&transport("http://127.0.0.1:7443"), false).is_ok());
        assert!(channel(&transport("http://[::1]:7443"), false).is_ok());
        assert!(channel(&transport("http://localhost:7443"), false).is_ok());
        assert!(channel(&transport("https://api.pubsub.salesforce.com:7443"), false).is_ok());
        let error = channel(&transport("http://example.com:7443"), false).expect_err("refused");
        assert!(error.to_string().contains("not loopback"), "{error}");
        assert!(channel(&transport("http://example.com:7443"), true).is_ok());
        assert!(channel(&transport("ftp://x"), false).is_err());
    }

    #[test]
    fn org_id_from_session_or_token() {
        let mut session = Session::new("00D5g000000AAAA!AQ0Ai.secret", "https://x");
        assert_eq!(org_id(&session, None).as_deref(), Some("00D5g000000AAAA"));
        assert_eq!(
            org_id(&session, Some("00DGIVEN")).as_deref(),
            Some("00DGIVEN")
        );
        session.org_id = Some("00D5g000000AAAAEAA".into());
        assert_eq!(
            org_id(&session, None).as_deref(),
            Some("00D5g000000AAAAEAA")
        );
        let opaque = Session::new("not-an-org-token", "https://x");
        assert_eq!(org_id(&opaque, None), None);
    }

    #[test]
    fn the_token_is_never_shown() {
        let mut session = Session::new("00D5g000000AAAA!secret-token", "https://x");
        session.org_id = Some("00DX".into());
        let auth = Auth::new(session, None).expect("auth");
        let request = auth.request(());
        let shown = format!("{auth:?} {request:?} {:?}", request.metadata());
        assert!(!shown.contains("secret-token"), "{shown}");
        assert_eq!(
            request
                .metadata()
                .get("tenantid")
                .and_then(|v| v.to_str().ok()),
            Some("00DX")
        );
    }
}
