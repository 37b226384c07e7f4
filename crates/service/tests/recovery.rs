//! Gap recovery in a service, from its config: `FETCH_GAP_RECORDS` hands a
//! Change Data Capture gap event to the handler with its records read
//! through the REST API, and `BACKFILL` (with `REPLAY_FALLBACK`) hands the
//! records changed while the stored marker was stale to the handler,
//! marked, before the live events.

mod common;

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use sfstream_salesforce::replay::{MemoryStore, ReplayMarker, ReplayStore};
use sfstream_service::handler::Notification;
use sfstream_service::{Service, subscribe};

use common::{config, contacts, create, declare, emulator, eventually, latest};

#[tokio::test]
async fn a_gap_event_reaches_the_handler_with_its_record() {
    let org = emulator().await;
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s = seen.clone();
    let running = Service::new("gap-records")
        .config(config(&org, "", "FETCH_GAP_RECORDS: true"))
        .handler(
            move |Notification(data): Notification| {
                let s = s.clone();
                async move { s.lock().push(data) }
            },
            [subscribe("/data/ContactChangeEvent")],
        )
        .start()
        .await
        .expect("starts");
    // Subscribed: the service started.
    org.org().streaming.arm_gap_events("Contact", 1, false);
    let id = create(
        &org,
        "Contact",
        json!({"LastName": "Curie", "FirstName": "Marie"}),
    );
    create(&org, "Contact", json!({"LastName": "Meitner"}));
    assert!(
        eventually(10, || seen.lock().len() >= 2).await,
        "{:?}",
        seen.lock()
    );
    let seen = seen.lock().clone();
    let gap = &seen[0]["payload"];
    assert_eq!(gap["ChangeEventHeader"]["changeType"], "GAP_CREATE");
    assert_eq!(gap["fetched"], true, "{gap}");
    assert_eq!(gap["fetchedRecords"][0]["Id"], id.as_str());
    assert_eq!(gap["fetchedRecords"][0]["FirstName"], "Marie");
    assert_eq!(seen[1]["payload"]["LastName"], "Meitner");
    running.stop().await.expect("stops");
}

#[tokio::test]
async fn an_expired_marker_is_backfilled_before_the_live_events() {
    const TOPIC: &str = "/topic/ServiceBackfill";
    let org = emulator().await;
    declare(&org, "ServiceBackfill", "SELECT Id, Name FROM Contact").await;
    contacts(&org, 0, 1);
    let marker = latest(&org, TOPIC);
    let created = chrono::Utc::now();
    let store = Arc::new(MemoryStore::new());
    store
        .advance(TOPIC, ReplayMarker::new(marker, Some(created)))
        .await
        .expect("seed");
    // Changed while the service was down; then retention passed them.
    let missed = create(&org, "Contact", json!({"LastName": "Missed"}));
    org.org()
        .streaming
        .expire(Some(TOPIC), Some(latest(&org, TOPIC)));

    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let s = seen.clone();
    let running = Service::new("backfill")
        .config(config(&org, "", "REPLAY_FALLBACK: NEW\nBACKFILL: true"))
        .replay_store(store.clone())
        .handler(
            move |Notification(data): Notification| {
                let s = s.clone();
                async move { s.lock().push(data) }
            },
            [subscribe(TOPIC)],
        )
        .start()
        .await
        .expect("starts");
    assert!(
        eventually(10, || seen
            .lock()
            .iter()
            .any(|d| d["sobject"]["Id"] == missed.as_str()))
        .await,
        "{:?}",
        seen.lock()
    );
    let live = create(&org, "Contact", json!({"LastName": "Live"}));
    assert!(
        eventually(10, || seen
            .lock()
            .iter()
            .any(|d| d["sobject"]["Id"] == live.as_str()))
        .await,
        "{:?}",
        seen.lock()
    );
    let seen = seen.lock().clone();
    let position = |id: &str| seen.iter().position(|d| d["sobject"]["Id"] == id);
    let backfilled = &seen[position(&missed).expect("missed")];
    assert_eq!(backfilled["backfilled"], true, "{backfilled}");
    assert_eq!(backfilled["event"]["type"], "created");
    let live_event = &seen[position(&live).expect("live")];
    assert!(live_event.get("backfilled").is_none(), "{live_event}");
    assert!(
        position(&missed) < position(&live),
        "the backfill first: {seen:?}"
    );
    running.stop().await.expect("stops");
}
