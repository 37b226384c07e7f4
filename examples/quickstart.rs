//! The Quick Start of the Python Nameko Salesforce extension, in Rust:
//! service `some-service` with an RPC method `create_contact(last_name,
//! email_address)` creating a Contact through the Salesforce REST API, and
//! a "Salesforce to Nameko event proxy" handler stacked on Contact, Lead
//! and Opportunity notifications, dispatching
//! `salesforce_<sobject>_<event type>` Nameko events with the sobject as
//! payload.
//!
//! ```text
//! sfstream emulator &                                   # http://127.0.0.1:8710
//! cargo run --release --example quickstart -- --config examples/quickstart.yaml
//! sfstream rpc some-service create_contact '["Yo", "yo@yo.yo"]'
//! ```
//!
//! A Python `@event_handler("some-service", "salesforce_contact_created")`
//! then receives the new contact.

use serde_json::{Map, Value, json};
use sfstream_service::config::Config;
use sfstream_service::nameko::{Dispatcher, RpcCall, RpcError, Signature};
use sfstream_service::{Notification, Service, SobjectType, handle_sobject_notification};

/// The Quick Start service, configured by `config`.
pub fn quickstart_service(config: Config) -> Service {
    Service::new("some-service")
        .config(config)
        .rpc(
            "create_contact",
            Signature::new().param("last_name").param("email_address"),
            create_contact,
        )
        .handler(
            handle_salesforce_updates,
            [
                // The Contacts created by `create_contact` come from this
                // service's own user: do not exclude them.
                handle_sobject_notification("Contact").exclude_current_user(false),
                handle_sobject_notification("Lead"),
                handle_sobject_notification("Opportunity"),
            ],
        )
}

/// `create_contact(last_name, email_address)`: creates a Contact, returns its id.
async fn create_contact(
    call: RpcCall,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
) -> Result<Value, RpcError> {
    let last_name = call.arg(&args, &kwargs, 0, "last_name")?;
    let email_address = call.arg(&args, &kwargs, 1, "email_address")?;
    let id = call
        .salesforce()?
        .create(
            "Contact",
            &json!({"LastName": last_name, "Email": email_address}),
        )
        .await
        .map_err(|e| RpcError::new(format!("creating the contact failed: {e}")))?;
    Ok(json!(id))
}

/// Proxies Salesforce object change notifications to Nameko events.
async fn handle_salesforce_updates(
    SobjectType(sobject_type): SobjectType,
    Notification(notification): Notification,
    Dispatcher(dispatch): Dispatcher,
) -> Result<(), String> {
    let kind = notification["event"]["type"]
        .as_str()
        .ok_or("the notification has no event type")?;
    let event = format!("salesforce_{}_{kind}", sobject_type.to_lowercase());
    dispatch
        .dispatch(&event, &notification["sobject"])
        .await
        .map_err(|e| format!("dispatching {event} failed: {e}"))
}

/// `--config PATH` (default `config.yaml`).
fn config_path() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let mut path = "config.yaml".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => path = args.next().ok_or("--config needs a path")?,
            other => match other.strip_prefix("--config=") {
                Some(p) => path = p.to_string(),
                None => {
                    return Err(format!(
                        "unknown argument {other:?}; usage: quickstart --config PATH"
                    ));
                }
            },
        }
    }
    Ok(path)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,lapin=error".into()),
        )
        .init();
    let config = Config::load(config_path()?)?;
    quickstart_service(config).run().await?;
    Ok(())
}
