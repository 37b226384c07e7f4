//! `sfstream run`: the Salesforce to Nameko event proxy, without code.
//!
//! The config is a Nameko Salesforce config (`AMQP_URI`, `SALESFORCE:`)
//! with a `PROXY:` list; each entry subscribes to one source and
//! dispatches every event it gets as a Nameko event of `SERVICE_NAME`
//! (default `salesforce-proxy`):
//!
//! ```yaml
//! SERVICE_NAME: salesforce-proxy
//! PROXY:
//!   - sobject: Contact                 # PushTopic notifications of an sobject
//!     record_type: Student             # optional
//!     exclude_current_user: false      # optional, default true
//!     event: salesforce_{sobject}_{type}   # the default
//!   - channel: /topic/InvoiceUpdates   # any streaming channel
//!   - change_events: Account           # Change Data Capture
//!   - platform_event: Order__e         # platform events
//! ```
//!
//! Placeholders: `{sobject}` (the sobject type lowercased, or the topic /
//! event name lowercased), `{type}` (`created`, `updated`, … for
//! PushTopics; the change type lowercased for change events; `published`
//! for platform events; `event` otherwise), `{name}` (the topic, event or
//! channel name, lowercased). The payload is the notification's `sobject`
//! (PushTopics), or its `payload` (change and platform events), or the
//! whole event.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::Value;
use sfstream_service::config::Config;
use sfstream_service::nameko::Dispatcher;
use sfstream_service::{
    Entrypoint, Event, Service, change_events, handle_sobject_notification, platform_event,
    subscribe,
};

/// The default Nameko event name template.
pub const DEFAULT_EVENT: &str = "salesforce_{sobject}_{type}";
/// The default service name.
pub const DEFAULT_SERVICE_NAME: &str = "salesforce-proxy";

/// Options of `sfstream run`.
#[derive(Debug, Args)]
#[command(after_help = "Example config.yaml:
  AMQP_URI: 'pyamqp://guest:guest@localhost'
  SERVICE_NAME: salesforce-proxy
  SALESFORCE:
      USERNAME: ${SALESFORCE_USERNAME}
      PASSWORD: ${SALESFORCE_PASSWORD}
      SECURITY_TOKEN: ${SALESFORCE_SECURITY_TOKEN}
      SANDBOX: False
  PROXY:
    - sobject: Contact
      exclude_current_user: false
    - sobject: Lead
      event: 'crm_{sobject}_{type}'
    - change_events: Account
    - platform_event: Order__e
    - channel: /topic/InvoiceUpdates

Runs until SIGTERM or SIGINT, then stops gracefully.")]
pub struct RunArgs {
    /// The config file (Nameko Salesforce keys plus PROXY and SERVICE_NAME).
    #[arg(long, short, value_name = "PATH", default_value = "config.yaml")]
    config: std::path::PathBuf,
    /// The Nameko service name the events come from (overrides SERVICE_NAME).
    #[arg(long, value_name = "NAME")]
    service_name: Option<String>,
}

/// One `PROXY:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyEntry {
    sobject: Option<String>,
    record_type: Option<String>,
    exclude_current_user: Option<bool>,
    channel: Option<String>,
    change_events: Option<String>,
    platform_event: Option<String>,
    event: Option<String>,
}

impl ProxyEntry {
    fn entrypoint(&self, index: usize) -> anyhow::Result<Entrypoint> {
        let sources = [
            self.sobject.is_some(),
            self.channel.is_some(),
            self.change_events.is_some(),
            self.platform_event.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            bail!(
                "PROXY entry {index}: give exactly one of sobject, channel, change_events, platform_event"
            );
        }
        if self.sobject.is_none()
            && (self.record_type.is_some() || self.exclude_current_user.is_some())
        {
            bail!("PROXY entry {index}: record_type and exclude_current_user only go with sobject");
        }
        Ok(if let Some(sobject) = &self.sobject {
            let mut ep = handle_sobject_notification(sobject);
            if let Some(rt) = &self.record_type {
                ep = ep.record_type(rt);
            }
            if let Some(ex) = self.exclude_current_user {
                ep = ep.exclude_current_user(ex);
            }
            ep.into()
        } else if let Some(channel) = &self.channel {
            subscribe(channel).into()
        } else if let Some(sobject) = &self.change_events {
            change_events(sobject).into()
        } else if let Some(name) = &self.platform_event {
            platform_event(name).into()
        } else {
            bail!("PROXY entry {index}: no source")
        })
    }
}

/// The event name and payload for one notification.
fn render(template: &str, event: &Event) -> Result<(String, Value), String> {
    let data: Value = serde_json::from_str(event.data().get())
        .map_err(|e| format!("the event data is not JSON: {e}"))?;
    let binding = event.binding();
    let name = binding
        .name
        .rsplit('/')
        .next()
        .unwrap_or(&binding.name)
        .to_lowercase();
    let header = &data["payload"]["ChangeEventHeader"];
    let sobject = binding
        .sobject_type
        .clone()
        .or_else(|| header["entityName"].as_str().map(str::to_owned))
        .map(|s| s.to_lowercase())
        .unwrap_or_else(|| name.clone());
    let kind = match (&binding.entrypoint, data["event"]["type"].as_str()) {
        (_, Some(t)) => t.to_lowercase(),
        (Entrypoint::PlatformEvent(_), None) => "published".into(),
        (_, None) => header["changeType"]
            .as_str()
            .map(str::to_lowercase)
            .unwrap_or_else(|| "event".into()),
    };
    let event_name = template
        .replace("{sobject}", &sobject)
        .replace("{type}", &kind)
        .replace("{name}", &name);
    let payload = match (data.get("sobject"), data.get("payload")) {
        (Some(s), _) => s.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => data,
    };
    Ok((event_name, payload))
}

/// Builds the proxy service from `config` (its `PROXY:` entries).
///
/// # Errors
///
/// When `PROXY:` is missing, empty or malformed.
pub fn proxy_service(config: Config, service_name: Option<String>) -> anyhow::Result<Service> {
    let raw = &config.raw;
    let name = match service_name {
        Some(name) => name,
        None => match raw.get("SERVICE_NAME") {
            Some(v) => v
                .as_str()
                .context("SERVICE_NAME must be a string")?
                .to_owned(),
            None => DEFAULT_SERVICE_NAME.to_owned(),
        },
    };
    let entries: Vec<ProxyEntry> = match raw.get("PROXY") {
        Some(v) => serde_yaml_ng::from_value(v.clone())
            .context("PROXY must be a list of entries like `- sobject: Contact`")?,
        None => bail!("the config has no PROXY list (e.g. `PROXY: [{{sobject: Contact}}]`)"),
    };
    if entries.is_empty() {
        bail!("the PROXY list is empty");
    }
    let mut service = Service::new(name).config(config).event_dispatcher();
    for (index, entry) in entries.iter().enumerate() {
        let entrypoint = entry.entrypoint(index + 1)?;
        let template: Arc<str> = entry.event.as_deref().unwrap_or(DEFAULT_EVENT).into();
        let handler = move |event: Event, Dispatcher(dispatch): Dispatcher| {
            let template = template.clone();
            async move {
                let (event_name, payload) = render(&template, &event)?;
                dispatch
                    .dispatch(&event_name, &payload)
                    .await
                    .map_err(|e| format!("dispatching {event_name} failed: {e}"))?;
                tracing::debug!(event = %event_name, channel = %event.channel(), "dispatched");
                Ok::<(), String>(())
            }
        };
        service = service.handler(handler, [entrypoint]);
    }
    Ok(service)
}

/// Runs `sfstream run`.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)
        .with_context(|| format!("cannot load {}", args.config.display()))?;
    let service = proxy_service(config, args.service_name)?;
    service.run().await?;
    Ok(ExitCode::SUCCESS)
}
