//! The org's limits in a service: read at start and every
//! `LIMITS.INTERVAL`, exported as `sfstream_limit_remaining` and
//! `sfstream_limit_max` per watched limit; `INTERVAL: 0` reads none.

mod common;

use sfstream_emulator::faults::StreamingLimits;
use sfstream_service::{Service, subscribe};

use common::{config, declare, emulator, eventually};

/// The value of the metric line starting with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn limit(text: &str, name: &str, which: &str) -> Option<f64> {
    text.lines()
        .find(|l| {
            l.starts_with(&format!("sfstream_limit_{which}{{"))
                && l.contains(&format!("limit=\"{name}\""))
        })
        .and_then(|l| metric(l, "sfstream_limit_"))
}

#[tokio::test]
async fn limits_are_read_at_start_and_periodically() {
    let org = emulator().await;
    declare(&org, "LimitsContacts", "SELECT Id, Name FROM Contact").await;
    org.org().faults.set_streaming_limits(StreamingLimits {
        daily_events: Some(1_000),
        ..Default::default()
    });
    let running = Service::new("limits")
        .config(config(&org, "", "LIMITS: {INTERVAL: 1, WARN_AT: 0.5}"))
        .handler(|| async {}, [subscribe("/topic/LimitsContacts")])
        .start()
        .await
        .expect("starts");
    let metrics = running.context().metrics().clone();
    assert!(
        eventually(5, || limit(
            &metrics.render(),
            "DailyStreamingApiEvents",
            "max"
        ) == Some(1_000.0))
        .await,
        "{}",
        metrics.render()
    );
    let text = metrics.render();
    for name in [
        "DailyApiRequests",
        "DailyDeliveredPlatformEvents",
        "DailyDurableStreamingApiEvents",
    ] {
        assert!(limit(&text, name, "remaining").is_some(), "{name}: {text}");
    }
    let remaining = limit(&text, "DailyApiRequests", "remaining").expect("remaining");
    let max = limit(&text, "DailyApiRequests", "max").expect("max");
    assert!(
        remaining < max,
        "the service's own calls count: {remaining} of {max}"
    );
    // The org's allocation changes: the next read shows it.
    org.org().faults.set_streaming_limits(StreamingLimits {
        daily_events: Some(7),
        ..Default::default()
    });
    assert!(
        eventually(5, || limit(
            &metrics.render(),
            "DailyStreamingApiEvents",
            "max"
        ) == Some(7.0))
        .await,
        "{}",
        metrics.render()
    );
    running.stop().await.expect("stops");
}

#[tokio::test]
async fn interval_zero_reads_no_limits() {
    let org = emulator().await;
    declare(&org, "NoLimitsContacts", "SELECT Id, Name FROM Contact").await;
    let running = Service::new("no-limits")
        .config(config(&org, "", "LIMITS: {INTERVAL: 0}"))
        .handler(|| async {}, [subscribe("/topic/NoLimitsContacts")])
        .start()
        .await
        .expect("starts");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let text = running.context().metrics().render();
    assert!(!text.contains("sfstream_limit_"), "{text}");
    running.stop().await.expect("stops");
}

#[test]
fn limits_and_recovery_keys_are_checked() {
    use sfstream_service::config::Config;
    let base = "SALESFORCE:\n  SANDBOX: false\n  USERNAME: u\n  PASSWORD: p\n";
    let read = |extra: &str| Config::from_yaml_with_env(&format!("{base}{extra}"), |_| None);
    let config = read("  LIMITS: {INTERVAL: 60, WARN_AT: 0.9}\n  FETCH_GAP_RECORDS: true\n  BACKFILL: true\n  BACKFILL_MAX_RECORDS: 50\n  MARKER_AGE_WARN_HOURS: {RETENTION_24H: 12, RETENTION_72H: 48}\n")
        .expect("config");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let section = config.salesforce.expect("section");
    let policy = section.limits.expect("limits read");
    assert_eq!(policy.interval, std::time::Duration::from_secs(60));
    assert_eq!(policy.warn_at, 0.9);
    assert!(section.fetch_gap_records && section.backfill);
    assert_eq!(section.backfill_max_records, 50);
    let ages = section.marker_age_warn.expect("warn ages");
    assert_eq!(ages.short, std::time::Duration::from_secs(12 * 3600));
    assert_eq!(ages.long, std::time::Duration::from_secs(48 * 3600));
    // Defaults.
    let section = read("").expect("config").salesforce.expect("section");
    assert_eq!(section.limits.map(|p| p.interval.as_secs()), Some(300));
    assert!(!section.fetch_gap_records && !section.backfill);
    // Refusals name the key.
    for (extra, key) in [
        ("  LIMITS: {WARN_AT: 1.5}\n", "SALESFORCE.LIMITS.WARN_AT"),
        ("  LIMITS: {INTERVAL: 0.5}\n", "SALESFORCE.LIMITS.INTERVAL"),
        (
            "  MARKER_AGE_WARN_HOURS: {RETENTION_24H: 30}\n",
            "SALESFORCE.MARKER_AGE_WARN_HOURS.RETENTION_24H",
        ),
        (
            "  BACKFILL_MAX_RECORDS: 0\n",
            "SALESFORCE.BACKFILL_MAX_RECORDS",
        ),
    ] {
        let error = read(extra).expect_err(extra);
        assert_eq!(error.key(), Some(key), "{error}");
    }
    assert!(
        read("  LIMITS: {INTERVALS: 5}\n").is_err(),
        "unknown LIMITS keys are refused"
    );
}
