//! `sfstream listen` and `sfstream replay`, run as the real binary against
//! an in-process emulator: output lines, markers, restarts, SIGKILL, and
//! every fatal error exit.

use std::collections::BTreeSet;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_testkit::emulator::{CONSUMER_SECRET, cli_password_env, create, push_topic};
use sfstream_testkit::kill9::Victim;
use sfstream_testkit::peers::bayeux_server;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");
const TOPIC: &str = "/topic/ContactChanges";

async fn org() -> Emulator {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(1);
    let emulator = Emulator::start(config).await.expect("emulator");
    push_topic(
        &emulator,
        "ContactChanges",
        "SELECT Id, Name FROM Contact",
        62.0,
    );
    emulator
}

fn contacts(emulator: &Emulator, n: usize) {
    for i in 0..n {
        create(emulator, "Contact", json!({"LastName": format!("C{i}")}));
    }
}

/// `sfstream listen` logging in to the emulator with the OAuth password flow (from the environment).
fn listen(emulator: &Emulator, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("listen")
        .args(["--connection-timeout", "10", "--no-status"])
        .args(args)
        .envs(cli_password_env(&emulator.url()))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn run(mut command: Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("finishes within 60 s")
        .expect("runs")
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn replay_id(line: &Value) -> i64 {
    line["data"]["event"]["replayId"]
        .as_i64()
        .expect("replay id")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn writes_one_json_object_per_event_and_resumes_from_the_file_store() {
    let emulator = org().await;
    contacts(&emulator, 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("file:{}", dir.path().join("m.redb").display());

    let first = run(listen(
        &emulator,
        &[
            "--replay",
            "ALL",
            "--replay-store",
            &store,
            "--max-events",
            "3",
            TOPIC,
        ],
    ))
    .await;
    assert!(first.status.success(), "{}", stderr(&first));
    let events = lines(&first);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["channel"], TOPIC);
    assert_eq!(events[0]["data"]["event"]["type"], "created");
    assert_eq!(events[0]["data"]["sobject"]["Name"], "C0");
    assert_eq!(
        events[0].as_object().map(|o| o.len()),
        Some(2),
        "exactly channel and data"
    );

    let second = run(listen(
        &emulator,
        &[
            "--replay",
            "ALL",
            "--replay-store",
            &store,
            "--max-events",
            "2",
            TOPIC,
        ],
    ))
    .await;
    assert!(second.status.success(), "{}", stderr(&second));
    let more = lines(&second);
    assert_eq!(
        more[0]["data"]["sobject"]["Name"], "C3",
        "resumed after the stored marker"
    );
    assert_eq!(more[1]["data"]["sobject"]["Name"], "C4");

    let shown = run({
        let mut c = Command::new(BIN);
        c.args(["replay", "show", "--replay-store", &store]);
        c
    })
    .await;
    assert!(shown.status.success());
    let markers = lines(&shown);
    let age = markers[0]["age_seconds"].as_u64().expect("an age");
    assert!(age < 120, "{markers:?}");
    assert_eq!(
        markers,
        vec![
            json!({"channel": TOPIC, "replay_id": replay_id(&more[1]), "created": markers[0]["created"],
                   "age_seconds": age, "retention_seconds": 24 * 3600})
        ]
    );
    // Markers past the warn age and past retention say so.
    {
        use sfstream_salesforce::replay::{FileStore, ReplayMarker, ReplayStore};
        let path = store.trim_start_matches("file:");
        let file = FileStore::open(path).expect("open the store");
        let hours_ago = |h: i64| Some(chrono::Utc::now() - chrono::Duration::hours(h));
        file.replace("/topic/Old", ReplayMarker::new(1, hours_ago(30)))
            .await
            .expect("replace");
        file.replace("/topic/Older", ReplayMarker::new(1, hours_ago(20)))
            .await
            .expect("replace");
        file.replace(
            "/data/AccountChangeEvent",
            ReplayMarker::new(1, hours_ago(30)),
        )
        .await
        .expect("replace");
    }
    let shown = run({
        let mut c = Command::new(BIN);
        c.args(["replay", "show", "--replay-store", &store]);
        c
    })
    .await;
    let by_channel: std::collections::HashMap<String, Value> = lines(&shown)
        .into_iter()
        .map(|l| (l["channel"].as_str().unwrap_or_default().to_string(), l))
        .collect();
    let old = &by_channel["/topic/Old"];
    assert_eq!(old["expired"], true, "{old}");
    assert!(
        old["age_seconds"]
            .as_u64()
            .is_some_and(|a| a >= 30 * 3600 - 60),
        "{old}"
    );
    assert_eq!(by_channel["/topic/Older"]["expiring"], true);
    assert!(by_channel["/topic/Older"].get("expired").is_none());
    let cdc = &by_channel["/data/AccountChangeEvent"];
    assert_eq!(cdc["retention_seconds"], 72 * 3600);
    assert!(
        cdc.get("expired").is_none() && cdc.get("expiring").is_none(),
        "{cdc}"
    );

    let set = run({
        let mut c = Command::new(BIN);
        c.args([
            "replay",
            "set",
            "--replay-store",
            &store,
            TOPIC,
            &replay_id(&events[0]).to_string(),
        ]);
        c
    })
    .await;
    assert!(set.status.success());
    let again = run(listen(
        &emulator,
        &["--replay-store", &store, "--max-events", "1", TOPIC],
    ))
    .await;
    assert_eq!(
        lines(&again)[0]["data"]["sobject"]["Name"],
        "C1",
        "set moved the marker back"
    );

    let reset = run({
        let mut c = Command::new(BIN);
        c.args(["replay", "reset", "--replay-store", &store, TOPIC]);
        c
    })
    .await;
    assert!(reset.status.success());
    let missing = run({
        let mut c = Command::new(BIN);
        c.args(["replay", "show", "--replay-store", &store, TOPIC]);
        c
    })
    .await;
    assert_eq!(missing.status.code(), Some(3));
}

#[tokio::test]
async fn killed_with_sigkill_and_restarted_it_loses_nothing() {
    let emulator = org().await;
    contacts(&emulator, 2_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("file:{}", dir.path().join("m.redb").display());
    let mut seen = BTreeSet::new();
    let spawn = || {
        let mut command = listen(
            &emulator,
            &["--replay", "ALL", "--replay-store", &store, TOPIC],
        );
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        Victim::new(child)
    };
    for kill_after in [300usize, 700, 1_200] {
        let mut victim = spawn();
        let mut read = 0;
        // Kill it mid-stream (or once it has caught up and gone quiet).
        victim
            .read(Duration::from_secs(60), Duration::from_secs(3), |line| {
                seen.insert(replay_id(&serde_json::from_str(line).expect("json")));
                read += 1;
                read < kill_after
            })
            .await;
        // Lines it wrote before dying count as delivered.
        for line in victim.kill().await {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                seen.insert(replay_id(&value));
            }
        }
        contacts(&emulator, 100);
    }
    let total = 2_000 + 3 * 100;
    // A last run catches up with everything not yet written.
    let mut victim = spawn();
    if seen.len() < total {
        victim
            .read(Duration::from_secs(120), Duration::from_secs(10), |line| {
                seen.insert(replay_id(&serde_json::from_str(line).expect("json")));
                seen.len() < total
            })
            .await;
    }
    victim.kill().await;
    assert_eq!(seen.len(), total, "events lost across SIGKILLs");
}

#[tokio::test]
async fn fatal_errors_exit_non_zero_with_one_line_and_no_secret() {
    let emulator = org().await;

    let mut bad = listen(&emulator, &[TOPIC]);
    bad.env("SALESFORCE_PASSWORD", "not-the-password-123");
    let output = run(bad).await;
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.starts_with("error: login failed") && text.contains("authentication failure"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        !text.contains("not-the-password-123") && !text.contains(CONSUMER_SECRET),
        "{text}"
    );

    let output = run(listen(&emulator, &["/topic/Nope"])).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("does not exist {/topic/Nope}"),
        "{}",
        stderr(&output)
    );

    // An expired stored replay id: a clear exit without fallback, events with it.
    contacts(&emulator, 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("file:{}", dir.path().join("m.redb").display());
    let first = run(listen(
        &emulator,
        &[
            "--replay",
            "ALL",
            "--replay-store",
            &store,
            "--max-events",
            "1",
            TOPIC,
        ],
    ))
    .await;
    assert!(first.status.success(), "{}", stderr(&first));
    let latest = emulator
        .org()
        .streaming
        .channel_state(TOPIC)
        .map(|(l, _)| l)
        .expect("channel");
    emulator
        .org()
        .streaming
        .expire(Some(TOPIC), Some(latest - 1));
    let output = run(listen(&emulator, &["--replay-store", &store, TOPIC])).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("outside the retention window")
            && stderr(&output).contains("--replay-fallback")
    );
    let output = run(listen(
        &emulator,
        &[
            "--replay-store",
            &store,
            "--replay-fallback",
            "ALL",
            "--max-events",
            "1",
            TOPIC,
        ],
    ))
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    // Never silent: a gap line first, in order, then the event (the gap is
    // not counted by --max-events).
    let written = lines(&output);
    assert_eq!(written.len(), 2, "{written:?}");
    let gap = &written[0]["gap"];
    assert_eq!(gap["channel"], TOPIC, "{written:?}");
    assert_eq!(gap["fallback"], "ALL");
    assert!(
        gap["expired_replay_id"]
            .as_i64()
            .is_some_and(|id| id < latest),
        "{gap}"
    );
    assert!(
        gap["from"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{gap}"
    );
    assert!(
        gap["to"]
            .as_str()
            .is_some_and(|t| t > gap["from"].as_str().unwrap_or("")),
        "{gap}"
    );
    assert_eq!(replay_id(&written[1]), latest);

    let mut unreachable = Command::new(BIN);
    unreachable
        .args([
            "listen",
            "--login-url",
            "http://127.0.0.1:1",
            "--username",
            "u",
            "--password",
            "p",
            TOPIC,
        ])
        .env("RUST_LOG", "off");
    let output = run(unreachable).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot reach the login server"),
        "{}",
        stderr(&output)
    );

    let mut insecure = Command::new(BIN);
    insecure.args([
        "listen",
        "--login-url",
        "http://example.com",
        "--username",
        "u",
        "--password",
        "p",
        TOPIC,
    ]);
    let output = run(insecure).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("plain http://"),
        "{}",
        stderr(&output)
    );

    let mut no_login = Command::new(BIN);
    no_login
        .args(["listen", TOPIC])
        .env_remove("SALESFORCE_USERNAME");
    let output = run(no_login).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no login given"),
        "{}",
        stderr(&output)
    );

    let mut usage = Command::new(BIN);
    usage.args(["listen", "--replay", "sometimes", TOPIC]);
    assert_eq!(run(usage).await.status.code(), Some(2));
}

/// Starts Faye (npm) with the project's peer script on `port` (0: free);
/// returns the process and its Bayeux URL.
async fn faye(port: u16) -> (tokio::process::Child, String) {
    bayeux_server("faye_server.js", "faye", port, &[]).await
}

async fn faye_publish(url: &str, channel: &str, start: u64, n: u64) {
    let base = url.trim_end_matches("/bayeux");
    let response = reqwest::get(format!(
        "{base}/publish?channel={channel}&n={n}&start={start}"
    ))
    .await
    .expect("publish");
    assert!(response.status().is_success());
}

/// Issue 12.1: `listen` against Faye survives a kill -9 and restart of
/// the server on the same port (Faye then answers `401:<id>:Unknown
/// client` with advice `handshake`, which is not an authentication error).
#[tokio::test]
async fn listen_survives_a_faye_restart() {
    let (mut server, url) = faye(0).await;
    let port: u16 = url
        .split(':')
        .nth(2)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut child = Command::new(BIN)
        .args(["listen", "--cometd-url", &url, "--no-status", "/chat/room"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("listen runs");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // Publish until listen has subscribed and prints the first one.
    let first = tokio::time::timeout(Duration::from_secs(20), async {
        let mut n = 0;
        loop {
            faye_publish(&url, "/chat/room", n, 1).await;
            n += 1;
            if let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_millis(300), out.next_line()).await
            {
                return line;
            }
        }
    })
    .await
    .expect("listen prints an event");
    assert!(first.contains("/chat/room"), "{first}");
    while let Ok(Ok(Some(_))) =
        tokio::time::timeout(Duration::from_millis(300), out.next_line()).await
    {}

    server.kill().await.expect("kill -9");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_server, again) = faye(port).await;
    assert_eq!(again, url);
    // After the restart: listen handshakes and resubscribes, then prints.
    let line = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            faye_publish(&url, "/chat/room", 1000, 1).await;
            match tokio::time::timeout(Duration::from_millis(300), out.next_line()).await {
                Ok(Ok(Some(line))) => return Some(line),
                Ok(_) => return None,
                Err(_) => {}
            }
        }
    })
    .await
    .expect("an event within 20 s of the restart");
    let line = line.unwrap_or_else(|| panic!("listen ended after the restart"));
    let value: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(value["data"]["n"], 1000, "{line}");
    assert!(
        child.try_wait().expect("wait").is_none(),
        "listen is still running"
    );
}
