//! `sfstream-bench pubsub-floor URL PUBSUB_URL TOPIC EVENTS decode|count
//! [CA_PEM]`: the Avro-decode-only floor of benches/pubsub_drain.sh
//! (`decode`), or the server-alone row (`count`: the same calls, payloads
//! not even decoded). CA_PEM: the root certificate of an `https://`
//! PUBSUB_URL. And `sfstream-bench setup-cdc
//! URL COUNT`: a backlog of COUNT Contact creations (COUNT Change Data
//! Capture events), made 200 at a time through the REST API's sObject
//! Collections, as a data load would.
//!
//! It logs in (OAuth username-password), subscribes to TOPIC on the
//! emulator's Pub/Sub server from EARLIEST with Salesforce's flow control
//! (100 requested, topped up to 100 once 50 have arrived, as sfstream does),
//! and decodes every payload with apache-avro's `GenericDatumReader` into an
//! Avro value, then drops it: no JSON, no output, no replay store. What a
//! client cannot do less than. One JSON summary line on stdout.

use std::time::Instant;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use futures::StreamExt;
use serde_json::json;
use sfstream_pubsub::MAX_REQUESTED;
use sfstream_pubsub::proto::pub_sub_client::PubSubClient;
use sfstream_pubsub::proto::{FetchRequest, ReplayPreset, SchemaRequest, TopicRequest};
use tokio::sync::mpsc;
use tonic::Request;
use tonic::metadata::MetadataMap;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::Result;

/// The metadata every Pub/Sub call carries.
fn metadata(token: &str, instance: &str, org: &str) -> Result<MetadataMap> {
    let mut map = MetadataMap::new();
    map.insert("accesstoken", token.parse()?);
    map.insert("instanceurl", instance.parse()?);
    map.insert("tenantid", org.parse()?);
    Ok(map)
}

fn request<T>(message: T, metadata: &MetadataMap) -> Request<T> {
    let mut request = Request::new(message);
    *request.metadata_mut() = metadata.clone();
    request
}

/// Creates `count` Contacts, 200 per request.
pub async fn setup_cdc(url: &str, count: &str) -> Result<()> {
    let count: usize = count.parse()?;
    let http = reqwest::Client::new();
    let (token, instance) = crate::login(&http, url).await?;
    let mut made = 0;
    while made < count {
        let batch = (count - made).min(200);
        let records: Vec<serde_json::Value> = (made..made + batch)
            .map(|i| {
                json!({
                    "attributes": {"type": "Contact"},
                    "FirstName": "Ada",
                    "LastName": format!("Lovelace {i:07}"),
                    "Email": format!("ada.{i}@example.com"),
                    "Title": "Analyst",
                    "Department": "Engines",
                    "Phone": "+44 20 7946 0000",
                })
            })
            .collect();
        let response = http
            .post(format!(
                "{instance}/services/data/v{}/composite/sobjects",
                crate::API_VERSION
            ))
            .bearer_auth(&token)
            // allOrNone false: the emulator snapshots a table for an
            // all-or-none request, which grows with the backlog.
            .json(&json!({"allOrNone": false, "records": records}))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("creating Contacts: {}", response.text().await?).into());
        }
        let results: Vec<serde_json::Value> = response.json().await?;
        if let Some(failed) = results.iter().find(|r| r["success"] != true) {
            return Err(format!("creating Contacts: {failed}").into());
        }
        made += batch;
    }
    println!(
        "{}",
        json!({"created": made, "topic": "/data/ContactChangeEvent"})
    );
    Ok(())
}

/// Drains EVENTS events of TOPIC, decoding each if `decode`.
pub async fn floor(
    url: &str,
    pubsub_url: &str,
    topic: &str,
    events: &str,
    decode: bool,
    ca_pem: Option<&str>,
) -> Result<()> {
    let want: u64 = events.parse()?;
    let started = Instant::now();
    let http = reqwest::Client::new();
    let (token, instance, org) = crate::login_with_org(&http, url).await?;
    let meta = metadata(&token, &instance, &org)?;
    let mut endpoint = Channel::from_shared(pubsub_url.to_string())?;
    if let Some(path) = ca_pem {
        let pem = std::fs::read_to_string(path)?;
        endpoint = endpoint.tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(pem))
                .domain_name("localhost"),
        )?;
    }
    let mut client =
        PubSubClient::new(endpoint.connect().await?).max_decoding_message_size(64 << 20);
    let topic_info = client
        .get_topic(request(
            TopicRequest {
                topic_name: topic.to_string(),
            },
            &meta,
        ))
        .await?
        .into_inner();
    // A reader per schema, built once (schemas are leaked: a handful per run).
    let mut readers: std::collections::HashMap<String, GenericDatumReader<'static>> =
        Default::default();
    let (requests, rx) = mpsc::channel::<FetchRequest>(4);
    requests
        .send(FetchRequest {
            topic_name: topic.to_string(),
            replay_preset: ReplayPreset::Earliest as i32,
            num_requested: MAX_REQUESTED,
            ..Default::default()
        })
        .await?;
    let mut stream = client
        .subscribe(request(tokio_stream_of(rx), &meta))
        .await?
        .into_inner();
    let mut received = 0u64;
    let mut payload_bytes = 0u64;
    let mut outstanding = MAX_REQUESTED;
    while received < want {
        let Some(response) = stream.next().await else {
            return Err("the stream ended".into());
        };
        let response = response?;
        for consumer in response.events.iter().filter(|_| decode) {
            let Some(event) = &consumer.event else {
                return Err("an event without its event".into());
            };
            if !readers.contains_key(&event.schema_id) {
                let info = client
                    .get_schema(request(
                        SchemaRequest {
                            schema_id: event.schema_id.clone(),
                        },
                        &meta,
                    ))
                    .await?
                    .into_inner();
                let schema: &'static Schema =
                    Box::leak(Box::new(Schema::parse_str(&info.schema_json)?));
                readers.insert(
                    event.schema_id.clone(),
                    GenericDatumReader::builder(schema).build()?,
                );
            }
            let value = readers[&event.schema_id].read_value(&mut &event.payload[..])?;
            std::hint::black_box(value);
        }
        payload_bytes += response
            .events
            .iter()
            .filter_map(|e| e.event.as_ref())
            .map(|e| e.payload.len() as u64)
            .sum::<u64>();
        received += response.events.len() as u64;
        outstanding -= response.events.len() as i32;
        // Topped up once half a batch is free, as sfstream's flow control
        // does, so the server is never idle waiting for a request.
        let room = MAX_REQUESTED - outstanding;
        if room >= MAX_REQUESTED / 2 {
            outstanding = MAX_REQUESTED;
            requests
                .send(FetchRequest {
                    num_requested: room,
                    ..Default::default()
                })
                .await?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "events": received,
            "seconds": seconds,
            "events_per_s": received as f64 / seconds,
            "payload_bytes_per_event": payload_bytes as f64 / received.max(1) as f64,
            "decoded": decode,
            "schema_id": topic_info.schema_id,
        })
    );
    Ok(())
}

/// The request stream of a Subscribe call, from a channel.
fn tokio_stream_of(
    mut rx: mpsc::Receiver<FetchRequest>,
) -> impl futures::Stream<Item = FetchRequest> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
