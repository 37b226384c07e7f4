//! Configuration: `${VAR}` substitution, a Python extension config file
//! unchanged, errors naming the key path, secrets out of `Debug`.

use std::time::Duration;

use sfstream_salesforce::Credentials;
use sfstream_salesforce::replay::ReplayFrom;
use sfstream_service::config::{Config, ConfigError, OnFailure, ReplayStoreConfig, env_from};

/// The seed's config, as written for the Python extension, plus replay.
const PYTHON_CONFIG: &str = r#"
AMQP_URI: 'pyamqp://guest:guest@localhost'
LOGGING:
    version: 1
SALESFORCE:
    USERNAME: ${SALESFORCE_USERNAME}
    PASSWORD: ${SALESFORCE_PASSWORD}
    SECURITY_TOKEN: ${SALESFORCE_SECURITY_TOKEN}
    SANDBOX: False
    PUSHTOPIC_REPLAY_ENABLED: True
    PUSHTOPIC_REPLAY_REDIS_URI: redis://some.redis.host:6379/11
    PUSHTOPIC_REPLAY_TTL: 3600
"#;

fn env() -> impl Fn(&str) -> Option<String> {
    env_from([
        ("SALESFORCE_USERNAME", "rocky"),
        ("SALESFORCE_PASSWORD", "p4ss#word: x"),
        ("SALESFORCE_SECURITY_TOKEN", "tok3n"),
    ])
}

#[test]
fn a_python_extension_config_works_unchanged() {
    let config = Config::from_yaml_with_env(PYTHON_CONFIG, env()).expect("config");
    assert_eq!(
        config.amqp_uri.as_deref(),
        Some("pyamqp://guest:guest@localhost")
    );
    assert_eq!(config.max_workers, 10);
    let sf = config.salesforce.as_ref().expect("SALESFORCE");
    assert_eq!(sf.login_url.as_str(), "https://login.salesforce.com");
    assert_eq!(sf.api_version, "37.0");
    let Credentials::Soap {
        username,
        password,
        security_token,
    } = &sf.credentials
    else {
        panic!("SOAP login expected: {:?}", sf.credentials)
    };
    assert_eq!(username, "rocky");
    // The substituted text is kept exactly, not re-read as YAML.
    assert_eq!(password.expose(), "p4ss#word: x");
    assert_eq!(security_token.as_ref().map(|t| t.expose()), Some("tok3n"));
    assert_eq!(
        sf.replay_store,
        ReplayStoreConfig::Redis {
            url: "redis://some.redis.host:6379/11".into(),
            ttl: Some(Duration::from_secs(3600)),
        }
    );
    assert_eq!(sf.default_replay, ReplayFrom::New);
    assert_eq!(config.on_failure, OnFailure::Stop);
    assert_eq!(config.retries, 3);
    assert!(config.raw.get("LOGGING").is_some());
}

#[test]
fn substitution_reads_booleans_and_numbers_and_defaults_to_empty() {
    let yaml = r#"
max_workers: ${WORKERS:8}
METRICS_PORT: ${PORT:9100}
SALESFORCE:
    USERNAME: ${USER}
    PASSWORD: ${PASSWORD}
    SECURITY_TOKEN: ${TOKEN}
    SANDBOX: ${SANDBOX:false}
    API_VERSION: ${API:62.0}
    PUSHTOPIC_REPLAY_ENABLED: ${REPLAY:False}
    DEFAULT_REPLAY: ${FROM:-2}
    SHUTDOWN_TIMEOUT: ${TIMEOUT:2.5}
"#;
    let config = Config::from_yaml_with_env(
        yaml,
        env_from([("USER", "u"), ("PASSWORD", "12345"), ("SANDBOX", "True")]),
    )
    .expect("config");
    assert_eq!(config.max_workers, 8);
    assert_eq!(config.metrics_port, Some(9100));
    assert_eq!(config.shutdown_timeout, Duration::from_millis(2500));
    let sf = config.salesforce.expect("section");
    // SANDBOX came from the environment as text and was read as YAML.
    assert_eq!(sf.login_url.as_str(), "https://test.salesforce.com");
    assert_eq!(sf.api_version, "62.0");
    assert_eq!(sf.replay_store, ReplayStoreConfig::Memory);
    assert_eq!(sf.default_replay, ReplayFrom::All);
    let Credentials::Soap {
        password,
        security_token,
        ..
    } = sf.credentials
    else {
        panic!("soap")
    };
    // A numeric password is still a password.
    assert_eq!(password.expose(), "12345");
    // A missing variable without a default is an empty string: no token.
    assert!(security_token.is_none());
    let raw =
        Config::from_yaml_with_env("X: ${MISSING}\nY: ${B:false}\n", env_from::<&str, &str>([]))
            .expect("config")
            .raw;
    assert_eq!(raw["X"], serde_yaml_ng::Value::String(String::new()));
    assert_eq!(raw["Y"], serde_yaml_ng::Value::Bool(false));
}

fn error(yaml: &str) -> ConfigError {
    Config::from_yaml_with_env(yaml, env_from::<&str, &str>([])).expect_err("invalid config")
}

#[test]
fn bad_configs_name_the_key_and_the_problem() {
    let base = "SALESFORCE:\n  USERNAME: u\n  PASSWORD: p\n";
    for (extra, key, needle) in [
        (
            "  SANDBOX: maybe\n",
            "SALESFORCE.SANDBOX",
            "expected a boolean",
        ),
        ("", "SALESFORCE.SANDBOX", "missing"),
        (
            "  SANDBOX: false\n  PUSHTOPIC_REPLAY_ENABLED: true\n",
            "SALESFORCE.PUSHTOPIC_REPLAY_REDIS_URI",
            "PUSHTOPIC_REPLAY_ENABLED",
        ),
        (
            "  SANDBOX: false\n  PUSHTOPIC_REPLAY_TTL: an hour\n",
            "SALESFORCE.PUSHTOPIC_REPLAY_TTL",
            "invalid type",
        ),
        (
            "  SANDBOX: false\n  ON_FAILURE: ignore\n",
            "SALESFORCE.ON_FAILURE",
            "stop, skip",
        ),
        (
            "  SANDBOX: false\n  DEFAULT_REPLAY: latest\n",
            "SALESFORCE.DEFAULT_REPLAY",
            "NEW, ALL",
        ),
        (
            "  SANDBOX: false\n  REPLAY_FALLBACK: 42\n",
            "SALESFORCE.REPLAY_FALLBACK",
            "NEW, ALL",
        ),
        (
            "  SANDBOX: false\n  API_VERSION: latest\n",
            "SALESFORCE.API_VERSION",
            "API version",
        ),
        (
            "  SANDBOX: false\n  LOGIN_URL: ftp://x\n",
            "SALESFORCE.LOGIN_URL",
            "",
        ),
        (
            "  SANDBOX: false\n  RETRIES: -1\n",
            "SALESFORCE.RETRIES",
            "invalid value",
        ),
    ] {
        let err = error(&format!("{base}{extra}"));
        assert_eq!(err.key(), Some(key), "{extra}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(key) && text.contains(needle),
            "{extra}: {text}"
        );
    }
    let err = error("max_workers: 0\n");
    assert_eq!(err.key(), Some("max_workers"));
    let err = error("max_workers: many\n");
    assert_eq!(err.key(), Some("max_workers"), "{err}");
    let err = error("SALESFORCE:\n  SANDBOX: false\n");
    assert!(err.to_string().contains("no login given"), "{err}");
    let err = error(
        "SALESFORCE:\n  USERNAME: ${SALESFORCE_USERNAME}\n  PASSWORD: ${SALESFORCE_PASSWORD}\n  SANDBOX: False\n",
    );
    assert_eq!(err.key(), Some("SALESFORCE.USERNAME"), "{err}");
    let err = error("SALESFORCE: [1, 2]\n");
    assert_eq!(err.key(), Some("SALESFORCE"), "{err}");
    assert!(matches!(error("a: [unclosed\n"), ConfigError::Yaml(_)));
}

#[test]
fn other_login_flows_and_stores() {
    let config = Config::from_yaml_with_env(
        "SALESFORCE:\n  REFRESH_TOKEN: rt-secret\n  CONSUMER_KEY: ck\n  CONSUMER_SECRET: cs-secret\n  LOGIN_URL: https://acme.my.salesforce.com\n  REPLAY_STORE: file:/tmp/replay.redb\n  REPLAY_FALLBACK: all\n  ON_FAILURE: skip\n",
        env_from::<&str, &str>([]),
    )
    .expect("config");
    let sf = config.salesforce.as_ref().expect("section");
    assert_eq!(sf.credentials.flow(), "refresh_token");
    assert_eq!(
        sf.replay_store,
        ReplayStoreConfig::Uri("file:/tmp/replay.redb".into())
    );
    assert_eq!(sf.replay_fallback, Some(ReplayFrom::All));
    assert_eq!(config.on_failure, OnFailure::Skip);
    let text = format!("{config:?}");
    assert!(
        !text.contains("rt-secret") && !text.contains("cs-secret"),
        "{text}"
    );

    let oauth = Config::from_yaml_with_env(
        "RETRIES: 5\nSALESFORCE:\n  USERNAME: u\n  PASSWORD: pw-secret\n  SECURITY_TOKEN: tk-secret\n  CONSUMER_KEY: ck\n  CONSUMER_SECRET: cs\n  SANDBOX: true\n  PUSHTOPIC_REPLAY_ENABLED: true\n  PUSHTOPIC_REPLAY_REDIS_URI: redis://:redis-secret@localhost/1\n",
        env_from::<&str, &str>([]),
    )
    .expect("config");
    assert_eq!(oauth.retries, 5);
    let sf = oauth.salesforce.as_ref().expect("section");
    assert_eq!(sf.credentials.flow(), "password");
    let text = format!("{oauth:?}");
    for secret in ["pw-secret", "tk-secret", "redis-secret"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    let token = Config::from_yaml_with_env(
        "SALESFORCE:\n  ACCESS_TOKEN: 00D!abc\n  INSTANCE_URL: https://acme.my.salesforce.com\n",
        env_from::<&str, &str>([]),
    )
    .expect("config");
    assert_eq!(
        token.salesforce.as_ref().map(|s| s.credentials.flow()),
        Some("access_token")
    );
}

#[test]
fn unknown_salesforce_keys_warn_and_config_files_load() {
    let config = Config::from_yaml_with_env(
        "SALESFORCE:\n  USERNAME: u\n  PASSWORD: p\n  SANDBOX: false\n  SOMETHING_ELSE: 1\n",
        env_from::<&str, &str>([]),
    )
    .expect("config");
    assert_eq!(config.warnings.len(), 1);
    assert!(config.warnings[0].contains("SALESFORCE.SOMETHING_ELSE"));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "max_workers: 3\n").expect("write");
    assert_eq!(Config::load(&path).expect("load").max_workers, 3);
    let missing = Config::load(dir.path().join("nope.yaml")).expect_err("missing file");
    assert!(missing.to_string().contains("nope.yaml"), "{missing}");
}

#[test]
fn handler_timeout_and_max_in_flight_have_defaults_and_are_checked() {
    let base = "SALESFORCE:\n  USERNAME: u\n  PASSWORD: p\n  SANDBOX: false\n";
    let config = Config::from_yaml_with_env(base, env_from::<&str, &str>([])).expect("config");
    assert_eq!(config.handler_timeout, Duration::from_secs(300));
    let sf = config.salesforce.as_ref().expect("section");
    assert_eq!(sf.max_in_flight, 1_000);
    assert!(config.warnings.is_empty());

    // At the top level, or under SALESFORCE: (which wins), as RETRIES.
    let top = Config::from_yaml_with_env(
        &format!("HANDLER_TIMEOUT: 20\n{base}  MAX_IN_FLIGHT: 50\n"),
        env_from::<&str, &str>([]),
    )
    .expect("config");
    assert_eq!(top.handler_timeout, Duration::from_secs(20));
    assert_eq!(top.salesforce.as_ref().map(|s| s.max_in_flight), Some(50));
    assert!(top.warnings.is_empty(), "{:?}", top.warnings);
    let section = Config::from_yaml_with_env(
        &format!("HANDLER_TIMEOUT: 20\n{base}  HANDLER_TIMEOUT: 0.5\n"),
        env_from::<&str, &str>([]),
    )
    .expect("config");
    assert_eq!(section.handler_timeout, Duration::from_millis(500));

    for (extra, key) in [
        ("  HANDLER_TIMEOUT: 0\n", "SALESFORCE.HANDLER_TIMEOUT"),
        ("  HANDLER_TIMEOUT: -1\n", "SALESFORCE.HANDLER_TIMEOUT"),
        ("  HANDLER_TIMEOUT: soon\n", "SALESFORCE.HANDLER_TIMEOUT"),
        ("  MAX_IN_FLIGHT: 0\n", "SALESFORCE.MAX_IN_FLIGHT"),
    ] {
        let err = error(&format!("{base}{extra}"));
        assert_eq!(err.key(), Some(key), "{extra}: {err}");
    }
    assert_eq!(
        error(&format!("HANDLER_TIMEOUT: 0\n{base}")).key(),
        Some("HANDLER_TIMEOUT")
    );
}

#[test]
fn transport_and_pubsub_url_are_read_and_checked() {
    let base = "SALESFORCE:\n  SANDBOX: false\n  USERNAME: u\n  PASSWORD: p\n";
    let config = Config::from_yaml_with_env(
        &format!("{base}  TRANSPORT: pubsub\n  PUBSUB_URL: http://127.0.0.1:7443\n"),
        |_| None,
    )
    .expect("config");
    let section = config.salesforce.expect("section");
    assert_eq!(section.transport, sfstream_salesforce::Transport::PubSub);
    assert_eq!(section.pubsub_url, "http://127.0.0.1:7443");
    let config = Config::from_yaml_with_env(base, |_| None).expect("config");
    let section = config.salesforce.expect("section");
    assert_eq!(section.transport, sfstream_salesforce::Transport::CometD);
    assert_eq!(section.pubsub_url, "https://api.pubsub.salesforce.com:7443");
    let error = Config::from_yaml_with_env(&format!("{base}  TRANSPORT: kafka\n"), |_| None)
        .expect_err("refused");
    assert_eq!(error.key(), Some("SALESFORCE.TRANSPORT"), "{error}");
    assert!(error.to_string().contains("cometd or pubsub"), "{error}");
}
