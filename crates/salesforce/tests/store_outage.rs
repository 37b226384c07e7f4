//! The replay store down (Redis stopped, a failing disk): flush and close
//! stay bounded, say what was not stored, and close releases the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::replay::{
    FileStore, OpaqueMarker, RedisStore, ReplayMarker, ReplayStore, StoreError,
};
use sfstream_salesforce::{Delivery, StreamMessages, StreamingClient};
use sfstream_testkit::emulator::{authenticator as login, push_topic};
use sfstream_testkit::redis::RedisServer;

const TOPIC: &str = "/topic/Outage";

async fn org() -> Emulator {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(1);
    let emulator = Emulator::start(config).await.expect("emulator");
    push_topic(&emulator, "Outage", "SELECT Id, Name FROM Contact", 62.0);
    emulator
}

fn raise(emulator: &Emulator, n: usize) -> i64 {
    let sobject = json!({"Id": "0035g0000000001AAA", "Name": "o"});
    emulator
        .org()
        .streaming
        .preload(TOPIC, n, sobject.as_object().expect("object"))
}

/// Receives and acknowledges `n` events; returns the last replay id.
async fn ack(messages: &mut StreamMessages, n: usize) -> i64 {
    let mut last = 0;
    for _ in 0..n {
        let message = tokio::time::timeout(Duration::from_secs(15), messages.next())
            .await
            .expect("an event within 15 s")
            .expect("open")
            .expect("an event");
        last = message.replay_id().expect("replay id");
        message.ack();
    }
    last
}

#[tokio::test]
async fn flush_and_close_are_bounded_while_redis_is_down() {
    let emulator = org().await;
    let mut redis = RedisServer::start().await;
    let store = Arc::new(
        RedisStore::connect(&redis.url(), None)
            .await
            .expect("store"),
    );
    let (client, mut messages) = StreamingClient::builder(login(&emulator.url()))
        .replay_store(store.clone())
        .delivery(Delivery::Acknowledged)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    raise(&emulator, 3);
    let stored = ack(&mut messages, 3).await;
    client
        .flush_within(Duration::from_secs(10))
        .await
        .expect("stored while Redis is up");
    assert_eq!(
        store.get(TOPIC).await.expect("get").map(|m| m.replay_id),
        Some(stored)
    );

    redis.kill().await;
    raise(&emulator, 2);
    let latest = ack(&mut messages, 2).await;
    let started = Instant::now();
    let error = client
        .flush_within(Duration::from_secs(2))
        .await
        .expect_err("Redis is down: not flushed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    let shown = error.to_string();
    assert!(
        shown.contains(TOPIC) && shown.contains(&latest.to_string()),
        "{shown}"
    );
    match &error {
        sfstream_salesforce::streaming::FlushError::Timeout { markers, .. } => {
            assert_eq!(markers.len(), 1, "{markers:?}");
            assert_eq!(markers[0].0, TOPIC);
            assert_eq!(markers[0].1.replay_id, latest);
        }
        other => panic!("{other:?}"),
    }

    let started = Instant::now();
    client.close().await;
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    drop(client);
    drop(messages);
    // The commit loop gave up and released the store.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "the commit loop still holds the store"
    );
}

/// A file store whose writes fail while `down` is set (a full disk).
#[derive(Debug)]
struct FailingDisk {
    inner: FileStore,
    down: AtomicBool,
}

impl FailingDisk {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::Acquire) {
            return Err(StoreError::Io {
                store: "file:test".into(),
                context: "write".into(),
                source: std::io::Error::from_raw_os_error(28), // ENOSPC
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ReplayStore for FailingDisk {
    async fn get(&self, channel: &str) -> Result<Option<ReplayMarker>, StoreError> {
        self.inner.get(channel).await
    }
    async fn advance(&self, channel: &str, marker: ReplayMarker) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.advance(channel, marker).await
    }
    async fn advance_many(&self, markers: &[(String, ReplayMarker)]) -> Result<usize, StoreError> {
        self.check()?;
        self.inner.advance_many(markers).await
    }
    async fn replace(&self, channel: &str, marker: ReplayMarker) -> Result<(), StoreError> {
        self.check()?;
        self.inner.replace(channel, marker).await
    }
    async fn remove(&self, channel: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.remove(channel).await
    }
    async fn list(&self) -> Result<Vec<(String, ReplayMarker)>, StoreError> {
        self.inner.list().await
    }
    async fn get_opaque(&self, topic: &str) -> Result<Option<OpaqueMarker>, StoreError> {
        self.inner.get_opaque(topic).await
    }
    async fn put_opaque(&self, topic: &str, marker: &OpaqueMarker) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_opaque(topic, marker).await
    }
    async fn put_opaque_many(&self, markers: &[(String, OpaqueMarker)]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_opaque_many(markers).await
    }
    async fn remove_opaque(&self, topic: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.remove_opaque(topic).await
    }
    async fn list_opaque(&self) -> Result<Vec<(String, OpaqueMarker)>, StoreError> {
        self.inner.list_opaque().await
    }
}

#[tokio::test]
async fn close_releases_a_file_store_whose_writes_fail() {
    let emulator = org().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("markers.redb");
    let store = Arc::new(FailingDisk {
        inner: FileStore::open(&path).expect("store"),
        down: AtomicBool::new(false),
    });
    let (client, mut messages) = StreamingClient::builder(login(&emulator.url()))
        .replay_store(store.clone())
        .delivery(Delivery::Acknowledged)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    raise(&emulator, 2);
    let stored = ack(&mut messages, 2).await;
    client
        .flush_within(Duration::from_secs(10))
        .await
        .expect("stored");
    store.down.store(true, Ordering::Release);
    raise(&emulator, 2);
    ack(&mut messages, 2).await;

    let started = Instant::now();
    client.close().await;
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    drop(client);
    drop(messages);
    drop(store);
    // Released: the file opens again, with the marker stored before the failure.
    let reopened = FileStore::open(&path).expect("the file store was released");
    assert_eq!(
        reopened.get(TOPIC).await.expect("get").map(|m| m.replay_id),
        Some(stored)
    );
}
