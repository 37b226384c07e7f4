//! Subscriptions: their state in `/health` and the metrics (a channel that
//! fails for good is never a silent drop), and filtered subscriptions (one
//! filter per topic, events routed by the subscription).

mod common;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use sfstream_service::{Channel, Name, Service, ServiceError, handle_notification, subscribe};

use common::{config, create, declare, emulator, eventually, rest};

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// Polls `/health` for up to `secs` seconds until `check` accepts it;
/// returns the last answer and whether it was accepted.
async fn health_until(
    base: &str,
    secs: u64,
    check: impl Fn(u16, &Value) -> bool,
) -> ((u16, Value), bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, body) = get(&format!("{base}/health")).await;
        let health = serde_json::from_str(&body).unwrap_or(Value::String(body));
        if check(status, &health) {
            return ((status, health), true);
        }
        if tokio::time::Instant::now() >= deadline {
            return ((status, health), false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_subscription_lost_for_good_shows_in_health_and_metrics_and_the_others_keep_running() {
    let org = emulator().await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let running = Service::new("states")
        .config(config(&org, "METRICS_PORT: 0", ""))
        .handler(
            move |Name(name): Name| {
                let s = s.clone();
                async move { s.lock().push(name) }
            },
            [
                handle_notification("ContactGone").query("SELECT Id, LastName FROM Contact"),
                handle_notification("ContactStays").query("SELECT Id, LastName FROM Contact"),
            ],
        )
        .start()
        .await
        .expect("starts");
    let base = format!(
        "http://127.0.0.1:{}",
        running.metrics_addr().expect("served").port()
    );
    let (status, body) = get(&format!("{base}/health")).await;
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(
        health["channels"]["/topic/ContactGone"]["state"], "subscribed",
        "{health}"
    );
    assert_eq!(
        health["channels"]["/topic/ContactStays"]["state"], "subscribed",
        "{health}"
    );

    // The topic goes away, then the session: the resubscribe is refused.
    assert!(
        rest(&org)
            .delete_topic("ContactGone")
            .await
            .expect("deleted")
    );
    org.org().streaming.forget_clients();

    let ((status, health), failed) = health_until(&base, 20, |_, h| {
        h["channels"]["/topic/ContactGone"]["state"] == "failed"
    })
    .await;
    assert!(failed, "the lost channel never showed as failed: {health}");
    assert_eq!(status, 503, "{health}");
    let gone = &health["channels"]["/topic/ContactGone"];
    assert_eq!(gone["state"], "failed", "{health}");
    assert!(
        gone["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist")),
        "{health}"
    );
    assert_eq!(health["status"], "unhealthy", "{health}");

    let (_, text) = get(&format!("{base}/metrics")).await;
    let gauge = |channel: &str, state: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("sfstream_channel_state{")
                    && l.contains(&format!(r#"channel="{channel}""#))
                    && l.contains(&format!(r#"state="{state}""#))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(gauge("/topic/ContactGone", "failed"), Some(1.0), "{text}");
    assert_eq!(
        gauge("/topic/ContactGone", "subscribed"),
        Some(0.0),
        "{text}"
    );

    // The other channel still delivers.
    let (last, stays) = health_until(&base, 20, |_, h| {
        h["channels"]["/topic/ContactStays"]["state"] == "subscribed"
    })
    .await;
    assert!(stays, "{last:?}");
    create(&org, "Contact", json!({"LastName": "Still here"}));
    assert!(
        eventually(15, || seen.lock().iter().any(|n| n == "ContactStays")).await,
        "{:?}",
        seen.lock()
    );
    assert!(
        gauge("/topic/ContactStays", "subscribed") == Some(1.0),
        "{text}"
    );
    running.stop().await.expect("stops");
}

#[tokio::test]
async fn two_entrypoints_on_one_topic_with_different_filters_are_refused_at_start() {
    let org = emulator().await;
    declare(&org, "ContactFiltered", "SELECT Id, LastName FROM Contact").await;
    async fn nothing() {}
    let error = Service::new("filters")
        .config(config(&org, "", ""))
        .handler(
            nothing,
            [subscribe("/topic/ContactFiltered?LastName=Lovelace")],
        )
        .handler(
            nothing,
            [subscribe("/topic/ContactFiltered?LastName=Hopper")],
        )
        .start()
        .await
        .expect_err("refused");
    assert!(
        matches!(error, ServiceError::ConflictingFilters { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("/topic/ContactFiltered?LastName=Lovelace")
            && text.contains("/topic/ContactFiltered?LastName=Hopper"),
        "{text}"
    );
    // A filter and no filter on one topic: refused too.
    let error = Service::new("filters")
        .config(config(&org, "", ""))
        .handler(nothing, [subscribe("/topic/ContactFiltered")])
        .handler(
            nothing,
            [subscribe("/topic/ContactFiltered?LastName=Lovelace")],
        )
        .start()
        .await
        .expect_err("refused");
    assert!(
        matches!(error, ServiceError::ConflictingFilters { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_filtered_entrypoint_gets_its_events_and_the_same_filter_twice_reaches_both() {
    const SUBSCRIPTION: &str = "/topic/ContactFiltered?LastName=Lovelace";
    let org = emulator().await;
    declare(&org, "ContactFiltered", "SELECT Id, LastName FROM Contact").await;
    let first: Arc<Mutex<Vec<String>>> = Arc::default();
    let second: Arc<Mutex<Vec<String>>> = Arc::default();
    let (a, b) = (first.clone(), second.clone());
    let running = Service::new("filtered")
        .config(config(&org, "METRICS_PORT: 0", ""))
        .handler(
            move |Channel(channel): Channel| {
                let a = a.clone();
                async move { a.lock().push(channel) }
            },
            [subscribe(SUBSCRIPTION)],
        )
        .handler(
            move |Channel(channel): Channel| {
                let b = b.clone();
                async move { b.lock().push(channel) }
            },
            [subscribe(SUBSCRIPTION)],
        )
        .start()
        .await
        .expect("starts");
    // The emulator does not filter: only matching records are created.
    create(&org, "Contact", json!({"LastName": "Lovelace"}));
    assert!(
        eventually(15, || !first.lock().is_empty() && !second.lock().is_empty()).await,
        "{:?} {:?}",
        first.lock(),
        second.lock()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*first.lock(), vec!["/topic/ContactFiltered".to_string()]);
    assert_eq!(*second.lock(), vec!["/topic/ContactFiltered".to_string()]);
    // Metrics and health name the subscription, filter included.
    let text = running.context().metrics().render();
    assert!(
        text.lines()
            .any(|l| l.starts_with("sfstream_events_handled_total")
                && l.contains(&format!(r#"channel="{SUBSCRIPTION}""#))
                && l.ends_with(" 1")),
        "{text}"
    );
    let base = format!(
        "http://127.0.0.1:{}",
        running.metrics_addr().expect("served").port()
    );
    let (status, body) = get(&format!("{base}/health")).await;
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        health["channels"][SUBSCRIPTION]["state"], "subscribed",
        "{health}"
    );
    running.stop().await.expect("stops");
}
