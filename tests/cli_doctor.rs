//! `sfstream doctor` as a binary against the emulator: a healthy setup, an
//! expired marker with and without a fallback, the SOAP login retirement,
//! a failing login.

use std::process::{Output, Stdio};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::replay::{FileStore, OpaqueMarker, ReplayMarker, ReplayStore};
use sfstream_testkit::emulator::{cli_password_env, cli_soap_env};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");

async fn doctor(env: Vec<(&'static str, String)>, args: &[&str]) -> (Output, Value) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(BIN)
            .arg("doctor")
            .args(args)
            .envs(env)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("finishes")
    .expect("runs");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

/// A file store with a fresh marker on one channel, an old one on another,
/// and a Pub/Sub marker.
async fn store(dir: &std::path::Path, old_hours: i64) -> String {
    let path = dir.join("markers.redb");
    let store = FileStore::open(&path).expect("store");
    {
        let now = Utc::now();
        store
            .advance(
                "/topic/Fresh",
                ReplayMarker::new(7, Some(now - chrono::Duration::minutes(5))),
            )
            .await
            .expect("fresh");
        store
            .advance(
                "/topic/Old",
                ReplayMarker::new(3, Some(now - chrono::Duration::hours(old_hours))),
            )
            .await
            .expect("old");
        store
            .put_opaque(
                "/data/AccountChangeEvent",
                &OpaqueMarker::new(vec![0, 0, 0, 0, 0, 0, 0, 9, 0, 0], Some(now)),
            )
            .await
            .expect("opaque");
    }
    drop(store);
    format!("file:{}", path.display())
}

async fn org() -> Emulator {
    Emulator::start(EmulatorConfig::for_tests())
        .await
        .expect("emulator")
}

fn status_of<'a>(report: &'a Value, channel: &str) -> &'a Value {
    report["markers"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["channel"] == channel))
        .map(|m| &m["status"])
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn a_healthy_setup_passes_and_reports_everything() {
    let org = org().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = store(dir.path(), 2).await;
    let (output, report) = doctor(
        cli_password_env(&org.url()),
        &["--replay-store", &uri, "/topic/New", "/topic/Fresh"],
    )
    .await;
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["login"]["ok"], true);
    assert_eq!(report["login"]["flow"], "password");
    assert_eq!(report["org"]["org_id"], org.org().org_id());
    assert!(report["limits"]["DailyStreamingApiEvents"]["max"].as_i64() > Some(0));
    assert_eq!(status_of(&report, "/topic/Fresh"), "ok");
    assert_eq!(status_of(&report, "/topic/Old"), "ok");
    assert_eq!(status_of(&report, "/data/AccountChangeEvent"), "ok");
    let next = report["next_start"].as_array().expect("next");
    assert!(
        next.iter()
            .any(|n| n["channel"] == "/topic/New" && n["action"] == "start" && n["from"] == "NEW")
    );
    assert!(
        next.iter().any(|n| n["channel"] == "/topic/Fresh"
            && n["action"] == "resume"
            && n["after"] == "7")
    );
}

#[tokio::test]
async fn an_expired_marker_fails_without_a_fallback_and_warns_with_one() {
    let org = org().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = store(dir.path(), 30).await;
    let (output, report) = doctor(cli_password_env(&org.url()), &["--replay-store", &uri]).await;
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(status_of(&report, "/topic/Old"), "expired");
    let problems = report["problems"].to_string();
    assert!(problems.contains("/topic/Old"), "{problems}");
    assert!(problems.contains("no fallback"), "{problems}");

    let (output, report) = doctor(
        cli_password_env(&org.url()),
        &["--replay-store", &uri, "--replay-fallback", "ALL"],
    )
    .await;
    assert!(output.status.success(), "{report:#}");
    let fallback = report["next_start"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["channel"] == "/topic/Old"))
        .expect("the old channel");
    assert_eq!(fallback["action"], "fallback");
    assert_eq!(fallback["fallback"], "ALL");
    assert!(fallback["gap_from"].is_string());

    // 20 hours: near the 24 h retention, a warning only.
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = store(dir.path(), 20).await;
    let (output, report) = doctor(cli_password_env(&org.url()), &["--replay-store", &uri]).await;
    assert!(output.status.success(), "{report:#}");
    assert_eq!(status_of(&report, "/topic/Old"), "near_retention");
}

#[tokio::test]
async fn soap_logins_are_told_of_the_retirement_and_bad_logins_fail() {
    let org = org().await;
    let (output, report) = doctor(cli_soap_env(&org.url()), &[]).await;
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["login"]["flow"], "soap");
    assert_eq!(report["login"]["retires"], "2027-06-01");
    assert!(report["warnings"].to_string().contains("JWT bearer"));

    let mut env = cli_password_env(&org.url());
    for (key, value) in &mut env {
        if *key == "SALESFORCE_PASSWORD" {
            *value = "wrong-secret-pw".into();
        }
    }
    let (output, report) = doctor(env, &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(report["login"]["ok"], false);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("wrong-secret-pw"));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("wrong-secret-pw"));
}
