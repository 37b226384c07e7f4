//! What the Pub/Sub client tests share: an emulated org with its Pub/Sub
//! server, a builder recording the client's events, and helpers to raise
//! and take events.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use sfstream_common::Backoff;
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::pubsub::{
    PubSubClient, PubSubClientBuilder, PubSubError, PubSubEvent, PubSubMessage, PubSubMessages,
};
use sfstream_salesforce::replay::{MemoryStore, OpaqueMarker, ReplayFrom, ReplayStore};
use sfstream_testkit::emulator::{authenticator, create};

pub const ACCOUNTS: &str = "/data/AccountChangeEvent";

pub struct Org {
    pub emulator: Emulator,
    pub events: Arc<Mutex<Vec<PubSubEvent>>>,
}

/// Keepalives and idle close after 1 s, so tests stay quick.
pub fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig::for_tests();
    config.pubsub_keepalive = Duration::from_secs(1);
    config.pubsub_idle_timeout = Duration::from_secs(1);
    config
}

pub async fn org() -> Org {
    org_with(config()).await
}

pub async fn org_with(config: EmulatorConfig) -> Org {
    Org {
        emulator: Emulator::start(config).await.expect("emulator"),
        events: Arc::default(),
    }
}

impl Org {
    pub fn builder(&self) -> PubSubClientBuilder {
        let events = self.events.clone();
        PubSubClient::builder(authenticator(&self.emulator.url()))
            .url(self.emulator.pubsub_url())
            .backoff(Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(300),
            })
            .connection_timeout(Some(Duration::from_secs(5)))
            .rpc_timeout(Duration::from_secs(3))
            .on_event(move |event| events.lock().push(event.clone()))
    }

    pub async fn connect(&self) -> (PubSubClient, PubSubMessages) {
        self.builder().connect().await.expect("connects")
    }

    pub async fn fault(&self, name: &str, body: Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/_emulator/faults/{name}", self.emulator.url()))
            .json(&body)
            .send()
            .await
            .expect("fault");
        assert_eq!(response.status(), 200, "arming {name}");
    }

    /// Creates `n` Accounts (one change event each).
    pub fn accounts(&self, n: usize) {
        for i in 0..n {
            create(
                &self.emulator,
                "Account",
                json!({"Name": format!("Acme {i}")}),
            );
        }
    }

    pub fn count(&self, matches: impl Fn(&PubSubEvent) -> bool) -> usize {
        self.events.lock().iter().filter(|e| matches(e)).count()
    }

    /// Waits (up to 5 s) until `matches` holds for an event.
    pub async fn wait_for(&self, what: &str, matches: impl Fn(&PubSubEvent) -> bool) {
        for _ in 0..500 {
            if self.count(&matches) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {what} event: {:?}", self.events.lock());
    }

    pub async fn wait_subscribed(&self, topic: &str) {
        self.wait_for(
            "Subscribed",
            |e| matches!(e, PubSubEvent::Subscribed { topic: t, .. } if t == topic),
        )
        .await;
    }
}

/// The emulator's replay ids: an 8-byte big-endian counter, then two zero
/// bytes.
pub fn number(replay_id: &[u8]) -> i64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&replay_id[..8]);
    i64::from_be_bytes(head)
}

/// The next item, within `within`.
pub async fn next(
    messages: &mut PubSubMessages,
    within: Duration,
) -> Option<Result<PubSubMessage, PubSubError>> {
    tokio::time::timeout(within, messages.next())
        .await
        .expect("an item in time")
}

/// Takes `n` messages (5 s at most), failing on an error item.
pub async fn take(messages: &mut PubSubMessages, n: usize) -> Vec<PubSubMessage> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match next(messages, Duration::from_secs(5)).await {
            Some(Ok(message)) => got.push(message),
            other => panic!("after {} messages: {other:?}", got.len()),
        }
    }
    got
}

/// Takes the first `n` events of [`ACCOUNTS`] from EARLIEST with markers
/// in a memory store and closes the client; the store then holds the last
/// one's replay id (the marker returned).
pub async fn stored_after(
    org: &Org,
    n: usize,
) -> (Arc<MemoryStore>, Vec<PubSubMessage>, OpaqueMarker) {
    let store = Arc::new(MemoryStore::new());
    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .default_replay(ReplayFrom::All)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    let got = take(&mut messages, n).await;
    client.close().await;
    let stored = store
        .get_opaque(ACCOUNTS)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(Some(&stored.replay_id), got.last().map(|m| &m.replay_id));
    (store, got, stored)
}

/// The replay numbers of `messages`.
pub fn numbers(messages: &[PubSubMessage]) -> Vec<i64> {
    messages.iter().map(|m| number(&m.replay_id)).collect()
}

/// Strictly increasing numbers: with as many as were raised, none lost and
/// none twice.
pub fn assert_increasing(numbers: &[i64]) {
    assert!(
        numbers.windows(2).all(|w| w[1] > w[0]),
        "duplicates or disorder: {numbers:?}"
    );
}
