//! The fault matrix cases not covered elsewhere: a 1 MB event, a 10,000
//! event burst, a Redis restart while markers are being written, and a
//! SIGKILLed consumer on the Redis store. Each case is bounded in time,
//! checks by replay id that nothing is lost, and counts duplicates.
//! (Lost sessions, invalid tokens, dropped connections, busy handshakes,
//! server disconnects, malformed responses, restarts and expired replay ids
//! are in `streaming.rs`; the file-store SIGKILL case too.)

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::replay::{RedisStore, ReplayFrom, ReplayStore};
use sfstream_salesforce::{
    Authenticator, Credentials, Delivery, LoginUrl, Secret, StreamMessages, StreamingClient,
};
use tokio::process::{Child, Command};

const TOPIC: &str = "/topic/Faults";

async fn org() -> Emulator {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(1);
    config.history_limit = 50_000;
    let emulator = Emulator::start(config).await.expect("emulator");
    let org = emulator.org();
    let topic =
        json!({"Name": "Faults", "Query": "SELECT Id, Name FROM Contact", "ApiVersion": 62.0});
    org.create_record(
        "PushTopic",
        topic.as_object().cloned().unwrap_or_default(),
        &org.user_id(),
    )
    .expect("topic");
    emulator
}

fn login(url: &str) -> Authenticator {
    Authenticator::new(Credentials::password(
        "emulator@example.com",
        "password",
        Some(Secret::new("token")),
        "emulator-consumer-key",
        "emulator-consumer-secret",
    ))
    .with_login_url(LoginUrl::parse(url).expect("url"))
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

/// A private redis-server on a free port, so restarting it disturbs no other test.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut redis = Self { port, child: None };
        redis.up().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn up(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (scripts/test-deps.sh installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

#[tokio::test]
async fn a_redis_restart_while_markers_are_written_loses_no_marker_after_it() {
    let emulator = org().await;
    let mut redis = PrivateRedis::start().await;
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
    redis.up().await;
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
    use std::io::Write;
    let store = Arc::new(RedisStore::connect(redis, None).await.expect("store"));
    let (client, mut messages) = StreamingClient::builder(login(url))
        .replay_store(store)
        .default_replay(ReplayFrom::All)
        .delivery(Delivery::Acknowledged)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    let mut out = std::io::stdout().lock();
    while let Some(Ok(message)) = messages.next().await {
        writeln!(out, "replay:{}", message.replay_id().unwrap_or_default()).expect("write");
        out.flush().expect("flush");
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
    let mut redis = PrivateRedis::start().await;
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
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args([
                "--exact",
                "a_consumer_on_the_redis_store_killed_with_sigkill_loses_nothing",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SFSTREAM_CHILD_URL", emulator.url())
            .env("SFSTREAM_CHILD_REDIS", redis.url())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("child");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let mut read = 0;
        while read < 800 {
            let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
            else {
                break;
            };
            if let Some(id) = line
                .rsplit_once("replay:")
                .and_then(|(_, id)| id.trim().parse::<i64>().ok())
            {
                *seen.entry(id).or_insert(0) += 1;
                read += 1;
            }
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(2), lines.next_line()).await
        {
            if let Some(id) = line
                .rsplit_once("replay:")
                .and_then(|(_, id)| id.trim().parse::<i64>().ok())
            {
                *seen.entry(id).or_insert(0) += 1;
            }
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
