//! Shared test helpers: an in-process emulator and service configs for it.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_service::config::{Config, env_from};
use sfstream_testkit::emulator::service_settings;

/// An emulator with a 1 s long-poll hold.
pub async fn emulator() -> Emulator {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(1);
    Emulator::start(config).await.expect("emulator")
}

/// A config logging in to `emulator` with SOAP (as the Python extension),
/// with `salesforce` extra lines under `SALESFORCE:` and `top` at the top.
pub fn config(emulator: &Emulator, top: &str, salesforce: &str) -> Config {
    config_on(emulator, "pyamqp://guest:guest@localhost", top, salesforce)
}

/// [`config`] with `AMQP_URI: amqp_uri` (e.g. a test's own virtual host).
pub fn config_on(emulator: &Emulator, amqp_uri: &str, top: &str, salesforce: &str) -> Config {
    let mut yaml = format!(
        "AMQP_URI: '{amqp_uri}'\n{top}\nSALESFORCE:\n{}",
        service_settings(&emulator.url())
    );
    // Test defaults, unless the caller sets them.
    for (key, value) in [("RETRY_DELAY", "0.01"), ("SHUTDOWN_TIMEOUT", "10")] {
        if !salesforce.contains(&format!("{key}:")) {
            yaml.push_str(&format!("  {key}: {value}\n"));
        }
    }
    for line in salesforce.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str("  ");
        yaml.push_str(line.trim());
        yaml.push('\n');
    }
    Config::from_yaml_with_env(&yaml, env_from::<&str, &str>([])).expect("config")
}

/// Creates a record as the login user; returns its id.
pub fn create(emulator: &Emulator, sobject: &str, fields: Value) -> String {
    sfstream_testkit::emulator::create(emulator, sobject, fields)
        .record
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Creates `n` Contacts named `Contact <i>`.
pub fn contacts(emulator: &Emulator, from: usize, n: usize) {
    for i in from..from + n {
        create(
            emulator,
            "Contact",
            json!({"LastName": format!("Contact {i}")}),
        );
    }
}

/// The newest replay id raised on `channel`.
pub fn latest(emulator: &Emulator, channel: &str) -> i64 {
    emulator
        .org()
        .streaming
        .channel_state(channel)
        .map(|(latest, _)| latest)
        .unwrap_or(0)
}

/// Waits up to `secs` seconds for `check`.
pub async fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// A REST client logged in to `emulator` with SOAP.
pub fn rest(emulator: &Emulator) -> sfstream_salesforce::rest::SalesforceClient {
    sfstream_salesforce::rest::SalesforceClient::new(
        sfstream_testkit::emulator::soap_authenticator(&emulator.url()),
    )
}

/// Declares the PushTopic `name` with `query`.
pub async fn declare(emulator: &Emulator, name: &str, query: &str) {
    let spec = sfstream_salesforce::rest::PushTopicSpec::new(name, query);
    rest(emulator).declare_topic(&spec).await.expect("declared");
}
