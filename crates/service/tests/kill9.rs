//! A service killed with SIGKILL mid-stream and restarted loses nothing:
//! every event is handled at least once (the file store holds only the
//! watermark of events whose handlers finished).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use sfstream_service::config::{Config, env_from};
use sfstream_service::{ReplayId, Service, subscribe};

use common::{contacts, emulator, latest};

const TOPIC: &str = "/topic/ContactKill";

/// The service process: prints each replay id once its handler finished.
async fn run_service(url: &str, store: &str) {
    let yaml = format!(
        "max_workers: 4\nSALESFORCE:\n  USERNAME: emulator@example.com\n  PASSWORD: password\n  SECURITY_TOKEN: token\n  SANDBOX: False\n  LOGIN_URL: {url}\n  REPLAY_STORE: file:{store}\n  DEFAULT_REPLAY: ALL\n"
    );
    let config = Config::from_yaml_with_env(&yaml, env_from::<&str, &str>([])).expect("config");
    let result = Service::new("kill9")
        .config(config)
        .handler(
            |ReplayId(id): ReplayId| async move {
                use std::io::Write;
                // A little work, so the kill lands mid-stream with
                // handlers in flight.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let mut out = std::io::stdout().lock();
                writeln!(out, "replay:{}", id.unwrap_or_default()).map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())
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

fn spawn_service(url: &str, store: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "a_service_killed_with_sigkill_loses_nothing_on_restart",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SFSTREAM_SERVICE_CHILD_URL", url)
        .env("SFSTREAM_SERVICE_CHILD_STORE", store)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("child")
}

fn replay_id_in(line: &str) -> Option<i64> {
    line.rsplit_once("replay:")
        .and_then(|(_, id)| id.trim().parse().ok())
}

/// Reads handled replay ids until `seen` holds `target` or 30 s pass, then SIGKILLs.
async fn read_then_kill(mut child: tokio::process::Child, seen: &mut BTreeSet<i64>, target: usize) {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < target {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => seen.extend(replay_id_in(&line)),
            _ => break,
        }
    }
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
    {
        seen.extend(replay_id_in(&line));
    }
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
    let org = emulator().await;
    let topic = json!({"Name": "ContactKill", "Query": "SELECT Id, LastName FROM Contact", "ApiVersion": 37.0});
    org.org()
        .create_record(
            "PushTopic",
            topic.as_object().cloned().unwrap_or_default(),
            &org.org().user_id(),
        )
        .expect("topic");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("markers.redb");
    contacts(&org, 0, 200);
    let mut seen = BTreeSet::new();
    let mut made = 200;
    for target in [60, 130, 200] {
        read_then_kill(spawn_service(&org.url(), &store), &mut seen, target).await;
        contacts(&org, made, 20);
        made += 20;
    }
    read_then_kill(spawn_service(&org.url(), &store), &mut seen, made).await;
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
    let org = emulator().await;
    let topic = json!({"Name": "ContactKill", "Query": "SELECT Id, LastName FROM Contact", "ApiVersion": 37.0});
    org.org()
        .create_record(
            "PushTopic",
            topic.as_object().cloned().unwrap_or_default(),
            &org.org().user_id(),
        )
        .expect("topic");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("markers.redb");
    contacts(&org, 0, 20);
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "sigterm_stops_a_running_service_gracefully",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SFSTREAM_SERVICE_TERM_URL", org.url())
        .env("SFSTREAM_SERVICE_CHILD_STORE", &store)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("child");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut seen = BTreeSet::new();
    while seen.len() < 20 {
        match tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await {
            Ok(Ok(Some(line))) => seen.extend(replay_id_in(&line)),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 20);
    let pid = child.id().expect("pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("status");
    assert!(status.success(), "{status:?}");
    // The markers were committed on the way out: the store is released
    // and holds the last event.
    let stored = sfstream_salesforce::replay::FileStore::open(&store).expect("store released");
    let marker = sfstream_salesforce::replay::ReplayStore::get(&stored, TOPIC)
        .await
        .expect("get");
    assert_eq!(marker.map(|m| m.replay_id), Some(latest(&org, TOPIC)));
}
