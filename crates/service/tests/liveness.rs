//! A handler that never returns: `HANDLER_TIMEOUT` turns it into a
//! retryable failure, and `MAX_IN_FLIGHT` bounds what piles up behind it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sfstream_salesforce::replay::{MemoryStore, ReplayStore};
use sfstream_service::{PushTopic, ReplayId, Service, ServiceError, handle_notification};
use tokio::sync::Notify;

use common::{config, contacts, emulator, eventually, latest};

const TOPIC: &str = "/topic/ContactHang";

fn entrypoint() -> sfstream_service::entrypoints::HandleNotification {
    handle_notification("ContactHang").query("SELECT Id, LastName FROM Contact")
}

/// Never returns on the Contact named `Contact 2`; counts its calls and
/// the other events handled.
fn hangs_on_2(
    hung_calls: Arc<AtomicUsize>,
    handled: Arc<AtomicUsize>,
) -> impl Fn(PushTopic) -> futures::future::BoxFuture<'static, ()> + Clone {
    move |PushTopic(event): PushTopic| {
        let (hung_calls, handled) = (hung_calls.clone(), handled.clone());
        Box::pin(async move {
            if event.sobject["LastName"].as_str() == Some("Contact 2") {
                hung_calls.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            handled.fetch_add(1, Ordering::SeqCst);
        })
    }
}

/// The value of `name{…channel="<TOPIC>"…}` in the Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&format!(r#"channel="{TOPIC}""#)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_hung_handler_times_out_and_under_skip_the_watermark_moves_on() {
    let org = emulator().await;
    let store = Arc::new(MemoryStore::new());
    let hung_calls = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let running = Service::new("hang-skip")
        .config(config(
            &org,
            "max_workers: 4",
            "RETRIES: 1\nON_FAILURE: skip\nHANDLER_TIMEOUT: 0.3",
        ))
        .replay_store(store.clone())
        .handler(
            hangs_on_2(hung_calls.clone(), handled.clone()),
            [entrypoint()],
        )
        .start()
        .await
        .expect("starts");
    contacts(&org, 0, 10);
    let last = latest(&org, TOPIC);
    let marker = || {
        let store = store.clone();
        async move { store.get(TOPIC).await.expect("get").map(|m| m.replay_id) }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while marker().await != Some(last) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        marker().await,
        Some(last),
        "the watermark passed the hung event"
    );
    assert_eq!(handled.load(Ordering::SeqCst), 9);
    // The first call and one retry, each cut off by the timeout.
    assert_eq!(hung_calls.load(Ordering::SeqCst), 2);
    let text = running.context().metrics().render();
    assert_eq!(
        metric(&text, "sfstream_events_failed_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "sfstream_handler_timeouts_total"),
        Some(2.0),
        "{text}"
    );
    tokio::time::timeout(Duration::from_secs(5), running.stop())
        .await
        .expect("stops promptly: nothing hangs any more")
        .expect("stops cleanly");
}

#[tokio::test]
async fn a_hung_handler_under_stop_stops_the_service_after_the_timeout() {
    let org = emulator().await;
    let hung_calls = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let running = Service::new("hang-stop")
        .config(config(
            &org,
            "max_workers: 4\nHANDLER_TIMEOUT: 0.2",
            "RETRIES: 0\nSHUTDOWN_TIMEOUT: 1",
        ))
        .handler(
            hangs_on_2(hung_calls.clone(), handled.clone()),
            [entrypoint()],
        )
        .start()
        .await
        .expect("starts");
    contacts(&org, 0, 5);
    let error = tokio::time::timeout(Duration::from_secs(20), running.stopped())
        .await
        .expect("the service stops by itself")
        .expect_err("with the timeout as the handler's failure");
    let ServiceError::HandlerFailed {
        attempts, error, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*attempts, 1);
    assert!(error.contains("HANDLER_TIMEOUT"), "{error}");
    assert_eq!(hung_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn behind_a_hung_handler_the_window_stays_bounded_and_resumes_once_it_returns() {
    const BACKLOG: usize = 5_000;
    const WINDOW: usize = 100;
    let org = emulator().await;
    // The topic must exist before events are loaded onto its channel.
    common::declare(&org, "ContactHang", "SELECT Id, LastName FROM Contact").await;
    let last = org.org().streaming.preload(
        TOPIC,
        BACKLOG,
        &serde_json::json!({"Id": "003000000000001AAA", "LastName": "Backlog"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let store = Arc::new(MemoryStore::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    // The oldest event of the backlog hangs: everything else waits behind it.
    let first = last - BACKLOG as i64 + 1;
    let (c, r) = (calls.clone(), release.clone());
    let running = Service::new("hang-bounded")
        .config(config(
            &org,
            "max_workers: 8",
            &format!(
                "DEFAULT_REPLAY: ALL\nMAX_PENDING: 50\nMAX_IN_FLIGHT: {WINDOW}\nSHUTDOWN_TIMEOUT: 1"
            ),
        ))
        .replay_store(store.clone())
        .handler(
            move |ReplayId(id): ReplayId| {
                let (c, r) = (c.clone(), r.clone());
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    if id == Some(first) {
                        // Until the test lets it go (far below HANDLER_TIMEOUT).
                        r.notified().await;
                    }
                }
            },
            [entrypoint()],
        )
        .start()
        .await
        .expect("starts");
    assert!(
        eventually(30, || calls.load(Ordering::SeqCst) >= WINDOW).await,
        "the window fills: {} calls",
        calls.load(Ordering::SeqCst)
    );
    // Give the dispatcher time to overrun the bound, if it would.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let taken = calls.load(Ordering::SeqCst);
    let text = running.context().metrics().render();
    assert_eq!(
        taken, WINDOW,
        "no more events than MAX_IN_FLIGHT are taken behind the hung one"
    );
    assert_eq!(
        metric(&text, "sfstream_events_received_total"),
        Some(WINDOW as f64),
        "{text}"
    );
    assert_eq!(
        metric(&text, "sfstream_watermark_lag"),
        Some(WINDOW as f64),
        "{text}"
    );
    assert_eq!(
        store.get(TOPIC).await.expect("get"),
        None,
        "nothing committed"
    );

    // Let the hung handler return: the whole backlog flows and commits.
    release.notify_one();
    assert!(
        eventually(60, || calls.load(Ordering::SeqCst) >= BACKLOG).await,
        "{} of {BACKLOG} handled",
        calls.load(Ordering::SeqCst)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.get(TOPIC).await.expect("get").map(|m| m.replay_id) != Some(last)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store.get(TOPIC).await.expect("get").map(|m| m.replay_id),
        Some(last)
    );
    assert_eq!(calls.load(Ordering::SeqCst), BACKLOG);
    running.stop().await.expect("stops");
}
