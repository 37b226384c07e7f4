//! Three replicas of `sfstream run` (separate processes) sharing one
//! `PROXY:` channel through `CLUSTER:`, against the in-process emulator, a
//! private redis-server and RabbitMQ, with Contacts changing all along:
//! kill -9 the leader (another leads within 10 s), SIGSTOP the next leader
//! past its lease and SIGCONT it (it steps down; the marker never moves
//! backwards; no second stream); a Nameko event handler receives every
//! change, duplicates only around the failovers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_nameko::{Connection, EventHandler, HandlerError};
use sfstream_testkit::emulator::service_settings;
use sfstream_testkit::rabbitmq::Vhost;
use sfstream_testkit::redis::RedisServer;
use sfstream_testkit::unique;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");
const CHANNEL: &str = "/topic/Contact";
const TTL_SECS: u64 = 2;

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
async fn three_replicas_fail_over_on_kill_and_fence_a_stopped_leader() {
    let vhost = Vhost::create();
    let redis = RedisServer::start().await;
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

    // The Nameko side: every proxied change, by record id.
    let connection = Connection::connect(&vhost.pyamqp_uri())
        .await
        .expect("RabbitMQ");
    let received: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let sink = received.clone();
    let handler = EventHandler::new(
        unique("listener"),
        "on_contact",
        &service,
        "salesforce_contact_created",
    )
    .start(&connection, move |_ctx, payload: Value| {
        let id = payload["Id"].as_str().unwrap_or_default().to_string();
        *sink.lock().entry(id).or_insert(0) += 1;
        async { Ok::<(), HandlerError>(()) }
    })
    .await
    .expect("event handler");

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

    // Contacts change all along; the marker is sampled: it never goes back.
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let producing = {
        let (created, org) = (created.clone(), org.org().clone());
        tokio::spawn(async move {
            for i in 0..300 {
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
        let (markers, mut conn, key) = (markers.clone(), conn.clone(), marker_key.clone());
        tokio::spawn(async move {
            loop {
                if let Some(v) = redis_get(&mut conn, &key).await
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

    // 3. Everything created arrives.
    producing.await.expect("producer");
    let all: BTreeSet<String> = created.lock().iter().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && received.lock().len() < all.len() {
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
        "{} changes, {} delivered more than once (around the two failovers)",
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
    handler.shutdown(Duration::from_secs(5)).await;
    connection.close().await;
}
