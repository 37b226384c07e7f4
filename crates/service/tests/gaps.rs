//! Gaps and marker ages in a service: an expired stored marker with
//! `REPLAY_FALLBACK` reaches the `on_gap` handlers (never only the logs),
//! is counted, and the marker age gauge follows the store and commits.

mod common;

use std::sync::Arc;

use parking_lot::Mutex;
use sfstream_salesforce::replay::{MemoryStore, ReplayFrom, ReplayMarker, ReplayStore};
use sfstream_service::{Gap, ReplayId, Service, subscribe};

use common::{config, contacts, declare, emulator, eventually, latest};

const TOPIC: &str = "/topic/GapContacts";

/// The value of the first line of `text` starting with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn an_expired_marker_reaches_the_gap_handlers_before_the_events() {
    let org = emulator().await;
    declare(&org, "GapContacts", "SELECT Id, Name FROM Contact").await;
    contacts(&org, 0, 3);
    let newest = latest(&org, TOPIC);
    let created = chrono::Utc::now() - chrono::Duration::hours(30);
    let store = Arc::new(MemoryStore::new());
    store
        .advance(TOPIC, ReplayMarker::new(newest - 2, Some(created)))
        .await
        .expect("seed");
    org.org().streaming.expire(Some(TOPIC), Some(newest - 1));

    // What happened, in order: gaps and events.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let gaps: Arc<Mutex<Vec<Gap>>> = Arc::default();
    let (s, g, o) = (seen.clone(), gaps.clone(), seen.clone());
    let running = Service::new("gaps")
        .config(config(&org, "", "REPLAY_FALLBACK: ALL"))
        .replay_store(store.clone())
        .handler(
            move |ReplayId(id): ReplayId| {
                let s = s.clone();
                async move { s.lock().push(format!("event {id:?}")) }
            },
            [subscribe(TOPIC)],
        )
        .on_gap(move |gap: Gap| {
            let (g, o) = (g.clone(), o.clone());
            async move {
                o.lock().push("gap".into());
                g.lock().push(gap);
            }
        })
        .start()
        .await
        .expect("starts");
    assert!(
        eventually(10, || seen.lock().len() >= 2).await,
        "{:?}",
        seen.lock()
    );
    assert_eq!(
        *seen.lock(),
        vec!["gap".to_string(), format!("event {:?}", Some(newest))],
        "the gap first, then the retained event, and the gap is no event"
    );
    let gap = gaps.lock()[0].clone();
    assert_eq!(gap.channel, TOPIC);
    assert_eq!(
        gap.from.map(|t| t.timestamp_millis()),
        Some(created.timestamp_millis())
    );
    assert_eq!(gap.fallback, ReplayFrom::All);
    let text = running.context().metrics().render();
    let labels = format!(r#"{{service="gaps",channel="{TOPIC}"}}"#);
    assert_eq!(
        metric(&text, &format!("sfstream_gaps_total{labels}")),
        Some(1.0),
        "{text}"
    );
    // The event was committed: its marker is young.
    assert!(
        eventually(5, || {
            let text = running.context().metrics().render();
            metric(&text, &format!("sfstream_marker_age_seconds{labels}"))
                .is_some_and(|age| age < 60.0)
        })
        .await,
        "{}",
        running.context().metrics().render()
    );
    running.stop().await.expect("stops");
}

#[tokio::test]
async fn the_marker_age_gauge_reads_the_store_at_start() {
    let org = emulator().await;
    declare(&org, "GapContacts", "SELECT Id, Name FROM Contact").await;
    contacts(&org, 0, 1);
    let store = Arc::new(MemoryStore::new());
    let created = chrono::Utc::now() - chrono::Duration::hours(20);
    store
        .advance(TOPIC, ReplayMarker::new(latest(&org, TOPIC), Some(created)))
        .await
        .expect("seed");
    let running = Service::new("ages")
        .config(config(&org, "", ""))
        .replay_store(store)
        .handler(|| async {}, [subscribe(TOPIC)])
        .start()
        .await
        .expect("starts");
    let name = format!(r#"sfstream_marker_age_seconds{{service="ages",channel="{TOPIC}"}}"#);
    assert!(
        eventually(5, || {
            metric(&running.context().metrics().render(), &name)
                .is_some_and(|age| (20.0 * 3600.0 - 5.0..20.0 * 3600.0 + 60.0).contains(&age))
        })
        .await,
        "{}",
        running.context().metrics().render()
    );
    running.stop().await.expect("stops");
}
