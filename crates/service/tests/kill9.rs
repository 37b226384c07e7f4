//! A service killed with SIGKILL mid-stream and restarted loses nothing:
//! every event is handled at least once (the file store holds only the
//! watermark of events whose handlers finished).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use sfstream_emulator::Emulator;
use sfstream_service::config::{Config, env_from};
use sfstream_service::{ReplayId, Service, subscribe};
use sfstream_testkit::emulator::{push_topic, service_settings};
use sfstream_testkit::kill9::{Victim, replay_id_in, report_replay_id};

use common::{contacts, emulator, latest};

const TOPIC: &str = "/topic/ContactKill";

/// The service process: prints each replay id once its handler finished.
async fn run_service(url: &str, store: &str) {
    let yaml = format!(
        "max_workers: 4\nSALESFORCE:\n{}  REPLAY_STORE: file:{store}\n  DEFAULT_REPLAY: ALL\n",
        service_settings(url)
    );
    let config = Config::from_yaml_with_env(&yaml, env_from::<&str, &str>([])).expect("config");
    let result = Service::new("kill9")
        .config(config)
        .handler(
            |ReplayId(id): ReplayId| async move {
                // A little work, so the kill lands mid-stream with
                // handlers in flight.
                tokio::time::sleep(Duration::from_millis(2)).await;
                report_replay_id(id.unwrap_or_default()).map_err(|e| e.to_string())
            },
            [subscribe(TOPIC)],
        )
        .run()
        .await;
    if let Err(error) = result {
        eprintln!("service failed: {error}");
        std::process::exit(1);
    }
}

/// An org with the PushTopic `ContactKill`, and a directory for the store.
async fn org() -> (Emulator, tempfile::TempDir) {
    let org = emulator().await;
    push_topic(
        &org,
        "ContactKill",
        "SELECT Id, LastName FROM Contact",
        37.0,
    );
    (org, tempfile::tempdir().expect("tempdir"))
}

/// This test binary as the service process.
fn service(url: &str, store: &std::path::Path) -> Victim {
    Victim::rerun_test(
        "a_service_killed_with_sigkill_loses_nothing_on_restart",
        [
            ("SFSTREAM_SERVICE_CHILD_URL", std::ffi::OsStr::new(url)),
            ("SFSTREAM_SERVICE_CHILD_STORE", store.as_os_str()),
        ],
    )
}

#[tokio::test]
async fn a_service_killed_with_sigkill_loses_nothing_on_restart() {
    if let (Ok(url), Ok(store)) = (
        std::env::var("SFSTREAM_SERVICE_CHILD_URL"),
        std::env::var("SFSTREAM_SERVICE_CHILD_STORE"),
    ) {
        run_service(&url, &store).await;
        return;
    }
    let (org, dir) = org().await;
    let store = dir.path().join("markers.redb");
    contacts(&org, 0, 200);
    let mut seen = BTreeSet::new();
    let mut made = 200;
    for target in [60, 130, 200] {
        service(&org.url(), &store)
            .collect_then_kill(&mut seen, target, Duration::from_secs(30))
            .await;
        contacts(&org, made, 20);
        made += 20;
    }
    service(&org.url(), &store)
        .collect_then_kill(&mut seen, made, Duration::from_secs(30))
        .await;
    assert_eq!(seen.len(), made, "events lost across SIGKILLs");
    assert_eq!(seen.last().copied(), Some(latest(&org, TOPIC)));
}

#[tokio::test]
async fn sigterm_stops_a_running_service_gracefully() {
    if let (Ok(url), Ok(store)) = (
        std::env::var("SFSTREAM_SERVICE_TERM_URL"),
        std::env::var("SFSTREAM_SERVICE_CHILD_STORE"),
    ) {
        run_service(&url, &store).await;
        return;
    }
    let (org, dir) = org().await;
    let store = dir.path().join("markers.redb");
    contacts(&org, 0, 20);
    let mut child = Victim::rerun_test(
        "sigterm_stops_a_running_service_gracefully",
        [
            (
                "SFSTREAM_SERVICE_TERM_URL",
                std::ffi::OsStr::new(&org.url()),
            ),
            ("SFSTREAM_SERVICE_CHILD_STORE", store.as_os_str()),
        ],
    );
    let mut seen = BTreeSet::new();
    child
        .read(Duration::from_secs(60), Duration::from_secs(20), |line| {
            seen.extend(replay_id_in(line));
            seen.len() < 20
        })
        .await;
    assert_eq!(seen.len(), 20);
    let status = child.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    // The markers were committed on the way out: the store is released
    // and holds the last event.
    let stored = sfstream_salesforce::replay::FileStore::open(&store).expect("store released");
    let marker = sfstream_salesforce::replay::ReplayStore::get(&stored, TOPIC)
        .await
        .expect("get");
    assert_eq!(marker.map(|m| m.replay_id), Some(latest(&org, TOPIC)));
}
