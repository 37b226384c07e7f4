//! Protocol edge cases against a scripted Bayeux server on loopback: each
//! test's server answers every message of a request with a closure, so a
//! sequence no real server produces on demand can be replayed exactly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use sfstream_bayeux::{Backoff, Client, ClientBuilder, ClientEvent, Error};

type Script = Arc<dyn Fn(&Value) -> Vec<Value> + Send + Sync>;

/// Serves a Bayeux endpoint: every request message goes to `script`,
/// whose answers make up the response; every message seen is recorded.
async fn server(script: Script) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().route(
        "/bayeux",
        post(move |body: axum::Json<Vec<Value>>| {
            let script = script.clone();
            let log = log.clone();
            async move {
                let mut out = Vec::new();
                for message in body.0 {
                    log.lock().push(message.clone());
                    // A connect is held a little, as real servers do.
                    if message["channel"] == "/meta/connect" {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    out.extend(script(&message));
                }
                axum::Json(out)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/bayeux"), seen)
}

fn reply(message: &Value, extra: Value) -> Value {
    let mut reply = json!({
        "channel": message["channel"],
        "id": message["id"],
        "clientId": message["clientId"],
        "successful": true,
    });
    if let (Some(reply), Some(extra)) = (reply.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            reply.insert(k.clone(), v.clone());
        }
    }
    if message["channel"] == "/meta/subscribe" {
        reply["subscription"] = message["subscription"].clone();
    }
    reply
}

/// Hands out client ids c1, c2, … on handshake.
fn handshake(message: &Value, counter: &Mutex<u32>) -> Vec<Value> {
    let mut n = counter.lock();
    *n += 1;
    vec![reply(
        message,
        json!({"clientId": format!("c{n}"), "version": "1.0",
            "supportedConnectionTypes": ["long-polling"]}),
    )]
}

/// The first connect is answered with `first`, every later one with a
/// plain success.
fn first_connect(m: &Value, connects: &Mutex<u32>, first: Vec<Value>) -> Vec<Value> {
    let mut n = connects.lock();
    *n += 1;
    if *n == 1 {
        first
    } else {
        vec![reply(m, json!({}))]
    }
}

fn quick(url: &str) -> ClientBuilder {
    Client::builder(url)
        .backoff(Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        })
        .connection_timeout(Some(Duration::from_secs(30)))
}

fn channel(message: &Value) -> &str {
    message["channel"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_successful_connect_advising_reconnect_none_stops_the_client() {
    let clients = Mutex::new(0);
    let (url, _) = server(Arc::new(move |m| match channel(m) {
        "/meta/handshake" => handshake(m, &clients),
        "/meta/connect" => vec![reply(m, json!({"advice": {"reconnect": "none"}}))],
        _ => vec![reply(m, json!({}))],
    }))
    .await;
    let (_client, mut messages) = quick(&url).connect().await.expect("handshake");
    let last = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .expect("the stream ends");
    assert!(
        matches!(last, Some(Err(Error::ReconnectForbidden(_)))),
        "{last:?}"
    );
}

#[tokio::test]
async fn unknown_client_without_advice_handshakes_instead_of_reusing_the_dead_id() {
    let clients = Mutex::new(0);
    let connects = Mutex::new(0);
    let (url, seen) = server(Arc::new(move |m| match channel(m) {
        "/meta/handshake" => handshake(m, &clients),
        "/meta/connect" => {
            let mut n = connects.lock();
            *n += 1;
            match *n {
                // The first reply carries the usual advice; the server then
                // forgets c1 and says so without any advice.
                1 => vec![reply(
                    m,
                    json!({"advice": {"reconnect": "retry", "interval": 0, "timeout": 1000}}),
                )],
                2 => vec![
                    json!({"channel": "/meta/connect", "id": m["id"], "successful": false,
                    "error": "403::Unknown client"}),
                ],
                _ => vec![reply(m, json!({}))],
            }
        }
        _ => vec![reply(m, json!({}))],
    }))
    .await;
    let (client, _messages) = quick(&url).connect().await.expect("handshake");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let handshakes = seen
            .lock()
            .iter()
            .filter(|m| m["channel"] == "/meta/handshake")
            .count();
        if handshakes >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no second handshake: {:?}",
            seen.lock()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c1_connects = seen
        .lock()
        .iter()
        .filter(|m| m["channel"] == "/meta/connect" && m["clientId"] == "c1")
        .count();
    assert_eq!(c1_connects, 2, "the dead client id was used again");
    client.disconnect().await;
}

#[tokio::test]
async fn a_server_that_forgets_every_session_gets_backed_off_handshakes() {
    let clients = Mutex::new(0);
    let (url, seen) = server(Arc::new(move |m| match channel(m) {
        "/meta/handshake" => handshake(m, &clients),
        "/meta/connect" => vec![
            json!({"channel": "/meta/connect", "id": m["id"], "successful": false,
            "error": "403::Unknown client", "advice": {"reconnect": "handshake", "interval": 0}}),
        ],
        _ => vec![reply(m, json!({}))],
    }))
    .await;
    let (client, _messages) = quick(&url).connect().await.expect("handshake");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let handshakes = seen
        .lock()
        .iter()
        .filter(|m| m["channel"] == "/meta/handshake")
        .count();
    // Backoff 100 ms doubling to 1 s (with jitter down to half): at most
    // about a dozen in 3 s; without backoff it would be hundreds.
    assert!(
        (2..=15).contains(&handshakes),
        "{handshakes} handshakes in 3 s"
    );
    client.disconnect().await;
}

#[tokio::test]
async fn an_unknown_advice_value_does_not_lose_the_events_beside_it() {
    let clients = Mutex::new(0);
    let connects = Mutex::new(0);
    let (url, _) = server(Arc::new(move |m| match channel(m) {
        "/meta/handshake" => handshake(m, &clients),
        "/meta/connect" => first_connect(
            m,
            &connects,
            vec![
                json!({"channel": "/x", "data": {"n": 1}}),
                reply(
                    m,
                    json!({"advice": {"reconnect": "whenever", "interval": "0"}}),
                ),
            ],
        ),
        _ => vec![reply(m, json!({}))],
    }))
    .await;
    let (_client, mut messages) = quick(&url).connect().await.expect("handshake");
    let event = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .expect("the event")
        .expect("open")
        .expect("an event, not an error");
    assert_eq!(event.data_value().expect("json"), json!({"n": 1}));
}

/// Issue 12.7: with polling paused (the consumer is not reading and
/// `max_pending` is full), a subscribe answered "unknown client" must not
/// wait for a handshake that never comes: the client handshakes at once
/// and the subscribe completes, or fails by its deadline.
#[tokio::test]
async fn a_subscribe_completes_while_polling_is_paused_even_if_the_session_was_lost() {
    let clients = Mutex::new(0);
    let connects = Mutex::new(0);
    let (url, seen) = server(Arc::new(move |m| match channel(m) {
        "/meta/handshake" => handshake(m, &clients),
        "/meta/connect" => first_connect(
            m,
            &connects,
            vec![
                json!({"channel": "/a", "data": {"n": 1}}),
                reply(m, json!({})),
            ],
        ),
        "/meta/subscribe" if m["clientId"] == "c1" && m["subscription"] == "/b" => {
            vec![
                json!({"channel": "/meta/subscribe", "id": m["id"], "subscription": "/b",
                "successful": false, "error": "403::Unknown client"}),
            ]
        }
        _ => vec![reply(m, json!({}))],
    }))
    .await;
    let (client, messages) = quick(&url)
        .max_pending(1)
        .connect()
        .await
        .expect("handshake");
    client.subscribe("/a").await.expect("subscribed");
    let deadline = Instant::now() + Duration::from_secs(5);
    while messages.pending_count() < 1 {
        assert!(Instant::now() < deadline, "the first event never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), client.subscribe("/b"))
        .await
        .expect("the subscribe is answered");
    assert!(result.is_ok(), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let resent = seen
        .lock()
        .iter()
        .filter(|m| m["channel"] == "/meta/subscribe" && m["clientId"] == "c2")
        .count();
    assert_eq!(
        resent, 2,
        "both channels subscribed again in the new session"
    );
    drop(messages);
}

#[tokio::test]
async fn a_subscribe_that_can_never_complete_fails_by_its_deadline() {
    let clients = Mutex::new(0);
    let (url, _) = server(Arc::new(move |m| match channel(m) {
        "/meta/handshake" => handshake(m, &clients),
        // Subscribe replies never come (the response holds none).
        "/meta/subscribe" => Vec::new(),
        _ => vec![reply(m, json!({}))],
    }))
    .await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let (client, _messages) = quick(&url)
        .subscribe_timeout(Duration::from_secs(2))
        .on_event(move |e| seen.lock().push(e.clone()))
        .connect()
        .await
        .expect("handshake");
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), client.subscribe("/never"))
        .await
        .expect("answered");
    assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(
        events
            .lock()
            .iter()
            .any(|e| matches!(e, ClientEvent::SubscriptionRetrying { .. })),
        "the lost replies were retried meanwhile"
    );
}
