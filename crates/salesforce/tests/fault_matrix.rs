//! The fault matrix cases not covered elsewhere: a 1 MB event, a 10,000
//! event burst, a Redis restart while markers are being written, and a
//! SIGKILLed consumer on the Redis store. Each case is bounded in time,
//! checks by replay id that nothing is lost, and counts duplicates.
//! (Lost sessions, invalid tokens, dropped connections, busy handshakes,
//! server disconnects, malformed responses, restarts and expired replay ids
//! are in `streaming.rs`; the file-store SIGKILL case too.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::replay::{RedisStore, ReplayFrom, ReplayStore};
use sfstream_salesforce::{Delivery, StreamMessages, StreamingClient};
use sfstream_testkit::emulator::{authenticator as login, push_topic};
use sfstream_testkit::kill9::{Victim, replay_id_in, report_replay_id};
use sfstream_testkit::redis::RedisServer;

const TOPIC: &str = "/topic/Faults";

async fn org() -> Emulator {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(1);
    config.history_limit = 50_000;
    let emulator = Emulator::start(config).await.expect("emulator");
    push_topic(&emulator, "Faults", "SELECT Id, Name FROM Contact", 62.0);
    emulator
}

/// Receives events until `n` distinct replay ids were seen; returns how
/// often each id arrived.
async fn receive(messages: &mut StreamMessages, n: usize, ack: bool) -> BTreeMap<i64, usize> {
    let mut seen = BTreeMap::new();
    while seen.len() < n {
        let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events within 30 s", seen.len()))
            .expect("open")
            .expect("an event");
        *seen
            .entry(message.replay_id().expect("replay id"))
            .or_insert(0) += 1;
        if ack {
            message.ack();
        }
    }
    seen
}

#[tokio::test]
async fn a_one_megabyte_event_arrives_intact() {
    let emulator = org().await;
    let big = "x".repeat(1024 * 1024);
    emulator.org().streaming.preload(
        TOPIC,
        1,
        json!({"Id": "0035g0000000001AAA", "Name": big})
            .as_object()
            .expect("object"),
    );
    let (client, mut messages) = StreamingClient::builder(login(&emulator.url()))
        .default_replay(ReplayFrom::All)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
        .await
        .expect("arrives")
        .expect("open")
        .expect("ok");
    let data = message.data_value().expect("json");
    assert_eq!(
        data["sobject"]["Name"].as_str().map(str::len),
        Some(1024 * 1024)
    );
}

#[tokio::test]
async fn a_ten_thousand_event_burst_arrives_in_order_without_duplicates() {
    let emulator = org().await;
    let (client, mut messages) = StreamingClient::builder(login(&emulator.url()))
        .max_pending(500)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    let sobject = json!({"Id": "0035g0000000001AAA", "Name": "burst"});
    emulator
        .org()
        .streaming
        .preload(TOPIC, 10_000, sobject.as_object().expect("object"));
    let seen = receive(&mut messages, 10_000, false).await;
    assert_eq!(seen.len(), 10_000);
    assert!(seen.values().all(|&n| n == 1), "duplicates in a burst");
}

#[tokio::test]
async fn a_redis_restart_while_markers_are_written_loses_no_marker_after_it() {
    let emulator = org().await;
    let mut redis = RedisServer::start().await;
    let store = Arc::new(
        RedisStore::connect(&redis.url(), None)
            .await
            .expect("redis store"),
    );
    let (client, mut messages) = StreamingClient::builder(login(&emulator.url()))
        .replay_store(store.clone())
        .delivery(Delivery::Acknowledged)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    let sobject = json!({"Id": "0035g0000000001AAA", "Name": "r"});
    emulator
        .org()
        .streaming
        .preload(TOPIC, 200, sobject.as_object().expect("object"));
    receive(&mut messages, 200, true).await;
    client.flush().await;

    redis.kill().await;
    emulator
        .org()
        .streaming
        .preload(TOPIC, 200, sobject.as_object().expect("object"));
    // Handled while Redis is down: the markers wait and are retried.
    let seen = receive(&mut messages, 200, true).await;
    assert!(seen.values().all(|&n| n == 1));
    redis.restart().await;
    let latest = emulator
        .org()
        .streaming
        .channel_state(TOPIC)
        .map(|(l, _)| l)
        .expect("channel");
    tokio::time::timeout(Duration::from_secs(20), client.flush())
        .await
        .expect("markers written once Redis is back");
    let stored = store.get(TOPIC).await.expect("get").map(|m| m.replay_id);
    assert_eq!(
        stored,
        Some(latest),
        "the newest marker reached the restarted Redis"
    );
    redis.kill().await;
}

/// Consumer process for the Redis SIGKILL case: prints then acknowledges each event.
async fn consume(url: &str, redis: &str) {
    let store = Arc::new(RedisStore::connect(redis, None).await.expect("store"));
    let (client, mut messages) = StreamingClient::builder(login(url))
        .replay_store(store)
        .default_replay(ReplayFrom::All)
        .delivery(Delivery::Acknowledged)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    while let Some(Ok(message)) = messages.next().await {
        report_replay_id(message.replay_id().unwrap_or_default()).expect("report");
        message.ack();
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
}

#[tokio::test]
async fn a_consumer_on_the_redis_store_killed_with_sigkill_loses_nothing() {
    if let (Ok(url), Ok(redis)) = (
        std::env::var("SFSTREAM_CHILD_URL"),
        std::env::var("SFSTREAM_CHILD_REDIS"),
    ) {
        consume(&url, &redis).await;
        return;
    }
    let emulator = org().await;
    let mut redis = RedisServer::start().await;
    let sobject = json!({"Id": "0035g0000000001AAA", "Name": "k"});
    emulator
        .org()
        .streaming
        .preload(TOPIC, 3_000, sobject.as_object().expect("object"));
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    // Killed every 800 lines until everything was seen (at most 8 runs).
    for _ in 0..8 {
        if seen.len() == 3_000 {
            break;
        }
        let mut consumer = Victim::rerun_test(
            "a_consumer_on_the_redis_store_killed_with_sigkill_loses_nothing",
            [
                ("SFSTREAM_CHILD_URL", emulator.url()),
                ("SFSTREAM_CHILD_REDIS", redis.url()),
            ],
        );
        let mut read = 0;
        consumer
            .read(Duration::from_secs(60), Duration::from_secs(5), |line| {
                if let Some(id) = replay_id_in(line) {
                    *seen.entry(id).or_insert(0) += 1;
                    read += 1;
                }
                read < 800
            })
            .await;
        for id in consumer.kill().await.iter().filter_map(|l| replay_id_in(l)) {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "redis SIGKILL case: {} events, {duplicates} delivered twice",
        seen.len()
    );
    assert_eq!(
        seen.len(),
        3_000,
        "events lost across SIGKILLs on the Redis store"
    );
    redis.kill().await;
}
