//! Scale-out with work queues (benches/cluster.sh).
//!
//! ```text
//! sfstream-bench cluster-replica CONFIG WORK_US
//! sfstream-bench cluster-drain REPLICAS EVENTS WORK_US REDIS_URL AMQP_URI
//! ```
//!
//! `cluster-replica` runs one replica: a `Service` with the `CLUSTER:` of
//! CONFIG (its `REPLICA_ID` from `${REPLICA}`) whose handler of Contact
//! notifications burns WORK_US microseconds of CPU (a hash loop checked
//! against the clock), until SIGTERM.
//!
//! `cluster-drain` starts the emulator in-process, writes the config
//! (`CLUSTER:` on REDIS_URL with work queues on AMQP_URI, `PREFETCH` 10,
//! a `METRICS_PORT` per replica), starts REPLICAS `cluster-replica`
//! processes of its own binary, waits until one leads the channel and
//! every replica consumes, creates EVENTS Contacts as fast as it can, and
//! polls the replicas' `sfstream_events_handled_total` every 50 ms until
//! EVENTS are handled (10 minutes at most). Throughput = EVENTS / (last
//! poll − first creation). Prints one JSON line, with each replica's share.
//! Each replica process runs its runtime on `TOKIO_WORKER_THREADS` threads
//! (the script sets 1, so that a replica is one core's worth of handlers).

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sfstream_emulator::config::defaults::{PASSWORD, SECURITY_TOKEN, USERNAME};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_service::config::Config;
use sfstream_service::{Notification, Service, handle_sobject_notification};
use tokio::process::{Child, Command};

use crate::Result;

/// Burns about `micros` of CPU; returns a value the optimiser cannot drop.
fn burn(micros: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(micros);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while Instant::now() < until {
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    x
}

pub async fn replica(config: &str, work_us: &str) -> Result<()> {
    let work_us: u64 = work_us.parse()?;
    let config = Config::load(std::path::Path::new(config))?;
    Service::new("bench-cluster")
        .config(config)
        .handler(
            move |Notification(n): Notification| async move {
                std::hint::black_box(burn(work_us));
                std::hint::black_box(n);
            },
            [handle_sobject_notification("Contact").exclude_current_user(false)],
        )
        .run()
        .await?;
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn handled(client: &reqwest::Client, port: u16) -> f64 {
    let Ok(response) = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("sfstream_events_handled_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn health(client: &reqwest::Client, port: u16) -> Value {
    match client
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

pub async fn drain(
    replicas: &str,
    events: &str,
    work_us: &str,
    redis_url: &str,
    amqp_uri: &str,
) -> Result<()> {
    let replicas: usize = replicas.parse()?;
    let events: usize = events.parse()?;
    let emulator = Emulator::start(EmulatorConfig::default()).await?;
    let dir = std::env::temp_dir().join(format!("sfstream-bench-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "AMQP_URI: '{amqp_uri}'\nMETRICS_PORT: ${{METRICS_PORT}}\nCLUSTER:\n  REDIS_URI: {redis_url}\n  LEASE_TTL: 5\n  REPLICA_ID: ${{REPLICA}}\n  PREFETCH: 10\nSALESFORCE:\n  USERNAME: {USERNAME}\n  PASSWORD: {PASSWORD}\n  SECURITY_TOKEN: {SECURITY_TOKEN}\n  SANDBOX: False\n  LOGIN_URL: {}\n  SHUTDOWN_TIMEOUT: 10\n",
            emulator.url()
        ),
    )?;
    let exe = std::env::current_exe()?;
    let mut children: Vec<(u16, Child)> = Vec::new();
    for i in 0..replicas {
        let port = free_port()?;
        let child = Command::new(&exe)
            .arg("cluster-replica")
            .arg(&path)
            .arg(work_us)
            .env("REPLICA", format!("r{i}"))
            .env("METRICS_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        children.push((port, child));
    }
    let client = reqwest::Client::new();
    // Ready: one replica leads the channel and every one answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut leading = 0;
        let mut up = 0;
        for (port, _) in &children {
            let h = health(&client, *port).await;
            if !h.is_null() {
                up += 1;
            }
            if h["cluster"]["channels"]["/topic/Contact"]["role"] == "leading"
                && h["channels"]["/topic/Contact"]["state"] == "subscribed"
            {
                leading += 1;
            }
        }
        if up == replicas && leading == 1 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after 60 s: {up} up, {leading} leading").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let org = emulator.org();
    let started = Instant::now();
    for i in 0..events {
        let mut fields = serde_json::Map::new();
        fields.insert("LastName".into(), json!(format!("C{i}")));
        org.create_record("Contact", fields, &org.user_id())
            .map_err(|e| format!("create_record: {e:?}"))?;
    }
    let created_in = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut shares = Vec::new();
    loop {
        shares.clear();
        for (port, _) in &children {
            shares.push(handled(&client, *port).await);
        }
        if shares.iter().sum::<f64>() >= events as f64 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {shares:?} of {events} handled after 600 s").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "replicas": replicas,
            "events": events,
            "work_us": work_us.parse::<u64>()?,
            "seconds": seconds,
            "creation_seconds": created_in,
            "events_per_second": events as f64 / seconds,
            "handled_by_replica": shares,
        })
    );
    for (_, child) in &mut children {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
    for (_, child) in &mut children {
        let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
