//! Malformed and hostile server responses: the client reports a clear
//! error, retries, and never panics or hangs. The server here is a stub on
//! loopback that answers the bodies no real server would send.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use futures::StreamExt;
use parking_lot::Mutex;
use sfstream_bayeux::{Backoff, Client, ClientEvent, Error};

/// Serves `bodies` in turn to every POST (the last one forever).
async fn stub(bodies: Vec<String>) -> (String, Arc<AtomicUsize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let bodies = Arc::new(bodies);
    let app = Router::new().route(
        "/bayeux",
        post(move || {
            let bodies = bodies.clone();
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                bodies[n.min(bodies.len() - 1)].clone()
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
    (format!("http://{addr}/bayeux"), served)
}

fn quick(url: &str) -> sfstream_bayeux::ClientBuilder {
    Client::builder(url)
        .backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        })
        .connection_timeout(Some(Duration::from_millis(600)))
}

#[tokio::test]
async fn hostile_handshake_replies_end_in_a_clear_timeout_not_a_panic() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases = [
        "not json at all".to_string(),
        r#"[{"channel": 42, "successful": true}]"#.to_string(),
        r#"[{"channel": "/meta/handshake", "successful": "yes", "clientId": 7}]"#.to_string(),
        r#"[{"channel": "/meta/handshake", "successful": true}]"#.to_string(),
        r#"[{"channel": "/meta/connect", "successful": true}]"#.to_string(),
        r#"[{"channel": "/meta/handshake", "id": {"nested": true}}]"#.to_string(),
        deep,
        "[]".to_string(),
        "{}".to_string(),
    ];
    for body in cases {
        let (url, served) = stub(vec![body.clone()]).await;
        let failures = Arc::new(Mutex::new(Vec::new()));
        let seen = failures.clone();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            quick(&url)
                .on_event(move |e| {
                    if let ClientEvent::ConnectionFailed { error, .. } = e {
                        seen.lock().push(error.clone());
                    }
                })
                .connect(),
        )
        .await
        .expect("gives up within the connection timeout");
        assert!(
            matches!(result, Err(Error::ConnectionTimeout(_))),
            "{}: {:?}",
            &body[..body.len().min(40)],
            result.err()
        );
        assert!(served.load(Ordering::SeqCst) >= 2, "it retried");
        assert!(
            failures.lock().iter().all(|e| e.starts_with("handshake")),
            "{:?}",
            failures.lock()
        );
    }
}

#[tokio::test]
async fn hostile_connect_replies_are_retried_and_events_still_flow() {
    let handshake = r#"[{"channel":"/meta/handshake","successful":true,"clientId":"abc","version":"1.0","supportedConnectionTypes":["long-polling"]}]"#;
    let event_and_reply = r#"[{"channel":"/x","data":{"n":1}},{"channel":"/meta/connect","successful":true,"clientId":"abc"}]"#;
    let bodies = vec![
        handshake.to_string(),
        // first connect: a huge array of junk, then garbage, then a good reply with an event
        format!(
            "[{}]",
            vec![r#"{"channel":"/meta/unknown"}"#; 100_000].join(",")
        ),
        r#"[{"channel": 5}]"#.to_string(),
        event_and_reply.to_string(),
    ];
    let (url, _) = stub(bodies).await;
    let (_client, mut messages) = quick(&url)
        .connection_timeout(Some(Duration::from_secs(5)))
        .connect()
        .await
        .expect("handshake");
    let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("an event")
        .expect("open")
        .expect("ok");
    assert_eq!(message.channel, "/x");
    assert_eq!(message.data_json(), r#"{"n":1}"#);
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let handshake = r#"[{"channel":"/meta/handshake","successful":true,"clientId":"abc"}]"#;
    let huge = format!(r#"[{{"channel":"/x","data":"{}"}}]"#, "y".repeat(2_000_000));
    let (url, _) = stub(vec![handshake.to_string(), huge]).await;
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = failures.clone();
    let (_client, mut messages) = quick(&url)
        .max_response_bytes(1_000_000)
        .on_event(move |e| {
            if let ClientEvent::ConnectionFailed { error, .. } = e {
                seen.lock().push(error.clone());
            }
        })
        .connect()
        .await
        .expect("handshake");
    let last = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("ends");
    assert!(
        matches!(last, Some(Err(Error::ConnectionTimeout(_)))),
        "{last:?}"
    );
    assert!(
        failures
            .lock()
            .iter()
            .any(|e| e.contains("larger than 1000000 bytes")),
        "{:?}",
        failures.lock()
    );
}
