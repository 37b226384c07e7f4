//! The client against a real third-party Bayeux server: Faye from npm
//! (installed by `scripts/test-deps.sh`), started on a free loopback port.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use sfstream_bayeux::{Client, ClientEvent, Error};
use tokio::process::Child;

/// Starts Faye; returns the process (killed on drop) and its Bayeux URL.
async fn faye() -> (Child, String) {
    sfstream_testkit::peers::bayeux_server("faye_server.js", "faye", 0, &[]).await
}

#[tokio::test]
async fn works_with_faye() {
    let (_faye, url) = faye().await;
    let events = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = events.clone();
    let (alice, mut alice_messages) = Client::builder(&url)
        .on_event(move |e| seen.lock().push(e.clone()))
        .connect()
        .await
        .expect("handshake with Faye");
    let (bob, _bob_messages) = Client::builder(&url)
        .connect()
        .await
        .expect("second client");

    let results = alice.subscribe_many(&["/chat/a", "/chat/b"]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    bob.publish("/chat/a", &json!({"text": "hello"}))
        .await
        .expect("publish");
    bob.publish("/chat/b", &json!({"n": 2}))
        .await
        .expect("publish");
    let mut received = Vec::new();
    while received.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(10), alice_messages.next())
            .await
            .expect("delivered within 10 s")
            .expect("open")
            .expect("a message");
        received.push((message.channel.clone(), message.data_value().expect("json")));
    }
    assert_eq!(
        received[0],
        ("/chat/a".to_string(), json!({"text": "hello"}))
    );
    assert_eq!(received[1], ("/chat/b".to_string(), json!({"n": 2})));

    // Long polls are held by Faye (2 s) and renewed without losing messages.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    bob.publish("/chat/a", &json!({"text": "later"}))
        .await
        .expect("publish");
    let later = tokio::time::timeout(Duration::from_secs(10), alice_messages.next())
        .await
        .expect("later")
        .expect("open")
        .expect("ok");
    assert_eq!(later.data_value().expect("json"), json!({"text": "later"}));

    alice.unsubscribe("/chat/a").await.expect("unsubscribe");
    bob.publish("/chat/a", &json!({"text": "unheard"}))
        .await
        .expect("publish");
    bob.publish("/chat/b", &json!({"text": "heard"}))
        .await
        .expect("publish");
    let next = tokio::time::timeout(Duration::from_secs(10), alice_messages.next())
        .await
        .expect("next")
        .expect("open")
        .expect("ok");
    assert_eq!(next.channel, "/chat/b");

    // Faye refuses publishing to meta channels; we refuse before sending.
    assert!(matches!(
        bob.publish("/meta/x", &json!(1)).await,
        Err(Error::InvalidArgument(_))
    ));
    alice.disconnect().await;
    assert!(
        events
            .lock()
            .iter()
            .any(|e| matches!(e, ClientEvent::Handshaken { .. }))
    );
}

#[tokio::test]
async fn faye_going_away_ends_the_stream_after_the_connection_timeout() {
    let (faye_process, url) = faye().await;
    let (client, _messages) = Client::builder(&url)
        .connection_timeout(Some(Duration::from_secs(3)))
        .connect()
        .await
        .expect("connects");
    client.subscribe("/x").await.expect("subscribe");
    drop(faye_process); // killed: the port is gone
    let mut messages = _messages;
    let last = tokio::time::timeout(Duration::from_secs(15), messages.next())
        .await
        .expect("gives up");
    assert!(
        matches!(last, Some(Err(Error::ConnectionTimeout(_)))),
        "{last:?}"
    );
}
