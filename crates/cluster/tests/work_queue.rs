//! Work queues against the real RabbitMQ (127.0.0.1:5672, a virtual host
//! per test): replicas sharing the work, and what each handler outcome does.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use common::{CHANNEL, ENTRYPOINT, drain, eventually, meta, ready, replica, text};
use lapin::types::AMQPValue;
use parking_lot::Mutex;
use sfstream_cluster::queue::{
    ConsumerOptions, HEADER_REPLAY_ID, Ordering, Outcome, PublisherOptions, StopCause,
    WorkConsumer, WorkError, WorkPublisher,
};
use sfstream_testkit::rabbitmq::Vhost;

const LIMIT: Duration = Duration::from_secs(8);

/// Handler calls of one replica: in flight now, most at once, bodies seen.
#[derive(Default)]
struct Seen {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    bodies: Mutex<Vec<String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_handle_every_message_once_within_their_prefetch() {
    let vhost = Vhost::create();
    let streamer = replica(&vhost, Ordering::None).await;
    let (a, b) = (
        replica(&vhost, Ordering::None).await,
        replica(&vhost, Ordering::None).await,
    );
    let lags = Arc::new(Mutex::new(Vec::new()));
    let mut consumers = Vec::new();
    let mut seen = Vec::new();
    for queues in [&a, &b] {
        let s = Arc::new(Seen::default());
        seen.push(s.clone());
        let lags = lags.clone();
        let options = ConsumerOptions {
            prefetch: 3,
            ..Default::default()
        };
        let consumer = WorkConsumer::start(queues, ENTRYPOINT, options, move |msg| {
            let s = s.clone();
            let lags = lags.clone();
            async move {
                let now = s.in_flight.fetch_add(1, AtomicOrdering::SeqCst) + 1;
                s.max_in_flight.fetch_max(now, AtomicOrdering::SeqCst);
                assert_eq!(msg.channel().as_deref(), Some(CHANNEL));
                assert_eq!(msg.replay_id(), Some(text(msg.body())));
                lags.lock().push(msg.lag());
                tokio::time::sleep(Duration::from_millis(25)).await;
                s.bodies.lock().push(text(msg.body()));
                s.in_flight.fetch_sub(1, AtomicOrdering::SeqCst);
                Outcome::Done
            }
        })
        .await
        .expect("consume");
        consumers.push(consumer);
    }

    let publisher = WorkPublisher::start(&streamer, PublisherOptions::default());
    let mut confirms = Vec::new();
    for n in 0..60 {
        let c = publisher
            .send(ENTRYPOINT, None, n.to_string().as_bytes(), &meta(n))
            .await
            .expect("send");
        confirms.push(c);
    }
    for c in confirms {
        c.await.expect("confirmed");
    }
    let total = || seen.iter().map(|s| s.bodies.lock().len()).sum::<usize>();
    assert!(
        eventually(LIMIT, || total() >= 60).await,
        "handled {}",
        total()
    );
    for consumer in consumers {
        assert!(consumer.shutdown(Duration::from_secs(2)).await);
    }

    let mut counts = BTreeMap::new();
    for s in &seen {
        for body in s.bodies.lock().iter() {
            *counts
                .entry(body.parse::<usize>().expect("number"))
                .or_insert(0) += 1;
        }
    }
    assert_eq!(counts.len(), 60, "every message handled");
    assert!(counts.values().all(|&n| n == 1), "exactly once: {counts:?}");
    for s in &seen {
        assert!(!s.bodies.lock().is_empty(), "both replicas took part");
        assert_eq!(
            s.max_in_flight.load(AtomicOrdering::SeqCst),
            3,
            "prefetch 3 is the limit"
        );
    }
    assert!(
        lags.lock()
            .iter()
            .all(|lag| lag.is_some_and(|l| l >= Duration::from_secs(1)))
    );
    // Consumers gone: anything unacked would be ready again.
    let queue = &streamer.queue_names(ENTRYPOINT).expect("queue")[0];
    assert_eq!(ready(&vhost, queue).await, 0, "all acked");
    assert!(publisher.close(Duration::from_secs(2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_messages_are_dead_lettered_with_their_headers() {
    let vhost = Vhost::create();
    let queues = replica(&vhost, Ordering::None).await;
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let consumer = WorkConsumer::start(
        &queues,
        ENTRYPOINT,
        ConsumerOptions::default(),
        move |msg| {
            let h = h.clone();
            async move {
                h.fetch_add(1, AtomicOrdering::SeqCst);
                if msg.body() == b"bad" {
                    Outcome::Skip
                } else {
                    Outcome::Done
                }
            }
        },
    )
    .await
    .expect("consume");
    let publisher = WorkPublisher::start(&queues, PublisherOptions::default());
    for (n, body) in ["ok", "bad", "ok"].into_iter().enumerate() {
        publisher
            .publish(ENTRYPOINT, Some("001xx"), body.as_bytes(), &meta(n))
            .await
            .expect("publish");
    }
    assert!(eventually(LIMIT, || handled.load(AtomicOrdering::SeqCst) == 3).await);
    assert!(consumer.shutdown(Duration::from_secs(2)).await);

    let dead_queue = queues
        .dead_letter_queue(ENTRYPOINT)
        .expect("dead letter queue");
    assert_eq!(dead_queue, "sfstream.dead.orders.on_order");
    let dead = drain(&vhost, &dead_queue).await;
    assert_eq!(dead.len(), 1, "only the skipped one");
    let headers = dead[0]
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    let get = |k: &str| headers.inner().get(k).cloned();
    assert_eq!(
        get(HEADER_REPLAY_ID),
        Some(AMQPValue::LongString("1".into()))
    );
    assert_eq!(
        get("sfstream-record-key"),
        Some(AMQPValue::LongString("001xx".into()))
    );
    assert!(get("sfstream-created-at").is_some());
    assert_eq!(
        get("x-first-death-reason"),
        Some(AMQPValue::LongString("rejected".into()))
    );
    assert_eq!(text(&dead[0].delivery.data), "bad");
    let queue = &queues.queue_names(ENTRYPOINT).expect("queue")[0];
    assert_eq!(ready(&vhost, queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_calls_again_and_requeue_redelivers() {
    let vhost = Vhost::create();
    let queues = replica(&vhost, Ordering::None).await;
    // (body, attempt, redelivered) of every call.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let c = calls.clone();
    let consumer = WorkConsumer::start(
        &queues,
        ENTRYPOINT,
        ConsumerOptions::default(),
        move |msg| {
            let c = c.clone();
            async move {
                let body = text(msg.body());
                c.lock()
                    .push((body.clone(), msg.attempt(), msg.redelivered()));
                match body.as_str() {
                    "retry" if msg.attempt() < 3 => Outcome::Retry(Duration::from_millis(50)),
                    "requeue" if !msg.redelivered() => Outcome::Requeue,
                    _ => Outcome::Done,
                }
            }
        },
    )
    .await
    .expect("consume");
    let publisher = WorkPublisher::start(&queues, PublisherOptions::default());
    let unknown = publisher.publish("nope", None, b"x", &meta(0)).await;
    assert!(
        matches!(unknown, Err(WorkError::UnknownEntrypoint(_))),
        "{unknown:?}"
    );
    publisher
        .publish(ENTRYPOINT, None, b"retry", &meta(1))
        .await
        .expect("publish");
    publisher
        .publish(ENTRYPOINT, None, b"requeue", &meta(2))
        .await
        .expect("publish");
    assert!(
        eventually(LIMIT, || calls.lock().len() == 5).await,
        "{:?}",
        calls.lock()
    );
    assert!(consumer.shutdown(Duration::from_secs(2)).await);
    let calls = calls.lock().clone();
    let of = |b: &str| {
        calls
            .iter()
            .filter(|c| c.0 == b)
            .map(|c| (c.1, c.2))
            .collect::<Vec<_>>()
    };
    assert_eq!(of("retry"), [(1, false), (2, false), (3, false)]);
    assert_eq!(of("requeue"), [(1, false), (1, true)]);
    let queue = &queues.queue_names(ENTRYPOINT).expect("queue")[0];
    assert_eq!(ready(&vhost, queue).await, 0, "both acked in the end");
    let dead = queues.dead_letter_queue(ENTRYPOINT).expect("dead");
    assert_eq!(ready(&vhost, &dead).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_leaves_the_message_to_another_replica() {
    let vhost = Vhost::create();
    let (a, b) = (
        replica(&vhost, Ordering::None).await,
        replica(&vhost, Ordering::None).await,
    );
    let a_calls = Arc::new(AtomicUsize::new(0));
    let calls = a_calls.clone();
    let stopping = WorkConsumer::start(&a, ENTRYPOINT, ConsumerOptions::default(), move |_msg| {
        calls.fetch_add(1, AtomicOrdering::SeqCst);
        async { Outcome::Stop }
    })
    .await
    .expect("consume");
    let publisher = WorkPublisher::start(&a, PublisherOptions::default());
    publisher
        .publish(ENTRYPOINT, None, b"x", &meta(7))
        .await
        .expect("publish");
    assert!(eventually(LIMIT, || a_calls.load(AtomicOrdering::SeqCst) == 1).await);

    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let other = WorkConsumer::start(&b, ENTRYPOINT, ConsumerOptions::default(), move |msg| {
        g.lock().push((text(msg.body()), msg.redelivered()));
        async { Outcome::Done }
    })
    .await
    .expect("consume");
    let stopped = tokio::time::timeout(LIMIT, stopping.stopped()).await;
    assert_eq!(stopped.ok(), Some(StopCause::Handler));
    assert!(
        eventually(LIMIT, || got.lock().len() == 1).await,
        "redelivered to the other replica"
    );
    assert_eq!(got.lock()[0], ("x".to_owned(), true));
    assert_eq!(
        a_calls.load(AtomicOrdering::SeqCst),
        1,
        "the stopped replica took no more"
    );
    assert!(other.shutdown(Duration::from_secs(2)).await);
    assert!(stopping.shutdown(Duration::from_secs(1)).await);
    let queue = &a.queue_names(ENTRYPOINT).expect("queue")[0];
    assert_eq!(ready(&vhost, queue).await, 0);
}
