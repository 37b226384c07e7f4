//! One Nameko config file, unchanged, for every process: Python
//! `nameko run --config`, a Python `ClusterRpcProxy` caller, the Rust
//! service runtime, `sfstream run --config` and `sfstream rpc --config`,
//! with the `AMQP_URI` form Nameko users write
//! (`pyamqp://guest:guest@127.0.0.1:5672/`: a trailing slash, which kombu
//! reads as the default virtual host `/`; names are unique per run, so the
//! test shares that vhost safely).
//!
//! A Python `@event_handler` reports the worker context of every event the
//! Rust processes dispatch (from an RPC method, from a Nameko event handler,
//! from a Salesforce streaming handler, from the `sfstream run` proxy): each
//! carries `nameko.call_id_stack` = the dispatching worker's call id appended
//! to its incoming stack, capped like Nameko's (`parent_calls_tracked`).

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Map, Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_service::config::Config;
use sfstream_service::nameko::{
    Dispatcher, HandlerType, NamekoEvent, RpcCall, RpcError, Signature,
};
use sfstream_service::{Notification, Service, handle_sobject_notification};
use sfstream_testkit::emulator::{create, service_settings};
use sfstream_testkit::peers::python;
use sfstream_testkit::unique;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");

/// The Python service run by `nameko run`: reports the worker context of
/// each event it handles as a JSON line on stdout.
const PY_SERVICE: &str = r#"
import json
import sys

from nameko.events import EventDispatcher, event_handler
from nameko.extensions import DependencyProvider
from nameko.rpc import rpc

RUST = "__RUST__"
PROXY = "__PROXY__"


class WorkerCtx(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx


def report(kind, ctx, payload):
    sys.stdout.write(json.dumps({
        "kind": kind,
        "payload": payload,
        "call_id": ctx.call_id,
        "call_id_stack": ctx.call_id_stack,
        "parent": list(ctx._parent_call_id_stack),
    }) + "\n")
    sys.stdout.flush()


class Service:
    name = "__PY__"

    ctx = WorkerCtx()
    dispatch = EventDispatcher()

    @rpc
    def ready(self):
        return True

    @rpc
    def ping(self, value):
        self.dispatch("py_event", {"value": value})
        return {"pong": value, "call_id": self.ctx.call_id}

    @event_handler(RUST, "from_rpc", reliable_delivery=False)
    def on_from_rpc(self, payload):
        report("from_rpc", self.ctx, payload)

    @event_handler(RUST, "from_rpc_dispatcher", reliable_delivery=False)
    def on_from_rpc_dispatcher(self, payload):
        report("from_rpc_dispatcher", self.ctx, payload)

    @event_handler(RUST, "from_event", reliable_delivery=False)
    def on_from_event(self, payload):
        report("from_event", self.ctx, payload)

    @event_handler(RUST, "from_salesforce", reliable_delivery=False)
    def on_from_salesforce(self, payload):
        report("from_salesforce", self.ctx, payload)

    @event_handler(PROXY, "salesforce_lead_created", reliable_delivery=False)
    def on_proxied_lead(self, payload):
        report("proxied_lead", self.ctx, payload)
"#;

/// A standalone Python caller: reads the same file as `nameko run` does and
/// calls the Rust service with a call id stack longer than Nameko keeps.
const PY_CALLER: &str = r#"
import json
import sys

import yaml
from nameko.cli.main import setup_yaml_parser
from nameko.standalone.rpc import ClusterRpcProxy

setup_yaml_parser()
with open(sys.argv[1]) as f:
    config = yaml.safe_load(f)
stack = ["ancestor.call.%d" % i for i in range(12)]
with ClusterRpcProxy(config, context_data={"call_id_stack": stack}, timeout=30) as proxy:
    result = proxy["__RUST__"].hello("Ann")
print(json.dumps({"hello": result}))
"#;

/// The Rust service's RPC method: dispatches through the call (and through
/// the call's dispatcher) and returns its own call id.
async fn hello(
    call: RpcCall,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
) -> Result<Value, RpcError> {
    let name = call.arg(&args, &kwargs, 0, "name")?;
    call.dispatch("from_rpc", &json!({"name": name})).await?;
    call.dispatcher()?
        .dispatch("from_rpc_dispatcher", &json!({"name": name}))
        .await
        .map_err(|e| RpcError::new(e.to_string()))?;
    Ok(json!(call.worker().call_id))
}

/// A Nameko event handler of the Rust service, dispatching in turn.
async fn on_py_event(event: NamekoEvent, payload: Value) -> Result<(), String> {
    event.dispatch("from_event", &payload).await
}

/// A Salesforce streaming handler of the Rust service, dispatching.
async fn on_contact(
    Notification(notification): Notification,
    Dispatcher(dispatch): Dispatcher,
) -> Result<(), String> {
    dispatch
        .dispatch("from_salesforce", &notification["sobject"])
        .await
        .map_err(|e| e.to_string())
}

/// JSON lines of a child's stdout (other lines are echoed to stderr).
/// Exactly as a Python Nameko user writes it (trailing slash: vhost `/`).
const AMQP_URI: &str = "pyamqp://guest:guest@127.0.0.1:5672/";

fn json_lines(stdout: tokio::process::ChildStdout, tag: &'static str) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => {
                    if tx.send(v).await.is_err() {
                        return;
                    }
                }
                Err(_) => eprintln!("{tag}: {line}"),
            }
        }
    });
    rx
}

/// Echoes a child's stderr, forwarding its lines.
fn stderr_lines(stderr: tokio::process::ChildStderr, tag: &'static str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{tag}: {line}");
            // Nobody may be listening any more: drop rather than block.
            let _ = tx.try_send(line);
        }
    });
    rx
}

async fn sfstream_rpc(config: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("rpc")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("AMQP_URI")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("sfstream rpc finishes")
        .expect("sfstream rpc runs")
}

/// Waits for the Python report of `kind` whose payload matches.
async fn report(
    lines: &mut mpsc::Receiver<Value>,
    seen: &mut Vec<Value>,
    kind: &str,
    payload_matches: impl Fn(&Value) -> bool,
) -> Value {
    let found = |v: &Value| v["kind"] == kind && payload_matches(&v["payload"]);
    if let Some(v) = seen.iter().find(|v| found(v)) {
        return v.clone();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event reached the Python handler; got {seen:?}"))
            .expect("nameko run is running");
        seen.push(line.clone());
        if found(&line) {
            return line;
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("a string: {s}"))
                .to_owned()
        })
        .collect()
}

/// `<service>.<method>.<uuid4>`.
fn assert_call_id(id: &str, service: &str, method: Option<&str>) {
    let rest = id
        .strip_prefix(&format!("{service}."))
        .unwrap_or_else(|| panic!("{id} is not a call id of {service}"));
    let (m, uuid) = rest.rsplit_once('.').unwrap_or_else(|| panic!("{id}"));
    if let Some(method) = method {
        assert_eq!(m, method, "{id}");
    }
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{id}");
}

fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
}

#[tokio::test]
async fn one_nameko_config_file_for_python_and_rust_services() {
    let mut emulator_config = EmulatorConfig::for_tests();
    emulator_config.connect_hold = Duration::from_secs(1);
    let org = Emulator::start(emulator_config).await.expect("emulator");

    let rust = unique("cfg-rust");
    let py = unique("cfg-py");
    let proxy = unique("cfg-proxy");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "AMQP_URI: {}\nSHUTDOWN_TIMEOUT: 5\nSERVICE_NAME: {proxy}\nPROXY:\n  - sobject: Lead\n    exclude_current_user: false\nSALESFORCE:\n{}",
            AMQP_URI,
            service_settings(&org.url())
        ),
    )
    .expect("write config");
    std::fs::write(
        dir.path().join("interop_service.py"),
        PY_SERVICE
            .replace("__RUST__", &rust)
            .replace("__PROXY__", &proxy)
            .replace("__PY__", &py),
    )
    .expect("write service");
    std::fs::write(
        dir.path().join("caller.py"),
        PY_CALLER.replace("__RUST__", &rust),
    )
    .expect("write caller");

    // The Rust service runtime, configured by the file.
    let running = Service::new(&rust)
        .config(Config::load(&path).expect("the Rust runtime loads the file"))
        .rpc("hello", Signature::new().param("name"), hello)
        .event_handler(&py, "py_event", HandlerType::ServicePool, on_py_event)
        .handler(
            on_contact,
            [handle_sobject_notification("Contact").exclude_current_user(false)],
        )
        .start()
        .await
        .expect("the Rust service starts with the file's AMQP_URI");

    // `sfstream run` with the same file.
    let mut proxy_child = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sfstream run");
    let mut proxy_log = stderr_lines(proxy_child.stderr.take().expect("stderr"), "sfstream run");
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = proxy_log.recv().await {
            if line.contains("service started") {
                return;
            }
        }
        panic!("sfstream run exited before starting");
    })
    .await
    .expect("sfstream run starts with the file");

    // Python `nameko run` with the same file.
    let mut nameko = Command::new(python())
        .args(["-m", "nameko", "run", "--config"])
        .arg(&path)
        .arg("interop_service:Service")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nameko run");
    let mut reports = json_lines(nameko.stdout.take().expect("stdout"), "nameko run");
    let _nameko_log = stderr_lines(nameko.stderr.take().expect("stderr"), "nameko run");
    // Ready once `sfstream rpc --config` reaches it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let out = sfstream_rpc(&path, &[&py, "ready"]).await;
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nameko run never answered sfstream rpc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut seen = Vec::new();

    // `sfstream rpc` calls the Rust service through the file too.
    let out = sfstream_rpc(&path, &[&rust, "hello", r#"["Cli"]"#]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_call: Value = serde_json::from_slice(&out.stdout).expect("JSON result");
    assert_call_id(cli_call.as_str().expect("a call id"), &rust, Some("hello"));

    // A Python caller with a long call id stack: the Rust RPC method's
    // events carry the stack capped to parent_calls_tracked (10) + its own.
    let caller = Command::new(python())
        .arg(dir.path().join("caller.py"))
        .arg(&path)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let caller = tokio::time::timeout(Duration::from_secs(60), caller)
        .await
        .expect("the Python caller finishes")
        .expect("the Python caller runs");
    assert!(
        caller.status.success(),
        "{}",
        String::from_utf8_lossy(&caller.stderr)
    );
    let stdout = String::from_utf8_lossy(&caller.stdout);
    let answer: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let hello_call_id = answer["hello"].as_str().expect("hello returns its call id");
    assert_call_id(hello_call_id, &rust, Some("hello"));
    for kind in ["from_rpc", "from_rpc_dispatcher"] {
        let got = report(&mut reports, &mut seen, kind, |p| p["name"] == "Ann").await;
        let parent = strings(&got["parent"]);
        assert_eq!(parent.len(), 11, "{kind}: {got}");
        let ancestors: Vec<String> = (3..12).map(|i| format!("ancestor.call.{i}")).collect();
        assert_eq!(parent[..9], ancestors[..], "{kind}: {got}");
        assert_call_id(&parent[9], "standalone_rpc_proxy", Some("call"));
        assert_eq!(parent[10], hello_call_id, "{kind}: {got}");
        let stack = strings(&got["call_id_stack"]);
        assert_eq!(stack.len(), 11, "{kind}: {got}");
        assert_eq!(stack[..10], parent[1..], "{kind}: {got}");
    }

    // sfstream rpc -> Python ping -> py_event -> the Rust event handler ->
    // from_event: the handler's call id on top of the chain.
    let out = sfstream_rpc(&path, &[&py, "ping", r#"["chain"]"#]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pong: Value = serde_json::from_slice(&out.stdout).expect("JSON result");
    let ping_call_id = pong["call_id"].as_str().expect("ping call id");
    let got = report(&mut reports, &mut seen, "from_event", |p| {
        p["value"] == "chain"
    })
    .await;
    let parent = strings(&got["parent"]);
    assert_eq!(parent.len(), 3, "{got}");
    assert_call_id(&parent[0], "standalone_rpc_proxy", Some("call"));
    assert_eq!(parent[1], ping_call_id, "{got}");
    assert_call_id(&parent[2], &rust, Some("on_py_event"));

    // Salesforce notifications: the Rust handler's and the proxy's events
    // carry their worker's call id.
    let contact = create(&org, "Contact", json!({"LastName": "Streamed"}));
    let lead = create(
        &org,
        "Lead",
        json!({"LastName": "Proxied", "Company": "Acme"}),
    );
    let got = report(&mut reports, &mut seen, "from_salesforce", |p| {
        p["Id"] == contact.record["Id"]
    })
    .await;
    let parent = strings(&got["parent"]);
    assert_eq!(parent.len(), 1, "{got}");
    assert_call_id(&parent[0], &rust, Some("on_contact"));
    let got = report(&mut reports, &mut seen, "proxied_lead", |p| {
        p["Id"] == lead.record["Id"]
    })
    .await;
    let parent = strings(&got["parent"]);
    assert_eq!(parent.len(), 1, "{got}");
    assert_call_id(&parent[0], &proxy, None);

    terminate(&nameko);
    terminate(&proxy_child);
    let _ = tokio::time::timeout(Duration::from_secs(20), nameko.wait()).await;
    let exit = tokio::time::timeout(Duration::from_secs(20), proxy_child.wait())
        .await
        .expect("sfstream run stops in time")
        .expect("exit status");
    assert!(exit.success(), "{exit:?}");
    running
        .stop()
        .await
        .expect("the Rust service stops cleanly");
}
