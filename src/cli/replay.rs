//! `sfstream replay show|set|reset`: inspect and edit replay markers, the
//! integer ones of CometD channels and the opaque ones of Pub/Sub topics.

use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use sfstream_salesforce::replay::{
    AgeStatus, OpaqueMarker, ReplayMarker, age_status, channel_key, marker_age, open_store,
    retention,
};

/// Options of `sfstream replay`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sfstream replay show --replay-store file:markers.redb
  sfstream replay set --replay-store redis://127.0.0.1:6379/0 /topic/ContactChanges 1234
  sfstream replay set --pubsub --replay-store file:markers.redb /data/AccountChangeEvent AAAAAAAAAAEAAA==
  sfstream replay reset --replay-store file:markers.redb /topic/ContactChanges")]
pub struct ReplayArgs {
    /// The store: memory: | file:PATH | redis://HOST:PORT/DB.
    #[arg(
        long,
        env = "SALESFORCE_REPLAY_STORE",
        value_name = "URI",
        global = true
    )]
    replay_store: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Print the markers (one JSON object per line), or one channel's.
    Show {
        /// Only this channel.
        channel: Option<String>,
    },
    /// Set a channel's marker to a replay id (even backwards).
    Set {
        /// The channel.
        channel: String,
        /// The replay id to resume after (with --pubsub: base64, as `listen --pubsub` prints it).
        replay_id: String,
        /// The marker of a Pub/Sub topic (an opaque replay id).
        #[arg(long)]
        pubsub: bool,
    },
    /// Remove a channel's marker (it starts from --replay next time), or every marker with --all.
    Reset {
        /// The channel.
        channel: Option<String>,
        /// Remove every marker of the store.
        #[arg(long, conflicts_with = "channel")]
        all: bool,
    },
}

/// Adds what the marker's age means: `age_seconds` (null when its event's
/// time is unknown), `retention_seconds`, and `"expired": true` past
/// retention (`"expiring": true` past the warn age).
fn with_age(mut line: Value, channel: &str, created: Option<DateTime<Utc>>) -> String {
    let age = created.map(|c| marker_age(c, Utc::now()));
    line["age_seconds"] = json!(age.map(|a| a.as_secs()));
    line["retention_seconds"] = json!(retention(channel).as_secs());
    match age.map(|a| age_status(channel, a)) {
        Some(AgeStatus::Expired) => line["expired"] = json!(true),
        Some(AgeStatus::NearingRetention) => line["expiring"] = json!(true),
        _ => {}
    }
    line.to_string()
}

fn line(channel: &str, marker: &ReplayMarker) -> String {
    let line = json!({
        "channel": channel,
        "replay_id": marker.replay_id,
        "created": marker.created.map(|c| c.to_rfc3339()),
    });
    with_age(line, channel, marker.created)
}

fn opaque_line(topic: &str, marker: &OpaqueMarker) -> String {
    let line = json!({
        "channel": topic,
        "transport": "pubsub",
        "replay_id": sfstream_pubsub::replay_id::to_text(&marker.replay_id),
        "created": marker.created.map(|c| c.to_rfc3339()),
    });
    with_age(line, topic, marker.created)
}

/// Runs `sfstream replay`.
pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let uri = args
        .replay_store
        .context("--replay-store is required (memory: | file:PATH | redis://HOST:PORT/DB)")?;
    let store = open_store(&uri).await.context("--replay-store")?;
    match args.action {
        Action::Show {
            channel: Some(channel),
        } => {
            let cometd = store.get(&channel).await?;
            let pubsub = store.get_opaque(&channel).await?;
            if let Some(marker) = &cometd {
                println!("{}", line(channel_key(&channel), marker));
            }
            if let Some(marker) = &pubsub {
                println!("{}", opaque_line(&channel, marker));
            }
            if cometd.is_none() && pubsub.is_none() {
                eprintln!("no marker for {channel}");
                return Ok(ExitCode::from(3));
            }
        }
        Action::Show { channel: None } => {
            for (channel, marker) in store.list().await? {
                println!("{}", line(&channel, &marker));
            }
            for (topic, marker) in store.list_opaque().await? {
                println!("{}", opaque_line(&topic, &marker));
            }
        }
        Action::Set {
            channel,
            replay_id,
            pubsub: true,
        } => {
            let id = sfstream_pubsub::replay_id::from_text(&replay_id)?;
            store
                .put_opaque(&channel, &OpaqueMarker::new(id, None))
                .await?;
            eprintln!("{channel} will resume after Pub/Sub replay id {replay_id}");
        }
        Action::Set {
            channel,
            replay_id,
            pubsub: false,
        } => {
            let replay_id: i64 = match replay_id.trim().parse() {
                Ok(id) if id >= 0 => id,
                _ => bail!(
                    "a marker is a replay id (>= 0); to start from NEW or ALL, reset it and use --replay (a Pub/Sub replay id takes --pubsub)"
                ),
            };
            store
                .replace(&channel, ReplayMarker::new(replay_id, None))
                .await?;
            eprintln!(
                "{} will resume after replay id {replay_id}",
                channel_key(&channel)
            );
        }
        Action::Reset {
            channel: Some(channel),
            ..
        } => {
            // Both kinds: the channel's CometD marker and its Pub/Sub one.
            store.remove(&channel).await?;
            store.remove_opaque(&channel).await?;
            eprintln!("removed the markers of {}", channel_key(&channel));
        }
        Action::Reset {
            channel: None,
            all: true,
        } => {
            let markers = store.list().await?;
            for (channel, _) in &markers {
                store.remove(channel).await?;
            }
            let opaque = store.list_opaque().await?;
            for (topic, _) in &opaque {
                store.remove_opaque(topic).await?;
            }
            eprintln!("removed {} markers", markers.len() + opaque.len());
        }
        Action::Reset {
            channel: None,
            all: false,
        } => bail!("name a CHANNEL to reset, or pass --all"),
    }
    Ok(ExitCode::SUCCESS)
}
