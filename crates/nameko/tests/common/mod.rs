//! Shared helpers of the integration tests: Python Nameko peers (each
//! spawned with a bounded lifetime and killed on drop), and the broker's
//! default virtual host for the one test that restarts the broker.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sfstream_testkit::peers::python;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The broker's default virtual host (most tests use a [`Vhost`] of their
/// own instead).
///
/// [`Vhost`]: sfstream_testkit::rabbitmq::Vhost
pub fn amqp_uri() -> String {
    std::env::var("SFSTREAM_AMQP_URI")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Path of a peer script.
pub fn peer(script: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(script)
}

/// Runs `rpc_client.py` with `spec` on the broker at `amqp_uri` and
/// returns the list of results it printed.
pub async fn python_rpc_calls(amqp_uri: &str, mut spec: Value) -> Vec<Value> {
    spec["amqp_uri"] = Value::String(amqp_uri.to_owned());
    let child = Command::new(python())
        .arg(peer("rpc_client.py"))
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("python rpc client timed out")
        .expect("python rpc client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python rpc client failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Array(items)) => items,
        other => panic!("unexpected output {other:?}: {stdout}"),
    }
}

/// A running Python Nameko service (`service.py`), killed on drop.
pub struct PyService {
    child: Child,
    lines: mpsc::UnboundedReceiver<Value>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl PyService {
    /// Starts `service.py` named `name` on the broker at `amqp_uri`,
    /// handling `event_type` events of `rust_service`; returns once it
    /// printed `{"ready": true}`.
    pub async fn start(amqp_uri: &str, name: &str, rust_service: &str, event_type: &str) -> Self {
        let cfg = serde_json::json!({
            "amqp_uri": amqp_uri, "name": name, "rust_service": rust_service,
            "event_type": event_type, "lifetime": 120,
        });
        let mut child = Command::new(python())
            .arg(peer("service.py"))
            .arg(cfg.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn python service");
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("stdout");
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().expect("stderr");
        tokio::spawn(async move {
            let mut reader = BufReader::new(err).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(mut v) = sink.lock() {
                    v.push(line);
                }
            }
        });
        let mut svc = Self {
            child,
            lines,
            stderr,
        };
        let ready = svc.next(Duration::from_secs(30)).await;
        assert_eq!(ready.get("ready"), Some(&Value::Bool(true)), "{ready}");
        svc
    }

    /// The next JSON line printed, waiting at most `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Value {
        match tokio::time::timeout(timeout, self.lines.recv()).await {
            Ok(Some(v)) => v,
            other => panic!(
                "python service printed nothing ({other:?}); stderr:\n{}",
                self.stderr.lock().map(|v| v.join("\n")).unwrap_or_default()
            ),
        }
    }
}

impl Drop for PyService {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Deletes queues a test left on the broker (durable queues outlive their
/// consumers, as in Nameko); errors are ignored.
pub async fn delete_queues(names: &[String]) {
    let Ok(conn) =
        lapin::Connection::connect(&amqp_uri(), lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(channel) = conn.create_channel().await {
        for name in names {
            let _ = channel
                .queue_delete(
                    name.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await;
        }
    }
    let _ = conn.close(200, "OK".into()).await;
}
