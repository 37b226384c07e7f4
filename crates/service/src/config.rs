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
//! | `USERNAME`, `PASSWORD`, `SECURITY_TOKEN` | SOAP login (the extension's), or the OAuth password flow with `CONSUMER_KEY`/`CONSUMER_SECRET` | |
//! | `SANDBOX` | `True`: `test.salesforce.com`, `False`: `login.salesforce.com`; required unless `LOGIN_URL` is set | |
//! | `API_VERSION` | API version | `37.0` (the extension's) |
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
//! | `MAX_PENDING` | received events buffered ahead of the handlers | 1000 |
//! | `MAX_IN_FLIGHT` | per channel, events taken and not yet committed (in flight, or done behind an unfinished earlier one); when full, the taking of events pauses | 1000 |
//!
//! Delivery and operations keys, read at the top level or under
//! `SALESFORCE:` (where they win): `RETRIES` (3), `RETRY_DELAY` (first
//! backoff, seconds, 0.5), `ON_FAILURE` (`stop` or `skip`; `stop`),
//! `SHUTDOWN_TIMEOUT` (seconds, 30), `HANDLER_TIMEOUT` (seconds, 300:
//! a handler call still running then is cancelled and counts as a
//! retryable failure), `METRICS_PORT` (none: no HTTP server).
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_yaml_ng::Value;
use sfstream_salesforce::replay::{ReplayFrom, redact_url};
use sfstream_salesforce::{Credentials, LoginUrl, Secret};

/// The API version of the Python extension, used when none is configured.
pub const DEFAULT_API_VERSION: &str = "37.0";

/// `max_workers` when none is configured (Nameko's default).
pub const DEFAULT_MAX_WORKERS: usize = 10;

/// `HANDLER_TIMEOUT` when none is configured.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(300);

/// `MAX_IN_FLIGHT` when none is configured.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1_000;

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
/// use sfstream_salesforce::{Credentials, LoginUrl};
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
            max_pending: 1_000,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

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
            retries: 3,
            retry_delay: Duration::from_millis(500),
            on_failure: OnFailure::Stop,
            shutdown_timeout: Duration::from_secs(30),
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            metrics_port: None,
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
        let document = substitute(document, &env, &mut Vec::new())?;
        if !document.is_mapping() {
            return Err(ConfigError::invalid(
                ".",
                "the config must be a mapping of keys",
            ));
        }
        let parsed: RawConfig =
            serde_path_to_error::deserialize(document.clone()).map_err(|e| {
                let key = e.path().to_string();
                ConfigError::invalid(key, e.into_inner().to_string())
            })?;
        let mut warnings = Vec::new();
        if let Some(Value::Mapping(section)) = document.get("SALESFORCE") {
            for key in section.keys() {
                let name = key.as_str().unwrap_or_default();
                if !SALESFORCE_KEYS.contains(&name) {
                    let warning = format!("config key SALESFORCE.{name} is unknown and ignored");
                    tracing::warn!("{warning}");
                    warnings.push(warning);
                }
            }
        }
        build(parsed, document, warnings)
    }
}

const SALESFORCE_KEYS: &[&str] = &[
    "USERNAME",
    "PASSWORD",
    "SECURITY_TOKEN",
    "SANDBOX",
    "API_VERSION",
    "PUSHTOPIC_REPLAY_ENABLED",
    "PUSHTOPIC_REPLAY_REDIS_URI",
    "PUSHTOPIC_REPLAY_TTL",
    "LOGIN_URL",
    "CONSUMER_KEY",
    "CONSUMER_SECRET",
    "REFRESH_TOKEN",
    "JWT_KEY_FILE",
    "CLIENT_CREDENTIALS",
    "ACCESS_TOKEN",
    "INSTANCE_URL",
    "REPLAY_STORE",
    "DEFAULT_REPLAY",
    "REPLAY_FALLBACK",
    "MAX_PENDING",
    "MAX_IN_FLIGHT",
    "RETRIES",
    "RETRY_DELAY",
    "ON_FAILURE",
    "SHUTDOWN_TIMEOUT",
    "HANDLER_TIMEOUT",
    "METRICS_PORT",
];

// ---------------------------------------------------------------------------
// Substitution

/// Replaces `${VAR}` / `${VAR:default}` in every string value.
fn substitute(
    value: Value,
    env: &dyn Fn(&str) -> Option<String>,
    path: &mut Vec<String>,
) -> Result<Value, ConfigError> {
    Ok(match value {
        Value::String(text) if text.contains("${") => {
            let replaced = replace_vars(&text, env)
                .map_err(|message| ConfigError::invalid(key_path(path), message))?;
            reread(replaced)
        }
        Value::Mapping(map) => {
            let mut out = serde_yaml_ng::Mapping::new();
            for (key, value) in map {
                path.push(key_name(&key));
                let value = substitute(value, env, path)?;
                path.pop();
                out.insert(key, value);
            }
            Value::Mapping(out)
        }
        Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                path.push(i.to_string());
                out.push(substitute(item, env, path)?);
                path.pop();
            }
            Value::Sequence(out)
        }
        Value::Tagged(mut tagged) => {
            tagged.value = substitute(tagged.value, env, path)?;
            Value::Tagged(tagged)
        }
        other => other,
    })
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

fn key_path(path: &[String]) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        path.join(".")
    }
}

/// The text with every `${VAR}` / `${VAR:default}` replaced.
fn replace_vars(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            // Not quoting the value: it may hold a password (the error names the key).
            .ok_or_else(|| "unterminated ${...}".to_owned())?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "`${{{inner}}}` does not name an environment variable (letters, digits, _)"
            ));
        }
        match env(name) {
            Some(value) => out.push_str(&value),
            None => out.push_str(default.unwrap_or("")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads substituted text as YAML when it is a boolean, number or null
/// (or a quoted string); otherwise keeps the text as is.
fn reread(text: String) -> Value {
    if text.is_empty() {
        return Value::String(text);
    }
    match serde_yaml_ng::from_str::<Value>(&text) {
        Ok(value @ (Value::Bool(_) | Value::Number(_) | Value::Null)) => value,
        Ok(value @ Value::String(_)) if text.trim_start().starts_with(['\'', '"']) => value,
        _ => Value::String(text),
    }
}

// ---------------------------------------------------------------------------
// Typed reading

#[derive(Deserialize)]
struct RawConfig {
    #[serde(rename = "AMQP_URI", default, deserialize_with = "opt_string")]
    amqp_uri: Option<String>,
    #[serde(default)]
    max_workers: Option<i64>,
    #[serde(rename = "SALESFORCE", default)]
    salesforce: Option<RawSalesforce>,
    #[serde(rename = "RETRIES", default)]
    retries: Option<u32>,
    #[serde(rename = "RETRY_DELAY", default)]
    retry_delay: Option<f64>,
    #[serde(rename = "ON_FAILURE", default, deserialize_with = "opt_string")]
    on_failure: Option<String>,
    #[serde(rename = "SHUTDOWN_TIMEOUT", default)]
    shutdown_timeout: Option<f64>,
    #[serde(rename = "HANDLER_TIMEOUT", default)]
    handler_timeout: Option<f64>,
    #[serde(rename = "METRICS_PORT", default)]
    metrics_port: Option<u16>,
}

#[derive(Default)]
struct RawOps {
    retries: Option<u32>,
    retry_delay: Option<f64>,
    on_failure: Option<String>,
    shutdown_timeout: Option<f64>,
    handler_timeout: Option<f64>,
    metrics_port: Option<u16>,
}

#[derive(Deserialize, Default)]
struct RawSalesforce {
    #[serde(rename = "USERNAME", default, deserialize_with = "opt_string")]
    username: Option<String>,
    #[serde(rename = "PASSWORD", default, deserialize_with = "opt_string")]
    password: Option<String>,
    #[serde(rename = "SECURITY_TOKEN", default, deserialize_with = "opt_string")]
    security_token: Option<String>,
    #[serde(rename = "SANDBOX", default)]
    sandbox: Option<bool>,
    #[serde(rename = "API_VERSION", default, deserialize_with = "opt_string")]
    api_version: Option<String>,
    #[serde(rename = "PUSHTOPIC_REPLAY_ENABLED", default)]
    replay_enabled: Option<bool>,
    #[serde(
        rename = "PUSHTOPIC_REPLAY_REDIS_URI",
        default,
        deserialize_with = "opt_string"
    )]
    replay_redis_uri: Option<String>,
    #[serde(rename = "PUSHTOPIC_REPLAY_TTL", default)]
    replay_ttl: Option<u64>,
    #[serde(rename = "LOGIN_URL", default, deserialize_with = "opt_string")]
    login_url: Option<String>,
    #[serde(rename = "CONSUMER_KEY", default, deserialize_with = "opt_string")]
    consumer_key: Option<String>,
    #[serde(rename = "CONSUMER_SECRET", default, deserialize_with = "opt_string")]
    consumer_secret: Option<String>,
    #[serde(rename = "REFRESH_TOKEN", default, deserialize_with = "opt_string")]
    refresh_token: Option<String>,
    #[serde(rename = "JWT_KEY_FILE", default, deserialize_with = "opt_string")]
    jwt_key_file: Option<String>,
    #[serde(rename = "CLIENT_CREDENTIALS", default)]
    client_credentials: Option<bool>,
    #[serde(rename = "ACCESS_TOKEN", default, deserialize_with = "opt_string")]
    access_token: Option<String>,
    #[serde(rename = "INSTANCE_URL", default, deserialize_with = "opt_string")]
    instance_url: Option<String>,
    #[serde(rename = "REPLAY_STORE", default, deserialize_with = "opt_string")]
    replay_store: Option<String>,
    #[serde(rename = "DEFAULT_REPLAY", default, deserialize_with = "opt_string")]
    default_replay: Option<String>,
    #[serde(rename = "REPLAY_FALLBACK", default, deserialize_with = "opt_string")]
    replay_fallback: Option<String>,
    #[serde(rename = "MAX_PENDING", default)]
    max_pending: Option<usize>,
    #[serde(rename = "MAX_IN_FLIGHT", default)]
    max_in_flight: Option<usize>,
    #[serde(rename = "RETRIES", default)]
    retries: Option<u32>,
    #[serde(rename = "RETRY_DELAY", default)]
    retry_delay: Option<f64>,
    #[serde(rename = "ON_FAILURE", default, deserialize_with = "opt_string")]
    on_failure: Option<String>,
    #[serde(rename = "SHUTDOWN_TIMEOUT", default)]
    shutdown_timeout: Option<f64>,
    #[serde(rename = "HANDLER_TIMEOUT", default)]
    handler_timeout: Option<f64>,
    #[serde(rename = "METRICS_PORT", default)]
    metrics_port: Option<u16>,
}

/// A string, or a number or boolean written as its text (`API_VERSION:
/// 37.0`, a numeric password); null is `None`.
fn opt_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Bool(b)) => Ok(Some(if b { "True" } else { "False" }.to_string())),
        Some(Value::Number(n)) => Ok(Some(number_text(&n))),
        Some(Value::Mapping(_)) => Err(serde::de::Error::custom(
            "expected a string, found a mapping",
        )),
        Some(Value::Sequence(_)) => Err(serde::de::Error::custom(
            "expected a string, found a sequence",
        )),
        Some(Value::Tagged(_)) => Err(serde::de::Error::custom(
            "expected a string, found a tagged value",
        )),
    }
}

fn number_text(n: &serde_yaml_ng::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.1}"),
        _ => n.to_string(),
    }
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn seconds(key: &str, value: f64) -> Result<Duration, ConfigError> {
    if (0.0..1e9).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{value} is not a number of seconds (0 or more)"),
        ))
    }
}

fn build(raw: RawConfig, document: Value, warnings: Vec<String>) -> Result<Config, ConfigError> {
    let mut config = Config {
        amqp_uri: raw.amqp_uri.filter(|s| !s.trim().is_empty()),
        raw: document,
        warnings,
        ..Config::default()
    };
    if let Some(workers) = raw.max_workers {
        if workers < 1 {
            return Err(ConfigError::invalid(
                "max_workers",
                format!("{workers} must be at least 1"),
            ));
        }
        config.max_workers = usize::try_from(workers).unwrap_or(usize::MAX);
    }
    let section_ops = raw
        .salesforce
        .as_ref()
        .map_or_else(RawOps::default, |s| RawOps {
            retries: s.retries,
            retry_delay: s.retry_delay,
            on_failure: s.on_failure.clone(),
            shutdown_timeout: s.shutdown_timeout,
            handler_timeout: s.handler_timeout,
            metrics_port: s.metrics_port,
        });
    let section_ops = &section_ops;
    let top = &RawOps {
        retries: raw.retries,
        retry_delay: raw.retry_delay,
        on_failure: raw.on_failure.clone(),
        shutdown_timeout: raw.shutdown_timeout,
        handler_timeout: raw.handler_timeout,
        metrics_port: raw.metrics_port,
    };
    // SALESFORCE: wins over the top level.
    let pick = |section: bool| if section { "SALESFORCE." } else { "" };
    if let Some(retries) = section_ops.retries.or(top.retries) {
        config.retries = retries;
    }
    if let Some(delay) = section_ops.retry_delay.or(top.retry_delay) {
        let key = format!("{}RETRY_DELAY", pick(section_ops.retry_delay.is_some()));
        config.retry_delay = seconds(&key, delay)?;
    }
    if let Some(timeout) = section_ops.shutdown_timeout.or(top.shutdown_timeout) {
        let key = format!(
            "{}SHUTDOWN_TIMEOUT",
            pick(section_ops.shutdown_timeout.is_some())
        );
        config.shutdown_timeout = seconds(&key, timeout)?;
    }
    if let Some(timeout) = section_ops.handler_timeout.or(top.handler_timeout) {
        let key = format!(
            "{}HANDLER_TIMEOUT",
            pick(section_ops.handler_timeout.is_some())
        );
        // Zero would fail every call: a timeout is always in force.
        if timeout <= 0.0 {
            return Err(ConfigError::invalid(key, "must be more than 0 seconds"));
        }
        config.handler_timeout = seconds(&key, timeout)?;
    }
    config.metrics_port = section_ops.metrics_port.or(top.metrics_port);
    let on_failure = nonempty(&section_ops.on_failure)
        .map(|v| (v, true))
        .or(nonempty(&top.on_failure).map(|v| (v, false)));
    if let Some((value, in_section)) = on_failure {
        config.on_failure = match value.to_ascii_lowercase().as_str() {
            "stop" => OnFailure::Stop,
            "skip" => OnFailure::Skip,
            _ => {
                return Err(ConfigError::invalid(
                    format!("{}ON_FAILURE", pick(in_section)),
                    format!("`{value}` is not one of stop, skip"),
                ));
            }
        };
    }
    if let Some(section) = raw.salesforce {
        config.salesforce = Some(salesforce(section)?);
    }
    Ok(config)
}

fn salesforce(raw: RawSalesforce) -> Result<SalesforceConfig, ConfigError> {
    let key = |name: &str| format!("SALESFORCE.{name}");
    let secret = |value: &Option<String>| nonempty(value).map(Secret::new);
    let require = |value: &Option<String>, name: &str, why: &str| {
        nonempty(value)
            .map(str::to_string)
            .ok_or_else(|| ConfigError::invalid(key(name), format!("missing or empty ({why})")))
    };

    let credentials = if let Some(token) = nonempty(&raw.access_token) {
        let instance = require(&raw.instance_url, "INSTANCE_URL", "ACCESS_TOKEN needs it")?;
        Credentials::access_token(token, instance)
    } else if let Some(file) = nonempty(&raw.jwt_key_file) {
        let username = require(&raw.username, "USERNAME", "the JWT bearer flow needs it")?;
        let consumer_key = require(
            &raw.consumer_key,
            "CONSUMER_KEY",
            "the JWT bearer flow needs it",
        )?;
        let pem = std::fs::read_to_string(file).map_err(|e| {
            ConfigError::invalid(key("JWT_KEY_FILE"), format!("cannot read {file}: {e}"))
        })?;
        Credentials::jwt_bearer(username, consumer_key, pem)
    } else if let Some(token) = nonempty(&raw.refresh_token) {
        let consumer_key = require(
            &raw.consumer_key,
            "CONSUMER_KEY",
            "the refresh-token flow needs it",
        )?;
        Credentials::refresh_token(consumer_key, secret(&raw.consumer_secret), token)
    } else if raw.client_credentials == Some(true) {
        let consumer_key = require(
            &raw.consumer_key,
            "CONSUMER_KEY",
            "the client-credentials flow needs it",
        )?;
        let consumer_secret = require(
            &raw.consumer_secret,
            "CONSUMER_SECRET",
            "the client-credentials flow needs it",
        )?;
        Credentials::client_credentials(consumer_key, consumer_secret)
    } else if raw.username.is_some() || raw.password.is_some() {
        let username = require(&raw.username, "USERNAME", "a login with PASSWORD needs it")?;
        let password = require(&raw.password, "PASSWORD", "a login with USERNAME needs it")?;
        let token = secret(&raw.security_token);
        match nonempty(&raw.consumer_key) {
            Some(consumer_key) => {
                let consumer_secret = require(
                    &raw.consumer_secret,
                    "CONSUMER_SECRET",
                    "the OAuth password flow needs it with CONSUMER_KEY",
                )?;
                Credentials::password(username, password, token, consumer_key, consumer_secret)
            }
            None => Credentials::soap(username, password, token),
        }
    } else {
        return Err(ConfigError::invalid(
            "SALESFORCE",
            "no login given: set USERNAME, PASSWORD and SECURITY_TOKEN (SOAP, as the Python extension), \
             or CONSUMER_KEY with CONSUMER_SECRET, REFRESH_TOKEN, JWT_KEY_FILE or CLIENT_CREDENTIALS, \
             or ACCESS_TOKEN with INSTANCE_URL",
        ));
    };

    let login_url = match (nonempty(&raw.login_url), raw.sandbox) {
        (Some(url), _) => LoginUrl::parse(url)
            .map_err(|e| ConfigError::invalid(key("LOGIN_URL"), e.to_string()))?,
        (None, Some(true)) => LoginUrl::sandbox(),
        (None, Some(false)) => LoginUrl::production(),
        (None, None) if matches!(credentials, Credentials::AccessToken { .. }) => {
            LoginUrl::production()
        }
        (None, None) => {
            return Err(ConfigError::invalid(
                key("SANDBOX"),
                "missing: set True (test.salesforce.com) or False (login.salesforce.com), or set LOGIN_URL",
            ));
        }
    };

    let api_version = nonempty(&raw.api_version).unwrap_or(DEFAULT_API_VERSION);
    let api_version = api_version.strip_prefix(['v', 'V']).unwrap_or(api_version);
    let valid_version = api_version.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
    });
    if !valid_version {
        return Err(ConfigError::invalid(
            key("API_VERSION"),
            format!("`{api_version}` is not an API version like 62.0"),
        ));
    }

    let replay_store = match (
        raw.replay_enabled.unwrap_or(false),
        nonempty(&raw.replay_store),
    ) {
        (true, Some(_)) => {
            return Err(ConfigError::invalid(
                key("REPLAY_STORE"),
                "give either REPLAY_STORE or PUSHTOPIC_REPLAY_ENABLED, not both",
            ));
        }
        (true, None) => {
            let url = require(
                &raw.replay_redis_uri,
                "PUSHTOPIC_REPLAY_REDIS_URI",
                "PUSHTOPIC_REPLAY_ENABLED is True",
            )?;
            if raw.replay_ttl == Some(0) {
                return Err(ConfigError::invalid(
                    key("PUSHTOPIC_REPLAY_TTL"),
                    "must be a positive number of seconds",
                ));
            }
            ReplayStoreConfig::Redis {
                url,
                ttl: raw.replay_ttl.map(Duration::from_secs),
            }
        }
        (false, Some(uri)) => ReplayStoreConfig::Uri(uri.to_string()),
        (false, None) => ReplayStoreConfig::Memory,
    };

    let default_replay = match nonempty(&raw.default_replay) {
        Some(text) => text
            .parse::<ReplayFrom>()
            .map_err(|e| ConfigError::invalid(key("DEFAULT_REPLAY"), e.to_string()))?,
        None => ReplayFrom::New,
    };
    let replay_fallback = match nonempty(&raw.replay_fallback) {
        Some(text) => match text.parse::<ReplayFrom>() {
            Ok(from @ (ReplayFrom::New | ReplayFrom::All)) => Some(from),
            _ => {
                return Err(ConfigError::invalid(
                    key("REPLAY_FALLBACK"),
                    format!("`{text}` is not one of NEW, ALL"),
                ));
            }
        },
        None => None,
    };
    let max_pending = match raw.max_pending {
        Some(0) => {
            return Err(ConfigError::invalid(
                key("MAX_PENDING"),
                "must be at least 1",
            ));
        }
        Some(n) => n,
        None => 1_000,
    };
    let max_in_flight = match raw.max_in_flight {
        Some(0) => {
            return Err(ConfigError::invalid(
                key("MAX_IN_FLIGHT"),
                "must be at least 1",
            ));
        }
        Some(n) => n,
        None => DEFAULT_MAX_IN_FLIGHT,
    };
    Ok(SalesforceConfig {
        credentials,
        login_url,
        api_version: api_version.to_string(),
        replay_store,
        default_replay,
        replay_fallback,
        max_pending,
        max_in_flight,
    })
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

    fn subst(text: &str) -> Value {
        let env = env_from([
            ("SET", "value"),
            ("EMPTY", ""),
            ("NUM", "42"),
            ("T", "true"),
        ]);
        substitute(Value::String(text.into()), &env, &mut Vec::new()).expect("substitutes")
    }

    #[test]
    fn substitution_rules() {
        assert_eq!(subst("${SET}"), Value::String("value".into()));
        assert_eq!(subst("${MISSING}"), Value::String(String::new()));
        assert_eq!(subst("${MISSING:false}"), Value::Bool(false));
        assert_eq!(subst("${MISSING:False}"), Value::Bool(false));
        assert_eq!(subst("${NUM}"), Value::Number(42.into()));
        assert_eq!(subst("${T:false}"), Value::Bool(true));
        assert_eq!(subst("${EMPTY:default}"), Value::String(String::new()));
        assert_eq!(
            subst("redis://${MISSING:localhost}:6379/11"),
            Value::String("redis://localhost:6379/11".into())
        );
        assert_eq!(
            subst("${MISSING:redis://h:1/2}"),
            Value::String("redis://h:1/2".into())
        );
        assert_eq!(subst("${MISSING:a #b: c}"), Value::String("a #b: c".into()));
        assert_eq!(subst("${MISSING:'123'}"), Value::String("123".into()));
        assert_eq!(subst("${MISSING:~}"), Value::Null);
    }

    #[test]
    fn bad_substitutions_name_the_key() {
        let err = Config::from_yaml_with_env("SALESFORCE:\n  USERNAME: ${oops", |_| None)
            .expect_err("unterminated");
        assert_eq!(err.key(), Some("SALESFORCE.USERNAME"));
        let err = Config::from_yaml_with_env("A: ${1X}", |_| None).expect_err("bad name");
        assert_eq!(err.key(), Some("A"));
    }

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
    fn substitution_errors_never_quote_the_value() {
        let err = Config::from_yaml_with_env("AMQP_URI: 'pyamqp://guest:s3cret@${HOST'", |_| None)
            .expect_err("unterminated");
        assert_eq!(err.key(), Some("AMQP_URI"));
        assert!(!err.to_string().contains("s3cret"), "{err}");
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
