//! The Quick Start against the real Python Nameko 2.14.1 on RabbitMQ and
//! the in-process emulator: `examples/quickstart.rs` serving RPC and
//! proxying Salesforce notifications to Nameko events, and
//! `sfstream run --config` proxying without code. Each test has a RabbitMQ
//! virtual host of its own.

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_nameko::{Connection, EventHandler, HandlerError};
use sfstream_service::config::Config;
use sfstream_testkit::emulator::{create, service_settings};
use sfstream_testkit::peers::python;
use sfstream_testkit::rabbitmq::Vhost;
use sfstream_testkit::unique;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");

async fn emulator() -> Emulator {
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(1);
    Emulator::start(config).await.expect("emulator")
}

fn yaml(vhost: &Vhost, emulator: &Emulator, extra: &str) -> String {
    format!(
        "AMQP_URI: '{}'\nSHUTDOWN_TIMEOUT: 5\n{extra}\nSALESFORCE:\n{}",
        vhost.pyamqp_uri(),
        service_settings(&emulator.url())
    )
}

/// What a `sfstream run` test starts from: its own virtual host, the
/// emulator, a unique service name and the config file (`PROXY:` lines
/// `proxy`; `SALESFORCE:` last, so that lines appended go under it).
struct Proxy {
    vhost: Vhost,
    org: Emulator,
    service: String,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

async fn proxy(prefix: &str, proxy: &str) -> Proxy {
    let vhost = Vhost::create();
    let org = emulator().await;
    let service = unique(prefix);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    let extra = format!("SERVICE_NAME: {service}\nPROXY:\n{proxy}");
    std::fs::write(&path, yaml(&vhost, &org, &extra)).expect("write config");
    Proxy {
        vhost,
        org,
        service,
        path,
        _dir: dir,
    }
}

/// JSON lines of a child's stdout.
fn json_lines(stdout: tokio::process::ChildStdout) -> mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    rx
}

async fn next(lines: &mut mpsc::UnboundedReceiver<Value>, secs: u64) -> Value {
    tokio::time::timeout(Duration::from_secs(secs), lines.recv())
        .await
        .expect("the python peer printed in time")
        .expect("the python peer is running")
}

#[tokio::test]
async fn python_calls_the_rust_quickstart_and_receives_its_events() {
    let vhost = Vhost::create();
    let org = emulator().await;
    // One config file, unchanged, for the Rust service and the Python side
    // (which reads it as `nameko run --config` does).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml(&vhost, &org, "")).expect("write config");
    let config = Config::load(&path).expect("config");
    let running = quickstart::quickstart_service(config)
        .start()
        .await
        .expect("the quickstart service starts");

    let listener = unique("quickstart-listener");
    let spec = json!({"config": path, "name": listener, "lifetime": 90});
    let mut child = Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/quickstart_peer.py"))
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python");
    let mut lines = json_lines(child.stdout.take().expect("stdout"));
    assert_eq!(next(&mut lines, 30).await, json!({"ready": true}));

    let mut calls = None;
    let mut events = Vec::new();
    while calls.is_none() || events.len() < 2 {
        let line = next(&mut lines, 60).await;
        if let Some(c) = line.get("calls") {
            calls = Some(c.clone());
        } else if let Some(e) = line.get("event") {
            events.push(e.clone());
        }
    }
    let calls = calls.expect("calls");
    let id = calls[0]["ok"]
        .as_str()
        .expect("create_contact returns the id");
    assert!(id.starts_with("003"), "a Contact id: {id}");
    let kw_id = calls[1]["ok"].as_str().expect("keyword arguments bind");
    assert_ne!(id, kw_id);
    assert_eq!(calls[2]["error"]["class"], "MethodNotFound", "{calls}");
    assert_eq!(calls[2]["error"]["module"], "nameko.exceptions");
    assert_eq!(calls[3]["error"]["class"], "IncorrectSignature", "{calls}");
    assert!(
        calls[3]["error"]["str"]
            .as_str()
            .is_some_and(|s| s.contains("email_address")),
        "{calls}"
    );

    let mut ids: Vec<&str> = events.iter().filter_map(|e| e["Id"].as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![id, kw_id];
    want.sort_unstable();
    assert_eq!(ids, want, "{events:?}");
    let yo = events.iter().find(|e| e["Id"] == id).expect("event of Yo");
    assert_eq!(yo["Name"], "Yo", "{yo}");

    drop(child);
    running.stop().await.expect("stops gracefully");
}

/// Nameko event handlers for `event_types` of `service`; what they receive
/// comes out of the receiver as (event type, payload).
async fn listen_for(
    connection: &Connection,
    service: &str,
    event_types: [&'static str; 2],
) -> (
    mpsc::UnboundedReceiver<(String, Value)>,
    Vec<sfstream_nameko::ConsumerHandle>,
) {
    let (tx, rx) = mpsc::unbounded_channel::<(String, Value)>();
    let mut handles = Vec::new();
    for event_type in event_types {
        let tx = tx.clone();
        let handle = EventHandler::new(unique("proxy-test"), "on_event", service, event_type)
            .reliable_delivery(false)
            .start(connection, move |_ctx, payload| {
                let _ = tx.send((event_type.to_string(), payload));
                async { Ok::<(), HandlerError>(()) }
            })
            .await
            .expect("event handler");
        handles.push(handle);
    }
    (rx, handles)
}

/// Starts `sfstream run --config PATH` and waits until its service runs.
async fn start_run(path: &std::path::Path) -> tokio::process::Child {
    let mut child = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sfstream run");
    let stderr = child.stderr.take().expect("stderr");
    let (log_tx, mut log_rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("sfstream run: {line}");
            let _ = log_tx.send(line);
        }
    });
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = log_rx.recv().await {
            if line.contains("service started") {
                return;
            }
        }
        panic!("sfstream run exited before starting");
    })
    .await
    .expect("sfstream run starts");
    child
}

#[tokio::test]
async fn sfstream_run_proxies_salesforce_notifications_to_nameko_events() {
    let Proxy {
        vhost,
        org,
        service,
        path,
        _dir,
    } = proxy(
        "proxy",
        "  - sobject: Contact\n    exclude_current_user: false\n  - sobject: Lead\n    exclude_current_user: false\n    event: 'crm_{sobject}_{type}'\n",
    )
    .await;

    let connection = Connection::connect(&vhost.pyamqp_uri())
        .await
        .expect("RabbitMQ");
    let (mut rx, handles) = listen_for(
        &connection,
        &service,
        ["salesforce_contact_created", "crm_lead_created"],
    )
    .await;

    let mut child = start_run(&path).await;

    let contact = create(&org, "Contact", json!({"LastName": "Proxied"}));
    let lead = create(&org, "Lead", json!({"LastName": "Lead", "Company": "Acme"}));
    let mut got = Vec::new();
    while got.len() < 2 {
        let item = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("events proxied in time")
            .expect("handlers running");
        got.push(item);
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got[0].0, "crm_lead_created");
    assert_eq!(got[0].1["Id"], lead.record["Id"]);
    assert_eq!(got[1].0, "salesforce_contact_created");
    assert_eq!(got[1].1["Id"], contact.record["Id"]);
    assert_eq!(got[1].1["Name"], "Proxied");

    // SIGTERM: a graceful stop, exit status 0.
    #[cfg(unix)]
    {
        let pid = child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("stops in time")
            .expect("exit status");
        assert!(exit.success(), "{exit:?}");
    }
    for handle in handles {
        handle.shutdown(Duration::from_secs(5)).await;
    }
    connection.close().await;
}

/// The same proxy over the Pub/Sub API: `TRANSPORT: pubsub` in the config
/// file, nothing else changed; a change event entry and a PushTopic entry
/// (which stays on CometD) side by side.
#[tokio::test]
async fn sfstream_run_proxies_over_the_pubsub_api_with_one_config_key() {
    // The emulator's Pub/Sub address is known once it runs: appended
    // under SALESFORCE: with the one key that switches the transport.
    let Proxy {
        vhost,
        org,
        service,
        path,
        _dir,
    } = proxy(
        "proxy",
        "  - change_events: Account\n  - sobject: Lead\n    exclude_current_user: false\n",
    )
    .await;
    let config = std::fs::read_to_string(&path).expect("config");
    let config = format!(
        "{config}  TRANSPORT: pubsub\n  PUBSUB_URL: {}\n",
        org.pubsub_url()
    );
    std::fs::write(&path, config).expect("write config");

    let connection = Connection::connect(&vhost.pyamqp_uri())
        .await
        .expect("RabbitMQ");
    let (mut rx, handles) = listen_for(
        &connection,
        &service,
        ["salesforce_account_create", "salesforce_lead_created"],
    )
    .await;
    let _child = start_run(&path).await;

    let account = create(&org, "Account", json!({"Name": "Proxied over gRPC"}));
    let lead = create(&org, "Lead", json!({"LastName": "Lead", "Company": "Acme"}));
    let mut got = Vec::new();
    while got.len() < 2 {
        let item = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("events proxied in time")
            .expect("handlers running");
        got.push(item);
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got[0].0, "salesforce_account_create");
    // The change event's payload, decoded from Avro: header and fields.
    let header = &got[0].1["ChangeEventHeader"];
    assert_eq!(header["recordIds"], json!([account.record["Id"]]));
    assert_eq!(header["entityName"], "Account");
    assert_eq!(got[0].1["Name"], "Proxied over gRPC");
    assert_eq!(got[1].0, "salesforce_lead_created");
    assert_eq!(got[1].1["Id"], lead.record["Id"]);
    for handle in handles {
        handle.shutdown(Duration::from_secs(5)).await;
    }
    connection.close().await;
}

/// docs/python.md's path for a nameko-salesforce service: `sfstream run`
/// streams Salesforce and dispatches Nameko events; the real Python Nameko
/// service keeps only plain `@event_handler`s
/// (tests/peers/nameko_handlers_peer.py).
#[tokio::test]
async fn sfstream_run_dispatches_to_a_python_service_with_plain_event_handlers() {
    // Kept to the end: dropping the Vhost deletes it.
    let Proxy {
        vhost: _vhost,
        org,
        service,
        path,
        _dir,
    } = proxy(
        "salesforce",
        "  - sobject: Contact\n    exclude_current_user: false\n",
    )
    .await;

    let spec = json!({"config": path, "source": service, "lifetime": 90});
    let mut python_service = Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/nameko_handlers_peer.py"))
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python");
    let mut lines = json_lines(python_service.stdout.take().expect("stdout"));
    assert_eq!(next(&mut lines, 30).await, json!({"ready": true}));
    let _run = start_run(&path).await;

    let contact = create(&org, "Contact", json!({"LastName": "Handled"}));
    let line = next(&mut lines, 60).await;
    assert_eq!(line["event"], "salesforce_contact_created", "{line}");
    assert_eq!(line["payload"]["Id"], contact.record["Id"]);
    assert_eq!(line["payload"]["Name"], "Handled");
}
