//! `sfstream publish`: publish a platform event or push a generic event.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use sfstream_salesforce::SalesforceClient;

use super::login::LoginArgs;

/// Options of `sfstream publish`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sfstream publish /event/Printer_Status__e '{\"Printer_Model__c\": \"XZO-5\"}'
  sfstream publish /u/notifications 'The build is green'")]
pub struct PublishArgs {
    #[command(flatten)]
    login: LoginArgs,
    /// /event/<Name>__e (platform event) or /u/<name> (generic streaming channel).
    channel: String,
    /// For a platform event: a JSON object of its fields. For a generic channel: the payload text.
    payload: String,
}

/// Runs `sfstream publish`.
pub async fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
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
