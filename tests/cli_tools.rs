//! `sfstream demo`, `topics`, `query` and `publish`, run as the real binary
//! against an in-process emulator, including their error exits.

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_testkit::emulator::{CONSUMER_KEY, CONSUMER_SECRET, cli_soap_env, create};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");

async fn org() -> Emulator {
    Emulator::start(EmulatorConfig::for_tests())
        .await
        .expect("emulator")
}

/// `sfstream <args>` logged in to the emulator with SOAP (username, password, token from the environment).
fn sfstream(emulator: &Emulator, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .envs(cli_soap_env(&emulator.url()))
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

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn demo_runs_end_to_end_with_no_setup() {
    let output = run({
        let mut c = Command::new(BIN);
        c.arg("demo");
        c
    })
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let kinds: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "created", "created", "created", "updated", "deleted", "created", "updated"
        ],
        "{stdout}"
    );
    assert!(stdout.contains("Grace Hopper"));
    assert!(
        stderr(&output).contains("nothing lost, nothing repeated"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn topics_declare_list_update_and_delete() {
    let emulator = org().await;
    let declare = |query: &str| {
        sfstream(
            &emulator,
            &[
                "topics",
                "declare",
                "ContactNames",
                query,
                "--notify-for-fields",
                "Select",
            ],
        )
    };
    let created = run(declare("SELECT Id, FirstName, LastName FROM Contact")).await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(
        json_lines(&created),
        vec![json!({"channel": "/topic/ContactNames", "outcome": "created"})]
    );
    let same = run(declare("SELECT Id, FirstName, LastName FROM Contact")).await;
    assert_eq!(json_lines(&same)[0]["outcome"], "unchanged");
    let changed = run(declare("SELECT Id, LastName FROM Contact")).await;
    assert_eq!(json_lines(&changed)[0]["outcome"], "updated");

    let sobject = run(sfstream(
        &emulator,
        &[
            "topics",
            "declare-sobject",
            "Contact",
            "--record-type",
            "Student",
            "--exclude-current-user",
        ],
    ))
    .await;
    assert!(sobject.status.success(), "{}", stderr(&sobject));
    let declared = &json_lines(&sobject)[0];
    assert_eq!(declared["channel"], "/topic/ContactStudent");
    let query = declared["query"].as_str().expect("query");
    assert!(
        query.contains("RecordTypeId = '012") && query.contains("LastModifiedById != '005"),
        "{query}"
    );
    let task = run(sfstream(&emulator, &["topics", "declare-sobject", "Task"])).await;
    assert!(task.status.success(), "{}", stderr(&task));
    assert!(
        !json_lines(&task)[0]["query"]
            .as_str()
            .unwrap_or("")
            .contains("Name"),
        "Task has no Name field"
    );

    let list = run(sfstream(&emulator, &["topics", "list"])).await;
    let names: Vec<String> = json_lines(&list)
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"ContactNames".to_string()));

    let deleted = run(sfstream(&emulator, &["topics", "delete", "ContactNames"])).await;
    assert!(deleted.status.success());
    let again = run(sfstream(&emulator, &["topics", "delete", "ContactNames"])).await;
    assert_eq!(again.status.code(), Some(3));

    let too_long = run(sfstream(
        &emulator,
        &[
            "topics",
            "declare",
            "ThisTopicNameIsFarTooLong1",
            "SELECT Id FROM Contact",
        ],
    ))
    .await;
    assert_eq!(too_long.status.code(), Some(1));
    assert!(stderr(&too_long).contains("25"), "{}", stderr(&too_long));
    let no_id = run(sfstream(
        &emulator,
        &["topics", "declare", "NoId", "SELECT Name FROM Contact"],
    ))
    .await;
    assert_eq!(no_id.status.code(), Some(1));
    let bad_mode = run(sfstream(
        &emulator,
        &[
            "topics",
            "declare",
            "X",
            "SELECT Id FROM Contact",
            "--notify-for-fields",
            "Some",
        ],
    ))
    .await;
    assert_eq!(bad_mode.status.code(), Some(2));
}

#[tokio::test]
async fn query_follows_pages_and_publish_reaches_channels() {
    let mut config = EmulatorConfig::for_tests();
    config.query_batch_size = 2;
    let emulator = Emulator::start(config).await.expect("emulator");
    for i in 0..5 {
        create(
            &emulator,
            "Lead",
            json!({"LastName": format!("Q{i}"), "Company": "Acme"}),
        );
    }
    let output = run(sfstream(
        &emulator,
        &["query", "SELECT Id, LastName FROM Lead ORDER BY LastName"],
    ))
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let names: Vec<Value> = json_lines(&output)
        .iter()
        .map(|r| r["LastName"].clone())
        .collect();
    assert_eq!(
        names,
        vec![
            json!("Q0"),
            json!("Q1"),
            json!("Q2"),
            json!("Q3"),
            json!("Q4")
        ]
    );

    let bad = run(sfstream(&emulator, &["query", "SELECT Id, Nope FROM Lead"])).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("INVALID_FIELD"), "{}", stderr(&bad));

    let output = run(sfstream(
        &emulator,
        &[
            "publish",
            "/event/Printer_Status__e",
            r#"{"Printer_Model__c": "XZO-5"}"#,
        ],
    ))
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        json_lines(&output)[0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("e00"))
    );
    assert_eq!(
        emulator
            .org()
            .streaming
            .channel_state("/event/Printer_Status__e")
            .map(|(_, n)| n),
        Some(1)
    );

    create(
        &emulator,
        "StreamingChannel",
        json!({"Name": "/u/notifications"}),
    );
    let output = run(sfstream(
        &emulator,
        &["publish", "/u/notifications", "The build is green"],
    ))
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        emulator
            .org()
            .streaming
            .channel_state("/u/notifications")
            .map(|(_, n)| n),
        Some(1)
    );

    let not_json = run(sfstream(
        &emulator,
        &["publish", "/event/Printer_Status__e", "hello"],
    ))
    .await;
    assert_eq!(not_json.status.code(), Some(1));
    let nowhere = run(sfstream(&emulator, &["publish", "/topic/X", "{}"])).await;
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(
        stderr(&nowhere).contains("neither a platform event channel"),
        "{}",
        stderr(&nowhere)
    );
}

#[tokio::test]
async fn emulator_prints_its_url_first_and_serves_until_stopped() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = Command::new(BIN)
        .args([
            "emulator",
            "--bind",
            "127.0.0.1:0",
            "--username",
            "me@example.com",
        ])
        .env("SALESFORCE_PASSWORD", "s3cret-pass")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("starts")
        .expect("read")
        .expect("a line");
    let url = first
        .strip_prefix("listening on ")
        .expect("first line names the URL");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let second = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("second line")
        .expect("read")
        .expect("a line");
    let pubsub = second
        .strip_prefix("pubsub on http://")
        .expect("second line names the Pub/Sub endpoint");
    tokio::net::TcpStream::connect(pubsub)
        .await
        .expect("Pub/Sub listens");
    let response = reqwest::Client::new()
        .post(format!("{url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", CONSUMER_KEY),
            ("client_secret", CONSUMER_SECRET),
            ("username", "me@example.com"),
            ("password", "s3cret-passtoken"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(
        response.status(),
        200,
        "credentials from the flags and environment are used"
    );
    child.start_kill().expect("stop");
    let _ = child.wait().await;

    // A port already in use: a clear one-line error, not a panic.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = busy.local_addr().expect("address").to_string();
    let taken = run({
        let mut c = Command::new(BIN);
        c.args(["emulator", "--bind", &address]);
        c
    })
    .await;
    assert_eq!(taken.status.code(), Some(1));
    assert!(
        stderr(&taken).contains("cannot listen on"),
        "{}",
        stderr(&taken)
    );
}

/// Issue 13.12: logs written to a file or a pipe carry no ANSI escape codes.
#[tokio::test]
async fn logs_to_a_pipe_have_no_colour_codes() {
    let output = run({
        let mut command = Command::new(env!("CARGO_BIN_EXE_sfstream"));
        command
            .args([
                "listen",
                "--cometd-url",
                "http://127.0.0.1:9/bayeux",
                "--connection-timeout",
                "1",
                "/chat/x",
            ])
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdin(std::process::Stdio::null());
        command
    })
    .await;
    let text = stderr(&output);
    assert!(!output.status.success());
    assert!(text.contains("WARN") || text.contains("ERROR"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape codes in {text:?}");
}
