//! The broker's own ceiling for Nameko-shaped RPC: the same AMQP work as a
//! Nameko call (request published mandatory and persistent with publisher
//! confirms to the `nameko-rpc` topic exchange, with kombu's JSON
//! properties and a `nameko.call_id_stack` header, consumed from a durable
//! service queue with prefetch; reply published persistent with confirms to
//! the same exchange under the caller's routing key, into a durable reply
//! queue with `x-expires` as Nameko declares it; both acked), with no
//! Nameko code on either side: no JSON is parsed, the request body is sent
//! back as the reply. What this reaches is what RabbitMQ allows on this
//! machine; `rpc.sh` reports the real servers as fractions of it.
//!
//! `ceiling-server NAME [PREFETCH] [LIFETIME_S]` prints `{"ready":true}`,
//! then echoes until stdin closes or LIFETIME_S (default 900) passes.
//! `ceiling-client NAME CALLS CONCURRENCY` prints the same JSON line as
//! `rpc-client`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;

use crate::Result;

/// Errors as text, so that callers can run on other tasks.
type Step<T> = std::result::Result<T, String>;

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

const EXCHANGE: &str = "nameko-rpc";

fn amqp_uri() -> String {
    std::env::var("SFSTREAM_AMQP_URI")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

async fn channel(conn: &Connection) -> Step<Channel> {
    let channel = conn.create_channel().await.map_err(text)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(text)?;
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(text)?;
    Ok(channel)
}

/// A durable queue bound to the RPC exchange (with `x-expires`, as
/// Nameko's reply queues, when `expires_ms` is given).
async fn queue(
    channel: &Channel,
    name: &str,
    routing_key: &str,
    expires_ms: Option<i64>,
) -> Step<()> {
    let mut args = FieldTable::default();
    if let Some(ms) = expires_ms {
        args.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
    }
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .map_err(text)?;
    channel
        .queue_bind(
            name.into(),
            EXCHANGE.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(text)?;
    Ok(())
}

async fn publish(
    channel: &Channel,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
    mandatory: bool,
) -> Step<()> {
    channel
        .basic_publish(
            EXCHANGE.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory,
                immediate: false,
            },
            body,
            properties
                .with_content_type("application/json".into())
                .with_content_encoding("utf-8".into())
                .with_delivery_mode(2)
                .with_priority(0),
        )
        .await
        .map_err(text)?
        .await
        .map_err(text)?;
    Ok(())
}

pub async fn server(name: &str, prefetch: &str, lifetime: &str) -> Result<()> {
    let prefetch: u16 = prefetch.parse()?;
    let lifetime = Duration::from_secs(lifetime.parse()?);
    let conn = Connection::connect(&amqp_uri(), ConnectionProperties::default()).await?;
    let consume = channel(&conn).await?;
    let replies = channel(&conn).await?;
    let queue_name = format!("ceiling-{name}");
    queue(&consume, &queue_name, &format!("{name}.*"), None).await?;
    consume
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = consume
        .basic_consume(
            queue_name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    println!(
        "{}",
        json!({"ready": true, "queue": queue_name, "prefetch": prefetch})
    );
    let stdin_closed = tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while let Ok(n) = std::io::stdin().read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    // Up to `prefetch` requests are answered concurrently, as a Nameko
    // server's workers do.
    let serve = async {
        let mut in_flight = futures::stream::FuturesUnordered::new();
        loop {
            tokio::select! {
                delivery = deliveries.next() => {
                    let Some(Ok(delivery)) = delivery else { break };
                    let replies = replies.clone();
                    in_flight.push(async move {
                        let mut properties = BasicProperties::default();
                        if let Some(cid) = delivery.properties.correlation_id() {
                            properties = properties.with_correlation_id(cid.clone());
                        }
                        let reply_to = delivery
                            .properties
                            .reply_to()
                            .as_ref()
                            .map(|r| r.as_str().to_owned())
                            .unwrap_or_default();
                        let sent = publish(&replies, &reply_to, &delivery.data, properties, false).await;
                        let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                        sent
                    });
                }
                Some(done) = in_flight.next(), if !in_flight.is_empty() => done?,
            }
        }
        Ok::<(), String>(())
    };
    tokio::select! {
        served = serve => served?,
        _ = stdin_closed => {}
        _ = tokio::time::sleep(lifetime) => {}
    }
    let _ = consume
        .queue_delete(queue_name.as_str().into(), Default::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}

/// One caller: its own channel and reply queue, one call at a time, from
/// when every caller is ready (`gate`).
async fn caller(
    conn: Arc<Connection>,
    name: String,
    index: usize,
    next: Arc<AtomicUsize>,
    calls: usize,
    gate: Arc<tokio::sync::Barrier>,
) -> Step<()> {
    let channel = channel(&conn).await.map_err(text)?;
    let reply_to = format!("ceiling-reply-{}-{index}", std::process::id());
    queue(&channel, &reply_to, &reply_to, Some(300_000)).await?;
    let mut replies = channel
        .basic_consume(
            reply_to.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(text)?;
    let routing_key = format!("{name}.echo");
    gate.wait().await;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= calls {
            let _ = channel
                .queue_delete(reply_to.as_str().into(), Default::default())
                .await;
            return Ok(());
        }
        let body = format!(r#"{{"args":[{i}],"kwargs":{{}}}}"#);
        let cid = i.to_string();
        let mut headers = FieldTable::default();
        headers.insert(
            "nameko.call_id_stack".into(),
            AMQPValue::FieldArray(
                vec![AMQPValue::LongString(format!("ceiling.call.{i}").into())].into(),
            ),
        );
        let properties = BasicProperties::default()
            .with_reply_to(reply_to.as_str().into())
            .with_correlation_id(cid.as_str().into())
            .with_headers(headers);
        publish(&channel, &routing_key, body.as_bytes(), properties, true)
            .await
            .map_err(text)?;
        let reply = tokio::time::timeout(Duration::from_secs(30), replies.next())
            .await
            .map_err(|_| format!("call {i}: no reply within 30 s"))?
            .ok_or("the reply consumer ended")?
            .map_err(text)?;
        reply
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(text)?;
        let got = reply
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str().to_owned());
        if got.as_deref() != Some(cid.as_str()) || reply.data != body.as_bytes() {
            return Err(format!("call {i}: a wrong reply"));
        }
    }
}

pub async fn client(name: &str, calls: &str, concurrency: &str) -> Result<()> {
    let calls: usize = calls.parse()?;
    let concurrency: usize = concurrency.parse()?;
    let conn = Arc::new(Connection::connect(&amqp_uri(), ConnectionProperties::default()).await?);
    let next = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Barrier::new(concurrency + 1));
    let mut tasks = Vec::new();
    for index in 0..concurrency {
        tasks.push(tokio::spawn(caller(
            conn.clone(),
            name.to_owned(),
            index,
            next.clone(),
            calls,
            gate.clone(),
        )));
    }
    // The clock starts once every caller has its queue and consumer.
    gate.wait().await;
    let started = Instant::now();
    for t in tasks {
        t.await.map_err(text)??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"calls": calls, "concurrency": concurrency, "seconds": secs, "calls_per_s": calls as f64 / secs})
    );
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}
