//! `sfstream replay show|set|reset`: inspect and edit replay markers.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sfstream_salesforce::replay::{ReplayMarker, channel_key, open_store};

/// Options of `sfstream replay`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sfstream replay show --replay-store file:markers.redb
  sfstream replay set --replay-store redis://127.0.0.1:6379/0 /topic/ContactChanges 1234
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
        /// The replay id to resume after.
        replay_id: i64,
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

fn line(channel: &str, marker: &ReplayMarker) -> String {
    serde_json::json!({
        "channel": channel,
        "replay_id": marker.replay_id,
        "created": marker.created.map(|c| c.to_rfc3339()),
    })
    .to_string()
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
        } => match store.get(&channel).await? {
            Some(marker) => println!("{}", line(channel_key(&channel), &marker)),
            None => {
                eprintln!("no marker for {channel}");
                return Ok(ExitCode::from(3));
            }
        },
        Action::Show { channel: None } => {
            for (channel, marker) in store.list().await? {
                println!("{}", line(&channel, &marker));
            }
        }
        Action::Set { channel, replay_id } => {
            if replay_id < 0 {
                bail!(
                    "a marker is a replay id (>= 0); to start from NEW or ALL, reset it and use --replay"
                );
            }
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
            store.remove(&channel).await?;
            eprintln!("removed the marker of {}", channel_key(&channel));
        }
        Action::Reset {
            channel: None,
            all: true,
        } => {
            let markers = store.list().await?;
            for (channel, _) in &markers {
                store.remove(channel).await?;
            }
            eprintln!("removed {} markers", markers.len());
        }
        Action::Reset {
            channel: None,
            all: false,
        } => bail!("name a CHANNEL to reset, or pass --all"),
    }
    Ok(ExitCode::SUCCESS)
}
