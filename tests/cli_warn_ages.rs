//! The marker age warn thresholds are configurable and the CLI follows
//! them: `sfstream doctor --config` judges markers by the service's
//! `MARKER_AGE_WARN_HOURS`, and `sfstream listen --marker-age-warn-hours`
//! warns at start of a stored marker past them.

use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::replay::{FileStore, ReplayMarker, ReplayStore};
use sfstream_testkit::emulator::{cli_password_env, create, push_topic, service_settings};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");
const TOPIC: &str = "/topic/AgedContacts";

/// An emulator with the topic, and a file store holding a marker of its
/// newest event created three hours ago.
async fn setup(dir: &std::path::Path) -> (Emulator, String) {
    let org = Emulator::start(EmulatorConfig::for_tests())
        .await
        .expect("emulator");
    push_topic(
        &org,
        "AgedContacts",
        "SELECT Id, LastName FROM Contact",
        62.0,
    );
    create(&org, "Contact", json!({"LastName": "Aged"}));
    let (latest, _) = org.org().streaming.channel_state(TOPIC).expect("events");
    let path = dir.join("markers.redb");
    let store = FileStore::open(&path).expect("store");
    store
        .advance(
            TOPIC,
            ReplayMarker::new(latest, Some(Utc::now() - chrono::Duration::hours(3))),
        )
        .await
        .expect("seed");
    drop(store);
    (org, format!("file:{}", path.display()))
}

async fn run(command: &mut Command) -> std::process::Output {
    tokio::time::timeout(
        Duration::from_secs(60),
        command.stdin(Stdio::null()).output(),
    )
    .await
    .expect("finishes")
    .expect("runs")
}

async fn doctor_status(org: &Emulator, dir: &std::path::Path, store: &str, extra: &str) -> Value {
    let config = dir.join(format!("service{}.yaml", extra.len()));
    std::fs::write(
        &config,
        format!(
            "SALESFORCE:\n{}  REPLAY_STORE: {store}\n{extra}",
            service_settings(&org.url())
        ),
    )
    .expect("config written");
    let output = run(Command::new(BIN)
        .arg("doctor")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "error"))
    .await;
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    report["markers"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["channel"] == TOPIC))
        .map(|m| m["status"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn doctor_judges_markers_by_the_configured_warn_ages() {
    let dir = tempfile::tempdir().expect("dir");
    let (org, store) = setup(dir.path()).await;
    // Three hours: fresh by the default 18 h, near retention past 2 h.
    assert_eq!(doctor_status(&org, dir.path(), &store, "").await, "ok");
    assert_eq!(
        doctor_status(
            &org,
            dir.path(),
            &store,
            "  MARKER_AGE_WARN_HOURS: {RETENTION_24H: 2}\n"
        )
        .await,
        "near_retention"
    );
}

#[tokio::test]
async fn listen_warns_of_a_marker_past_the_given_warn_age() {
    let dir = tempfile::tempdir().expect("dir");
    let (org, store) = setup(dir.path()).await;
    let listen = |hours: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args([
                "listen",
                "--no-status",
                "--replay-store",
                &store,
                "--max-events",
                "1",
            ])
            .args(
                hours
                    .map(|h| vec!["--marker-age-warn-hours", h])
                    .unwrap_or_default(),
            )
            .arg(TOPIC)
            .envs(cli_password_env(&org.url()))
            .env("RUST_LOG", "warn");
        command
    };
    let warning = "nears the end of retention";
    // The default (18 h): no warning. Each run resumes after the marker
    // and takes the one event raised since.
    create(&org, "Contact", json!({"LastName": "One"}));
    let output = run(&mut listen(None)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(warning), "{stderr}");

    // The marker moved on with that event: age it again, then 2 h warns.
    {
        let path = store.trim_start_matches("file:");
        let file = FileStore::open(path).expect("store");
        let marker = file.get(TOPIC).await.expect("get").expect("marker");
        file.remove(TOPIC).await.expect("remove");
        file.advance(
            TOPIC,
            ReplayMarker::new(
                marker.replay_id,
                Some(Utc::now() - chrono::Duration::hours(3)),
            ),
        )
        .await
        .expect("aged");
    }
    create(&org, "Contact", json!({"LastName": "Two"}));
    let output = run(&mut listen(Some("2,60"))).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(warning), "{stderr}");
}
