//! Helpers of `benches/drain.sh`.
//!
//! ```text
//! sfstream-bench setup URL TOPIC COUNT [FIELD_BYTES]
//! sfstream-bench drain URL TOPIC EVENTS parse|count
//! ```
//!
//! `setup` logs in to the emulated org at URL (OAuth username-password
//! flow), creates the PushTopic TOPIC and preloads COUNT events on
//! `/topic/TOPIC` through `POST /_emulator/load`. With FIELD_BYTES, the
//! sobject carries extra text fields adding about that many bytes to each
//! event (the load endpoint only makes PushTopic-shaped events; this is the
//! stand-in for a ~1 KB Change Data Capture event).
//!
//! `drain` logs in and issues the same CometD requests as `sfstream listen
//! --replay ALL` (handshake with the replay extension, one subscribe with
//! replay -2, then one `/meta/connect` at a time with the bearer token and
//! the BAYEUX_BROWSER cookie) until EVENTS events have arrived, then
//! disconnects. `parse` is the parse-only floor: each response body is
//! parsed into a `serde_json::Value` and its events counted, nothing is
//! written. `count` only counts `"replayId":` in the bytes: the row that
//! shows what the server alone delivers. One JSON summary line on stdout.
//! A run that has not finished after 10 minutes fails.
//!
//! ```text
//! sfstream-bench rpc-server NAME [MAX_WORKERS] [LIFETIME_S]
//! sfstream-bench rpc-client NAME CALLS CONCURRENCY
//! sfstream-bench latency N [INTERVAL_MS [queue|leader REDIS_URL AMQP_URI]]
//! sfstream-bench cluster-replica CONFIG WORK_US
//! sfstream-bench cluster-drain REPLICAS EVENTS WORK_US REDIS_URL AMQP_URI
//! ```
//!
//! `latency … queue|leader` runs the service in cluster mode, with or
//! without the work queue hop; `cluster-*` is benches/cluster.sh (see
//! `cluster.rs`).
//!
//! ```text
//! sfstream-bench setup-cdc URL COUNT
//! sfstream-bench pubsub-floor URL PUBSUB_URL TOPIC EVENTS decode|count [CA_PEM]
//! ```
//!
//! `setup-cdc` preloads a Change Data Capture backlog and `pubsub-floor
//! ... decode` is the Avro-decode-only floor of benches/pubsub_drain.sh
//! (see `pubsub.rs`); `count` only counts the events, the row that shows
//! what the emulator's Pub/Sub server alone delivers.
//!
//! `rpc-server` / `rpc-client` serve and load Nameko `echo(x)` calls
//! (benches/rpc.sh, see `rpc.rs`); `latency` measures record change →
//! handler call against the in-process emulator (see `latency.rs`).

mod ceiling;
mod cluster;
mod latency;
mod pubsub;
mod rpc;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sfstream_emulator::config::defaults::{
    CONSUMER_KEY, CONSUMER_SECRET, PASSWORD, SECURITY_TOKEN, USERNAME,
};

const API_VERSION: &str = "62.0";
const DEADLINE: Duration = Duration::from_secs(600);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    // The same runtime as the `sfstream` binary.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sfstream-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["setup", url, topic, count] => runtime.block_on(setup(url, topic, count, None)),
        ["setup", url, topic, count, bytes] => {
            runtime.block_on(setup(url, topic, count, Some(bytes)))
        }
        ["drain", url, topic, events, mode @ ("parse" | "count")] => runtime.block_on(async {
            tokio::time::timeout(DEADLINE, drain(url, topic, events, mode == "parse"))
                .await
                .map_err(|_| format!("not done after {DEADLINE:?}"))?
        }),
        ["rpc-server", name] => runtime.block_on(rpc::server(name, "10", "900")),
        ["rpc-server", name, workers] => runtime.block_on(rpc::server(name, workers, "900")),
        ["rpc-server", name, workers, lifetime] => {
            runtime.block_on(rpc::server(name, workers, lifetime))
        }
        ["rpc-client", name, calls, concurrency] => runtime.block_on(async {
            tokio::time::timeout(DEADLINE, rpc::client(name, calls, concurrency))
                .await
                .map_err(|_| format!("not done after {DEADLINE:?}"))?
        }),
        ["ceiling-server", name] => runtime.block_on(ceiling::server(name, "10", "900")),
        ["ceiling-server", name, prefetch] => {
            runtime.block_on(ceiling::server(name, prefetch, "900"))
        }
        ["ceiling-server", name, prefetch, lifetime] => {
            runtime.block_on(ceiling::server(name, prefetch, lifetime))
        }
        ["ceiling-client", name, calls, concurrency] => runtime.block_on(async {
            tokio::time::timeout(DEADLINE, ceiling::client(name, calls, concurrency))
                .await
                .map_err(|_| format!("not done after {DEADLINE:?}"))?
        }),
        ["pubsub-floor", url, pubsub_url, topic, events, mode @ ("decode" | "count")] => {
            runtime.block_on(async {
                tokio::time::timeout(
                    DEADLINE,
                    pubsub::floor(url, pubsub_url, topic, events, mode == "decode", None),
                )
                .await
                .map_err(|_| format!("not done after {DEADLINE:?}"))?
            })
        }
        ["pubsub-floor", url, pubsub_url, topic, events, mode @ ("decode" | "count"), ca] => {
            runtime.block_on(async {
                tokio::time::timeout(
                    DEADLINE,
                    pubsub::floor(url, pubsub_url, topic, events, mode == "decode", Some(ca)),
                )
                .await
                .map_err(|_| format!("not done after {DEADLINE:?}"))?
            })
        }
        ["setup-cdc", url, count] => runtime.block_on(pubsub::setup_cdc(url, count)),
        ["latency", n] => runtime.block_on(latency::run(n, "2", None)),
        ["latency", n, interval_ms] => runtime.block_on(latency::run(n, interval_ms, None)),
        ["latency", n, interval_ms, mode @ ("queue" | "leader"), redis_url, amqp_uri] => {
            let cluster = latency::Cluster {
                mode,
                redis_url,
                amqp_uri,
            };
            runtime.block_on(latency::run(n, interval_ms, Some(cluster)))
        }
        ["cluster-replica", config, work_us] => runtime.block_on(cluster::replica(config, work_us)),
        ["cluster-drain", replicas, events, work_us, redis_url, amqp_uri] => {
            runtime.block_on(cluster::drain(replicas, events, work_us, redis_url, amqp_uri))
        }
        _ => Err(
            "usage: sfstream-bench setup URL TOPIC COUNT [FIELD_BYTES]\n       \
                  sfstream-bench drain URL TOPIC EVENTS parse|count\n       \
                  sfstream-bench setup-cdc URL COUNT\n       \
                  sfstream-bench pubsub-floor URL PUBSUB_URL TOPIC EVENTS decode|count [CA_PEM]\n       \
                  sfstream-bench rpc-server NAME [MAX_WORKERS] [LIFETIME_S]\n       \
                  sfstream-bench rpc-client NAME CALLS CONCURRENCY\n       \
                  sfstream-bench ceiling-server NAME [PREFETCH] [LIFETIME_S]\n       \
                  sfstream-bench ceiling-client NAME CALLS CONCURRENCY\n       \
                  sfstream-bench latency N [INTERVAL_MS [queue|leader REDIS_URL AMQP_URI]]\n       \
                  sfstream-bench cluster-replica CONFIG WORK_US\n       \
                  sfstream-bench cluster-drain REPLICAS EVENTS WORK_US REDIS_URL AMQP_URI"
                .into(),
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sfstream-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An access token and the instance URL.
async fn login(http: &reqwest::Client, url: &str) -> Result<(String, String)> {
    let (token, instance, _org) = login_with_org(http, url).await?;
    Ok((token, instance))
}

/// An access token, the instance URL and the org id (from the identity URL
/// `…/id/<org id>/<user id>`).
async fn login_with_org(http: &reqwest::Client, url: &str) -> Result<(String, String, String)> {
    let password = format!("{PASSWORD}{SECURITY_TOKEN}");
    let response: Value = http
        .post(format!(
            "{}/services/oauth2/token",
            url.trim_end_matches('/')
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", CONSUMER_KEY),
            ("client_secret", CONSUMER_SECRET),
            ("username", USERNAME),
            ("password", password.as_str()),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = response["access_token"].as_str().ok_or("no access_token")?;
    let instance = response["instance_url"].as_str().ok_or("no instance_url")?;
    let id = response["id"].as_str().ok_or("no identity URL")?;
    let org = id
        .rsplit('/')
        .nth(1)
        .ok_or("no org id in the identity URL")?;
    Ok((
        token.to_string(),
        instance.trim_end_matches('/').to_string(),
        org.to_string(),
    ))
}

async fn setup(url: &str, topic: &str, count: &str, field_bytes: Option<&str>) -> Result<()> {
    let count: usize = count.parse()?;
    let field_bytes: usize = field_bytes.map(str::parse).transpose()?.unwrap_or(0);
    let http = reqwest::Client::new();
    let (token, instance) = login(&http, url).await?;
    let created = http
        .post(format!(
            "{instance}/services/data/v{API_VERSION}/sobjects/PushTopic"
        ))
        .bearer_auth(&token)
        .json(&json!({"Name": topic, "Query": "SELECT Id, Name FROM Contact", "ApiVersion": 62}))
        .send()
        .await?;
    if !created.status().is_success() {
        return Err(format!("creating PushTopic {topic}: {}", created.text().await?).into());
    }
    let mut sobject = serde_json::Map::new();
    sobject.insert("Id".into(), json!("0035g00000Bench1AAA"));
    sobject.insert("Name".into(), json!("Ada Lovelace"));
    // Text fields of about 48 bytes each (name, quotes, value, comma),
    // like the changed fields of a Change Data Capture event.
    for i in 0..field_bytes.div_ceil(48) {
        sobject.insert(
            format!("Field_{i:02}__c"),
            json!(format!("value {i:02} of a change event, padded..")),
        );
    }
    let loaded: Value = http
        .post(format!("{instance}/_emulator/load"))
        .json(&json!({"channel": format!("/topic/{topic}"), "count": count, "sobject": sobject}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("{loaded}");
    Ok(())
}

async fn drain(url: &str, topic: &str, events: &str, parse: bool) -> Result<()> {
    let events: usize = events.parse()?;
    let channel = format!("/topic/{topic}");
    let started = Instant::now();
    // The transport of sfstream-bayeux: a cookie store, no-delay sockets.
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let (token, instance) = login(&http, url).await?;
    let cometd = format!("{instance}/cometd/{API_VERSION}");
    let post = |body: Value| {
        http.post(&cometd)
            .bearer_auth(&token)
            .header("content-type", "application/json;charset=UTF-8")
            .body(body.to_string())
            .send()
    };
    let hello: Value = post(
        json!([{"channel": "/meta/handshake", "id": "1", "version": "1.0",
        "minimumVersion": "1.0", "supportedConnectionTypes": ["long-polling"],
        "ext": {"replay": true}}]),
    )
    .await?
    .json()
    .await?;
    let client_id = hello[0]["clientId"]
        .as_str()
        .ok_or_else(|| format!("handshake refused: {hello}"))?
        .to_string();
    let subscribed: Value = post(json!([{"channel": "/meta/subscribe", "id": "2",
        "clientId": client_id, "subscription": channel,
        "ext": {"replay": {channel.as_str(): -2}}}]))
    .await?
    .json()
    .await?;
    if subscribed[0]["successful"] != json!(true) {
        return Err(format!("subscribe refused: {subscribed}").into());
    }
    let draining = Instant::now();
    let (mut received, mut bytes, mut connects) = (0usize, 0usize, 0usize);
    let needle = memchr::memmem::Finder::new(b"\"replayId\":");
    while received < events {
        connects += 1;
        let body = post(
            json!([{"channel": "/meta/connect", "id": (connects + 2).to_string(),
            "clientId": client_id, "connectionType": "long-polling"}]),
        )
        .await?
        .error_for_status()?
        .bytes()
        .await?;
        bytes += body.len();
        if parse {
            let messages: Value = serde_json::from_slice(&body)?;
            let messages = messages.as_array().ok_or("not a JSON array")?;
            for message in messages {
                match message["channel"].as_str() {
                    Some("/meta/connect") if message["successful"] != json!(true) => {
                        return Err(format!("connect refused: {message}").into());
                    }
                    Some(c) if c == channel && message.get("data").is_some() => received += 1,
                    _ => {}
                }
            }
        } else {
            received += needle.find_iter(&body).count();
        }
    }
    let drain_secs = draining.elapsed().as_secs_f64();
    let _ = post(json!([{"channel": "/meta/disconnect", "id": "0", "clientId": client_id}])).await;
    println!(
        "{}",
        json!({
            "mode": if parse { "parse" } else { "count" },
            "events": received,
            "connects": connects,
            "bytes_per_event": (bytes as f64 / received.max(1) as f64).round(),
            "drain_seconds": drain_secs,
            "total_seconds": started.elapsed().as_secs_f64(),
            "events_per_second": (received as f64 / drain_secs).round(),
        })
    );
    Ok(())
}
