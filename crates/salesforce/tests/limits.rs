//! Spent org allocations: `403::Organization concurrent user limit
//! exceeded` on handshake and `403::Organization total events daily limit
//! exceeded` on connect get a clear error and a slow retry within the
//! connection timeout, never a reconnect storm. The emulator enforces the
//! limits as Salesforce does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::json;
use sfstream_bayeux::{Backoff, ClientEvent};
use sfstream_emulator::faults::StreamingLimits;
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::{StreamEvent, StreamingClient, StreamingClientBuilder};
use sfstream_testkit::emulator::{authenticator, create, push_topic};

const TOPIC: &str = "/topic/LimitContacts";

async fn org() -> Emulator {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_millis(500);
    let emulator = Emulator::start(config).await.expect("emulator");
    push_topic(
        &emulator,
        "LimitContacts",
        "SELECT Id, Name FROM Contact",
        62.0,
    );
    emulator
}

/// A client that would retry every 10 ms but for the limit floor.
fn builder(org: &Emulator, events: &Arc<Mutex<Vec<StreamEvent>>>) -> StreamingClientBuilder {
    let events = events.clone();
    StreamingClient::builder(authenticator(&org.url()))
        .backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
        })
        .limit_retry(Duration::from_millis(500))
        .on_event(move |e| events.lock().push(e.clone()))
}

fn failures(events: &Mutex<Vec<StreamEvent>>) -> Vec<(String, Duration)> {
    events
        .lock()
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Connection(ClientEvent::ConnectionFailed {
                error, retry_in, ..
            }) => Some((error.clone(), *retry_in)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_concurrent_client_limit_is_retried_slowly_then_fails_clearly() {
    let org = org().await;
    org.org().faults.set_streaming_limits(StreamingLimits {
        concurrent_clients: Some(1),
        daily_events: None,
    });
    let first_events = Arc::default();
    let (first, _messages) = builder(&org, &first_events)
        .connect()
        .await
        .expect("the first client fits");

    let events = Arc::default();
    let before = org
        .org()
        .streaming
        .stats()
        .handshakes
        .load(std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let error = builder(&org, &events)
        .connection_timeout(Some(Duration::from_secs(2)))
        .connect()
        .await
        .expect_err("no room for a second client");
    let waited = started.elapsed();
    let handshakes = org
        .org()
        .streaming
        .stats()
        .handshakes
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    assert!(
        error
            .to_string()
            .contains("403::Organization concurrent user limit exceeded"),
        "{error}"
    );
    assert!(
        (Duration::from_millis(1900)..Duration::from_secs(5)).contains(&waited),
        "gave up after {waited:?}"
    );
    // 0 s, 0.5 s, 1.5 s, then the last one at the timeout: no storm
    // (every 10 ms, it would have been ~100).
    assert!((3..=5).contains(&handshakes), "{handshakes} handshakes");
    let delays: Vec<Duration> = failures(&events).iter().map(|(_, d)| *d).collect();
    assert!(delays.len() >= 2, "{delays:?}");
    assert_eq!(delays[0], Duration::from_millis(500));
    assert_eq!(delays[1], Duration::from_secs(1), "doubled: {delays:?}");

    // Once a place frees up, a slow retry gets in.
    let events = Arc::default();
    let (second, _messages) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            first.close().await;
        },
        builder(&org, &events)
            .connection_timeout(Some(Duration::from_secs(10)))
            .connect(),
    )
    .1
    .expect("connects once the first client left");
    assert!(!failures(&events).is_empty(), "it was refused first");
    second.close().await;
}

#[tokio::test]
async fn the_daily_event_limit_stops_delivery_without_a_storm_and_ends_clearly() {
    let org = org().await;
    let events = Arc::default();
    let (client, mut messages) = builder(&org, &events)
        .connection_timeout(Some(Duration::from_secs(2)))
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    create(&org, "Contact", json!({"LastName": "One"}));
    let first = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .expect("an event in time")
        .expect("open");
    assert!(first.is_ok(), "{first:?}");
    // The allocation is spent: every delivered event counted.
    let delivered = org
        .org()
        .streaming
        .stats()
        .events_delivered
        .load(std::sync::atomic::Ordering::Relaxed);
    org.org().faults.set_streaming_limits(StreamingLimits {
        concurrent_clients: None,
        daily_events: Some(delivered),
    });
    create(&org, "Contact", json!({"LastName": "Two"}));
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(8), messages.next())
        .await
        .expect("the stream ends in time")
        .expect("an item");
    let error = end.expect_err("no event past the allocation");
    assert!(
        error
            .to_string()
            .contains("403::Organization total events daily limit exceeded"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let refused = failures(&events);
    assert!(
        (2..=5).contains(&refused.len()),
        "slow retries only: {refused:?}"
    );
    assert!(
        refused.iter().all(|(e, _)| e.contains("daily limit")),
        "{refused:?}"
    );
    assert_eq!(refused[0].1, Duration::from_millis(500), "{refused:?}");
    client.close().await;
}
