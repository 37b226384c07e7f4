//! The status page of a running service, in headless Chromium: its
//! channel subscribed with what it handled, "retrying" while the org is
//! down, and subscribed again once it is back.

mod common;

use std::time::Duration;

use serde_json::json;
use sfstream_service::status::StatusReport;
use sfstream_service::{PushTopic, Service, change_events, handle_notification};
use sfstream_testkit::browser::{Browser, PHONE};

use common::{config, create, emulator};

const TOPIC: &str = "/topic/StatusPage";

/// Fails on the Contact named `Broken`, so the page has a failure to show.
async fn handler(PushTopic(event): PushTopic) -> Result<(), String> {
    match event.sobject["LastName"].as_str() {
        Some("Broken") => Err("cannot file a Broken contact".into()),
        _ => Ok(()),
    }
}

async fn report(base: &str) -> StatusReport {
    reqwest::get(format!("{base}/status"))
        .await
        .expect("/status answers")
        .json()
        .await
        .expect("a status report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_turns_retrying_while_the_org_is_down_then_back() {
    let mut org = emulator().await;
    let running = Service::new("status-page")
        .config(config(
            &org,
            "METRICS_PORT: 0",
            "RETRIES: 0\nON_FAILURE: skip",
        ))
        .handler(
            handler,
            [handle_notification("StatusPage").query("SELECT Id, LastName FROM Contact")],
        )
        .handler(|| async {}, [change_events("Contact")])
        .start()
        .await
        .expect("starts");
    let base = format!(
        "http://127.0.0.1:{}",
        running.metrics_addr().expect("metrics served").port()
    );
    for name in ["Ada", "Grace", "Broken", "Linus"] {
        create(&org, "Contact", json!({ "LastName": name }));
    }
    let handled = || async {
        let report = report(&base).await;
        report
            .channels
            .iter()
            .find(|c| c.channel == TOPIC)
            .map_or(0, |c| c.handled + c.failed)
    };
    // Markers are committed shortly after the events are handled.
    let stored = || async {
        report(&base)
            .await
            .channels
            .iter()
            .any(|c| c.channel == TOPIC && c.marker.is_some())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while handled().await < 4 || !stored().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "4 events handled and a marker stored within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = report(&base).await;
    let channel = status
        .channels
        .iter()
        .find(|c| c.channel == TOPIC)
        .expect("the channel is listed");
    assert_eq!(channel.state, "subscribed");
    assert_eq!(channel.transport.as_deref(), Some("cometd"));
    assert_eq!((channel.handled, channel.failed), (3, 1));
    assert!(channel.lag_secs.is_some(), "{channel:?}");
    assert!(channel.events_per_sec > 0.0, "{channel:?}");
    let error = channel.last_error.as_ref().expect("the last error");
    assert!(error.message.contains("Broken"), "{error:?}");
    // The memory store holds the marker of the last handled event.
    let marker = channel.marker.as_ref().expect("a stored marker");
    assert_eq!(marker.retention_secs, 24 * 3600);
    assert!(!marker.expired);

    let browser = Browser::start().await;
    browser.goto(&format!("{base}/")).await;
    let card = format!(r#".card[data-channel="{TOPIC}"]"#);
    browser
        .wait_for_attr(&card, "data-state", "subscribed", Duration::from_secs(10))
        .await;
    let text = browser
        .wait_for_text(
            &card,
            "cannot file a Broken contact",
            Duration::from_secs(5),
        )
        .await;
    assert!(
        text.contains("CometD") && text.contains("handled"),
        "{text}"
    );
    browser
        .wait_for_text("#health", "healthy", Duration::from_secs(5))
        .await;
    browser.screenshot("status.png").await;
    browser.resize(PHONE).await;
    let (page, window) = browser.widths().await;
    assert!(
        page <= window,
        "the page scrolls sideways on a phone: {page} > {window}"
    );
    browser.screenshot("status-phone.png").await;
    browser.resize(sfstream_testkit::browser::DESKTOP).await;

    // The org goes away: the channel is retrying.
    org.stop().await;
    browser
        .wait_for_attr(&card, "data-state", "retrying", Duration::from_secs(15))
        .await;
    browser
        .wait_for_text("#health", "unhealthy", Duration::from_secs(5))
        .await;

    // It comes back: subscribed again, counted as a reconnect.
    org.resume().await.expect("the org serves again");
    browser
        .wait_for_attr(&card, "data-state", "subscribed", Duration::from_secs(30))
        .await;
    create(&org, "Contact", json!({ "LastName": "After" }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while handled().await < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event after the outage is handled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = report(&base).await;
    assert!(status.reconnects >= 1, "{status:?}");
    let channel = status.channels.iter().find(|c| c.channel == TOPIC);
    assert_eq!(channel.map(|c| c.reconnects), Some(1), "{status:?}");
    assert_eq!(status.channels.len(), 2, "{status:?}");
    browser.close().await;
    running.stop().await.expect("stops");
}
