//! The streaming client against the emulator: every recovery path, with no
//! event lost (checked by replay ids), replay from each store, fallback on
//! expired replay ids, acknowledged delivery, and a SIGKILLed consumer.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use sfstream_bayeux::{Backoff, ClientEvent, HandshakeReason};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::replay::{
    ExpiredReplayId, FileStore, Gap, MemoryStore, ReplayFrom, ReplayMarker, ReplayStore,
};
use sfstream_salesforce::streaming::payload::PushTopicEvent;
use sfstream_salesforce::{
    Authenticator, Credentials, Delivery, LoginUrl, StreamEvent, StreamMessages, StreamingClient,
    StreamingClientBuilder, StreamingError,
};
use sfstream_testkit::emulator::{
    CONSUMER_KEY, CONSUMER_SECRET, USERNAME, authenticator, create, push_topic,
};
use sfstream_testkit::kill9::{Victim, report_replay_id};

const TOPIC: &str = "/topic/ContactChanges";

struct Org {
    emulator: Emulator,
    events: Arc<Mutex<Vec<StreamEvent>>>,
}

fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(1);
    config
}

async fn org_with(config: EmulatorConfig) -> Org {
    let emulator = Emulator::start(config).await.expect("emulator");
    push_topic(
        &emulator,
        "ContactChanges",
        "SELECT Id, Name, Email FROM Contact",
        62.0,
    );
    Org {
        emulator,
        events: Arc::default(),
    }
}

async fn org() -> Org {
    org_with(config()).await
}

impl Org {
    fn authenticator(&self) -> Authenticator {
        authenticator(&self.emulator.url())
    }

    fn builder(&self) -> StreamingClientBuilder {
        let events = self.events.clone();
        StreamingClient::builder(self.authenticator())
            .backoff(Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(300),
            })
            .on_event(move |e| events.lock().push(e.clone()))
    }

    /// Creates `n` Contacts (each raises one event on the topic).
    fn contacts(&self, n: usize) {
        for i in 0..n {
            create(
                &self.emulator,
                "Contact",
                json!({"LastName": format!("Contact {i}")}),
            );
        }
    }

    /// Every replay id the org raised on the topic.
    fn latest(&self) -> i64 {
        self.emulator
            .org()
            .streaming
            .channel_state(TOPIC)
            .map(|(latest, _)| latest)
            .unwrap_or(0)
    }

    async fn fault(&self, name: &str, body: Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/_emulator/faults/{name}", self.emulator.url()))
            .json(&body)
            .send()
            .await
            .expect("fault");
        assert_eq!(response.status(), 200);
    }

    fn logins(&self) -> usize {
        self.events
            .lock()
            .iter()
            .filter(|e| matches!(e, StreamEvent::LoggedIn { .. }))
            .count()
    }

    fn handshakes(&self) -> Vec<HandshakeReason> {
        self.events
            .lock()
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Connection(ClientEvent::Handshaken { reason, .. }) => Some(*reason),
                _ => None,
            })
            .collect()
    }
}

/// Takes `n` events (failing after 15 s), returning their replay ids.
async fn take(messages: &mut StreamMessages, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    while ids.len() < n {
        let item = tokio::time::timeout(Duration::from_secs(15), messages.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived: {ids:?}", ids.len()))
            .expect("stream open");
        let message = item.expect("an event");
        ids.push(message.replay_id().expect("replay id"));
    }
    ids
}

fn assert_in_order_without_gaps(ids: &[i64], expected: usize) {
    assert_eq!(ids.len(), expected, "{ids:?}");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "out of order or duplicated: {ids:?}"
    );
}

#[tokio::test]
async fn receives_typed_pushtopic_events() {
    let org = org().await;
    let (client, mut messages) = org.builder().connect().await.expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.contacts(1);
    let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("event")
        .expect("open")
        .expect("ok");
    assert_eq!(message.channel, TOPIC);
    let event: PushTopicEvent = message.data_as().expect("pushtopic payload");
    assert_eq!(event.event.kind.as_deref(), Some("created"));
    assert_eq!(event.sobject["Name"], "Contact 0");
    assert_eq!(
        message.marker.map(|m| m.replay_id),
        Some(event.event.replay_id)
    );
    assert!(message.marker.and_then(|m| m.created).is_some());
    assert!(matches!(
        client.subscribe("/topic/Nope").await,
        Err(StreamingError::Bayeux(
            sfstream_bayeux::Error::SubscriptionFailed { .. }
        ))
    ));
    client.close().await;
}

#[tokio::test]
async fn lost_sessions_are_resumed_from_the_last_replay_id_without_a_new_login() {
    let org = org().await;
    let (client, mut messages) = org.builder().connect().await.expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.contacts(3);
    let mut ids = take(&mut messages, 3).await;
    org.fault("forget-clients", json!({})).await;
    // Raised while the client has no session: replay must bring them.
    org.contacts(4);
    ids.extend(take(&mut messages, 4).await);
    assert_in_order_without_gaps(&ids, 7);
    assert_eq!(*ids.last().expect("ids"), org.latest());
    assert_eq!(
        org.logins(),
        1,
        "403::Unknown client must not cause a re-login"
    );
    assert_eq!(
        org.handshakes(),
        vec![HandshakeReason::Initial, HandshakeReason::SessionLost]
    );
}

#[tokio::test]
async fn invalidated_tokens_cause_a_new_login_and_nothing_is_lost() {
    let org = org().await;
    let (client, mut messages) = org.builder().connect().await.expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.contacts(2);
    let mut ids = take(&mut messages, 2).await;
    org.fault("invalidate-tokens", json!({})).await;
    // The connect held now was authorised before: it still delivers this one.
    org.contacts(1);
    ids.extend(take(&mut messages, 1).await);
    // These need a new connect, which needs a new token.
    org.contacts(3);
    ids.extend(take(&mut messages, 3).await);
    assert_in_order_without_gaps(&ids, 6);
    assert_eq!(org.logins(), 2);
    assert_eq!(
        org.handshakes().last(),
        Some(&HandshakeReason::Reauthenticated)
    );
}

#[tokio::test]
async fn a_login_outage_when_the_token_expires_is_ridden_out_without_loss() {
    let org = org().await;
    let (client, mut messages) = org.builder().connect().await.expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.contacts(2);
    let mut ids = take(&mut messages, 2).await;
    // The token expires while the login endpoint is down for 3 s.
    org.fault("login-outage", json!({"ms": 3000})).await;
    org.fault("invalidate-tokens", json!({})).await;
    org.contacts(1);
    ids.extend(take(&mut messages, 1).await);
    // These need a new token: the client must keep trying until the login
    // endpoint is back, well within its connection timeout.
    org.contacts(3);
    ids.extend(take(&mut messages, 3).await);
    assert_in_order_without_gaps(&ids, 6);
    assert_eq!(*ids.last().expect("ids"), org.latest());
    assert_eq!(org.logins(), 2);
    assert_eq!(
        org.handshakes().last(),
        Some(&HandshakeReason::Reauthenticated)
    );
    client.close().await;
}

#[tokio::test]
async fn a_login_outage_longer_than_the_connection_timeout_ends_the_stream_in_time() {
    let org = org().await;
    let (client, mut messages) = org
        .builder()
        .connection_timeout(Some(Duration::from_millis(1500)))
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.fault("login-outage", json!({"ms": 60_000})).await;
    org.fault("invalidate-tokens", json!({})).await;
    org.contacts(1);
    let started = std::time::Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(item) = messages.next().await {
            if let Err(error) = item {
                return Some(error);
            }
        }
        None
    })
    .await
    .expect("the stream ends within 15 s")
    .expect("with an error");
    let elapsed = started.elapsed();
    assert!(error.to_string().contains("503"), "{error}");
    assert!(
        elapsed >= Duration::from_millis(1000) && elapsed < Duration::from_secs(6),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn close_during_a_login_outage_returns_promptly() {
    let org = org().await;
    let (client, _messages) = org.builder().connect().await.expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.fault("login-outage", json!({"ms": 60_000})).await;
    org.fault("invalidate-tokens", json!({})).await;
    org.contacts(1);
    // Let the client find its token refused and start logging in again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(15), client.close())
        .await
        .expect("close is bounded");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refused_credentials_on_relogin_still_fail_at_once() {
    let org = org().await;
    let (client, mut messages) = org
        .builder()
        .connection_timeout(Some(Duration::from_secs(600)))
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    // The user is deactivated and its tokens revoked: logging in again is
    // refused (`inactive_user`), which no amount of retrying fixes.
    let emulator = org.emulator.org();
    let user = emulator.user_id();
    emulator
        .update_record(
            "User",
            &user,
            json!({"IsActive": false})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            &user,
        )
        .expect("deactivate");
    org.fault("invalidate-tokens", json!({})).await;
    org.contacts(1);
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(item) = messages.next().await {
            if let Err(error) = item {
                return Some(error);
            }
        }
        None
    })
    .await
    .expect("the stream ends within 15 s");
    let error = outcome.expect("an error ends the stream");
    assert!(error.to_string().contains("inactive_user"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dropped_connections_busy_server_and_server_disconnects() {
    let org = org().await;
    let (client, mut messages) = org.builder().connect().await.expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    let mut ids = Vec::new();

    org.fault("drop-connects", json!({"count": 3})).await;
    org.contacts(2);
    ids.extend(take(&mut messages, 2).await);

    org.fault("busy-handshakes", json!({"count": 3})).await;
    org.fault("forget-clients", json!({})).await;
    org.contacts(2);
    ids.extend(take(&mut messages, 2).await);

    org.fault("server-disconnect", json!({})).await;
    org.contacts(2);
    ids.extend(take(&mut messages, 2).await);

    org.fault("malformed", json!({"count": 1})).await;
    org.contacts(2);
    ids.extend(take(&mut messages, 2).await);

    assert_in_order_without_gaps(&ids, 8);
    let stats: Value = reqwest::get(format!("{}/_emulator/stats", org.emulator.url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    // Every handshake request is one the client reported, or one of the 3
    // refused as busy: backoff, no storm.
    assert_eq!(
        stats["handshakes"],
        json!(org.handshakes().len() + 3),
        "{stats}"
    );
    assert!(org.handshakes().len() <= 8, "{:?}", org.handshakes());
    assert_eq!(org.logins(), 1);
}

#[tokio::test]
async fn server_restart_is_survived() {
    let mut org = org().await;
    let (client, mut messages) = org.builder().connect().await.expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.contacts(2);
    let mut ids = take(&mut messages, 2).await;
    org.emulator.stop().await;
    org.contacts(2); // raised while the server is down
    tokio::time::sleep(Duration::from_millis(300)).await;
    org.emulator.resume().await.expect("restarts");
    org.contacts(1);
    ids.extend(take(&mut messages, 3).await);
    assert_in_order_without_gaps(&ids, 5);
}

#[tokio::test]
async fn markers_persist_in_a_file_store_across_clients() {
    let org = org().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("markers.redb");
    org.contacts(3);
    {
        let store: Arc<dyn ReplayStore> = Arc::new(FileStore::open(&path).expect("store"));
        let (client, mut messages) = org
            .builder()
            .replay_store(store)
            .default_replay(ReplayFrom::All)
            .connect()
            .await
            .expect("connects");
        client.subscribe(TOPIC).await.expect("subscribes");
        assert_in_order_without_gaps(&take(&mut messages, 3).await, 3);
        client.close().await;
    }
    org.contacts(2);
    let store = Arc::new(FileStore::open(&path).expect("reopen"));
    let stored = store.get(TOPIC).await.expect("get").expect("a marker");
    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .default_replay(ReplayFrom::All)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    let ids = take(&mut messages, 2).await;
    assert!(
        ids[0] > stored.replay_id,
        "replayed from the stored marker, not from ALL: {ids:?}"
    );
    assert_eq!(ids[1], org.latest());
}

#[tokio::test]
async fn expired_replay_ids_fall_back_or_fail_clearly() {
    let org = org().await;
    org.contacts(3);
    let first = org.latest() - 2;
    org.fault("expire", json!({"channel": TOPIC, "through": first + 1}))
        .await;

    // Without a fallback: a clear error naming the channel and the id.
    let store = Arc::new(MemoryStore::new());
    let created = chrono::DateTime::from_timestamp(1_700_000_000, 0);
    store
        .advance(TOPIC, ReplayMarker::new(first, created))
        .await
        .expect("seed marker");
    let (client, _messages) = org
        .builder()
        .replay_store(store.clone())
        .connect()
        .await
        .expect("connects");
    match client.subscribe(TOPIC).await {
        Err(StreamingError::ReplayIdExpired {
            channel,
            replay_id,
            error,
        }) => {
            assert_eq!((channel.as_str(), replay_id), (TOPIC, first));
            // The server's own words travel with it.
            assert_eq!(error.code, Some(400));
            assert!(
                error.message.starts_with(&format!(
                    "The replayId {{{first}}} you provided was invalid."
                )),
                "{error}"
            );
        }
        other => panic!("expected ReplayIdExpired, got {other:?}"),
    }

    // With ALL as fallback: resubscribed, the stale marker replaced, retained events delivered.
    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .replay_fallback(Some(ReplayFrom::All))
        .connect()
        .await
        .expect("connects");
    let before = chrono::Utc::now();
    client.subscribe(TOPIC).await.expect("falls back");
    // Never silent: the stream says first what may be missing.
    let gap = next_gap(&mut messages).await;
    assert_eq!(gap.channel, TOPIC);
    assert_eq!(gap.from, created, "from the expired marker's event");
    assert!(gap.to >= before && gap.to <= chrono::Utc::now(), "{gap:?}");
    assert_eq!(gap.fallback, ReplayFrom::All);
    assert_eq!(gap.expired_replay_id, ExpiredReplayId::Number(first));
    let ids = take(&mut messages, 1).await;
    assert_eq!(ids, vec![org.latest()]);
    assert!(
        org.events
            .lock()
            .iter()
            .any(|e| matches!(e, StreamEvent::Gap(g) if g == &gap))
    );
    assert!(org.events.lock().iter().any(|e| matches!(e,
        StreamEvent::ReplayFallback { expired_replay_id, fallback: ReplayFrom::All, .. } if *expired_replay_id == first)));
    client.flush().await;
    assert_eq!(
        store.get(TOPIC).await.expect("get").map(|m| m.replay_id),
        Some(org.latest())
    );
}

#[tokio::test]
async fn a_new_fallback_on_an_automatic_resubscribe_keeps_the_markers_acknowledged_after_it() {
    let org = org().await;
    let store = Arc::new(MemoryStore::new());
    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .replay_fallback(Some(ReplayFrom::New))
        .delivery(Delivery::Acknowledged)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.contacts(1);
    let first = next_acked(&mut messages).await;
    client
        .flush_within(Duration::from_secs(5))
        .await
        .expect("flushed");
    // Lose the session, and let our marker expire meanwhile: the automatic
    // resubscribe falls back to NEW.
    org.fault("delay", json!({"ms": 1500, "count": 1})).await;
    org.fault("forget-clients", json!({})).await;
    org.contacts(1);
    org.fault("expire", json!({"channel": TOPIC, "through": org.latest()}))
        .await;
    let fell_back = || {
        org.events.lock().iter().any(|e| matches!(e,
            StreamEvent::ReplayFallback { expired_replay_id, fallback: ReplayFrom::New, .. } if *expired_replay_id == first))
    };
    let started = std::time::Instant::now();
    while !(fell_back() && org.emulator.org().streaming.subscriber_count(TOPIC) == 1) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not resubscribed with the fallback: {:#?}",
            org.events.lock()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The gap comes before the events of the fallback subscription, from
    // the creation of the last event received.
    let gap = next_gap(&mut messages).await;
    assert_eq!(gap.fallback, ReplayFrom::New);
    assert_eq!(gap.expired_replay_id, ExpiredReplayId::Number(first));
    assert!(gap.from.is_some_and(|from| from <= gap.to), "{gap:?}");
    // Events of the fallback subscription, acknowledged at once.
    org.contacts(3);
    let mut last = 0;
    for _ in 0..3 {
        last = next_acked(&mut messages).await;
    }
    assert_eq!(last, org.latest());
    client
        .flush_within(Duration::from_secs(5))
        .await
        .expect("flushed");
    assert_eq!(
        store.get(TOPIC).await.expect("get").map(|m| m.replay_id),
        Some(last),
        "the fallback erased a marker acknowledged after it"
    );
    client.close().await;
    // A restart resumes from there, without falling back again.
    let (client, _messages) = org
        .builder()
        .replay_store(store.clone())
        .connect()
        .await
        .expect("connects");
    client
        .subscribe(TOPIC)
        .await
        .expect("resumes from the stored marker");
}

/// Takes the next item, which must be a gap.
async fn next_gap(messages: &mut StreamMessages) -> Gap {
    let message = tokio::time::timeout(Duration::from_secs(15), messages.next())
        .await
        .expect("an item within 15 s")
        .expect("open")
        .expect("not an error");
    assert!(message.marker.is_none());
    let data = message.data_value().expect("JSON");
    let gap = message.gap.expect("a gap first");
    assert_eq!(data, gap.to_json());
    gap
}

/// Takes the next event and acknowledges it; returns its replay id.
async fn next_acked(messages: &mut StreamMessages) -> i64 {
    let message = tokio::time::timeout(Duration::from_secs(15), messages.next())
        .await
        .expect("an event within 15 s")
        .expect("open")
        .expect("an event");
    message.ack();
    message.replay_id().expect("replay id")
}

#[tokio::test]
async fn an_expired_id_on_an_automatic_resubscribe_never_disappears_silently() {
    let org = org().await;
    let (client, mut messages) = org.builder().connect().await.expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.contacts(1);
    take(&mut messages, 1).await;
    // Lose the session, then let the events after our marker expire.
    org.fault("delay", json!({"ms": 1500, "count": 1})).await;
    org.fault("forget-clients", json!({})).await;
    org.contacts(2);
    org.fault(
        "expire",
        json!({"channel": TOPIC, "through": org.latest() - 1}),
    )
    .await;
    let item = tokio::time::timeout(Duration::from_secs(15), messages.next())
        .await
        .expect("reported")
        .expect("open");
    match item {
        Err(StreamingError::ReplayIdExpired { channel, .. }) => assert_eq!(channel, TOPIC),
        other => panic!("expected the subscription failure to surface, got {other:?}"),
    }
}

#[tokio::test]
async fn acknowledged_delivery_commits_only_what_was_acknowledged() {
    let org = org().await;
    let store = Arc::new(MemoryStore::new());
    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .delivery(Delivery::Acknowledged)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.contacts(3);
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(
            tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("event")
                .expect("open")
                .expect("ok"),
        );
    }
    client.flush().await;
    assert_eq!(
        store.get(TOPIC).await.expect("get"),
        None,
        "nothing acknowledged yet"
    );
    received[1].ack();
    client.flush().await;
    assert_eq!(
        store.get(TOPIC).await.expect("get").map(|m| m.replay_id),
        received[1].replay_id()
    );
    received[0].ack(); // older: the store never moves back
    client.flush().await;
    assert_eq!(
        store.get(TOPIC).await.expect("get").map(|m| m.replay_id),
        received[1].replay_id()
    );
}

#[tokio::test]
async fn a_slow_consumer_whose_session_expired_resumes_without_loss() {
    let mut config = config();
    config.session_timeout = Duration::from_millis(400);
    config.max_events_per_connect = 20;
    let org = org_with(config).await;
    let (client, mut messages) = org
        .builder()
        .max_pending(30)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.contacts(200);
    let mut ids = take(&mut messages, 10).await;
    // Stop consuming: polling pauses, the server drops the session.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        messages.pending_count() <= 30 + 20,
        "buffer bounded: {}",
        messages.pending_count()
    );
    ids.extend(take(&mut messages, 190).await);
    assert_in_order_without_gaps(&ids, 200);
    assert!(org.handshakes().contains(&HandshakeReason::SessionLost));
}

#[tokio::test]
async fn bad_credentials_fail_fast_without_leaking_the_password() {
    let org = org().await;
    let authenticator = Authenticator::new(Credentials::password(
        USERNAME,
        "wrong-password-xyz",
        None,
        CONSUMER_KEY,
        CONSUMER_SECRET,
    ))
    .with_login_url(LoginUrl::parse(&org.emulator.url()).expect("url"));
    let builder = StreamingClient::builder(authenticator);
    assert!(!format!("{builder:?}").contains("wrong-password-xyz"));
    let error = builder.connect().await.expect_err("refused");
    let text = format!("{error} {error:?}");
    assert!(text.contains("authentication failure"), "{text}");
    assert!(
        !text.contains("wrong-password-xyz") && !text.contains(CONSUMER_SECRET),
        "{text}"
    );
}

/// Consumer process for the SIGKILL test: reports each replay id once it
/// is handled (written and flushed), then acknowledges it.
async fn consume_forever(url: &str, store_path: &str) {
    let store = Arc::new(FileStore::open(store_path).expect("store"));
    let (client, mut messages) = StreamingClient::builder(authenticator(url))
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
        // A little work per event, so the kill lands mid-stream.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// This test binary as the consumer process.
fn consumer(url: &str, store: &std::path::Path) -> Victim {
    Victim::rerun_test(
        "a_consumer_killed_with_sigkill_loses_nothing_on_restart",
        [
            ("SFSTREAM_CHILD_URL", std::ffi::OsStr::new(url)),
            ("SFSTREAM_CHILD_STORE", store.as_os_str()),
        ],
    )
}

#[tokio::test]
async fn a_consumer_killed_with_sigkill_loses_nothing_on_restart() {
    if let (Ok(url), Ok(path)) = (
        std::env::var("SFSTREAM_CHILD_URL"),
        std::env::var("SFSTREAM_CHILD_STORE"),
    ) {
        consume_forever(&url, &path).await;
        return;
    }
    let org = org().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("markers.redb");
    org.contacts(300);
    let mut seen = std::collections::BTreeSet::new();
    // Killed three times mid-stream, with new events raised while it is down.
    for target in [100, 200, 300] {
        consumer(&org.emulator.url(), &store)
            .collect_then_kill(&mut seen, target, Duration::from_secs(20))
            .await;
        org.contacts(20);
    }
    let raised = 300 + 3 * 20;
    consumer(&org.emulator.url(), &store)
        .collect_then_kill(&mut seen, raised, Duration::from_secs(20))
        .await;
    assert_eq!(seen.len(), raised, "events lost across SIGKILLs: {seen:?}");
    assert_eq!(seen.last().copied(), Some(org.latest()));
}

/// Issue 12.10: an automatic resubscribe refused for a reason other than
/// an expired replay id (here `503::Server is too busy`, three times) is
/// retried with backoff, never dropped; events raised meanwhile are
/// replayed once it is accepted.
#[tokio::test]
async fn a_refused_automatic_resubscribe_is_retried_not_dropped() {
    let org = org().await;
    let (client, mut messages) = org.builder().connect().await.expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    org.contacts(2);
    let mut ids = take(&mut messages, 2).await;
    org.fault("refuse-subscribes", json!({"count": 3})).await;
    org.fault("forget-clients", json!({})).await;
    org.contacts(3);
    ids.extend(take(&mut messages, 3).await);
    assert_in_order_without_gaps(&ids, 5);
    let events = org.events.lock();
    let retries = events
        .iter()
        .filter(|e| {
            matches!(e, StreamEvent::Connection(ClientEvent::SubscriptionRetrying { channel, .. }) if channel == TOPIC)
        })
        .count();
    assert_eq!(retries, 3, "{events:?}");
    assert!(
        !events.iter().any(|e| matches!(
            e,
            StreamEvent::Connection(ClientEvent::SubscriptionFailed { .. })
        )),
        "{events:?}"
    );
}

/// Issue 12.6: Salesforce's own filtered-subscription example is accepted,
/// its marker is kept under the whole subscription (not shared with the
/// unfiltered channel), and a second filter on the same channel in one
/// session is refused with a clear error.
#[tokio::test]
async fn filtered_subscriptions_have_their_own_marker() {
    let org = org().await;
    let store = Arc::new(MemoryStore::new());
    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .delivery(Delivery::Automatic)
        .connect()
        .await
        .expect("connects");
    let filtered = "/topic/ContactChanges?Email='ada@example.com'&Name='Ada Lovelace'";
    client
        .subscribe(filtered)
        .await
        .expect("a filter with spaces and quotes");
    let refused = client
        .subscribe("/topic/ContactChanges?Email='x@example.com'")
        .await;
    assert!(
        matches!(&refused, Err(StreamingError::FilterConflict { held, .. }) if held == filtered),
        "{refused:?}"
    );
    // The filter's `&` is an OR: Grace matches neither condition, Ada both.
    create(
        &org.emulator,
        "Contact",
        json!({"LastName": "Grace Hopper", "Email": "grace@example.com"}),
    );
    create(
        &org.emulator,
        "Contact",
        json!({"LastName": "Ada Lovelace", "Email": "ada@example.com"}),
    );
    let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("event")
        .expect("open")
        .expect("ok");
    assert_eq!(message.subscription, filtered);
    assert_eq!(
        message.data_value().expect("json")["sobject"]["Email"],
        "ada@example.com"
    );
    client.flush().await;
    assert_eq!(
        store.get(filtered).await.expect("get").map(|m| m.replay_id),
        message.replay_id()
    );
    assert_eq!(store.get(TOPIC).await.expect("get"), None);
    client.close().await;
}
