//! Service configuration: YAML in the Nameko format, with the Python
//! Nameko Salesforce extension's `SALESFORCE:` keys and ours.
//!
//! ```yaml
//! AMQP_URI: 'pyamqp://guest:guest@localhost'
//! max_workers: 10
//! METRICS_PORT: ${METRICS_PORT:9464}
//! SALESFORCE:
//!     USERNAME: ${SALESFORCE_USERNAME}
//!     PASSWORD: ${SALESFORCE_PASSWORD}
//!     SECURITY_TOKEN: ${SALESFORCE_SECURITY_TOKEN}
//!     SANDBOX: False
//!     PUSHTOPIC_REPLAY_ENABLED: True
//!     PUSHTOPIC_REPLAY_REDIS_URI: redis://localhost:6379/11
//!     PUSHTOPIC_REPLAY_TTL: 3600
//! ```
//!
//! A config file written for the Python extension works unchanged. The
//! keys of `SALESFORCE:`:
//!
//! | Key | Meaning | Default |
//! |---|---|---|
//! | `USERNAME`, `PASSWORD`, `SECURITY_TOKEN` | SOAP login (the extension's), or the OAuth password flow with `CONSUMER_KEY`/`CONSUMER_SECRET` (which keys select which login, and what is refused: `docs/logins.md`) | |
//! | `SANDBOX` | `True`: `test.salesforce.com`, `False`: `login.salesforce.com`; required unless `LOGIN_URL` is set | |
//! | `API_VERSION` | API version | [`DEFAULT_API_VERSION`], `37.0`: the Python extension's, kept so its configs behave the same (the library's own default is newer) |
//! | `PUSHTOPIC_REPLAY_ENABLED` | keep replay ids in Redis | `False` |
//! | `PUSHTOPIC_REPLAY_REDIS_URI` | the Redis of the replay ids (key `salesforce:replay_id:<channel>`) | |
//! | `PUSHTOPIC_REPLAY_TTL` | expiry of the Redis keys, seconds | none |
//! | `LOGIN_URL` | login URL (My Domain, or an emulator) | from `SANDBOX` |
//! | `CONSUMER_KEY`, `CONSUMER_SECRET` | connected app | |
//! | `REFRESH_TOKEN` | refresh-token flow (with `CONSUMER_KEY`) | |
//! | `JWT_KEY_FILE` | JWT bearer flow: PEM private key file (with `USERNAME`, `CONSUMER_KEY`) | |
//! | `CLIENT_CREDENTIALS` | `True`: client-credentials flow (with `CONSUMER_KEY`, `CONSUMER_SECRET`) | `False` |
//! | `ACCESS_TOKEN`, `INSTANCE_URL` | a session obtained elsewhere | |
//! | `REPLAY_STORE` | `memory:`, `file:PATH` or `redis://…` | memory |
//! | `DEFAULT_REPLAY` | where a channel with no stored marker starts: `NEW`, `ALL` or a replay id | `NEW` |
//! | `REPLAY_FALLBACK` | on an expired replay id, resubscribe from `NEW` or `ALL` | none: fail |
//! | `MAX_PENDING` | received events buffered ahead of the handlers | [`DEFAULT_MAX_PENDING`] (1000) |
//! | `MAX_IN_FLIGHT` | per channel, events taken and not yet committed (in flight, or done behind an unfinished earlier one); when full, the taking of events pauses | [`DEFAULT_MAX_IN_FLIGHT`] (1000) |
//! | `TRANSPORT` | `cometd` or `pubsub`: the API of Change Data Capture and platform event entrypoints (PushTopics and generic channels are CometD only; an entrypoint may choose its own) | `cometd` |
//! | `PUBSUB_URL` | the Pub/Sub API endpoint | `https://api.pubsub.salesforce.com:7443` |
//! | `FETCH_GAP_RECORDS` | for a Change Data Capture gap event (`GAP_CREATE`, …, `GAP_OVERFLOW`: a header, no field values), read its records through the REST API first: the payload gains `"fetched": true` and `"fetchedRecords"` | `False`: gap events reach handlers as they came |
//! | `BACKFILL` | after a gap (an expired replay id, with `REPLAY_FALLBACK`), hand the records the channel changed in the gap's window (read through the REST API, `queryAll`) to the handlers, marked `"backfilled": true`, before its next events | `False` |
//! | `BACKFILL_MAX_RECORDS` | most records one backfill delivers (a warning names what was left out) | 10000 |
//! | `LIMITS` | `INTERVAL`: seconds between reads of the org's limits (0: none), `WARN_AT`: the share of an allocation used that gets a warning (once per crossing); gauges `sfstream_limit_remaining`, `sfstream_limit_max` | `{INTERVAL: 300, WARN_AT: 0.8}` |
//! | `MARKER_AGE_WARN_HOURS` | `RETENTION_24H`, `RETENTION_72H`: the stored marker age (hours) that gets a warning, for channels kept 24 h (PushTopics, generic) and 72 h (change and platform events) | `{RETENTION_24H: 18, RETENTION_72H: 60}` |
//!
//! Delivery and operations keys, read at the top level or under
//! `SALESFORCE:` (where they win): `RETRIES` ([`DEFAULT_RETRIES`], 3),
//! `RETRY_DELAY` (first backoff, seconds, [`DEFAULT_RETRY_DELAY`], 0.5),
//! `ON_FAILURE` (`stop` or `skip`; `stop`), `SHUTDOWN_TIMEOUT` (seconds,
//! [`DEFAULT_SHUTDOWN_TIMEOUT`], 30), `HANDLER_TIMEOUT` (seconds,
//! [`DEFAULT_HANDLER_TIMEOUT`], 300: a handler call still running then is
//! cancelled and counts as a retryable failure), `METRICS_PORT` (none: no
//! HTTP server).
//!
//! # Substitution
//!
//! In every string value, `${VAR}` is replaced by the environment
//! variable `VAR` and `${VAR:default}` by `VAR` or `default` when unset; a
//! missing variable without default is an empty string. A value that
//! *becomes* a boolean, number or null when read as YAML is taken as one
//! (so `${X:false}` is the boolean false and `${PORT:8080}` the integer);
//! anything else stays the substituted text, exactly (a password holding
//! `#` or `: ` is not mangled). Substitution is done per value, after the
//! document is parsed, so a variable cannot inject YAML structure.
//!
//! # Errors
//!
//! Bad configuration fails at start with the key path and what is wrong:
//! `SALESFORCE.SANDBOX: invalid type: string "maybe", expected a boolean`.
//! Unknown keys under `SALESFORCE:` are logged as warnings (Python configs
//! carry extras), never errors.

mod convert;
mod schema;
mod substitute;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml_ng::Value;
pub use sfstream_salesforce::DEFAULT_MAX_PENDING;
use sfstream_salesforce::limits_watch::LimitsPolicy;
use sfstream_salesforce::replay::{ReplayFrom, WarnAges, redact_url};
use sfstream_salesforce::{Credentials, LoginUrl, Transport};

/// `API_VERSION` when none is configured: `37.0`, the Python Nameko
/// Salesforce extension's default, so that a config written for it logs
/// in and subscribes through the same API version. Older than the
/// library's [`sfstream_salesforce::DEFAULT_API_VERSION`] on purpose.
pub const DEFAULT_API_VERSION: &str = "37.0";

/// `max_workers` when none is configured (Nameko's default).
pub const DEFAULT_MAX_WORKERS: usize = 10;

/// `HANDLER_TIMEOUT` when none is configured.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(300);

/// `MAX_IN_FLIGHT` when none is configured.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1_000;

/// `RETRIES` when none is configured.
pub const DEFAULT_RETRIES: u32 = 3;

/// `RETRY_DELAY` when none is configured.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(500);

/// `SHUTDOWN_TIMEOUT` when none is configured.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong reading the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not YAML.
    #[error("config is not valid YAML: {0}")]
    Yaml(String),
    /// A key has a bad value, or a required key is missing.
    #[error("config key {key}: {message}")]
    Invalid {
        /// The key path, e.g. `SALESFORCE.SANDBOX`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The key path the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// What a handler failure leads to once its retries are spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnFailure {
    /// Stop the service (exiting non-zero); the channel's marker stays
    /// below the failed event, so a restart delivers it again.
    #[default]
    Stop,
    /// Log the event (channel and replay id) as failed, count it, and move
    /// on: the watermark passes it.
    Skip,
}

/// Where replay markers are kept.
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReplayStoreConfig {
    /// In memory (lost on restart).
    #[default]
    Memory,
    /// Redis, as the Python extension keeps them
    /// (`PUSHTOPIC_REPLAY_ENABLED`, `PUSHTOPIC_REPLAY_REDIS_URI`,
    /// `PUSHTOPIC_REPLAY_TTL`): key `salesforce:replay_id:<channel>`.
    Redis {
        /// The Redis URL.
        url: String,
        /// Expiry of written keys.
        ttl: Option<Duration>,
    },
    /// A store URI (`REPLAY_STORE`): `memory:`, `file:PATH`, `redis://…`.
    Uri(String),
}

impl fmt::Debug for ReplayStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayStoreConfig::Memory => f.write_str("Memory"),
            ReplayStoreConfig::Redis { url, ttl } => f
                .debug_struct("Redis")
                .field("url", &redact_url(url))
                .field("ttl", ttl)
                .finish(),
            ReplayStoreConfig::Uri(uri) => f.debug_tuple("Uri").field(&redact_url(uri)).finish(),
        }
    }
}

/// The `SALESFORCE:` section: login, API version and replay markers.
///
/// ```
/// use sfstream_salesforce::{Credentials, LoginUrl, Transport};
/// use sfstream_service::config::SalesforceConfig;
///
/// let config = SalesforceConfig::new(Credentials::soap("rocky@example.com", "pw", None), LoginUrl::sandbox());
/// assert_eq!(config.api_version, "37.0");
/// assert!(!format!("{config:?}").contains("pw"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SalesforceConfig {
    /// What to log in with (secrets never show in `Debug`).
    pub credentials: Credentials,
    /// Where to log in.
    pub login_url: LoginUrl,
    /// The API version.
    pub api_version: String,
    /// Where replay markers are kept.
    pub replay_store: ReplayStoreConfig,
    /// Where a channel without a stored marker starts.
    pub default_replay: ReplayFrom,
    /// On an expired replay id, resubscribe from this instead of failing.
    pub replay_fallback: Option<ReplayFrom>,
    /// Received events buffered ahead of the handlers.
    pub max_pending: usize,
    /// Per channel, events taken and not yet committed: when a channel
    /// has this many, the taking of events pauses until its watermark
    /// moves.
    pub max_in_flight: usize,
    /// `TRANSPORT`: the API of Change Data Capture and platform event
    /// entrypoints (PushTopics and generic channels are CometD only); an
    /// entrypoint may choose its own.
    pub transport: Transport,
    /// `PUBSUB_URL`: the Pub/Sub API endpoint.
    pub pubsub_url: String,
    /// `FETCH_GAP_RECORDS`: read the records of Change Data Capture gap
    /// events through the REST API before handing them to handlers.
    pub fetch_gap_records: bool,
    /// `BACKFILL`: after a gap (an expired replay id and a fallback), hand
    /// the records changed in its window, read through the REST API, to
    /// the handlers before streaming on.
    pub backfill: bool,
    /// `BACKFILL_MAX_RECORDS`: most records one backfill delivers.
    pub backfill_max_records: usize,
    /// `LIMITS:` (`INTERVAL`, `WARN_AT`): how often the org's limits are
    /// read and when they get a warning; `None` (`INTERVAL: 0`): not read.
    pub limits: Option<LimitsPolicy>,
    /// `MARKER_AGE_WARN_HOURS:` (`RETENTION_24H`, `RETENTION_72H`): the
    /// marker ages that get a warning; `None`: the defaults (18 h, 60 h).
    pub marker_age_warn: Option<WarnAges>,
}

impl SalesforceConfig {
    /// A section with these credentials and the defaults.
    pub fn new(credentials: Credentials, login_url: LoginUrl) -> Self {
        Self {
            credentials,
            login_url,
            api_version: DEFAULT_API_VERSION.to_string(),
            replay_store: ReplayStoreConfig::Memory,
            default_replay: ReplayFrom::New,
            replay_fallback: None,
            max_pending: DEFAULT_MAX_PENDING,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            transport: Transport::CometD,
            pubsub_url: sfstream_salesforce::pubsub::DEFAULT_URL.to_string(),
            fetch_gap_records: false,
            backfill: false,
            backfill_max_records: sfstream_salesforce::recovery::DEFAULT_BACKFILL_MAX_RECORDS,
            limits: Some(LimitsPolicy::default()),
            marker_age_warn: None,
        }
    }
}

/// The `CLUSTER:` section.
///
/// ```
/// use std::time::Duration;
/// use sfstream_service::config::Config;
///
/// let yaml = "CLUSTER:\n  REDIS_URI: redis://127.0.0.1:6379/0\n  LEASE_TTL: 5\n";
/// let config = Config::from_yaml_with_env(yaml, |_| None)?;
/// let cluster = config.cluster.expect("cluster mode");
/// assert_eq!(cluster.lease_ttl, Duration::from_secs(5));
/// # Ok::<(), sfstream_service::config::ConfigError>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// `REDIS_URI`: where the leases (and, unless `REPLAY_STORE` names
    /// another Redis, the replay markers) live.
    pub redis_uri: String,
    /// `LEASE_TTL` (seconds): how long a vanished leader blocks its
    /// channels; renewed every third of it.
    pub lease_ttl: Duration,
    /// `REPLICA_ID`: this replica's name in the leases (default: host,
    /// process id and a random suffix).
    pub replica_id: String,
    /// How handlers are spread over the replicas through RabbitMQ work
    /// queues; `None` (`WORK_QUEUES: false`, or no `AMQP_URI`): each
    /// channel's events are handled by the replica that streams it.
    pub work_queues: Option<WorkQueueConfig>,
}

/// `CLUSTER:`'s work queue keys: the replica that streams a channel
/// publishes each event to a durable RabbitMQ queue per entrypoint (with
/// publisher confirms, moving the replay marker once RabbitMQ confirmed),
/// and every replica consumes those queues.
///
/// ```
/// use sfstream_service::config::Config;
/// use sfstream_cluster::queue::Ordering;
///
/// let yaml = "AMQP_URI: 'pyamqp://guest:guest@localhost'\nCLUSTER:\n  REDIS_URI: redis://127.0.0.1:6379/0\n  ORDERING: by_record\n  PARTITIONS: 4\n";
/// let config = Config::from_yaml_with_env(yaml, |_| None)?;
/// let queues = config.cluster.and_then(|c| c.work_queues).expect("on with AMQP_URI");
/// assert_eq!(queues.ordering, Ordering::ByRecord { partitions: 4 });
/// # Ok::<(), sfstream_service::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkQueueConfig {
    /// `ORDERING`: `none` (default: every replica handles at once),
    /// `strict` (one handler at a time in the cluster, in order) or
    /// `by_record` (in order per record, over `PARTITIONS` queues, default
    /// 8).
    pub ordering: sfstream_cluster::queue::Ordering,
    /// `PREFETCH`: messages a replica takes at once per queue (default
    /// `max_workers`); with `ORDERING: none` also its handlers at once per
    /// entrypoint.
    pub prefetch: u16,
}

/// `CLUSTER.PARTITIONS` when `ORDERING: by_record` gives none.
pub const DEFAULT_PARTITIONS: u16 = 8;

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_uri", &redact_url(&self.redis_uri))
            .field("lease_ttl", &self.lease_ttl)
            .field("replica_id", &self.replica_id)
            .field("work_queues", &self.work_queues)
            .finish()
    }
}

/// `LEASE_TTL` when none is configured.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);

/// A service's configuration.
///
/// ```
/// use sfstream_service::config::{Config, OnFailure};
///
/// let yaml = r#"
/// AMQP_URI: 'pyamqp://guest:guest@localhost'
/// SALESFORCE:
///     USERNAME: ${SALESFORCE_USERNAME:rocky@example.com}
///     PASSWORD: ${SALESFORCE_PASSWORD:secret}
///     SECURITY_TOKEN: ${SALESFORCE_SECURITY_TOKEN:token}
///     SANDBOX: ${SANDBOX:False}
///     ON_FAILURE: skip
/// "#;
/// let config = Config::from_yaml_with_env(yaml, |_| None)?;
/// assert_eq!(config.max_workers, 10);
/// assert_eq!(config.on_failure, OnFailure::Skip);
/// let salesforce = config.salesforce.as_ref().expect("a SALESFORCE section");
/// assert_eq!(salesforce.login_url.as_str(), "https://login.salesforce.com");
/// assert!(!format!("{config:?}").contains("secret"));
/// # Ok::<(), sfstream_service::config::ConfigError>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// `AMQP_URI`, for the Nameko entrypoints.
    pub amqp_uri: Option<String>,
    /// `max_workers`: events (and, later, AMQP messages) handled at once.
    pub max_workers: usize,
    /// The `SALESFORCE:` section, when present.
    pub salesforce: Option<SalesforceConfig>,
    /// Attempts after the first failure of a handler.
    pub retries: u32,
    /// The first retry's delay; it doubles each attempt (up to 30 s).
    pub retry_delay: Duration,
    /// What happens once the retries are spent.
    pub on_failure: OnFailure,
    /// How long a stopping service waits for in-flight handlers.
    pub shutdown_timeout: Duration,
    /// How long one handler call may run before it is cancelled and
    /// counts as a retryable failure.
    pub handler_timeout: Duration,
    /// The port of `/metrics` and `/health` (0: any free port).
    pub metrics_port: Option<u16>,
    /// The `CLUSTER:` section: replicas share the channels (one streamer
    /// per channel, chosen by a lease in Redis). `None`: this process
    /// streams every channel.
    pub cluster: Option<ClusterConfig>,
    /// The whole document after substitution, for other entrypoint kinds.
    pub raw: Value,
    /// Unknown keys that were ignored.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            amqp_uri: None,
            max_workers: DEFAULT_MAX_WORKERS,
            salesforce: None,
            retries: DEFAULT_RETRIES,
            retry_delay: DEFAULT_RETRY_DELAY,
            on_failure: OnFailure::Stop,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            metrics_port: None,
            cluster: None,
            raw: Value::Null,
            warnings: Vec::new(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field(
                "amqp_uri",
                &self.amqp_uri.as_deref().map(sfstream_nameko::redact_uri),
            )
            .field("max_workers", &self.max_workers)
            .field("salesforce", &self.salesforce)
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .field("on_failure", &self.on_failure)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("handler_timeout", &self.handler_timeout)
            .field("metrics_port", &self.metrics_port)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads a YAML file, substituting `${VAR}` from the environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file or the key that is wrong.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Reads YAML text, substituting `${VAR}` from the environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the key that is wrong.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_with_env(text, |name| std::env::var(name).ok())
    }

    /// Reads YAML text, substituting `${VAR}` with `env(VAR)`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the key that is wrong.
    pub fn from_yaml_with_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let document: Value =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        let document = match document {
            Value::Null => Value::Mapping(Default::default()),
            other => other,
        };
        let document = substitute::substitute(document, &env, &mut Vec::new())?;
        if !document.is_mapping() {
            return Err(ConfigError::invalid(
                ".",
                "the config must be a mapping of keys",
            ));
        }
        let raw = schema::read(&document)?;
        convert::build(raw, document)
    }
}

/// The environment a test or tool passes instead of the process's:
/// `[("NAME", "value"), …]` as a lookup function.
///
/// ```
/// use sfstream_service::config::{env_from, Config};
///
/// let env = env_from([("PORT", "9100")]);
/// let config = Config::from_yaml_with_env("METRICS_PORT: ${PORT:8080}", env)?;
/// assert_eq!(config.metrics_port, Some(9100));
/// # Ok::<(), sfstream_service::config::ConfigError>(())
/// ```
pub fn env_from<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    move |name| map.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_strings() {
        let config = Config::from_yaml_with_env(
            "SALESFORCE:\n  USERNAME: u\n  PASSWORD: 123456\n  SANDBOX: true\n  API_VERSION: 37.0\n",
            |_| None,
        )
        .expect("config");
        let sf = config.salesforce.expect("section");
        assert_eq!(sf.api_version, "37.0");
        let Credentials::Soap { password, .. } = sf.credentials else {
            panic!("soap")
        };
        assert_eq!(password.expose(), "123456");
    }

    #[test]
    fn debug_never_shows_the_amqp_password() {
        // A password with an unescaped '/' (or '#', '?') must not leak either.
        for uri in [
            "pyamqp://guest:topsecret@localhost/",
            "pyamqp://guest:top/secret@localhost/",
            "pyamqp://guest:top#secret@localhost/",
        ] {
            let config = Config::from_yaml_with_env(&format!("AMQP_URI: '{uri}'"), |_| None)
                .expect("config");
            let shown = format!("{config:?}");
            assert!(!shown.contains("secret"), "{shown}");
            assert!(shown.contains("guest:***@localhost"), "{shown}");
        }
    }
}
