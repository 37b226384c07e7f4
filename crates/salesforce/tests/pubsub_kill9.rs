//! A Pub/Sub consumer killed with SIGKILL mid-stream, restarted from its
//! replay store (redb file, Redis): no event lost.

#[path = "pubsub_support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use sfstream_salesforce::Delivery;
use sfstream_salesforce::pubsub::PubSubClient;
use sfstream_salesforce::replay::{ReplayFrom, open_store};
use sfstream_testkit::emulator::authenticator;
use sfstream_testkit::kill9::{Victim, report_replay_id};
use sfstream_testkit::redis::RedisServer;
use support::{ACCOUNTS, number};

const CHILD: &str = "SFSTREAM_PUBSUB_CHILD";

/// The consumer process: reports each event once handled, then
/// acknowledges it.
async fn consume_forever(url: &str, pubsub_url: &str, store: &str, from: ReplayFrom) {
    let store = open_store(store).await.expect("store");
    let (client, mut messages) = PubSubClient::builder(authenticator(url))
        .url(pubsub_url)
        .replay_store(store)
        .default_replay(from)
        .delivery(Delivery::Acknowledged)
        .max_pending(10)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    while let Some(Ok(message)) = messages.next().await {
        report_replay_id(number(&message.replay_id)).expect("report");
        message.ack();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A consumer process; `from` is where it starts without a stored marker.
fn consumer(test: &str, org: &support::Org, store: &str, from: &str) -> Victim {
    Victim::rerun_test(
        test,
        [
            (CHILD, from.to_string()),
            ("SFSTREAM_CHILD_URL", org.emulator.url()),
            ("SFSTREAM_CHILD_PUBSUB", org.emulator.pubsub_url()),
            ("SFSTREAM_CHILD_STORE", store.to_string()),
        ],
    )
}

/// Runs as the child when the harness asked for it.
async fn as_child() -> bool {
    if std::env::var(CHILD).is_err() {
        return false;
    }
    let var = |name: &str| std::env::var(name).expect(name);
    let from = var(CHILD).parse().expect("ALL or NEW");
    consume_forever(
        &var("SFSTREAM_CHILD_URL"),
        &var("SFSTREAM_CHILD_PUBSUB"),
        &var("SFSTREAM_CHILD_STORE"),
        from,
    )
    .await;
    true
}

/// Kills the consumer twice mid-stream, raising events while it is down,
/// and checks that every event was handled at least once. Only the first
/// run starts from EARLIEST: the restarts start from LATEST unless their
/// store has a marker, so a lost marker loses events.
async fn killed_twice(test: &str, store: &str) {
    let org = support::org().await;
    org.accounts(60);
    let mut seen = BTreeSet::new();
    for (target, from) in [(20, "ALL"), (50, "NEW")] {
        consumer(test, &org, store, from)
            .collect_then_kill(&mut seen, target, Duration::from_secs(6))
            .await;
        org.accounts(10);
    }
    let raised = 60 + 2 * 10;
    consumer(test, &org, store, "NEW")
        .collect_then_kill(&mut seen, raised, Duration::from_secs(6))
        .await;
    assert_eq!(seen.len(), raised, "events lost across SIGKILLs: {seen:?}");
}

#[tokio::test]
async fn a_killed_consumer_resumes_from_its_file_store() {
    if as_child().await {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("file:{}", dir.path().join("markers.redb").display());
    killed_twice("a_killed_consumer_resumes_from_its_file_store", &store).await;
}

#[tokio::test]
async fn a_killed_consumer_resumes_from_its_redis_store() {
    if as_child().await {
        return;
    }
    let redis = RedisServer::start().await;
    killed_twice(
        "a_killed_consumer_resumes_from_its_redis_store",
        &redis.url(),
    )
    .await;
}
