//! `sfstream listen` recovering what streaming alone would miss, as a
//! binary against the emulator: `--backfill` writes the records changed
//! while the stored marker was stale (marked `backfilled`) after the gap
//! line and before the live events; `--fetch-gap-records` writes a CDC
//! gap event with its records; and a spent allocation gets a warning at
//! start.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::replay::{FileStore, ReplayMarker, ReplayStore};
use sfstream_testkit::emulator::{cli_password_env, create, push_topic};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");

fn listen(org: &Emulator, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("listen")
        .arg("--no-status")
        .args(args)
        .envs(cli_password_env(&org.url()))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn listen_backfills_a_stale_marker_then_streams_on() {
    const TOPIC: &str = "/topic/CliBackfill";
    let org = Emulator::start(EmulatorConfig::for_tests())
        .await
        .expect("emulator");
    push_topic(
        &org,
        "CliBackfill",
        "SELECT Id, LastName FROM Contact",
        62.0,
    );
    let anchor = create(&org, "Contact", json!({"LastName": "Anchor"}));
    let (marker, _) = org.org().streaming.channel_state(TOPIC).expect("events");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("markers.redb");
    {
        let store = FileStore::open(&path).expect("store");
        store
            .advance(TOPIC, ReplayMarker::new(marker, Some(anchor.at)))
            .await
            .expect("seed");
    }
    // Changed while no one listened; then retention passed them.
    let missed: Vec<String> = ["Missed 1", "Missed 2"]
        .iter()
        .map(|name| {
            create(&org, "Contact", json!({"LastName": name})).record["Id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect();
    let (latest, _) = org.org().streaming.channel_state(TOPIC).expect("events");
    org.org().streaming.expire(Some(TOPIC), Some(latest));

    let store = format!("file:{}", path.display());
    let mut child = listen(
        &org,
        &[
            "--replay-store",
            &store,
            "--replay-fallback",
            "NEW",
            "--backfill",
            "--max-events",
            "4",
            TOPIC,
        ],
    )
    .spawn()
    .expect("spawns");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a line in time")
            .expect("reads")
            .expect("a line");
        serde_json::from_str(&line).expect("json line")
    };
    let gap = next().await;
    assert_eq!(gap["gap"]["channel"], TOPIC, "{gap}");
    // The window's records: the marker's own event's and the two missed.
    let mut backfilled = Vec::new();
    for _ in 0..3 {
        let line = next().await;
        assert_eq!(line["channel"], TOPIC, "{line}");
        assert_eq!(line["data"]["backfilled"], true, "{line}");
        backfilled.push(
            line["data"]["sobject"]["Id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    for id in missed
        .iter()
        .chain([anchor.record["Id"].as_str().expect("id").to_string()].iter())
    {
        assert!(backfilled.contains(id), "{id} not in {backfilled:?}");
    }
    let live = create(&org, "Contact", json!({"LastName": "Live"}));
    let line = next().await;
    assert_eq!(line["data"]["sobject"]["Id"], live.record["Id"], "{line}");
    assert!(line["data"].get("backfilled").is_none(), "{line}");
    assert!(
        line["data"]["event"]["replayId"].as_i64().is_some(),
        "{line}"
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after --max-events")
        .expect("status");
    assert!(status.success());
    // The live event's marker was stored; backfilled lines store none.
    let store = FileStore::open(&path).expect("store");
    let stored = store.get(TOPIC).await.expect("get").expect("a marker");
    assert_eq!(
        Some(stored.replay_id),
        line["data"]["event"]["replayId"].as_i64()
    );
}

#[tokio::test]
async fn listen_fetches_gap_records_and_warns_of_spent_limits() {
    let mut config = EmulatorConfig::for_tests();
    config.daily_api_requests = 10;
    let org = Emulator::start(config).await.expect("emulator");
    org.org().streaming.arm_gap_events("Contact", 1, false);
    let id = create(
        &org,
        "Contact",
        json!({"LastName": "Franklin", "FirstName": "Rosalind"}),
    )
    .record["Id"]
        .clone();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        listen(
            &org,
            &[
                "--replay",
                "ALL",
                "--fetch-gap-records",
                "--limits-warn-at",
                "0.1",
                "--max-events",
                "1",
                "/data/ContactChangeEvent",
            ],
        )
        .output(),
    )
    .await
    .expect("finishes")
    .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let line: Value = serde_json::from_slice(&output.stdout).expect("one json line");
    let payload = &line["data"]["payload"];
    assert_eq!(
        payload["ChangeEventHeader"]["changeType"], "GAP_CREATE",
        "{line}"
    );
    assert_eq!(payload["fetched"], true, "{line}");
    assert_eq!(payload["fetchedRecords"][0]["Id"], id);
    assert_eq!(payload["fetchedRecords"][0]["FirstName"], "Rosalind");
    // 10 API requests a day, some used: past 10%, said once at start.
    assert_eq!(stderr.matches("nearly spent").count(), 1, "{stderr}");
    assert!(stderr.contains("DailyApiRequests"), "{stderr}");
}

#[tokio::test]
async fn listen_refuses_backfill_without_a_fallback() {
    let org = Emulator::start(EmulatorConfig::for_tests())
        .await
        .expect("emulator");
    let output = listen(&org, &["--backfill", "/topic/X"])
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--replay-fallback"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
