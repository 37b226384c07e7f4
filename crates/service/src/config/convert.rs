//! Checking the raw keys and turning them into the public types.

use std::path::PathBuf;
use std::time::Duration;

use serde_yaml_ng::Value;
use sfstream_salesforce::auth::{Credentials, LoginParts, parse_api_version};
use sfstream_salesforce::limits_watch::LimitsPolicy;
use sfstream_salesforce::replay::{ReplayFrom, WarnAges};
use sfstream_salesforce::{LoginUrl, Secret, Transport};

use super::schema::{Raw, RawCluster, RawLimits, RawSalesforce, RawWarnHours, Text};
use super::{
    ClusterConfig, Config, ConfigError, DEFAULT_API_VERSION, DEFAULT_LEASE_TTL,
    DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PENDING, DEFAULT_PARTITIONS, OnFailure, ReplayStoreConfig,
    SalesforceConfig, WorkQueueConfig,
};
use sfstream_salesforce::replay::redact_url;

/// A given text, trimmed; `None` when blank.
fn nonempty(value: &Option<Text>) -> Option<&str> {
    value
        .as_ref()
        .map(|text| text.0.trim())
        .filter(|s| !s.is_empty())
}

/// A given secret, as is (the login policy trims and checks it).
fn secret(value: Option<Text>) -> Option<Secret> {
    value.map(|text| Secret::new(text.0))
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

/// An operations key's value, `SALESFORCE:` winning over the top level,
/// with the key path it came from.
fn either<T>(section: Option<T>, top: Option<T>, name: &str) -> Option<(T, String)> {
    match (section, top) {
        (Some(value), _) => Some((value, format!("SALESFORCE.{name}"))),
        (None, Some(value)) => Some((value, name.to_string())),
        (None, None) => None,
    }
}

/// A number of at least 1, or the default when not given.
fn at_least_one(value: Option<usize>, key: &str, default: usize) -> Result<usize, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::invalid(key, "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

pub(super) fn build(raw: Raw, document: Value) -> Result<Config, ConfigError> {
    let Raw {
        config: top,
        ops,
        section_ops: section,
        warnings,
    } = raw;
    let mut config = Config {
        amqp_uri: nonempty(&top.amqp_uri).map(str::to_string),
        raw: document,
        warnings,
        ..Config::default()
    };
    if let Some(workers) = top.max_workers {
        if workers < 1 {
            return Err(ConfigError::invalid(
                "max_workers",
                format!("{workers} must be at least 1"),
            ));
        }
        config.max_workers = usize::try_from(workers).unwrap_or(usize::MAX);
    }
    if let Some((retries, _)) = either(section.retries, ops.retries, "RETRIES") {
        config.retries = retries;
    }
    if let Some((delay, key)) = either(section.retry_delay, ops.retry_delay, "RETRY_DELAY") {
        config.retry_delay = seconds(&key, delay)?;
    }
    if let Some((timeout, key)) = either(
        section.shutdown_timeout,
        ops.shutdown_timeout,
        "SHUTDOWN_TIMEOUT",
    ) {
        config.shutdown_timeout = seconds(&key, timeout)?;
    }
    if let Some((timeout, key)) = either(
        section.handler_timeout,
        ops.handler_timeout,
        "HANDLER_TIMEOUT",
    ) {
        // Zero would fail every call: a timeout is always in force.
        if timeout <= 0.0 {
            return Err(ConfigError::invalid(key, "must be more than 0 seconds"));
        }
        config.handler_timeout = seconds(&key, timeout)?;
    }
    config.metrics_port =
        either(section.metrics_port, ops.metrics_port, "METRICS_PORT").map(|(port, _)| port);
    let on_failure = either(
        nonempty(&section.on_failure),
        nonempty(&ops.on_failure),
        "ON_FAILURE",
    );
    if let Some((value, key)) = on_failure {
        config.on_failure = match value.to_ascii_lowercase().as_str() {
            "stop" => OnFailure::Stop,
            "skip" => OnFailure::Skip,
            _ => {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{value}` is not one of stop, skip"),
                ));
            }
        };
    }
    if let Some(section) = top.salesforce {
        config.salesforce = Some(salesforce(section)?);
    }
    if let Some(section) = top.cluster {
        let amqp = config.amqp_uri.is_some();
        config.cluster = Some(cluster(section, amqp, config.max_workers)?);
    }
    Ok(config)
}

fn cluster(raw: RawCluster, amqp: bool, max_workers: usize) -> Result<ClusterConfig, ConfigError> {
    let redis_uri = nonempty(&raw.redis_uri)
        .ok_or_else(|| ConfigError::invalid("CLUSTER.REDIS_URI", "missing or empty"))?
        .to_string();
    if !(redis_uri.starts_with("redis://") || redis_uri.starts_with("rediss://")) {
        return Err(ConfigError::invalid(
            "CLUSTER.REDIS_URI",
            format!("`{}` is not a redis:// URI", redact_url(&redis_uri)),
        ));
    }
    let lease_ttl = match raw.lease_ttl {
        Some(ttl) if ttl >= 1.0 => seconds("CLUSTER.LEASE_TTL", ttl)?,
        Some(ttl) => {
            return Err(ConfigError::invalid(
                "CLUSTER.LEASE_TTL",
                format!("{ttl} is too short: at least 1 second"),
            ));
        }
        None => DEFAULT_LEASE_TTL,
    };
    let replica_id = match nonempty(&raw.replica_id) {
        Some(id) if id.contains(char::is_whitespace) => {
            return Err(ConfigError::invalid(
                "CLUSTER.REPLICA_ID",
                "must have no spaces",
            ));
        }
        Some(id) => id.to_string(),
        None => default_replica_id(),
    };
    let work_queues = work_queues(&raw, amqp, max_workers)?;
    Ok(ClusterConfig {
        redis_uri,
        lease_ttl,
        replica_id,
        work_queues,
    })
}

/// `CLUSTER.WORK_QUEUES` (default: on when `AMQP_URI` is set), `ORDERING`,
/// `PARTITIONS`, `PREFETCH`.
fn work_queues(
    raw: &RawCluster,
    amqp: bool,
    max_workers: usize,
) -> Result<Option<WorkQueueConfig>, ConfigError> {
    use sfstream_cluster::queue::{MAX_PARTITIONS, Ordering};
    match (raw.work_queues, amqp) {
        (Some(false), _) | (None, false) => return Ok(None),
        (Some(true), false) => {
            return Err(ConfigError::invalid(
                "CLUSTER.WORK_QUEUES",
                "the work queues are on RabbitMQ: set AMQP_URI, or WORK_QUEUES: false to run handlers on the replica that streams",
            ));
        }
        _ => {}
    }
    let ordering = match nonempty(&raw.ordering)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("none") => Ordering::None,
        Some("strict") => Ordering::Strict,
        Some("by_record") => Ordering::ByRecord {
            partitions: raw.partitions.unwrap_or(DEFAULT_PARTITIONS),
        },
        Some(other) => {
            return Err(ConfigError::invalid(
                "CLUSTER.ORDERING",
                format!("`{other}` is not one of none, strict, by_record"),
            ));
        }
    };
    if raw.partitions.is_some() && !matches!(ordering, Ordering::ByRecord { .. }) {
        return Err(ConfigError::invalid(
            "CLUSTER.PARTITIONS",
            "only goes with ORDERING: by_record",
        ));
    }
    if let Ordering::ByRecord { partitions } = ordering
        && !(1..=MAX_PARTITIONS).contains(&partitions)
    {
        return Err(ConfigError::invalid(
            "CLUSTER.PARTITIONS",
            format!("{partitions}: 1 to {MAX_PARTITIONS} allowed"),
        ));
    }
    let prefetch = match raw.prefetch {
        Some(0) => {
            return Err(ConfigError::invalid("CLUSTER.PREFETCH", "at least 1"));
        }
        Some(n) => n,
        None => u16::try_from(max_workers.max(1)).unwrap_or(u16::MAX),
    };
    Ok(Some(WorkQueueConfig { ordering, prefetch }))
}

/// `host-pid-xxxx`: unique per process, readable in `/health`.
fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().replace(char::is_whitespace, "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".into());
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    format!("{host}-{}-{suffix}", std::process::id())
}

fn salesforce(raw: RawSalesforce) -> Result<SalesforceConfig, ConfigError> {
    let key = |name: &str| format!("SALESFORCE.{name}");
    let credentials = LoginParts {
        username: raw.username.map(String::from),
        password: secret(raw.password),
        security_token: secret(raw.security_token),
        consumer_key: raw.consumer_key.map(String::from),
        consumer_secret: secret(raw.consumer_secret),
        refresh_token: secret(raw.refresh_token),
        jwt_key_file: raw.jwt_key_file.map(|file| PathBuf::from(file.0)),
        client_credentials: raw.client_credentials == Some(true),
        access_token: secret(raw.access_token),
        instance_url: raw.instance_url.map(String::from),
    }
    .credentials()
    .map_err(|e| {
        let at = e
            .part()
            .map_or_else(|| "SALESFORCE".to_string(), |p| key(p.key()));
        ConfigError::invalid(at, e.to_string())
    })?;

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

    let api_version = parse_api_version(nonempty(&raw.api_version).unwrap_or(DEFAULT_API_VERSION))
        .map_err(|e| ConfigError::invalid(key("API_VERSION"), e.to_string()))?;

    let replay_store = match (
        raw.pushtopic_replay_enabled.unwrap_or(false),
        nonempty(&raw.replay_store),
    ) {
        (true, Some(_)) => {
            return Err(ConfigError::invalid(
                key("REPLAY_STORE"),
                "give either REPLAY_STORE or PUSHTOPIC_REPLAY_ENABLED, not both",
            ));
        }
        (true, None) => {
            let url = nonempty(&raw.pushtopic_replay_redis_uri).ok_or_else(|| {
                ConfigError::invalid(
                    key("PUSHTOPIC_REPLAY_REDIS_URI"),
                    "missing or empty (PUSHTOPIC_REPLAY_ENABLED is True)",
                )
            })?;
            if raw.pushtopic_replay_ttl == Some(0) {
                return Err(ConfigError::invalid(
                    key("PUSHTOPIC_REPLAY_TTL"),
                    "must be a positive number of seconds",
                ));
            }
            ReplayStoreConfig::Redis {
                url: url.to_string(),
                ttl: raw.pushtopic_replay_ttl.map(Duration::from_secs),
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
    let max_pending = at_least_one(raw.max_pending, &key("MAX_PENDING"), DEFAULT_MAX_PENDING)?;
    let max_in_flight = at_least_one(
        raw.max_in_flight,
        &key("MAX_IN_FLIGHT"),
        DEFAULT_MAX_IN_FLIGHT,
    )?;
    let transport = match nonempty(&raw.transport) {
        Some(text) => text
            .parse::<Transport>()
            .map_err(|e| ConfigError::invalid(key("TRANSPORT"), e.to_string()))?,
        None => Transport::CometD,
    };
    let pubsub_url = nonempty(&raw.pubsub_url)
        .unwrap_or(sfstream_salesforce::pubsub::DEFAULT_URL)
        .to_string();
    let backfill_max_records = at_least_one(
        raw.backfill_max_records,
        &key("BACKFILL_MAX_RECORDS"),
        sfstream_salesforce::recovery::DEFAULT_BACKFILL_MAX_RECORDS,
    )?;
    let limits = limits(raw.limits)?;
    let marker_age_warn = raw.marker_age_warn_hours.map(warn_ages).transpose()?;
    Ok(SalesforceConfig {
        credentials,
        login_url,
        api_version,
        replay_store,
        default_replay,
        replay_fallback,
        max_pending,
        max_in_flight,
        transport,
        pubsub_url,
        fetch_gap_records: raw.fetch_gap_records.unwrap_or(false),
        backfill: raw.backfill.unwrap_or(false),
        backfill_max_records,
        limits,
        marker_age_warn,
    })
}

/// `LIMITS:`: `INTERVAL` 0 turns the reads off.
fn limits(raw: Option<RawLimits>) -> Result<Option<LimitsPolicy>, ConfigError> {
    let raw = raw.unwrap_or_default();
    let mut policy = LimitsPolicy::default();
    if let Some(interval) = raw.interval {
        if interval == 0.0 {
            return Ok(None);
        }
        if interval < 1.0 {
            return Err(ConfigError::invalid(
                "SALESFORCE.LIMITS.INTERVAL",
                format!("{interval} is too short: at least 1 second (0 turns the reads off)"),
            ));
        }
        policy.interval = seconds("SALESFORCE.LIMITS.INTERVAL", interval)?;
    }
    if let Some(warn_at) = raw.warn_at {
        if !(warn_at > 0.0 && warn_at <= 1.0) {
            return Err(ConfigError::invalid(
                "SALESFORCE.LIMITS.WARN_AT",
                format!("{warn_at} is not a share of the allocation (more than 0, at most 1)"),
            ));
        }
        policy.warn_at = warn_at;
    }
    Ok(Some(policy))
}

/// `MARKER_AGE_WARN_HOURS:`, each below its retention.
fn warn_ages(raw: RawWarnHours) -> Result<WarnAges, ConfigError> {
    let mut ages = WarnAges::default();
    for (value, retention, slot, name) in [
        (raw.retention_24h, 24.0, &mut ages.short, "RETENTION_24H"),
        (raw.retention_72h, 72.0, &mut ages.long, "RETENTION_72H"),
    ] {
        if let Some(hours) = value {
            let key = format!("SALESFORCE.MARKER_AGE_WARN_HOURS.{name}");
            if !(hours > 0.0 && hours < retention) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{hours} is not a number of hours between 0 and {retention}"),
                ));
            }
            *slot = Duration::from_secs_f64(hours * 3600.0);
        }
    }
    Ok(ages)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// Work queues: on with AMQP_URI unless switched off; their keys are
    /// checked and named in errors.
    #[test]
    fn cluster_work_queue_keys() {
        use sfstream_cluster::queue::Ordering;
        let load = |yaml: &str| Config::from_yaml_with_env(yaml, |_| None);
        let amqp = "AMQP_URI: 'pyamqp://guest:guest@localhost'\nmax_workers: 7\n";
        let cluster = "CLUSTER:\n  REDIS_URI: redis://127.0.0.1:6379/0\n";
        let queues = |yaml: &str| {
            load(yaml)
                .expect("config")
                .cluster
                .expect("cluster")
                .work_queues
        };
        let on = queues(&format!("{amqp}{cluster}")).expect("on with AMQP_URI");
        assert_eq!((on.ordering, on.prefetch), (Ordering::None, 7));
        assert!(queues(cluster).is_none(), "off without AMQP_URI");
        assert!(queues(&format!("{amqp}{cluster}  WORK_QUEUES: false\n")).is_none());
        let strict = queues(&format!(
            "{amqp}{cluster}  ORDERING: Strict\n  PREFETCH: 3\n"
        ));
        assert_eq!(
            strict.map(|q| (q.ordering, q.prefetch)),
            Some((Ordering::Strict, 3))
        );
        for (extra, key) in [
            ("  WORK_QUEUES: true\n", "CLUSTER.WORK_QUEUES"),
            ("  ORDERING: random\n", "CLUSTER.ORDERING"),
            ("  PARTITIONS: 4\n", "CLUSTER.PARTITIONS"),
            (
                "  ORDERING: by_record\n  PARTITIONS: 0\n",
                "CLUSTER.PARTITIONS",
            ),
            ("  PREFETCH: 0\n", "CLUSTER.PREFETCH"),
        ] {
            let with_amqp = extra != "  WORK_QUEUES: true\n";
            let yaml = format!("{}{cluster}{extra}", if with_amqp { amqp } else { "" });
            let err = load(&yaml).expect_err(extra);
            assert_eq!(err.key(), Some(key), "{extra}: {err}");
        }
    }

    /// The config's `SALESFORCE:` keys go through the one login policy
    /// (`docs/logins.md`); its errors name the config key.
    #[test]
    fn login_keys_follow_the_login_table() {
        let error = |yaml: &str| Config::from_yaml_with_env(yaml, |_| None).expect_err("refused");
        let base = "SALESFORCE:\n  SANDBOX: false\n  USERNAME: u\n  PASSWORD: p\n";
        // Row 15: a consumer secret without its key no longer falls back to SOAP.
        let err = error(&format!("{base}  CONSUMER_SECRET: cs-secret\n"));
        assert_eq!(err.key(), Some("SALESFORCE.CONSUMER_KEY"), "{err}");
        assert!(
            err.to_string().contains("CONSUMER_SECRET needs it"),
            "{err}"
        );
        assert!(!err.to_string().contains("cs-secret"), "{err}");
        // Row 10: two flows' selectors are refused, not ranked.
        let err = error(&format!(
            "{base}  CONSUMER_KEY: ck\n  REFRESH_TOKEN: rt\n  ACCESS_TOKEN: at\n  INSTANCE_URL: https://acme.my.salesforce.com\n"
        ));
        assert_eq!(err.key(), Some("SALESFORCE.REFRESH_TOKEN"), "{err}");
        assert!(
            err.to_string().contains("ACCESS_TOKEN and REFRESH_TOKEN"),
            "{err}"
        );
        // Row 16: a selector wins over USERNAME/PASSWORD.
        let config = Config::from_yaml_with_env(
            &format!(
                "{base}  CONSUMER_KEY: ck\n  CONSUMER_SECRET: cs\n  CLIENT_CREDENTIALS: True\n"
            ),
            |_| None,
        )
        .expect("config");
        let flow = config.salesforce.as_ref().map(|s| s.credentials.flow());
        assert_eq!(flow, Some("client_credentials"));
    }
}
