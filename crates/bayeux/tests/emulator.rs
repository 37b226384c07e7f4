//! The generic client against the Salesforce emulator: subscribe, receive,
//! and recover from every fault the emulator injects.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sfstream_bayeux::{
    Backoff, Client, ClientBuilder, ClientEvent, Error, Extension, HandshakeReason, Messages,
    Reauthenticate,
};
use sfstream_emulator::{Emulator, EmulatorConfig};

/// Adds the current bearer token to every request.
struct Bearer(Arc<Mutex<String>>);

impl Extension for Bearer {
    fn request_headers(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", self.0.lock())) {
            headers.insert(AUTHORIZATION, value);
        }
    }
}

/// "Logs in again" by asking the emulator for a new token.
struct NewToken {
    emulator: Arc<sfstream_emulator::org::Org>,
    token: Arc<Mutex<String>>,
}

impl Reauthenticate for NewToken {
    fn reauthenticate(&self) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async move {
            *self.token.lock() = self
                .emulator
                .tokens
                .issue(&self.emulator.org_id(), &self.emulator.user_id());
            Ok(None)
        })
    }
}

struct Fixture {
    emulator: Emulator,
    token: Arc<Mutex<String>>,
    events: Arc<Mutex<Vec<ClientEvent>>>,
    http: reqwest::Client,
}

async fn fixture() -> Fixture {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(2);
    let emulator = Emulator::start(config).await.expect("emulator");
    let org = emulator.org();
    let token = Arc::new(Mutex::new(org.tokens.issue(&org.org_id(), &org.user_id())));
    Fixture {
        emulator,
        token,
        events: Arc::default(),
        http: reqwest::Client::new(),
    }
}

impl Fixture {
    fn builder(&self) -> ClientBuilder {
        let events = self.events.clone();
        Client::builder(format!("{}/cometd/62.0", self.emulator.url()))
            .extension(Arc::new(Bearer(self.token.clone())))
            .backoff(Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(400),
            })
            .on_event(move |e| events.lock().push(e.clone()))
    }

    async fn channel(&self, name: &str) -> String {
        let org = self.emulator.org();
        let user = org.user_id();
        let record = json!({"Name": name})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let change = org
            .create_record("StreamingChannel", record, &user)
            .expect("channel");
        change.record["Id"].as_str().expect("id").to_string()
    }

    async fn push(&self, channel_id: &str, payload: &str) {
        let url = format!(
            "{}/services/data/v62.0/sobjects/StreamingChannel/{channel_id}/push",
            self.emulator.url()
        );
        let token = self.token.lock().clone();
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .json(&json!({"pushEvents": [{"payload": payload, "userIds": []}]}))
            .send()
            .await
            .expect("push");
        assert_eq!(response.status(), 200);
    }

    async fn fault(&self, name: &str, body: Value) {
        let response = self
            .http
            .post(format!("{}/_emulator/faults/{name}", self.emulator.url()))
            .json(&body)
            .send()
            .await
            .expect("fault");
        assert_eq!(response.status(), 200);
    }

    fn handshakes(&self) -> Vec<HandshakeReason> {
        self.events
            .lock()
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Handshaken { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }
}

async fn next_payload(messages: &mut Messages) -> String {
    let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("a message within 10 s")
        .expect("stream open")
        .expect("a message, not an error");
    message.data_value().expect("json")["payload"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn subscribe_receive_unsubscribe_disconnect() {
    let f = fixture().await;
    let id = f.channel("/u/basic").await;
    let (client, mut messages) = f.builder().connect().await.expect("connects");
    client.subscribe("/u/basic").await.expect("subscribed");
    f.push(&id, "hello").await;
    assert_eq!(next_payload(&mut messages).await, "hello");

    let refused = client.subscribe("/u/missing").await;
    match refused {
        Err(Error::SubscriptionFailed { channel, error }) => {
            assert_eq!(channel, "/u/missing");
            assert_eq!(error.code, Some(400));
        }
        other => panic!("expected a refused subscription, got {other:?}"),
    }
    assert!(matches!(
        client.subscribe("not a channel").await,
        Err(Error::InvalidArgument(_))
    ));

    client.unsubscribe("/u/basic").await.expect("unsubscribed");
    client.disconnect().await;
    let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(5), messages.collect::<Vec<_>>())
        .await
        .expect("stream ends");
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn lost_session_server_disconnect_dropped_and_malformed_responses() {
    let f = fixture().await;
    let id = f.channel("/u/faults").await;
    let (client, mut messages) = f.builder().connect().await.expect("connects");
    client.subscribe("/u/faults").await.expect("subscribed");

    f.fault("forget-clients", json!({})).await;
    // Wait for the re-handshake, which resubscribes by itself.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    f.push(&id, "after lost session").await;
    assert_eq!(next_payload(&mut messages).await, "after lost session");

    f.fault("server-disconnect", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.push(&id, "after server disconnect").await;
    assert_eq!(next_payload(&mut messages).await, "after server disconnect");

    f.fault("drop-connects", json!({"count": 3})).await;
    f.fault("malformed", json!({"count": 1})).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    f.push(&id, "after drops").await;
    assert_eq!(next_payload(&mut messages).await, "after drops");

    assert_eq!(
        f.handshakes(),
        vec![
            HandshakeReason::Initial,
            HandshakeReason::SessionLost,
            HandshakeReason::ServerDisconnect
        ]
    );
    let failures = f
        .events
        .lock()
        .iter()
        .filter(|e| matches!(e, ClientEvent::ConnectionFailed { .. }))
        .count();
    assert!(failures >= 3, "{failures} failures seen");
    drop(client);
}

#[tokio::test]
async fn busy_handshakes_back_off_instead_of_storming() {
    let f = fixture().await;
    f.fault("busy-handshakes", json!({"count": 4})).await;
    let started = std::time::Instant::now();
    let (_client, _messages) = f
        .builder()
        .connect()
        .await
        .expect("connects after the server stops being busy");
    let stats: Value = f
        .http
        .get(format!("{}/_emulator/stats", f.emulator.url()))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(
        stats["handshakes"], 5,
        "4 refused, then one accepted: no storm"
    );
    // Four backoff delays of at least 25, 50, 100, 200 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(375),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn invalid_tokens_are_renewed_through_the_hook_or_fail_cleanly() {
    let f = fixture().await;
    let id = f.channel("/u/auth").await;
    let hook = Arc::new(NewToken {
        emulator: f.emulator.org().clone(),
        token: f.token.clone(),
    });
    // What "credentials refused" looks like is the server's convention:
    // here Salesforce's text, as the Salesforce layer recognises it.
    let salesforce_auth = Arc::new(|m: &sfstream_bayeux::Message| {
        m.error.as_deref() == Some("401::Authentication invalid")
    });
    let (client, mut messages) = f
        .builder()
        .auth_failure(salesforce_auth.clone())
        .reauthenticate(hook)
        .connect()
        .await
        .expect("connects");
    client.subscribe("/u/auth").await.expect("subscribed");
    f.fault("invalidate-tokens", json!({})).await;
    // Renew our own copy for pushing only after the client noticed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    f.push(&id, "after re-login").await;
    assert_eq!(next_payload(&mut messages).await, "after re-login");
    assert!(
        f.events
            .lock()
            .iter()
            .any(|e| matches!(e, ClientEvent::Reauthenticated))
    );
    assert_eq!(
        f.handshakes().last(),
        Some(&HandshakeReason::Reauthenticated)
    );

    // Without a hook, refused credentials end the stream with a clear error.
    let g = fixture().await;
    let (_client, mut messages) = g
        .builder()
        .auth_failure(salesforce_auth)
        .connect()
        .await
        .expect("connects");
    g.fault("invalidate-tokens", json!({})).await;
    let last = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("ends");
    assert!(
        matches!(last, Some(Err(Error::Unauthorized(_)))),
        "{last:?}"
    );
    assert!(messages.next().await.is_none());

    // A generic client knows no server's auth convention: it obeys the
    // reply's advice (`reconnect: none`) and stops saying so.
    let h = fixture().await;
    let (_client, mut messages) = h.builder().connect().await.expect("connects");
    h.fault("invalidate-tokens", json!({})).await;
    let last = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("ends");
    assert!(
        matches!(&last, Some(Err(Error::ReconnectForbidden(text))) if text.contains("401::Authentication invalid")),
        "{last:?}"
    );
}

#[tokio::test]
async fn bounded_prefetch_stops_polling_when_the_consumer_is_slow() {
    let mut config = EmulatorConfig::for_tests();
    config.max_events_per_connect = 50;
    let emulator = Emulator::start(config).await.expect("emulator");
    let f = Fixture {
        token: {
            let org = emulator.org();
            Arc::new(Mutex::new(org.tokens.issue(&org.org_id(), &org.user_id())))
        },
        emulator,
        events: Arc::default(),
        http: reqwest::Client::new(),
    };
    f.channel("/u/backlog").await;
    f.emulator
        .org()
        .streaming
        .preload("/u/backlog", 1_000, &serde_json::Map::new());
    let (client, mut messages) = f
        .builder()
        .max_pending(120)
        .connect()
        .await
        .expect("connects");
    client.subscribe("/u/backlog").await.expect("subscribed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Subscribed with -1 by default on the emulator: push a burst instead.
    f.emulator
        .org()
        .streaming
        .preload("/u/backlog", 1_000, &serde_json::Map::new());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending = messages.pending_count();
    assert!(
        pending <= 120 + 50,
        "buffered {pending} with max_pending 120"
    );
    assert!(pending >= 100, "it did prefetch: {pending}");
    let mut received = 0;
    while received < 1_000 {
        let item = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("keeps flowing");
        assert!(matches!(item, Some(Ok(_))));
        received += 1;
    }
}

#[tokio::test]
async fn connection_timeout_ends_the_stream() {
    let mut f = fixture().await;
    let (_client, mut messages) = f
        .builder()
        .connection_timeout(Some(Duration::from_millis(800)))
        .connect()
        .await
        .expect("connects");
    f.emulator.stop().await;
    let last = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("gives up in time");
    assert!(
        matches!(last, Some(Err(Error::ConnectionTimeout(_)))),
        "{last:?}"
    );
}
