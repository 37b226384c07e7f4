//! A service with one handler stacked on Contact and Lead notifications,
//! printing each one: the Python extension's Quick Start, in Rust.
//!
//! Run it against the emulator:
//!
//! ```text
//! sfstream emulator &                      # prints its URL, e.g. http://127.0.0.1:8710
//! SALESFORCE_LOGIN_URL=http://127.0.0.1:8710 \
//!   cargo run -p sfstream-service --example contact_events
//! ```
//!
//! then create or change a Contact (e.g. `sfstream publish` or the REST
//! API) and watch the notifications arrive. `/metrics` and `/health` are
//! on port 9464. Stop with Ctrl-C: in-flight handlers finish, markers are
//! committed.
//!
//! Against a real org, set `SALESFORCE_USERNAME`, `SALESFORCE_PASSWORD`,
//! `SALESFORCE_SECURITY_TOKEN`, and leave `SALESFORCE_LOGIN_URL` unset
//! (`SANDBOX: False` then means login.salesforce.com), or pass a config
//! file: `cargo run -p sfstream-service --example contact_events -- config.yaml`.

use sfstream_service::config::Config;
use sfstream_service::{
    Notification, RecordType, ReplayId, Service, SobjectType, handle_sobject_notification,
};

/// The config the example uses without a file: the Python extension's
/// keys, with defaults that fit `sfstream emulator`.
const CONFIG: &str = r#"
AMQP_URI: 'pyamqp://guest:guest@localhost'
max_workers: 4
METRICS_PORT: ${METRICS_PORT:9464}
SALESFORCE:
    USERNAME: ${SALESFORCE_USERNAME:emulator@example.com}
    PASSWORD: ${SALESFORCE_PASSWORD:password}
    SECURITY_TOKEN: ${SALESFORCE_SECURITY_TOKEN:token}
    SANDBOX: False
    LOGIN_URL: ${SALESFORCE_LOGIN_URL}
    ON_FAILURE: skip
"#;

#[derive(Debug, thiserror::Error)]
#[error("the notification has no event type")]
struct NoEventType;

async fn handle_salesforce_updates(
    SobjectType(sobject_type): SobjectType,
    RecordType(record_type): RecordType,
    ReplayId(replay_id): ReplayId,
    Notification(notification): Notification,
) -> Result<(), NoEventType> {
    let kind = notification["event"]["type"].as_str().ok_or(NoEventType)?;
    println!(
        "salesforce_{}_{kind} (record type {record_type:?}, replay id {replay_id:?}): {}",
        sobject_type.to_lowercase(),
        notification["sobject"]
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match std::env::args().nth(1) {
        Some(path) => Config::load(path)?,
        None => Config::from_yaml(CONFIG)?,
    };
    Service::new("some-service")
        .config(config)
        .handler(
            handle_salesforce_updates,
            [
                handle_sobject_notification("Contact").exclude_current_user(false),
                handle_sobject_notification("Lead").exclude_current_user(false),
            ],
        )
        .run()
        .await?;
    Ok(())
}
