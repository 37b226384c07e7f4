//! Cluster mode with work queues (`CLUSTER:` and `AMQP_URI`), in one
//! process, against the emulator, a private redis-server and the real
//! RabbitMQ (a virtual host per test): the leader of a channel publishes
//! its events to RabbitMQ and moves the marker once RabbitMQ confirmed;
//! every replica handles them; a skipped event is dead-lettered; under
//! `ON_FAILURE: stop` the event stays queued for another replica.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use sfstream_emulator::Emulator;
use sfstream_salesforce::replay::{RedisStore, ReplayStore};
use sfstream_service::metrics::ChannelState;
use sfstream_service::{
    Notification, ReplayId, RunningService, Service, ServiceError, handle_sobject_notification,
};
use sfstream_testkit::rabbitmq::Vhost;
use sfstream_testkit::redis::RedisServer;
use sfstream_testkit::unique;

use common::{config_on, create, emulator, eventually};

const CHANNEL: &str = "/topic/Contact";

/// (replica, record id, replay id) of every handled event.
type Handled = Arc<Mutex<Vec<(String, String, i64)>>>;

struct Setup {
    org: Emulator,
    redis: RedisServer,
    vhost: Vhost,
    service: String,
}

impl Setup {
    async fn new() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        Self {
            org: emulator().await,
            redis: RedisServer::start().await,
            vhost: Vhost::create(),
            service: unique("work"),
        }
    }

    /// A replica whose handler records each event after `work`; records
    /// named `fail*` fail (retryable) every time.
    async fn replica(
        &self,
        name: &str,
        extra: &str,
        handled: Handled,
    ) -> Result<RunningService, ServiceError> {
        let top = format!(
            "CLUSTER:\n  REDIS_URI: {}\n  LEASE_TTL: 2\n  REPLICA_ID: {name}\n  PREFETCH: 4\nMETRICS_PORT: 0\n{extra}",
            self.redis.url()
        );
        let replica = name.to_string();
        Service::new(&self.service)
            .config(config_on(&self.org, &self.vhost.amqp_uri(), &top, ""))
            .handler(
                move |Notification(n): Notification, ReplayId(id): ReplayId| {
                    let (handled, replica) = (handled.clone(), replica.clone());
                    async move {
                        let name = n["sobject"]["Name"].as_str().unwrap_or_default();
                        if name.starts_with("fail") {
                            return Err(format!("cannot handle {name}"));
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let record = n["sobject"]["Id"].as_str().unwrap_or_default().to_string();
                        handled
                            .lock()
                            .push((replica, record, id.unwrap_or_default()));
                        Ok::<(), String>(())
                    }
                },
                [handle_sobject_notification("Contact").exclude_current_user(false)],
            )
            .start()
            .await
    }
}

/// Waits until one of `replicas` streams the channel.
async fn streaming(replicas: &[&RunningService]) {
    let subscribed = || {
        replicas.iter().any(|r| {
            r.context().metrics().channel_states().get(CHANNEL) == Some(&ChannelState::Subscribed)
        })
    };
    assert!(eventually(15, subscribed).await, "nobody streams {CHANNEL}");
}

async fn metrics(service: &RunningService) -> String {
    let url = format!(
        "http://{}/metrics",
        service.metrics_addr().expect("metrics port")
    );
    reqwest::get(&url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The value of the first metric line starting with `name{` whose labels
/// contain `label`.
fn metric(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn two_replicas_handle_what_the_leader_queued_and_the_marker_follows_rabbitmqs_confirms() {
    let setup = Setup::new().await;
    let handled: Handled = Arc::default();
    let a = setup.replica("a", "", handled.clone()).await.expect("a");
    let b = setup.replica("b", "", handled.clone()).await.expect("b");
    streaming(&[&a, &b]).await;
    let mut created = BTreeSet::new();
    for i in 0..80 {
        created.insert(create(
            &setup.org,
            "Contact",
            json!({"LastName": format!("C{i}")}),
        ));
    }
    assert!(
        eventually(30, || {
            let got: BTreeSet<String> =
                handled.lock().iter().map(|(_, id, _)| id.clone()).collect();
            got.is_superset(&created)
        })
        .await,
        "handled {} of {}",
        handled.lock().len(),
        created.len()
    );
    // Both replicas handled events, though one streams the channel.
    let by_replica: BTreeMap<String, usize> =
        handled
            .lock()
            .iter()
            .fold(BTreeMap::new(), |mut m, (r, ..)| {
                *m.entry(r.clone()).or_default() += 1;
                m
            });
    assert_eq!(by_replica.len(), 2, "{by_replica:?}");
    // Each event once (no failover happened), with its replay id.
    assert_eq!(handled.lock().len(), created.len());
    assert!(handled.lock().iter().all(|(_, _, replay)| *replay > 0));

    // What was published, the handler lag and the queue's depth are
    // exported (the leader publishes; both handle).
    let text = metrics(&a).await + &metrics(&b).await;
    assert_eq!(
        metric(&text, "sfstream_queue_published_total", "@/topic/Contact"),
        Some(created.len() as f64),
        "{text}"
    );
    assert!(
        text.contains("sfstream_handler_lag_seconds_count"),
        "{text}"
    );
    let mut depth = None;
    for _ in 0..40 {
        depth = metric(&metrics(&a).await, "sfstream_queue_depth", "sfstream.work.");
        if depth == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(depth, Some(0.0), "the work queue drained");

    a.stop().await.expect("a stops");
    b.stop().await.expect("b stops");
    // The shared marker is the newest event's: every one was confirmed.
    let store = RedisStore::connect(&setup.redis.url(), None)
        .await
        .expect("redis");
    let stored = store.get(CHANNEL).await.expect("get").map(|m| m.replay_id);
    assert_eq!(stored, Some(common::latest(&setup.org, CHANNEL)));
}

#[tokio::test]
async fn a_skipped_event_is_dead_lettered_and_the_others_are_handled() {
    let setup = Setup::new().await;
    let handled: Handled = Arc::default();
    let a = setup
        .replica("a", "ON_FAILURE: skip\nRETRIES: 1", handled.clone())
        .await
        .expect("a");
    streaming(&[&a]).await;
    create(&setup.org, "Contact", json!({"LastName": "C1"}));
    create(&setup.org, "Contact", json!({"LastName": "fail me"}));
    create(&setup.org, "Contact", json!({"LastName": "C2"}));
    assert!(eventually(15, || handled.lock().len() == 2).await);
    let mut dead = None;
    for _ in 0..60 {
        dead = metric(&metrics(&a).await, "sfstream_queue_depth", "sfstream.dead.");
        if dead == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        dead,
        Some(1.0),
        "the failed event is in the dead-letter queue"
    );
    a.stop().await.expect("a stops");
}

#[tokio::test]
async fn under_stop_a_failed_event_stays_queued_and_another_replica_handles_it() {
    let setup = Setup::new().await;
    let handled: Handled = Arc::default();
    // Replica a fails on everything named fail*; it stops on the first.
    let a = setup
        .replica("a", "ON_FAILURE: stop\nRETRIES: 0", handled.clone())
        .await
        .expect("a");
    streaming(&[&a]).await;
    let poison = create(&setup.org, "Contact", json!({"LastName": "fail once"}));
    let stopped = tokio::time::timeout(Duration::from_secs(20), a.stopped())
        .await
        .expect("a stops by itself");
    assert!(
        matches!(stopped, Err(ServiceError::HandlerFailed { .. })),
        "{stopped:?}"
    );
    // Replica b handles it: same code, but the record is renamed so that
    // its handler succeeds; the event itself waited in the queue.
    let handled_b: Handled = Arc::default();
    let sink = handled_b.clone();
    let top = format!(
        "CLUSTER:\n  REDIS_URI: {}\n  LEASE_TTL: 2\n  REPLICA_ID: b\n  PREFETCH: 4\nMETRICS_PORT: 0",
        setup.redis.url()
    );
    let b = Service::new(&setup.service)
        .config(config_on(&setup.org, &setup.vhost.amqp_uri(), &top, ""))
        .handler(
            move |Notification(n): Notification| {
                let sink = sink.clone();
                async move {
                    let id = n["sobject"]["Id"].as_str().unwrap_or_default().to_string();
                    sink.lock().push(("b".into(), id, 0));
                }
            },
            [handle_sobject_notification("Contact").exclude_current_user(false)],
        )
        .start()
        .await
        .expect("b");
    assert!(
        eventually(15, || handled_b
            .lock()
            .iter()
            .any(|(_, id, _)| *id == poison))
        .await,
        "{:?}",
        handled_b.lock()
    );
    b.stop().await.expect("b stops");
}

/// A replica that records (record id, replay id) in the order its
/// handler calls end, after a varying pause, so that handling at the same
/// time would show as disorder.
async fn ordered_replica(
    setup: &Setup,
    name: &str,
    ordering: &str,
    seen: Handled,
) -> RunningService {
    let top = format!(
        "CLUSTER:\n  REDIS_URI: {}\n  LEASE_TTL: 2\n  REPLICA_ID: {name}\n  PREFETCH: 8\n  {ordering}\nMETRICS_PORT: 0",
        setup.redis.url()
    );
    let replica = name.to_string();
    Service::new(&setup.service)
        .config(config_on(&setup.org, &setup.vhost.amqp_uri(), &top, ""))
        .handler(
            move |Notification(n): Notification, ReplayId(id): ReplayId| {
                let (seen, replica) = (seen.clone(), replica.clone());
                async move {
                    let record = n["sobject"]["Id"].as_str().unwrap_or_default().to_string();
                    let replay = id.unwrap_or_default();
                    let pause = 1 + (replay % 7) as u64 * 3;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    seen.lock().push((replica, record, replay));
                }
            },
            [handle_sobject_notification("Contact").exclude_current_user(false)],
        )
        .start()
        .await
        .expect("replica")
}

fn update(org: &Emulator, id: &str, round: usize) {
    let fields = json!({"LastName": format!("U{round}")});
    org.org()
        .update_record(
            "Contact",
            id,
            fields.as_object().cloned().unwrap_or_default(),
            &org.org().user_id(),
        )
        .expect("update");
}

#[tokio::test]
async fn strict_ordering_handles_the_channel_one_event_at_a_time_in_order_across_replicas() {
    let setup = Setup::new().await;
    let seen: Handled = Arc::default();
    let a = ordered_replica(&setup, "a", "ORDERING: strict", seen.clone()).await;
    let b = ordered_replica(&setup, "b", "ORDERING: strict", seen.clone()).await;
    streaming(&[&a, &b]).await;
    let ids: Vec<String> = (0..10)
        .map(|i| create(&setup.org, "Contact", json!({"LastName": format!("S{i}")})))
        .collect();
    for round in 0..3 {
        for id in &ids {
            update(&setup.org, id, round);
        }
    }
    assert!(
        eventually(30, || seen.lock().len() >= 40).await,
        "{}",
        seen.lock().len()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 40);
    let replays: Vec<i64> = seen.iter().map(|(_, _, r)| *r).collect();
    assert!(
        replays.windows(2).all(|w| w[0] < w[1]),
        "out of order: {replays:?}"
    );
    a.stop().await.expect("a stops");
    b.stop().await.expect("b stops");
}

#[tokio::test]
async fn by_record_ordering_keeps_each_records_events_in_order() {
    let setup = Setup::new().await;
    let seen: Handled = Arc::default();
    let ordering = "ORDERING: by_record\n  PARTITIONS: 4";
    let a = ordered_replica(&setup, "a", ordering, seen.clone()).await;
    let b = ordered_replica(&setup, "b", ordering, seen.clone()).await;
    streaming(&[&a, &b]).await;
    let ids: Vec<String> = (0..12)
        .map(|i| create(&setup.org, "Contact", json!({"LastName": format!("R{i}")})))
        .collect();
    for round in 0..4 {
        for id in &ids {
            update(&setup.org, id, round);
        }
    }
    let total = ids.len() * 5;
    assert!(
        eventually(30, || seen.lock().len() >= total).await,
        "{}",
        seen.lock().len()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), total, "each event once");
    let mut by_record: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (_, record, replay) in &seen {
        by_record.entry(record).or_default().push(*replay);
    }
    assert_eq!(by_record.len(), ids.len());
    for (record, replays) in &by_record {
        assert!(
            replays.windows(2).all(|w| w[0] < w[1]),
            "{record}: {replays:?}"
        );
    }
    // Records in parallel: some record's events were overtaken by
    // another's (not one global order).
    let replays: Vec<i64> = seen.iter().map(|(_, _, r)| *r).collect();
    assert!(
        replays.windows(2).any(|w| w[0] > w[1]),
        "handled in one global order: partitions did not run in parallel"
    );
    a.stop().await.expect("a stops");
    b.stop().await.expect("b stops");
}
