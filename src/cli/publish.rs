//! `sfstream publish`: publish a platform event (REST, or the Pub/Sub API
//! with `--pubsub`) or push a generic event.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use sfstream_salesforce::SalesforceClient;
use sfstream_salesforce::pubsub::Published;

use super::login::LoginArgs;
use super::pubsub::PubSubArgs;

/// Options of `sfstream publish`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sfstream publish /event/Printer_Status__e '{\"Printer_Model__c\": \"XZO-5\"}'
  sfstream publish /u/notifications 'The build is green'
  sfstream publish --pubsub /event/Printer_Status__e '{\"Printer_Model__c\": \"XZO-5\"}'

With --pubsub the event is Avro-encoded with the topic's schema; CreatedDate
and CreatedById are filled in when missing.")]
pub struct PublishArgs {
    #[command(flatten)]
    login: LoginArgs,
    #[command(flatten)]
    pubsub: PubSubArgs,
    /// /event/<Name>__e (platform event) or /u/<name> (generic streaming channel).
    channel: String,
    /// For a platform event: a JSON object of its fields. For a generic channel: the payload text.
    payload: String,
}

/// Runs `sfstream publish`.
pub async fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    args.pubsub.check()?;
    if args.pubsub.pubsub {
        return publish_pubsub(args).await;
    }
    let client = SalesforceClient::new(args.login.authenticator()?);
    if let Some(event_type) = args.channel.strip_prefix("/event/") {
        let fields: Value = serde_json::from_str(&args.payload)
            .context("the payload of a platform event must be a JSON object")?;
        if !fields.is_object() {
            bail!("the payload of a platform event must be a JSON object");
        }
        let id = client.publish_event(event_type, &fields).await?;
        println!("{}", json!({"channel": args.channel, "id": id}));
    } else if args.channel.starts_with("/u/") {
        let fanout = client
            .push_generic(&args.channel, &[args.payload.as_str()])
            .await?;
        println!("{}", json!({"channel": args.channel, "fanout": fanout}));
    } else {
        bail!(
            "{} is neither a platform event channel (/event/<Name>__e) nor a generic channel (/u/<name>)",
            args.channel
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Publishes one platform event over the Pub/Sub API.
async fn publish_pubsub(args: PublishArgs) -> anyhow::Result<ExitCode> {
    if !args.channel.starts_with("/event/") {
        bail!(
            "with --pubsub, publish to a platform event topic (/event/<Name>__e), not {}",
            args.channel
        );
    }
    let mut fields: Value = serde_json::from_str(&args.payload)
        .context("the payload of a platform event must be a JSON object")?;
    let Some(object) = fields.as_object_mut() else {
        bail!("the payload of a platform event must be a JSON object");
    };
    let authenticator = args.login.authenticator()?;
    let session = authenticator.login().await?;
    // Salesforce requires both; publishing clients fill them in.
    object
        .entry("CreatedDate")
        .or_insert_with(|| json!(chrono_millis()));
    if let Some(user) = &session.user_id {
        object.entry("CreatedById").or_insert_with(|| json!(user));
    }
    let (client, _events) = args.pubsub.builder(authenticator)?.connect().await?;
    let outcome = client.publish(&args.channel, &[fields]).await;
    client.close().await;
    match outcome?.into_iter().next() {
        Some(Published::Ok { replay_id }) => {
            let replay_id = sfstream_pubsub::replay_id::to_text(&replay_id);
            println!(
                "{}",
                json!({"channel": args.channel, "replayId": replay_id})
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Published::Failed { error }) => bail!("{} refused the event: {error}", args.channel),
        Some(other) => bail!("{}: unexpected publish result {other:?}", args.channel),
        None => bail!("{}: no publish result", args.channel),
    }
}

/// Now, in epoch milliseconds.
fn chrono_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
