//! The runtime against the emulator: stacking, declaration, the watermark
//! with concurrent and failing handlers, graceful shutdown, metrics.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use sfstream_salesforce::replay::{MemoryStore, ReplayStore};
use sfstream_service::{
    Channel, Dep, Name, Notification, PushTopic, RecordType, ReplayId, Salesforce, Service,
    ServiceError, SobjectType, handle_notification, handle_sobject_notification, subscribe,
};

use common::{config, contacts, create, emulator, eventually, latest, rest};

type Sightings = Mutex<Vec<(String, Option<String>, String)>>;
type Seen = Arc<Sightings>;
type Calls = Arc<Mutex<Vec<(String, Option<i64>, String)>>>;

async fn record_sobject(
    SobjectType(sobject_type): SobjectType,
    RecordType(record_type): RecordType,
    Notification(notification): Notification,
    Dep(seen): Dep<Sightings>,
) -> Result<(), String> {
    let kind = notification["event"]["type"]
        .as_str()
        .ok_or("no event type")?
        .to_string();
    seen.lock().push((sobject_type, record_type, kind));
    Ok(())
}

#[tokio::test]
async fn a_stacked_handler_gets_each_sobject_with_its_arguments() {
    let org = emulator().await;
    let seen: Seen = Arc::default();
    let running = Service::new("stacking")
        .config(config(&org, "", ""))
        .dependency_arc(seen.clone())
        .handler(
            record_sobject,
            [
                handle_sobject_notification("Contact").exclude_current_user(false),
                handle_sobject_notification("Lead").exclude_current_user(false),
            ],
        )
        .start()
        .await
        .expect("starts");
    create(&org, "Contact", json!({"LastName": "Lovelace"}));
    create(
        &org,
        "Lead",
        json!({"LastName": "Babbage", "Company": "Engines"}),
    );
    assert!(
        eventually(15, || seen.lock().len() >= 2).await,
        "{:?}",
        seen.lock()
    );
    let mut got = seen.lock().clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("Contact".to_string(), None, "created".to_string()),
            ("Lead".to_string(), None, "created".to_string()),
        ]
    );
    running.stop().await.expect("stops");
}

#[tokio::test]
async fn two_handlers_on_one_channel_both_run_and_extractors_fill_in() {
    let org = emulator().await;
    let first: Arc<Mutex<Vec<String>>> = Arc::default();
    let second: Calls = Arc::default();
    let (a, b) = (first.clone(), second.clone());
    let running = Service::new("two-handlers")
        .config(config(&org, "", ""))
        .handler(
            move |Name(name): Name, PushTopic(event): PushTopic| {
                let a = a.clone();
                async move {
                    a.lock().push(format!(
                        "{name}:{}",
                        event.sobject["LastName"].as_str().unwrap_or_default()
                    ));
                }
            },
            [handle_notification("ContactNames").query("SELECT Id, LastName FROM Contact")],
        )
        .handler(
            move |Channel(channel): Channel, ReplayId(id): ReplayId, Salesforce(sf): Salesforce| {
                let b = b.clone();
                async move {
                    let api = sf.api_version().to_string();
                    b.lock().push((channel, id, api));
                    Ok::<(), std::convert::Infallible>(())
                }
            },
            [subscribe("/topic/ContactNames")],
        )
        .start()
        .await
        .expect("starts");
    create(&org, "Contact", json!({"LastName": "Hopper"}));
    assert!(eventually(15, || !first.lock().is_empty() && !second.lock().is_empty()).await);
    assert_eq!(*first.lock(), vec!["ContactNames:Hopper".to_string()]);
    let got = second.lock().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "/topic/ContactNames");
    assert_eq!(got[0].1, Some(latest(&org, "/topic/ContactNames")));
    assert_eq!(got[0].2, "37.0");
    running.stop().await.expect("stops");
}

async fn nothing() {}

#[tokio::test]
async fn topics_are_declared_before_streaming() {
    let org = emulator().await;
    let running = Service::new("declare")
        .config(config(&org, "", ""))
        .handler(
            nothing,
            [
                handle_sobject_notification("Contact").record_type("Student"),
                handle_sobject_notification("Task").exclude_current_user(false),
            ],
        )
        .handler(
            nothing,
            [handle_notification("ContactNameUpdated")
                .query("SELECT Id, FirstName, LastName FROM Contact")
                .notify_for_operation_create(false)],
        )
        .start()
        .await
        .expect("starts");
    let client = rest(&org);
    let student = client
        .get_topic("ContactStudent")
        .await
        .expect("query")
        .expect("ContactStudent declared");
    assert!(
        student.query.starts_with(
            "SELECT Id, Name, LastModifiedById, LastModifiedDate FROM Contact WHERE RecordTypeId = '012"
        ) && student.query.contains("AND LastModifiedById != '005"),
        "{}",
        student.query
    );
    let task = client
        .get_topic("Task")
        .await
        .expect("query")
        .expect("Task declared");
    // Task has no Name field: not selected.
    assert_eq!(
        task.query,
        "SELECT Id, LastModifiedById, LastModifiedDate FROM Task"
    );
    let names = client
        .get_topic("ContactNameUpdated")
        .await
        .expect("query")
        .expect("declared");
    assert_eq!(names.query, "SELECT Id, FirstName, LastName FROM Contact");
    assert!(!names.notify_for_operations.create && names.notify_for_operations.update);
    running.stop().await.expect("stops");
}

#[tokio::test]
async fn a_declaration_failure_stops_start_up_naming_the_entrypoint() {
    let org = emulator().await;
    let error = Service::new("bad-declaration")
        .config(config(&org, "", ""))
        .handler(nothing, [handle_sobject_notification("Contact")])
        .handler(
            nothing,
            [handle_sobject_notification("Contact").record_type("NoSuchType")],
        )
        .start()
        .await
        .expect_err("start-up fails");
    let text = error.to_string();
    assert!(
        matches!(error, ServiceError::Declaration { .. }),
        "{error:?}"
    );
    assert!(
        text.contains(r#"handle_sobject_notification("Contact", record_type="NoSuchType")"#)
            && text.contains("NoSuchType"),
        "{text}"
    );
    // Nothing subscribed, so no client streams.
    let error = Service::new("bad-query")
        .config(config(&org, "", ""))
        .handler(
            nothing,
            [handle_notification("Bad").query("SELECT Name FROM Contact")],
        )
        .start()
        .await
        .expect_err("start-up fails");
    assert!(
        error.to_string().contains(r#"handle_notification("Bad")"#),
        "{error}"
    );
    // No SALESFORCE section at all.
    let error = Service::new("no-config")
        .handler(nothing, [subscribe("/topic/X")])
        .start()
        .await
        .expect_err("start-up fails");
    assert!(
        matches!(error, ServiceError::NoSalesforceConfig),
        "{error:?}"
    );
}

const WM_TOPIC: &str = "/topic/ContactWm";

fn wm_entrypoint() -> sfstream_service::entrypoints::HandleNotification {
    handle_notification("ContactWm").query("SELECT Id, LastName FROM Contact")
}

/// Samples the stored marker every 2 ms; fails if it ever moves back.
fn sample_markers(store: Arc<MemoryStore>) -> (Arc<Mutex<Vec<i64>>>, tokio::task::JoinHandle<()>) {
    let samples: Arc<Mutex<Vec<i64>>> = Arc::default();
    let out = samples.clone();
    let task = tokio::spawn(async move {
        loop {
            if let Ok(Some(marker)) = store.get(WM_TOPIC).await {
                let mut samples = out.lock();
                if samples.last() != Some(&marker.replay_id) {
                    samples.push(marker.replay_id);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    (samples, task)
}

fn assert_monotonic(samples: &[i64]) {
    assert!(
        samples.windows(2).all(|w| w[0] < w[1]),
        "the marker moved backwards: {samples:?}"
    );
}

#[tokio::test]
async fn concurrent_handlers_never_move_the_marker_backwards() {
    let org = emulator().await;
    let store = Arc::new(MemoryStore::new());
    let handled: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let h = handled.clone();
    let running = Service::new("watermark")
        .config(config(&org, "max_workers: 8", ""))
        .replay_store(store.clone())
        .handler(
            move |ReplayId(id): ReplayId| {
                let h = h.clone();
                async move {
                    let id = id.unwrap_or_default();
                    // Random-ish work: later events often finish first.
                    let ms = (id * 7919 % 37) as u64;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    h.lock().insert(id);
                }
            },
            [wm_entrypoint()],
        )
        .start()
        .await
        .expect("starts");
    let (samples, sampler) = sample_markers(store.clone());
    contacts(&org, 0, 120);
    let last = latest(&org, WM_TOPIC);
    assert!(eventually(30, || handled.lock().len() >= 120).await);
    assert!(
        eventually(10, || samples.lock().last() == Some(&last)).await,
        "{:?}",
        samples.lock()
    );
    sampler.abort();
    assert_monotonic(&samples.lock());
    running.stop().await.expect("stops");
    assert_eq!(
        store.get(WM_TOPIC).await.expect("get").map(|m| m.replay_id),
        Some(last)
    );
}

/// Fails on the Contact named `Contact 5`; counts calls.
fn failing_on_5(
    calls: Arc<AtomicUsize>,
    handled: Arc<Mutex<Vec<(i64, String)>>>,
) -> impl Fn(PushTopic) -> futures::future::BoxFuture<'static, Result<(), String>> + Clone {
    move |PushTopic(event): PushTopic| {
        let calls = calls.clone();
        let handled = handled.clone();
        Box::pin(async move {
            let name = event.sobject["LastName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if name == "Contact 5" {
                calls.fetch_add(1, Ordering::SeqCst);
                return Err(format!("cannot handle {name}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            handled.lock().push((event.event.replay_id, name));
            Ok(())
        })
    }
}

#[tokio::test]
async fn under_skip_the_watermark_passes_a_failed_event_and_counts_it() {
    let org = emulator().await;
    let store = Arc::new(MemoryStore::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let handled: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let running = Service::new("skip")
        .config(config(
            &org,
            "max_workers: 4",
            "RETRIES: 2\nON_FAILURE: skip",
        ))
        .replay_store(store.clone())
        .handler(
            failing_on_5(calls.clone(), handled.clone()),
            [wm_entrypoint()],
        )
        .start()
        .await
        .expect("starts");
    let (samples, sampler) = sample_markers(store.clone());
    contacts(&org, 0, 20);
    let last = latest(&org, WM_TOPIC);
    assert!(eventually(30, || handled.lock().len() >= 19).await);
    assert!(eventually(10, || samples.lock().last() == Some(&last)).await);
    sampler.abort();
    assert_monotonic(&samples.lock());
    // First call and two retries.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let text = running.context().metrics().render();
    let failed = text
        .lines()
        .find(|l| l.starts_with("sfstream_events_failed_total") && l.contains(WM_TOPIC))
        .unwrap_or_default()
        .to_string();
    assert!(failed.ends_with(" 1"), "{text}");
    running.stop().await.expect("stops");
}

#[tokio::test]
async fn under_stop_the_service_stops_below_the_failed_event_which_a_restart_redelivers() {
    let org = emulator().await;
    let store = Arc::new(MemoryStore::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let handled: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    // Create the topic and the events first; replay them all.
    let running = Service::new("stop")
        .config(config(
            &org,
            "max_workers: 4",
            "RETRIES: 1\nDEFAULT_REPLAY: ALL",
        ))
        .replay_store(store.clone())
        .handler(
            failing_on_5(calls.clone(), handled.clone()),
            [wm_entrypoint()],
        )
        .start()
        .await
        .expect("starts");
    contacts(&org, 0, 12);
    let error = tokio::time::timeout(Duration::from_secs(30), running.stopped())
        .await
        .expect("the service stops by itself")
        .expect_err("with the handler's failure");
    let ServiceError::HandlerFailed {
        replay_id,
        attempts,
        channel,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!((channel.as_str(), *attempts), (WM_TOPIC, 2));
    let failed_id = replay_id.expect("replay id");
    let marker = store.get(WM_TOPIC).await.expect("get").map(|m| m.replay_id);
    // Contacts 0..=4 were handled: the marker is the event just before
    // (replay ids have gaps: compare with what was handled).
    let before = handled
        .lock()
        .iter()
        .filter(|(id, _)| *id < failed_id)
        .map(|(id, _)| *id)
        .max();
    assert!(handled.lock().iter().any(|(_, n)| n == "Contact 4"));
    assert_eq!(marker, before, "{:?}", handled.lock());

    // A restart (the handler fixed) starts with the failed event.
    let redelivered: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let r = redelivered.clone();
    let running = Service::new("stop")
        .config(config(&org, "max_workers: 4", "DEFAULT_REPLAY: ALL"))
        .replay_store(store.clone())
        .handler(
            move |ReplayId(id): ReplayId, PushTopic(event): PushTopic| {
                let r = r.clone();
                async move {
                    let name = event.sobject["LastName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    r.lock().push((id.unwrap_or_default(), name));
                }
            },
            [wm_entrypoint()],
        )
        .start()
        .await
        .expect("restarts");
    let last = latest(&org, WM_TOPIC);
    assert!(eventually(20, || redelivered.lock().iter().any(|(id, _)| *id == last)).await);
    let mut got = redelivered.lock().clone();
    got.sort();
    assert_eq!(
        got.first(),
        Some(&(failed_id, "Contact 5".to_string())),
        "{got:?}"
    );
    running.stop().await.expect("stops");
    assert_eq!(
        store.get(WM_TOPIC).await.expect("get").map(|m| m.replay_id),
        Some(last)
    );
}

#[tokio::test]
async fn stop_lets_in_flight_handlers_finish_commits_and_takes_nothing_new() {
    let org = emulator().await;
    let store = Arc::new(MemoryStore::new());
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let ids: Arc<Mutex<Vec<i64>>> = Arc::default();
    let (s, f, i) = (started.clone(), finished.clone(), ids.clone());
    let running = Service::new("graceful")
        .config(config(&org, "max_workers: 4", ""))
        .replay_store(store.clone())
        .handler(
            move |ReplayId(id): ReplayId| {
                let (s, f, i) = (s.clone(), f.clone(), i.clone());
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    i.lock().extend(id);
                    tokio::time::sleep(Duration::from_millis(700)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                }
            },
            [wm_entrypoint()],
        )
        .start()
        .await
        .expect("starts");
    contacts(&org, 0, 10);
    assert!(eventually(15, || started.load(Ordering::SeqCst) == 4).await);
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    running.stop().await.expect("stops cleanly");
    assert_eq!(started.load(Ordering::SeqCst), 4, "no new event taken");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        4,
        "in-flight handlers finished"
    );
    // The four handled events (the first four) are committed.
    let fourth = ids.lock().iter().copied().max();
    assert_eq!(
        store.get(WM_TOPIC).await.expect("get").map(|m| m.replay_id),
        fourth
    );
    assert!(fourth < Some(latest(&org, WM_TOPIC)));
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    let org = emulator().await;
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let running = Service::new("metrics-test")
        .config(config(&org, "METRICS_PORT: 0", ""))
        .handler(
            move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                }
            },
            [wm_entrypoint()],
        )
        .start()
        .await
        .expect("starts");
    let addr = running.metrics_addr().expect("metrics served");
    let base = format!("http://127.0.0.1:{}", addr.port());
    let health = reqwest::get(format!("{base}/health"))
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    contacts(&org, 0, 3);
    assert!(eventually(15, || handled.load(Ordering::SeqCst) == 3).await);
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |name: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(name)
                    && l.contains(r#"channel="/topic/ContactWm""#)
                    && l.contains(r#"service="metrics-test""#)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(value("sfstream_events_received_total"), Some(3.0), "{text}");
    assert_eq!(value("sfstream_events_handled_total"), Some(3.0), "{text}");
    assert_eq!(value("sfstream_events_failed_total"), Some(0.0), "{text}");
    assert_eq!(value("sfstream_handler_seconds_count"), Some(3.0), "{text}");
    assert_eq!(value("sfstream_watermark_lag"), Some(0.0), "{text}");
    assert!(text.contains("sfstream_reconnects_total"), "{text}");
    running.stop().await.expect("stops");
}

#[tokio::test]
async fn change_events_and_platform_events_reach_their_handlers() {
    use sfstream_service::{Change, Platform, change_events, change_events_all, platform_event};
    let org = emulator().await;
    let changes: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let orders: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (c, o) = (changes.clone(), orders.clone());
    let running = Service::new("beyond")
        .config(config(&org, "", ""))
        .handler(
            move |Channel(channel): Channel, SobjectType(t): SobjectType, Change(event): Change| {
                let c = c.clone();
                async move {
                    c.lock()
                        .push((channel, t, event.payload.header.change_type));
                }
            },
            [change_events("Account"), change_events_all()],
        )
        .handler(
            move |Name(name): Name, Platform(event): Platform| {
                let o = o.clone();
                async move {
                    let model = event.payload["Printer_Model__c"]
                        .as_str()
                        .unwrap_or_default();
                    o.lock().push((name, model.to_string()));
                }
            },
            [platform_event("Printer__e")],
        )
        .start()
        .await
        .expect("starts");
    create(&org, "Account", json!({"Name": "Acme"}));
    create(&org, "Printer__e", json!({"Printer_Model__c": "XZO-5"}));
    assert!(
        eventually(15, || changes.lock().len() >= 2
            && !orders.lock().is_empty())
        .await
    );
    let mut got = changes.lock().clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "/data/AccountChangeEvent".into(),
                "Account".into(),
                "CREATE".into()
            ),
            (
                "/data/ChangeEvents".into(),
                "Account".into(),
                "CREATE".into()
            ),
        ]
    );
    assert_eq!(
        *orders.lock(),
        vec![("Printer__e".to_string(), "XZO-5".to_string())]
    );
    running.stop().await.expect("stops");
}
