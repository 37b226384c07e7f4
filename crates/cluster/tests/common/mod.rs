//! Helpers of the work queue tests: replicas (each with a connection of its
//! own) on a RabbitMQ virtual host per test, and a raw look at queues.
#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime};

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use sfstream_cluster::queue::{EventMeta, Ordering, WorkQueues};
use sfstream_nameko::Connection;
use sfstream_testkit::rabbitmq::Vhost;

pub const SERVICE: &str = "orders";
pub const ENTRYPOINT: &str = "on_order";
pub const CHANNEL: &str = "/data/OrderChangeEvent";

/// One replica: its own connection, the queues declared.
pub async fn replica(vhost: &Vhost, ordering: Ordering) -> WorkQueues {
    let conn = Connection::connect(&vhost.amqp_uri())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672");
    WorkQueues::declare(&conn, SERVICE, &[ENTRYPOINT.to_owned()], ordering)
        .await
        .expect("declare")
}

/// The event of number `n`: replay id `n`, created one second ago.
pub fn meta(n: usize) -> EventMeta {
    EventMeta::new(CHANNEL, n.to_string()).created_at(SystemTime::now() - Duration::from_secs(1))
}

/// Waits (up to `limit`) for `done`; false if it did not come.
pub async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

async fn raw_channel(vhost: &Vhost) -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(&vhost.amqp_uri(), Default::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    (conn, channel)
}

/// Messages ready in `queue` (not counting those delivered and unacked).
pub async fn ready(vhost: &Vhost, queue: &str) -> u32 {
    let (conn, channel) = raw_channel(vhost).await;
    let q = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue exists");
    let _ = conn.close(200, "OK".into()).await;
    q.message_count()
}

/// Takes every message of `queue` (basic.get, acked).
pub async fn drain(vhost: &Vhost, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
    let (conn, channel) = raw_channel(vhost).await;
    let mut out = Vec::new();
    while let Some(m) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
    {
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
        out.push(m);
    }
    let _ = conn.close(200, "OK".into()).await;
    out
}

/// The body as text.
pub fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}
