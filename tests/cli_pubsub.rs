//! `sfstream listen --pubsub`, `publish --pubsub` and `replay` of Pub/Sub
//! markers, run as the real binary against an in-process emulator: the
//! line contract shared with CometD, resuming from the stored marker,
//! SIGKILL, and the error exits.

use std::collections::BTreeSet;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sfstream_emulator::schema::FieldType;
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_testkit::emulator::{cli_password_env, create};
use sfstream_testkit::kill9::Victim;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");
const CONTACTS: &str = "/data/ContactChangeEvent";

async fn org() -> Emulator {
    let config = EmulatorConfig::for_tests();
    Emulator::start(config).await.expect("emulator")
}

fn contacts(emulator: &Emulator, from: usize, n: usize) {
    for i in from..from + n {
        create(emulator, "Contact", json!({"LastName": format!("C{i}")}));
    }
}

/// `sfstream ARGS...` logged in to the emulator (OAuth password flow, from
/// the environment).
fn sfstream(emulator: &Emulator, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .envs(cli_password_env(&emulator.url()))
        .env("SALESFORCE_PUBSUB_URL", emulator.pubsub_url())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

fn listen(emulator: &Emulator, args: &[&str]) -> Command {
    let mut all = vec!["listen", "--connection-timeout", "10", "--no-status"];
    all.extend_from_slice(args);
    sfstream(emulator, &all)
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

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The position of a Pub/Sub line's event (the emulator's replay ids are
/// the CometD number, big-endian, then two zero bytes).
fn position(line: &Value) -> u64 {
    let text = line["data"]["event"]["replayId"]
        .as_str()
        .unwrap_or_else(|| panic!("a base64 replay id in {line}"));
    let bytes = sfstream_pubsub::replay_id::from_text(text).expect("base64");
    assert_eq!(bytes.len(), 10, "{text}");
    u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"))
}

#[tokio::test]
async fn pubsub_lines_match_cometd_and_a_restart_resumes_from_the_store() {
    let emulator = org().await;
    contacts(&emulator, 0, 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("file:{}", dir.path().join("m.redb").display());

    let first = run(listen(
        &emulator,
        &[
            "--pubsub",
            "--replay",
            "ALL",
            "--replay-store",
            &store,
            "--max-events",
            "5",
            CONTACTS,
        ],
    ))
    .await;
    assert!(first.status.success(), "{}", stderr(&first));
    let pubsub = lines(&first);
    assert_eq!(pubsub.len(), 5);

    // The same events over CometD: the same channel, schema id, header and
    // values (compound fields nested on Pub/Sub, date-times as epoch ms).
    let cometd = lines(
        &run(listen(
            &emulator,
            &["--replay", "ALL", "--max-events", "5", CONTACTS],
        ))
        .await,
    );
    assert_eq!(cometd.len(), 5);
    for (p, c) in pubsub.iter().zip(&cometd) {
        assert_eq!(p["channel"], c["channel"]);
        assert_eq!(p["data"]["schema"], c["data"]["schema"]);
        assert_eq!(
            position(p),
            c["data"]["event"]["replayId"].as_u64().expect("CometD id")
        );
        let (ph, ch) = (
            &p["data"]["payload"]["ChangeEventHeader"],
            &c["data"]["payload"]["ChangeEventHeader"],
        );
        for key in ["entityName", "recordIds", "changeType", "commitTimestamp"] {
            assert_eq!(ph[key], ch[key], "{key}");
        }
        assert_eq!(
            p["data"]["payload"]["Name"]["LastName"],
            c["data"]["payload"]["LastName"]
        );
    }

    // The marker is stored, and shown as a Pub/Sub marker.
    let shown = run(sfstream(
        &emulator,
        &["replay", "--replay-store", &store, "show", CONTACTS],
    ))
    .await;
    assert!(shown.status.success(), "{}", stderr(&shown));
    let marker = &lines(&shown)[0];
    assert_eq!(marker["transport"], "pubsub");
    assert_eq!(marker["replay_id"], pubsub[4]["data"]["event"]["replayId"]);
    assert!(marker["created"].is_string(), "{marker}");

    // A restart (default --replay NEW) resumes after the stored marker:
    // the three new events, and none of the first five.
    contacts(&emulator, 5, 3);
    let second = run(listen(
        &emulator,
        &[
            "--pubsub",
            "--replay-store",
            &store,
            "--max-events",
            "3",
            CONTACTS,
        ],
    ))
    .await;
    assert!(second.status.success(), "{}", stderr(&second));
    let resumed: Vec<u64> = lines(&second).iter().map(position).collect();
    let before = position(&pubsub[4]);
    assert_eq!(resumed.len(), 3);
    assert!(
        resumed.iter().all(|p| *p > before),
        "{resumed:?} after {before}"
    );

    // `replay set --pubsub` moves it back; `replay reset` removes it.
    let back = pubsub[1]["data"]["event"]["replayId"]
        .as_str()
        .expect("id")
        .to_string();
    let set = run(sfstream(
        &emulator,
        &[
            "replay",
            "--replay-store",
            &store,
            "set",
            "--pubsub",
            CONTACTS,
            &back,
        ],
    ))
    .await;
    assert!(set.status.success(), "{}", stderr(&set));
    let again = run(listen(
        &emulator,
        &[
            "--pubsub",
            "--replay-store",
            &store,
            "--max-events",
            "1",
            CONTACTS,
        ],
    ))
    .await;
    assert_eq!(position(&lines(&again)[0]), position(&pubsub[2]));
    let reset = run(sfstream(
        &emulator,
        &["replay", "--replay-store", &store, "reset", CONTACTS],
    ))
    .await;
    assert!(reset.status.success(), "{}", stderr(&reset));
    let gone = run(sfstream(
        &emulator,
        &["replay", "--replay-store", &store, "show", CONTACTS],
    ))
    .await;
    assert_eq!(gone.status.code(), Some(3), "{}", stderr(&gone));
}

#[tokio::test]
async fn killed_with_sigkill_over_pubsub_it_loses_nothing() {
    let emulator = org().await;
    contacts(&emulator, 0, 1_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("file:{}", dir.path().join("m.redb").display());
    let mut seen = BTreeSet::new();
    let spawn = || {
        let mut command = listen(
            &emulator,
            &[
                "--pubsub",
                "--replay",
                "ALL",
                "--replay-store",
                &store,
                CONTACTS,
            ],
        );
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        Victim::new(child)
    };
    let mut made = 1_000;
    for kill_after in [150usize, 400, 700] {
        let mut victim = spawn();
        let mut read = 0;
        victim
            .read(Duration::from_secs(60), Duration::from_secs(3), |line| {
                seen.insert(position(&serde_json::from_str(line).expect("json")));
                read += 1;
                read < kill_after
            })
            .await;
        for line in victim.kill().await {
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                seen.insert(position(&value));
            }
        }
        contacts(&emulator, made, 50);
        made += 50;
    }
    let mut victim = spawn();
    if seen.len() < made {
        victim
            .read(Duration::from_secs(60), Duration::from_secs(10), |line| {
                seen.insert(position(&serde_json::from_str(line).expect("json")));
                seen.len() < made
            })
            .await;
    }
    victim.kill().await;
    assert_eq!(seen.len(), made, "events lost across SIGKILLs");
}

#[tokio::test]
async fn publish_over_pubsub_is_delivered_on_cometd() {
    let emulator = org().await;
    emulator
        .org()
        .define_platform_event("Printer_Status__e", &[("Model__c", FieldType::String)])
        .expect("event type");
    let published = run(sfstream(
        &emulator,
        &[
            "publish",
            "--pubsub",
            "/event/Printer_Status__e",
            r#"{"Model__c": "XZO-5"}"#,
        ],
    ))
    .await;
    assert!(published.status.success(), "{}", stderr(&published));
    let result = &lines(&published)[0];
    assert_eq!(result["channel"], "/event/Printer_Status__e");
    let cometd = lines(
        &run(listen(
            &emulator,
            &[
                "--replay",
                "ALL",
                "--max-events",
                "1",
                "/event/Printer_Status__e",
            ],
        ))
        .await,
    );
    assert_eq!(cometd[0]["data"]["payload"]["Model__c"], "XZO-5");
    // CreatedDate and CreatedById were filled in for Salesforce.
    assert!(cometd[0]["data"]["payload"]["CreatedById"].is_string());
    let created = cometd[0]["data"]["payload"]["CreatedDate"].clone();
    assert!(!created.is_null(), "{created}");
    assert_eq!(
        position(&json!({"data": {"event": {"replayId": result["replayId"]}}})),
        cometd[0]["data"]["event"]["replayId"].as_u64().expect("id")
    );

    // A field the schema does not have is refused, naming it.
    let refused = run(sfstream(
        &emulator,
        &[
            "publish",
            "--pubsub",
            "/event/Printer_Status__e",
            r#"{"Colour__c": "red"}"#,
        ],
    ))
    .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("Colour__c"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test]
async fn pubsub_errors_exit_non_zero_with_one_clear_line() {
    let emulator = org().await;
    contacts(&emulator, 0, 2);
    // Not a replay id.
    let output = run(listen(
        &emulator,
        &["--pubsub", "--replay", "not-base64!", CONTACTS],
    ))
    .await;
    assert_eq!(output.status.code(), Some(2), "a usage error");
    assert!(stderr(&output).contains("base64"), "{}", stderr(&output));
    // A CometD replay id is no Pub/Sub one.
    let output = run(listen(&emulator, &["--pubsub", "--replay", "12", CONTACTS])).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("base64"), "{}", stderr(&output));
    // An option of --pubsub without it.
    let output = run(listen(
        &emulator,
        &["--pubsub-ca", "/nonexistent", CONTACTS],
    ))
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--pubsub-ca"),
        "{}",
        stderr(&output)
    );
    // An unknown topic.
    let output = run(listen(&emulator, &["--pubsub", "/data/NoSuchChangeEvent"])).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/data/NoSuchChangeEvent"),
        "{}",
        stderr(&output)
    );
    // A stored replay id that is no longer valid, without a fallback: one
    // error naming what to do; with one, it replays (ALL) and goes on.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("file:{}", dir.path().join("m.redb").display());
    let set = run(sfstream(
        &emulator,
        &[
            "replay",
            "--replay-store",
            &store,
            "set",
            "--pubsub",
            CONTACTS,
            "AAAAAAAAJxAAAA==",
        ],
    ))
    .await;
    assert!(set.status.success(), "{}", stderr(&set));
    let output = run(listen(
        &emulator,
        &["--pubsub", "--replay-store", &store, CONTACTS],
    ))
    .await;
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("--replay-fallback"), "{text}");
    let output = run(listen(
        &emulator,
        &[
            "--pubsub",
            "--replay-store",
            &store,
            "--replay-fallback",
            "ALL",
            "--max-events",
            "2",
            CONTACTS,
        ],
    ))
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    // A gap line first (not counted by --max-events), then two events.
    let written = lines(&output);
    assert_eq!(written.len(), 3, "{written:?}");
    let gap = &written[0]["gap"];
    assert_eq!(gap["channel"], CONTACTS, "{written:?}");
    assert_eq!(gap["fallback"], "ALL");
    assert_eq!(gap["expired_replay_id"], "AAAAAAAAJxAAAA==");
    assert!(
        gap["from"].is_null(),
        "a marker set by hand has no time: {gap}"
    );
    assert!(
        gap["to"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{gap}"
    );
    assert!(written[1]["data"]["event"]["replayId"].is_string());
}
