//! Three replicas of `sfstream run` (separate processes) sharing one
//! `PROXY:` channel through `CLUSTER:` (with work queues: the leader
//! publishes to RabbitMQ, every replica dispatches), against the
//! in-process emulator, a private persistent redis-server and the real
//! RabbitMQ, with Contacts created all along: kill -9 the leader (another
//! leads within 10 s), SIGSTOP the next leader past its lease and SIGCONT
//! it (it steps down; the marker never moves backwards; no second stream),
//! restart Redis, restart RabbitMQ (`rabbitmqctl stop_app`/`start_app`;
//! this test runs alone, see `.config/nextest.toml`). A Python Nameko
//! `@event_handler` (`nameko run`) receives every change (by record id:
//! one creation, one event, one replay id), duplicates only around the
//! failovers and restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_nameko::{Connection, EventDispatcher};
use sfstream_testkit::emulator::service_settings;
use sfstream_testkit::peers::python;
use sfstream_testkit::rabbitmq::Vhost;
use sfstream_testkit::redis::RedisServer;
use sfstream_testkit::unique;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");
const CHANNEL: &str = "/topic/Contact";
const TTL_SECS: u64 = 2;

/// The Python side: a plain Nameko service with one `@event_handler` for
/// the proxy's events, printing each payload's record id.
const PY_LISTENER: &str = r#"
import json
import sys

from nameko.events import event_handler


class Listener:
    name = "__LISTENER__"

    @event_handler("__SERVICE__", "salesforce_contact_created")
    def on_contact(self, payload):
        sys.stdout.write(json.dumps({"id": payload.get("Id")}) + "\n")
        sys.stdout.flush()
"#;

fn rabbitmqctl(args: &[&str]) -> bool {
    std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Starts the RabbitMQ application again on drop (also when the test fails).
struct BrokerGuard;

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup", "--timeout", "60"]);
    }
}

/// Starts `nameko run` with the listener; every record id it reports is
/// counted in `received`.
fn nameko_listener(
    dir: &Path,
    amqp_uri: &str,
    service: &str,
    received: Arc<Mutex<BTreeMap<String, usize>>>,
) -> Child {
    let listener = unique("listener");
    std::fs::write(
        dir.join("listener.py"),
        PY_LISTENER
            .replace("__LISTENER__", &listener)
            .replace("__SERVICE__", service),
    )
    .expect("listener.py");
    let config = dir.join("nameko.yaml");
    std::fs::write(&config, format!("AMQP_URI: '{amqp_uri}'\n")).expect("nameko.yaml");
    let mut child = Command::new(python())
        .args(["-m", "nameko", "run", "--config"])
        .arg(&config)
        .arg("listener:Listener")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nameko run");
    let stdout = child.stdout.take().expect("stdout");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && let Some(id) = v["id"].as_str()
            {
                *received.lock().entry(id.to_string()).or_insert(0) += 1;
            }
        }
    });
    let stderr = child.stderr.take().expect("stderr");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("nameko run: {line}");
        }
    });
    child
}

struct Replica {
    name: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

fn start(path: &Path, name: &str) -> Replica {
    let mut child = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(path)
        .env("REPLICA", name)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sfstream run");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let lines = log.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            lines.lock().push(line);
        }
    });
    Replica {
        name: name.to_string(),
        child,
        log,
    }
}

fn signal(replica: &Replica, signal: &str) {
    let pid = replica.child.id().expect("running");
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

async fn redis_get(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .expect("GET")
}

/// The replica holding the channel's lease, waiting up to `within`.
async fn holder(
    conn: &mut redis::aio::MultiplexedConnection,
    lease: &str,
    other_than: Option<&str>,
    within: Duration,
) -> (String, Duration) {
    let started = Instant::now();
    loop {
        if let Some(value) = redis_get(conn, lease).await {
            let name = value.split(' ').next().unwrap_or_default().to_string();
            if Some(name.as_str()) != other_than {
                return (name, started.elapsed());
            }
        }
        assert!(
            started.elapsed() < within,
            "no new lease holder within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_fail_over_on_kill_fence_a_stopped_leader_and_ride_out_redis_and_rabbitmq_restarts()
 {
    let vhost = Vhost::create();
    let mut redis = RedisServer::start_persistent().await;
    let mut config = EmulatorConfig::for_tests();
    config.connect_hold = Duration::from_secs(1);
    let org = Emulator::start(config).await.expect("emulator");
    let service = unique("cluster_run");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    let yaml = format!(
        "AMQP_URI: '{}'\nSERVICE_NAME: {service}\nSHUTDOWN_TIMEOUT: 5\nPROXY:\n  - sobject: Contact\n    exclude_current_user: false\nCLUSTER:\n  REDIS_URI: {}\n  LEASE_TTL: {TTL_SECS}\n  REPLICA_ID: ${{REPLICA}}\nSALESFORCE:\n{}",
        vhost.pyamqp_uri(),
        redis.url(),
        service_settings(&org.url())
    );
    std::fs::write(&path, yaml).expect("config");

    // The Python Nameko side; ready once a probe event reaches it.
    let received: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let mut nameko = nameko_listener(dir.path(), &vhost.pyamqp_uri(), &service, received.clone());
    let connection = Connection::connect(&vhost.pyamqp_uri())
        .await
        .expect("RabbitMQ");
    let probe = EventDispatcher::new(&connection, &service);
    let ready = Instant::now();
    while !received.lock().contains_key("probe") {
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "nameko run never received the probe event"
        );
        let _ = probe
            .dispatch("salesforce_contact_created", &json!({"Id": "probe"}))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    connection.close().await;
    received.lock().clear();

    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"]
        .iter()
        .map(|name| start(&path, name))
        .collect();
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let lease = format!("sfstream:lease:{service}:{CHANNEL}");
    let marker_key = format!("salesforce:replay_id:{CHANNEL}");
    let (first, _) = holder(&mut conn, &lease, None, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Contacts are created all along (until told to stop, at most 2,000);
    // the marker is sampled: it never goes back.
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let (stop_producing, mut producing_stopped) = tokio::sync::watch::channel(false);
    let producing = {
        let (created, org) = (created.clone(), org.org().clone());
        tokio::spawn(async move {
            for i in 0..2000 {
                if *producing_stopped.borrow_and_update() {
                    break;
                }
                let fields = json!({"LastName": format!("C{i}")});
                let change = org.create_record(
                    "Contact",
                    fields.as_object().cloned().unwrap_or_default(),
                    &org.user_id(),
                );
                if let Some(id) = change.ok().and_then(|c| {
                    c.record
                        .get("Id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                }) {
                    created.lock().push(id);
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    let markers: Arc<Mutex<Vec<i64>>> = Arc::default();
    let sampling = {
        let (markers, client, key) = (markers.clone(), client.clone(), marker_key.clone());
        tokio::spawn(async move {
            loop {
                // A connection per sample: Redis restarts meanwhile.
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                    && let Ok(Some(v)) = redis::cmd("GET")
                        .arg(&key)
                        .query_async::<Option<String>>(&mut conn)
                        .await
                    && let Ok(id) = v.parse::<i64>()
                {
                    markers.lock().push(id);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // 1. kill -9 the leader: another leads within 10 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let index = replicas
        .iter()
        .position(|r| r.name == first)
        .expect("leader");
    let mut killed = replicas.remove(index);
    signal(&killed, "KILL");
    let _ = killed.child.wait().await;
    let (second, took) = holder(&mut conn, &lease, Some(&first), Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(10), "{took:?}");

    // 2. SIGSTOP the new leader past its lease, then SIGCONT: it steps
    // down, the third replica leads, and nothing it does moves the marker.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = replicas
        .iter()
        .find(|r| r.name == second)
        .expect("second leader");
    signal(stopped, "STOP");
    let (third, _) = holder(
        &mut conn,
        &lease,
        Some(&second),
        Duration::from_secs(TTL_SECS * 5),
    )
    .await;
    assert_ne!(third, first);
    tokio::time::sleep(Duration::from_secs(1)).await;
    signal(stopped, "CONT");
    let woke = Instant::now();
    while woke.elapsed() < Duration::from_secs(5)
        && !stopped
            .log
            .lock()
            .iter()
            .any(|l| l.contains("stepping down"))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        stopped
            .log
            .lock()
            .iter()
            .any(|l| l.contains("stepping down")),
        "the woken leader stepped down:\n{}",
        stopped.log.lock().join("\n")
    );
    let (still, _) = holder(&mut conn, &lease, None, Duration::from_secs(1)).await;
    assert_eq!(
        still, third,
        "one stream: the third replica keeps the lease"
    );

    // 3. Redis restarts (its data kept, as a production Redis's).
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart().await;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis again");
    let _ = holder(&mut conn, &lease, None, Duration::from_secs(15)).await;

    // 4. RabbitMQ restarts: durable queues and persistent messages stay.
    tokio::time::sleep(Duration::from_secs(2)).await;
    {
        let _guard = BrokerGuard;
        let stopped = tokio::task::spawn_blocking(|| rabbitmqctl(&["stop_app"]))
            .await
            .unwrap_or(false);
        assert!(stopped, "rabbitmqctl stop_app");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // 5. Everything created arrives at the Python handler.
    stop_producing.send_replace(true);
    producing.await.expect("producer");
    let all: BTreeSet<String> = created.lock().iter().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !all.iter().all(|id| received.lock().contains_key(id)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sampling.abort();
    let got = received.lock().clone();
    let missing: Vec<&String> = all.iter().filter(|id| !got.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} lost: {missing:?}",
        missing.len(),
        all.len()
    );
    let duplicates = got.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} changes, {} delivered more than once (around the failovers and restarts)",
        all.len(),
        duplicates
    );
    assert!(duplicates < all.len() / 4, "{duplicates} duplicates");
    let markers = markers.lock().clone();
    assert!(
        markers.windows(2).all(|w| w[0] <= w[1]),
        "the marker moved backwards: {markers:?}"
    );

    for replica in &replicas {
        signal(replica, "TERM");
    }
    for replica in &mut replicas {
        let _ = tokio::time::timeout(Duration::from_secs(15), replica.child.wait()).await;
    }
    let _ = nameko.start_kill();
    let _ = nameko.wait().await;
}
