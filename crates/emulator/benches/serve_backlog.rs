//! How fast the emulator serves a preloaded backlog of PushTopic events
//! through CometD connect batches, to a client that only counts them.
//!
//! `cargo bench -p sfstream-emulator --bench serve_backlog [-- EVENTS [BATCH]]`

use std::time::Instant;

use serde_json::json;
use sfstream_emulator::{Emulator, EmulatorConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);

    let mut config = EmulatorConfig::default();
    config.history_limit = events + 1;
    config.max_events_per_connect = batch;
    let emulator = Emulator::start(config).await?;
    let org = emulator.org();
    let user = org.user_id();
    let topic = json!({"Name": "BenchContacts", "Query": "SELECT Id, Name, Email FROM Contact", "ApiVersion": 62.0});
    org.create_record(
        "PushTopic",
        topic.as_object().cloned().unwrap_or_default(),
        &user,
    )?;
    let sobject =
        json!({"Id": "0035g00000Bench1AAA", "Name": "Ada Lovelace", "Email": "ada@example.com"});
    let loaded = Instant::now();
    org.streaming.preload(
        "/topic/BenchContacts",
        events,
        sobject.as_object().ok_or("sobject")?,
    );
    let load_secs = loaded.elapsed().as_secs_f64();

    let token = org.tokens.issue(&org.org_id(), &user);
    let http = reqwest::Client::builder().cookie_store(true).build()?;
    let url = format!("{}/cometd/62.0", emulator.url());
    let post = |body: serde_json::Value| http.post(&url).bearer_auth(&token).json(&body).send();
    let hello: serde_json::Value = post(json!([{"channel": "/meta/handshake", "version": "1.0",
        "supportedConnectionTypes": ["long-polling"], "id": "1"}]))
    .await?
    .json()
    .await?;
    let client_id = hello[0]["clientId"]
        .as_str()
        .ok_or("handshake failed")?
        .to_string();
    post(json!([{"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/topic/BenchContacts",
        "id": "2", "ext": {"replay": {"/topic/BenchContacts": -2}}}]))
    .await?;

    let started = Instant::now();
    let mut received = 0usize;
    let mut bytes = 0usize;
    let mut connects = 0usize;
    let needle = b"\"replayId\":";
    while received < events {
        connects += 1;
        let body = post(json!([{"channel": "/meta/connect", "clientId": client_id,
            "connectionType": "long-polling", "id": connects.to_string()}]))
        .await?
        .bytes()
        .await?;
        bytes += body.len();
        received += body.windows(needle.len()).filter(|w| w == needle).count();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "events": received,
            "batch": batch,
            "connects": connects,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "events_per_second": (received as f64 / secs).round(),
            "megabytes_per_second": ((bytes as f64 / secs / 1e6) * 10.0).round() / 10.0,
            "avg_event_bytes": bytes / received.max(1),
            "preload_seconds": (load_secs * 1000.0).round() / 1000.0,
        })
    );
    Ok(())
}
