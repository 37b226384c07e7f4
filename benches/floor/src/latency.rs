//! `latency N [INTERVAL_MS]`: record change → handler call, in one process.
//!
//! Starts the in-process emulator (`EmulatorConfig::default()`, so the
//! default 110 s `/meta/connect` hold: events wake the held connect) and a
//! `Service` with `handle_sobject_notification("Contact")
//! .exclude_current_user(false)` (SOAP login, memory replay store, the
//! default max_workers and max_pending) whose handler records
//! `Instant::now()` and the record Id as its first action. Once a warm-up
//! Contact has come through, creates N Contacts one at a time with
//! `org().create_record`, one every INTERVAL_MS (default 2, a
//! `tokio::time::interval` that skips missed ticks), recording the instant
//! just before each `create_record`. Latency = handler instant − creation
//! instant, matched by record Id. Prints one JSON line with p50/p90/p99/max
//! in microseconds. Every wait is bounded (30 s for the warm-up, 60 s after
//! the last creation).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use sfstream_emulator::config::defaults::{PASSWORD, SECURITY_TOKEN, USERNAME};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_service::config::{Config, env_from};
use sfstream_service::{PushTopic, Service, handle_sobject_notification};

use crate::Result;

type Seen = Arc<Mutex<Vec<(String, Instant)>>>;

fn create(org: &Emulator, last_name: &str) -> Result<String> {
    let org = org.org();
    let mut fields = serde_json::Map::new();
    fields.insert("LastName".into(), json!(last_name));
    let change = org
        .create_record("Contact", fields, &org.user_id())
        .map_err(|e| format!("create_record: {e:?}"))?;
    Ok(change
        .record
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Cluster mode for [`run`]: `queue` (work queues on) or `leader`
/// (handlers on the streaming replica), the Redis and AMQP URIs.
pub struct Cluster<'a> {
    pub mode: &'a str,
    pub redis_url: &'a str,
    pub amqp_uri: &'a str,
}

pub async fn run(n: &str, interval_ms: &str, cluster: Option<Cluster<'_>>) -> Result<()> {
    let n: usize = n.parse()?;
    let interval = Duration::from_micros((interval_ms.parse::<f64>()? * 1000.0) as u64);
    let emulator = Emulator::start(EmulatorConfig::default()).await?;
    let top = match &cluster {
        None => "AMQP_URI: 'pyamqp://guest:guest@localhost'\n".to_string(),
        Some(c) => format!(
            "AMQP_URI: '{}'\nCLUSTER:\n  REDIS_URI: {}\n  LEASE_TTL: 5\n  WORK_QUEUES: {}\n",
            c.amqp_uri,
            c.redis_url,
            c.mode == "queue"
        ),
    };
    let yaml = format!(
        "{top}SALESFORCE:\n  USERNAME: {USERNAME}\n  PASSWORD: {PASSWORD}\n  SECURITY_TOKEN: {SECURITY_TOKEN}\n  SANDBOX: False\n  LOGIN_URL: {}\n  RETRY_DELAY: 0.01\n  SHUTDOWN_TIMEOUT: 10\n",
        emulator.url()
    );
    let config = Config::from_yaml_with_env(&yaml, env_from::<&str, &str>([]))?;
    let seen: Seen = Arc::default();
    let handler_seen = seen.clone();
    let running = Service::new("latency")
        .config(config)
        .handler(
            move |PushTopic(event): PushTopic| {
                let at = Instant::now();
                let seen = handler_seen.clone();
                async move {
                    let id = event.sobject["Id"].as_str().unwrap_or_default().to_string();
                    seen.lock().push((id, at));
                }
            },
            [handle_sobject_notification("Contact").exclude_current_user(false)],
        )
        .start()
        .await?;

    // Warm-up: the service subscribes with replay -1 (new events only), so
    // create Contacts until one comes through.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut warm = 0;
    while seen.lock().is_empty() {
        if Instant::now() > deadline {
            return Err("no warm-up event after 30 s".into());
        }
        create(&emulator, &format!("warm-up {warm}"))?;
        warm += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    seen.lock().clear();

    let mut created: HashMap<String, Instant> = HashMap::with_capacity(n);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = Instant::now();
    for i in 0..n {
        ticker.tick().await;
        let at = Instant::now();
        let id = create(&emulator, &format!("Contact {i}"))?;
        created.insert(id, at);
    }
    let creating = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = seen
            .lock()
            .iter()
            .filter(|(id, _)| created.contains_key(id))
            .count();
        if got >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut micros: Vec<u128> = seen
        .lock()
        .iter()
        .filter_map(|(id, at)| created.get(id).map(|c| at.duration_since(*c).as_micros()))
        .collect();
    micros.sort_unstable();
    let mean = micros.iter().sum::<u128>() as f64 / micros.len().max(1) as f64;
    println!(
        "{}",
        json!({
            "mode": cluster.as_ref().map_or("single", |c| c.mode),
            "created": n,
            "handled": micros.len(),
            "interval_ms": interval.as_secs_f64() * 1000.0,
            "creation_seconds": creating,
            "p50_us": percentile(&micros, 50.0),
            "p90_us": percentile(&micros, 90.0),
            "p99_us": percentile(&micros, 99.0),
            "max_us": micros.last().copied().unwrap_or(0),
            "min_us": micros.first().copied().unwrap_or(0),
            "mean_us": mean.round(),
        })
    );
    running.stop().await?;
    if micros.len() < n {
        return Err(format!("only {} of {n} events handled within 60 s", micros.len()).into());
    }
    Ok(())
}
