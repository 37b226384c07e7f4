//! `sfstream demo`: the whole product on one machine, no account needed.
//! Starts an emulated org in-process, declares a Contact PushTopic the way
//! the Nameko extension does, streams it with a file replay store while
//! the REST client creates, updates and deletes Contacts, then stops,
//! changes more records while stopped, and shows a restart resuming from
//! the stored marker.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use serde_json::json;
use sfstream_emulator::config::defaults;
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::replay::{FileStore, ReplayFrom, ReplayStore};
use sfstream_salesforce::rest::SobjectTopic;
use sfstream_salesforce::streaming::payload::PushTopicEvent;
use sfstream_salesforce::{
    Authenticator, Credentials, Delivery, LoginUrl, SalesforceClient, Secret, StreamMessages,
    StreamingClient,
};

/// Options of `sfstream demo`.
#[derive(Debug, Args)]
#[command(after_help = "Example:
  sfstream demo
  sfstream demo --replay-store file:demo-markers.redb --contacts 5")]
pub struct DemoArgs {
    /// The replay store (default: a file in a temporary directory).
    #[arg(long, value_name = "file:PATH")]
    replay_store: Option<String>,
    /// How many Contacts to create.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=500))]
    contacts: u16,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temp = tempfile::tempdir().context("creating a temporary directory")?;
    let path = match &args.replay_store {
        Some(uri) => uri
            .strip_prefix("file:")
            .context("--replay-store must be file:PATH")?
            .into(),
        None => temp.path().join("markers.redb"),
    };
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .context("starting the emulated org")?;
    eprintln!("● emulated Salesforce org on {}", emulator.url());
    eprintln!(
        "● its console (records, clients, live events): {}/",
        emulator.url()
    );

    let login = Authenticator::new(Credentials::password(
        defaults::USERNAME,
        Secret::new(defaults::PASSWORD),
        Some(Secret::new(defaults::SECURITY_TOKEN)),
        defaults::CONSUMER_KEY,
        Secret::new(defaults::CONSUMER_SECRET),
    ))
    .with_login_url(LoginUrl::parse(&emulator.url())?);
    let rest = SalesforceClient::new(login.clone());

    let topic = SobjectTopic::new("Contact").exclude_current_user(false);
    let declared = rest
        .declare_sobject_topic(&topic)
        .await
        .context("declaring the Contact PushTopic")?;
    let channel = declared.channel.clone();
    eprintln!("● PushTopic {}: {}", declared.name, declared.query);

    let store: Arc<dyn ReplayStore> = Arc::new(FileStore::open(&path)?);
    eprintln!("● replay markers in {}", path.display());
    let (client, mut events) = connect(&login, store.clone()).await?;
    client.subscribe(&channel).await?;
    eprintln!("● listening on {channel}\n");

    let mut ids = Vec::new();
    for i in 0..args.contacts {
        let fields = json!({"FirstName": "Ada", "LastName": format!("Lovelace {i}"), "Email": format!("ada{i}@example.com")});
        ids.push(rest.create("Contact", &fields).await?);
    }
    rest.update(
        "Contact",
        &ids[0],
        &json!({"Email": "countess@example.com"}),
    )
    .await?;
    rest.delete("Contact", &ids[ids.len() - 1]).await?;
    let expected = ids.len() + 2;
    print_events(&mut events, expected).await?;
    client.close().await;
    let marker = store.get(&channel).await?.context("no marker was stored")?;
    drop((client, events, store));
    eprintln!("\n● stopped; stored marker: replay id {}", marker.replay_id);

    let late = rest
        .create(
            "Contact",
            &json!({"LastName": "Hopper", "FirstName": "Grace"}),
        )
        .await?;
    rest.update("Contact", &late, &json!({"Title": "Rear Admiral"}))
        .await?;
    eprintln!("● while stopped: created and updated Grace Hopper");

    let store: Arc<dyn ReplayStore> = Arc::new(FileStore::open(&path)?);
    let (client, mut events) = connect(&login, store.clone()).await?;
    client.subscribe(&channel).await?;
    eprintln!("● restarted from the stored marker:\n");
    let replayed = print_events(&mut events, 2).await?;
    client.close().await;
    if replayed.first().is_none_or(|id| *id <= marker.replay_id) {
        bail!(
            "the restart did not resume after replay id {}",
            marker.replay_id
        );
    }
    eprintln!(
        "\n● nothing lost, nothing repeated: resumed after replay id {}",
        marker.replay_id
    );
    Ok(ExitCode::SUCCESS)
}

async fn connect(
    login: &Authenticator,
    store: Arc<dyn ReplayStore>,
) -> anyhow::Result<(StreamingClient, StreamMessages)> {
    let connected = StreamingClient::builder(login.clone())
        .replay_store(store)
        .default_replay(ReplayFrom::New)
        .delivery(Delivery::Acknowledged)
        .connect()
        .await?;
    Ok(connected)
}

/// Prints `n` notifications as they arrive; returns their replay ids.
async fn print_events(events: &mut StreamMessages, n: usize) -> anyhow::Result<Vec<i64>> {
    let mut ids = Vec::new();
    while ids.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .context("no notification within 30 s")?
            .context("the stream ended")??;
        let data: PushTopicEvent = event.data_as()?;
        let name = data
            .sobject
            .get("Name")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let id = data
            .sobject
            .get("Id")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        println!(
            "  #{:<4} {:<9} Contact {id} {name}",
            data.event.replay_id,
            data.event.kind.as_deref().unwrap_or("?")
        );
        ids.push(data.event.replay_id);
        event.ack();
    }
    Ok(ids)
}
