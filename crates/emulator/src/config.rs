//! Settings of an emulated org: the credentials it accepts, streaming
//! timings, retention, limits, and whether fault injection is enabled.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The newest API version the emulator serves (Spring '26).
pub const LATEST_API_VERSION: &str = "66.0";

/// The oldest API version the emulator serves.
pub const OLDEST_API_VERSION: f64 = 20.0;

/// The credentials an org accepts unless configured otherwise (what
/// [`Credentials::default`] holds): the demo, examples and tests log in
/// with these.
pub mod defaults {
    /// The login user's username.
    pub const USERNAME: &str = "emulator@example.com";
    /// The login user's password.
    pub const PASSWORD: &str = "password";
    /// The security token appended to the password in password logins.
    pub const SECURITY_TOKEN: &str = "token";
    /// The connected app's consumer key.
    pub const CONSUMER_KEY: &str = "emulator-consumer-key";
    /// The connected app's consumer secret.
    pub const CONSUMER_SECRET: &str = "emulator-consumer-secret";
    /// The refresh token of the refresh-token flow.
    pub const REFRESH_TOKEN: &str = "emulator-refresh-token";
}

/// Credentials the emulated org accepts. `Debug` never shows the secrets.
#[derive(Clone)]
pub struct Credentials {
    /// The login user's username.
    pub username: String,
    /// The login user's password.
    pub password: String,
    /// The security token appended to the password in password logins.
    /// Empty means the org does not require one.
    pub security_token: String,
    /// The connected app's consumer key (OAuth `client_id`).
    pub consumer_key: String,
    /// The connected app's consumer secret (OAuth `client_secret`).
    pub consumer_secret: String,
    /// A refresh token the org accepts in the refresh-token flow.
    pub refresh_token: String,
    /// PEM of the certificate or RSA public key that verifies JWT bearer
    /// assertions. `None` disables the JWT bearer flow.
    pub jwt_public_key_pem: Option<String>,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            username: defaults::USERNAME.into(),
            password: defaults::PASSWORD.into(),
            security_token: defaults::SECURITY_TOKEN.into(),
            consumer_key: defaults::CONSUMER_KEY.into(),
            consumer_secret: defaults::CONSUMER_SECRET.into(),
            refresh_token: defaults::REFRESH_TOKEN.into(),
            jwt_public_key_pem: None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("security_token", &"<redacted>")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field(
                "jwt_public_key_pem",
                &self.jwt_public_key_pem.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// Everything that shapes an emulated org.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmulatorConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The login user and connected app.
    pub credentials: Credentials,
    /// How long the server holds a `/meta/connect` with nothing to deliver.
    pub connect_hold: Duration,
    /// A client that sends no request for this long loses its session
    /// (its next call gets `403::Unknown client`).
    pub session_timeout: Duration,
    /// Retention of PushTopic and generic events.
    pub retention_standard: Duration,
    /// Retention of Change Data Capture and platform events.
    pub retention_extended: Duration,
    /// The most events kept per channel; older ones are dropped (and their
    /// replay ids become invalid), so a long run stays small.
    pub history_limit: usize,
    /// The most events delivered in one connect response.
    pub max_events_per_connect: usize,
    /// Records per page of a query result before `nextRecordsUrl`.
    pub query_batch_size: usize,
    /// The daily API request allocation reported by `limits/`.
    pub daily_api_requests: u64,
    /// The most CometD clients at once; a handshake past it gets
    /// `403::Organization concurrent user limit exceeded` (Enterprise
    /// edition: 1,000; Developer edition: 20).
    pub concurrent_clients: usize,
    /// The daily streaming event delivery allocation (`limits/`
    /// `DailyStreamingApiEvents`); once delivered, a connect gets
    /// `403::Organization total events daily limit exceeded`.
    pub daily_streaming_events: u64,
    /// Whether the fault-injection control API is served.
    pub faults_enabled: bool,
    /// Address the Pub/Sub API (gRPC) listens on; port 0 picks a free port.
    pub pubsub_bind: SocketAddr,
    /// Certificate and key to serve Pub/Sub over TLS; plain HTTP/2 when `None`.
    pub pubsub_tls: Option<PubSubTls>,
    /// How long a Pub/Sub subscription that is owed events waits, with none
    /// to send, before it sends a keepalive (Salesforce: within 270 s).
    pub pubsub_keepalive: Duration,
    /// A Pub/Sub subscription with nothing requested is closed when no
    /// FetchRequest comes for this long (Salesforce: about 60 s).
    pub pubsub_idle_timeout: Duration,
}

/// PEM certificate chain and private key of the Pub/Sub TLS endpoint.
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct PubSubTls {
    /// PEM certificate chain.
    pub cert_pem: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

impl fmt::Debug for PubSubTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSubTls")
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: Credentials::default(),
            connect_hold: Duration::from_secs(110),
            session_timeout: Duration::from_secs(40),
            retention_standard: Duration::from_secs(24 * 3600),
            retention_extended: Duration::from_secs(72 * 3600),
            history_limit: 100_000,
            max_events_per_connect: 1_000,
            query_batch_size: 2_000,
            daily_api_requests: 100_000,
            concurrent_clients: 1_000,
            daily_streaming_events: 200_000,
            faults_enabled: false,
            pubsub_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            pubsub_tls: None,
            pubsub_keepalive: Duration::from_secs(270),
            pubsub_idle_timeout: Duration::from_secs(60),
        }
    }
}

impl EmulatorConfig {
    /// The default settings with fault injection enabled, as tests want them.
    pub fn for_tests() -> Self {
        Self {
            faults_enabled: true,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let text = format!("{:?}", EmulatorConfig::default());
        for secret in [
            "password\"",
            "\"token\"",
            "emulator-consumer-secret",
            "emulator-refresh-token",
        ] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert!(text.contains("emulator@example.com"));
    }
}
