//! The emulator's console in headless Chromium: a Contact created on the
//! page appears in its live event list and in a running `sfstream listen`,
//! whose own status page (`--status-addr`) counts it.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_testkit::browser::{Browser, PHONE};
use sfstream_testkit::emulator::{cli_password_env, push_topic};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");
const TOPIC: &str = "ConsoleContacts";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_created_on_the_console_reaches_the_live_list_and_listen() {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(1);
    let emulator = Emulator::start(config).await.expect("emulator");
    push_topic(
        &emulator,
        TOPIC,
        "SELECT Id, FirstName, LastName, Email FROM Contact",
        62.0,
    );
    let channel = format!("/topic/{TOPIC}");

    let mut listen = Command::new(BIN)
        .args(["listen", "--no-status", "--connection-timeout", "10"])
        .args(["--status-addr", "127.0.0.1:0", &channel])
        .envs(cli_password_env(&emulator.url()))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sfstream listen runs");
    let mut stdout = BufReader::new(listen.stdout.take().expect("stdout")).lines();
    let mut stderr = BufReader::new(listen.stderr.take().expect("stderr")).lines();
    let status_url = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = stderr.next_line().await.expect("stderr") {
            if let Some(url) = line.strip_prefix("status page on ") {
                return url.trim_end_matches('/').to_string();
            }
        }
        panic!("listen ended without a status page");
    })
    .await
    .expect("listen serves its status page within 15 s");
    // Keep draining stderr so listen never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while emulator.org().streaming.subscriber_count(&channel) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "listen subscribed within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let browser = Browser::start().await;
    browser.goto(&emulator.url()).await;
    // The console lists the topic and listen's subscription to it.
    browser
        .wait_for_text("#topics", TOPIC, Duration::from_secs(10))
        .await;
    browser
        .wait_for_text("#clients", &channel, Duration::from_secs(10))
        .await;
    // Contact is the type shown first; its form asks for the last name.
    let last_name = browser
        .find("#field-LastName", Duration::from_secs(10))
        .await;
    last_name.send_keys("Lovelace").await.expect("typing");
    let first_name = browser
        .find("#field-FirstName", Duration::from_secs(5))
        .await;
    first_name.send_keys("Ada").await.expect("typing");
    browser
        .find("#save", Duration::from_secs(5))
        .await
        .click()
        .await
        .expect("clicking Create");
    let live = browser
        .wait_for_text("#events", "Lovelace", Duration::from_secs(10))
        .await;
    assert!(live.contains(&channel), "{live}");
    // The new record is listed with its type.
    browser
        .wait_for_text("#records", "Lovelace", Duration::from_secs(10))
        .await;

    // listen wrote the same event.
    let line = tokio::time::timeout(Duration::from_secs(15), stdout.next_line())
        .await
        .expect("listen wrote a line within 15 s")
        .expect("stdout")
        .expect("a line");
    let line: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(line["channel"], channel.as_str());
    assert_eq!(line["data"]["event"]["type"], "created");
    assert_eq!(line["data"]["sobject"]["LastName"], "Lovelace");

    // And its status page counts it (right after the line is flushed).
    let status = || async {
        reqwest::get(format!("{status_url}/status"))
            .await
            .expect("/status")
            .json::<Value>()
            .await
            .expect("JSON")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        let status = status().await;
        if status["channels"][0]["handled"] == 1 || tokio::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let listed = &status["channels"][0];
    assert_eq!(listed["channel"], channel.as_str());
    assert_eq!(listed["state"], "subscribed");
    assert_eq!(listed["transport"], "cometd");
    assert_eq!(listed["handled"], 1);
    assert!(listed["lag_secs"].as_f64().is_some(), "{status}");

    browser.screenshot("console.png").await;
    browser.resize(PHONE).await;
    let (page, window) = browser.widths().await;
    assert!(
        page <= window,
        "the console scrolls sideways on a phone: {page} > {window}"
    );
    browser.screenshot("console-phone.png").await;

    browser.goto(&format!("{status_url}/")).await;
    browser
        .wait_for_attr(
            &format!(r#".card[data-channel="{channel}"]"#),
            "data-state",
            "subscribed",
            Duration::from_secs(10),
        )
        .await;
    browser.close().await;
    let _ = listen.start_kill();
}
