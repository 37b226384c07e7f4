//! The Pub/Sub client under every failure the emulated org produces: a
//! token invalidated mid-stream, corrupt and expired replay ids (with and
//! without fallback), dropped streams, a busy service, a silent stream,
//! keepalive markers of a quiet topic, and a slow consumer.

#[path = "pubsub_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use sfstream_salesforce::Delivery;
use sfstream_salesforce::pubsub::{PubSubError, PubSubEvent};
use sfstream_salesforce::replay::{
    ExpiredReplayId, MemoryStore, OpaqueMarker, ReplayFrom, ReplayStore,
};
use support::{
    ACCOUNTS, assert_increasing, config, next, number, numbers, org, org_with, stored_after, take,
};

fn reconnects(org: &support::Org) -> usize {
    org.count(|e| matches!(e, PubSubEvent::Reconnecting { .. }))
}

#[tokio::test]
async fn a_token_invalidated_mid_stream_loses_and_repeats_nothing() {
    let org = org().await;
    org.accounts(3);
    // Two at a time: every event taken sends a request, where the server
    // notices the invalidated token.
    let (client, mut messages) = org
        .builder()
        .default_replay(ReplayFrom::All)
        .max_pending(2)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    let mut got = take(&mut messages, 3).await;
    org.fault("invalidate-tokens", json!({})).await;
    org.accounts(3);
    got.extend(take(&mut messages, 3).await);
    assert_increasing(&numbers(&got));
    assert!(
        org.count(|e| matches!(e, PubSubEvent::LoggedIn { .. })) >= 2,
        "{:?}",
        org.events.lock()
    );
    client.close().await;
}

#[tokio::test]
async fn a_corrupt_stored_replay_id_falls_back_and_the_marker_is_replaced() {
    let org = org().await;
    org.accounts(2);
    let store = Arc::new(MemoryStore::new());
    store
        .put_opaque(
            ACCOUNTS,
            &OpaqueMarker::new(b"not a replay id".to_vec(), None),
        )
        .await
        .expect("put");
    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .replay_fallback(Some(ReplayFrom::All))
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    // Never silent: a gap first (no creation time is known for the marker).
    let gap = take(&mut messages, 1).await.remove(0);
    let window = gap.gap.clone().expect("a gap first");
    assert_eq!(window.channel, ACCOUNTS);
    assert_eq!(window.from, None);
    assert_eq!(window.fallback, ReplayFrom::All);
    assert_eq!(
        window.expired_replay_id,
        ExpiredReplayId::Opaque(sfstream_pubsub::replay_id::to_text(b"not a replay id"))
    );
    assert_eq!(gap.line_data(), window.to_json());
    gap.ack(); // does nothing
    let got = take(&mut messages, 2).await;
    assert!(got.iter().all(|m| m.gap.is_none()));
    assert_eq!(
        org.count(
            |e| matches!(e, PubSubEvent::ReplayFallback { fallback, .. } if fallback == "EARLIEST")
        ),
        1
    );
    assert_eq!(
        org.count(|e| matches!(e, PubSubEvent::Gap(g) if g == &window)),
        1
    );
    assert_eq!(reconnects(&org), 0);
    client
        .flush_within(Duration::from_secs(2))
        .await
        .expect("flush");
    assert_eq!(
        store
            .get_opaque(ACCOUNTS)
            .await
            .expect("get")
            .map(|m| m.replay_id),
        Some(got[1].replay_id.clone())
    );
    client.close().await;
}

#[tokio::test]
async fn a_corrupt_replay_id_without_fallback_is_one_clear_error() {
    let org = org().await;
    let store = Arc::new(MemoryStore::new());
    store
        .put_opaque(ACCOUNTS, &OpaqueMarker::new(b"garbage".to_vec(), None))
        .await
        .expect("put");
    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    let error = next(&mut messages, Duration::from_secs(3))
        .await
        .expect("an item")
        .expect_err("refused");
    assert!(
        matches!(&error, PubSubError::ReplayIdInvalid { topic, .. } if topic == ACCOUNTS),
        "{error:?}"
    );
    assert!(error.to_string().contains(ACCOUNTS), "{error}");
    // Not retried: no loop of subscribes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reconnects(&org), 0);
    // The marker is left for the operator.
    assert!(store.get_opaque(ACCOUNTS).await.expect("get").is_some());
    client.close().await;
}

#[tokio::test]
async fn an_expired_replay_id_falls_back_to_latest() {
    let org = org().await;
    org.accounts(3);
    let (store, got, stored) = stored_after(&org, 3).await;
    // Everything up to and after the stored id is gone.
    org.accounts(1);
    org.fault(
        "expire",
        json!({"channel": ACCOUNTS, "through": number(&got[2].replay_id) + 1}),
    )
    .await;

    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .replay_fallback(Some(ReplayFrom::New))
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    org.wait_for("fallback", |e| {
        matches!(e, PubSubEvent::ReplayFallback { .. })
    })
    .await;
    org.wait_subscribed(ACCOUNTS).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    org.accounts(1);
    // The gap first: from the stored marker's event to the fallback.
    let gap = take(&mut messages, 1).await.remove(0).gap.expect("a gap");
    assert_eq!(gap.from, stored.created);
    assert!(gap.from.is_some(), "the marker kept its event's time");
    assert_eq!(gap.fallback, ReplayFrom::New);
    let new = take(&mut messages, 1).await;
    assert!(number(&new[0].replay_id) > number(&got[2].replay_id));
    client.close().await;
}

#[tokio::test]
async fn dropped_streams_resume_after_the_last_event_received() {
    let org = org().await;
    org.accounts(3);
    let (client, mut messages) = org
        .builder()
        .default_replay(ReplayFrom::All)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    let mut got = take(&mut messages, 3).await;
    org.fault("drop-streams", json!({})).await;
    org.accounts(3);
    got.extend(take(&mut messages, 3).await);
    assert_increasing(&numbers(&got));
    assert_eq!(got.len(), 6);
    assert!(reconnects(&org) >= 1, "{:?}", org.events.lock());
    client.close().await;
}

#[tokio::test]
async fn a_busy_service_is_retried_with_backoff() {
    let org = org().await;
    org.fault("busy", json!({"count": 2})).await;
    org.accounts(2);
    let (client, mut messages) = org
        .builder()
        .default_replay(ReplayFrom::All)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    let got = take(&mut messages, 2).await;
    assert_increasing(&numbers(&got));
    assert_eq!(reconnects(&org), 2, "{:?}", org.events.lock());
    client.close().await;
}

#[tokio::test]
async fn a_silent_stream_is_reopened_by_the_watchdog() {
    let mut config = config();
    // The server stays silent far longer than the client's idle timeout.
    config.pubsub_keepalive = Duration::from_secs(60);
    let org = org_with(config).await;
    let (client, mut messages) = org
        .builder()
        .idle_timeout(Duration::from_millis(400))
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    org.wait_for("watchdog", |e| {
        matches!(e, PubSubEvent::Reconnecting { reason, .. } if reason.contains("idle timeout"))
    })
    .await;
    org.wait_subscribed(ACCOUNTS).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    org.accounts(2);
    let got = take(&mut messages, 2).await;
    assert_increasing(&numbers(&got));
    client.close().await;
}

#[tokio::test]
async fn a_quiet_topic_stores_the_keepalive_replay_id() {
    let org = org().await;
    org.accounts(2);
    let store = Arc::new(MemoryStore::new());
    let (client, _messages) = org
        .builder()
        .replay_store(store.clone())
        .delivery(Delivery::Acknowledged)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    org.wait_for("keepalive marker", |e| {
        matches!(e, PubSubEvent::KeepaliveMarker { .. })
    })
    .await;
    client
        .flush_within(Duration::from_secs(2))
        .await
        .expect("flush");
    let (latest, _) = org
        .emulator
        .org()
        .streaming
        .channel_state(ACCOUNTS)
        .expect("channel");
    let stored = store
        .get_opaque(ACCOUNTS)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(number(&stored.replay_id), latest);
    client.close().await;
}

#[tokio::test]
async fn an_unacknowledged_event_keeps_keepalives_from_moving_the_marker() {
    let org = org().await;
    let store = Arc::new(MemoryStore::new());
    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .delivery(Delivery::Acknowledged)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    org.wait_subscribed(ACCOUNTS).await;
    org.accounts(1);
    let held = take(&mut messages, 1).await;
    // Keepalives come every second; none may pass the unacknowledged event.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    client
        .flush_within(Duration::from_secs(2))
        .await
        .expect("flush");
    assert_eq!(store.get_opaque(ACCOUNTS).await.expect("get"), None);
    held[0].ack();
    client
        .flush_within(Duration::from_secs(2))
        .await
        .expect("flush");
    assert_eq!(
        store
            .get_opaque(ACCOUNTS)
            .await
            .expect("get")
            .map(|m| m.replay_id),
        Some(held[0].replay_id.clone())
    );
    client.close().await;
}

#[tokio::test]
async fn a_slow_consumer_pauses_the_server_and_memory_stays_bounded() {
    let org = org().await;
    org.accounts(40);
    let (client, mut messages) = org
        .builder()
        .default_replay(ReplayFrom::All)
        .max_pending(5)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    // Longer than the server's idle close of a stream owed nothing.
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            messages.pending_count() <= 5,
            "{}",
            messages.pending_count()
        );
    }
    assert_eq!(messages.pending_count(), 5);
    let got = take(&mut messages, 40).await;
    assert_increasing(&numbers(&got));
    assert_eq!(reconnects(&org), 0, "{:?}", org.events.lock());
    client.close().await;
}

#[tokio::test]
async fn a_restarted_server_is_reconnected_without_loss_or_duplicates() {
    let mut org = org().await;
    org.accounts(2);
    let (client, mut messages) = org
        .builder()
        .default_replay(ReplayFrom::All)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    let mut got = take(&mut messages, 2).await;
    org.emulator.restart().await.expect("restarts");
    org.accounts(2);
    got.extend(take(&mut messages, 2).await);
    assert_increasing(&numbers(&got));
    assert!(reconnects(&org) >= 1, "{:?}", org.events.lock());
    client.close().await;
}

/// A TCP proxy whose connections can be frozen: bytes stop flowing both
/// ways but the sockets stay open, like a half-open connection after a NAT
/// gateway forgot it. Connections made after a freeze flow.
/// The freeze switches of a proxy's connections.
type Switches = Arc<parking_lot::Mutex<Vec<Arc<AtomicBool>>>>;

struct Proxy {
    port: u16,
    connections: Switches,
    accepting: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections: Switches = Arc::default();
        let registry = connections.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let frozen = Arc::new(AtomicBool::new(false));
                registry.lock().push(frozen.clone());
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pipe(client_read, server_write, frozen.clone()));
                tokio::spawn(pipe(server_read, client_write, frozen));
            }
        });
        Self {
            port,
            connections,
            accepting,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Refuses new connections and freezes the open ones: the server is
    /// gone for good.
    fn kill(&self) {
        self.accepting.abort();
        self.freeze();
    }

    fn freeze(&self) {
        for frozen in self.connections.lock().iter() {
            frozen.store(true, Ordering::Release);
        }
    }
}

/// Copies `from` to `to` until either closes, or forwards nothing more
/// (holding both open) once `frozen`.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_half_open_connection_is_detected_by_http2_pings() {
    let mut config = config();
    // No application keepalive, and a watchdog far away: only pings can
    // notice the dead connection.
    config.pubsub_keepalive = Duration::from_secs(60);
    let org = org_with(config).await;
    let target = org
        .emulator
        .pubsub_url()
        .trim_start_matches("http://")
        .to_string();
    let proxy = Proxy::start(target).await;
    let (client, mut messages) = org
        .builder()
        .url(proxy.url())
        .keepalive(Duration::from_millis(300), Duration::from_millis(300))
        .idle_timeout(Duration::from_secs(60))
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    org.wait_subscribed(ACCOUNTS).await;
    org.accounts(1);
    let mut got = take(&mut messages, 1).await;
    proxy.freeze();
    org.accounts(1);
    got.extend(take(&mut messages, 1).await);
    assert_increasing(&numbers(&got));
    assert!(
        org.count(|e| matches!(e, PubSubEvent::Reconnecting { reason, .. } if !reason.contains("idle timeout"))) >= 1,
        "{:?}",
        org.events.lock()
    );
    client.close().await;
}

#[tokio::test]
async fn a_server_gone_for_good_ends_the_subscription_after_the_connection_timeout() {
    let org = org().await;
    let target = org
        .emulator
        .pubsub_url()
        .trim_start_matches("http://")
        .to_string();
    let proxy = Proxy::start(target).await;
    let (client, mut messages) = org
        .builder()
        .url(proxy.url())
        .keepalive(Duration::from_millis(300), Duration::from_millis(300))
        .connection_timeout(Some(Duration::from_secs(1)))
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    org.wait_subscribed(ACCOUNTS).await;
    proxy.kill();
    let started = std::time::Instant::now();
    let error = next(&mut messages, Duration::from_secs(5))
        .await
        .expect("an item")
        .expect_err("gave up");
    assert!(
        matches!(&error, PubSubError::GaveUp { topic, .. } if topic == ACCOUNTS),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(reconnects(&org) >= 2, "{:?}", org.events.lock());
    client.close().await;
}
