//! Cluster mode in one process: replicas of one service (same name, same
//! `CLUSTER:`) against the emulator and a private redis-server. One
//! streamer per channel, every event handled once, a graceful stop hands
//! the channels over within a second, and the markers are shared. These
//! replicas run without work queues (`WORK_QUEUES: false`: each channel's
//! handlers run on its leader); `work_queues.rs` spreads them over
//! RabbitMQ.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use sfstream_emulator::Emulator;
use sfstream_salesforce::replay::{RedisStore, ReplayStore};
use sfstream_service::metrics::ClusterRole;
use sfstream_service::{
    Channel, ReplayId, RunningService, Service, ServiceError, handle_sobject_notification,
};
use sfstream_testkit::redis::RedisServer;
use sfstream_testkit::unique;

use common::{config, create, emulator, eventually};

/// (replica, channel, replay id) of every handled event.
type Handled = Arc<Mutex<Vec<(String, String, i64)>>>;

const CHANNELS: [&str; 3] = ["/topic/Contact", "/topic/Lead", "/topic/Case"];

async fn replica(
    org: &Emulator,
    redis: &str,
    service: &str,
    replica: &str,
    handled: Handled,
) -> RunningService {
    let cluster = format!(
        "CLUSTER:\n  REDIS_URI: {redis}\n  LEASE_TTL: 2\n  REPLICA_ID: {replica}\n  WORK_QUEUES: false\nMETRICS_PORT: 0"
    );
    let name = replica.to_string();
    Service::new(service)
        .config(config(org, &cluster, ""))
        .handler(
            move |Channel(channel): Channel, ReplayId(id): ReplayId| {
                let handled = handled.clone();
                let name = name.clone();
                async move {
                    handled.lock().push((name, channel, id.unwrap_or_default()));
                }
            },
            ["Contact", "Lead", "Case"]
                .map(|s| handle_sobject_notification(s).exclude_current_user(false)),
        )
        .start()
        .await
        .expect("replica starts")
}

fn leading(service: &RunningService) -> BTreeSet<String> {
    service
        .context()
        .metrics()
        .cluster()
        .map(|status| {
            status
                .channels
                .into_iter()
                .filter(|(_, role)| *role == ClusterRole::Leading)
                .map(|(channel, _)| channel)
                .collect()
        })
        .unwrap_or_default()
}

fn change_records(org: &Emulator, round: usize) {
    create(org, "Contact", json!({"LastName": format!("C{round}")}));
    create(
        org,
        "Lead",
        json!({"LastName": format!("L{round}"), "Company": "Acme"}),
    );
    create(org, "Case", json!({"Subject": format!("S{round}")}));
}

#[tokio::test]
async fn replicas_share_the_channels_each_event_once_and_a_stop_hands_over_within_a_second() {
    let org = emulator().await;
    let redis = RedisServer::start().await;
    let service = unique("clustered");
    let handled: Handled = Arc::default();
    let a = replica(&org, &redis.url(), &service, "replica-a", handled.clone()).await;
    let b = replica(&org, &redis.url(), &service, "replica-b", handled.clone()).await;

    // Every channel led by exactly one replica, both replicas leading.
    assert!(
        eventually(10, || {
            let (la, lb) = (leading(&a), leading(&b));
            la.is_disjoint(&lb) && la.len() + lb.len() == 3 && !la.is_empty() && !lb.is_empty()
        })
        .await,
        "a leads {:?}, b leads {:?}",
        leading(&a),
        leading(&b)
    );
    // /health says who leads what, naming the other replica as holder.
    let url = format!("http://{}/health", a.metrics_addr().expect("metrics port"));
    let mut health = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(5);
    let named = |health: &serde_json::Value| {
        CHANNELS.iter().all(|channel| {
            let role = &health["cluster"]["channels"][channel];
            role["role"] == "leading" || role["holder"] == "replica-b"
        })
    };
    while Instant::now() < deadline {
        health = reqwest::get(&url)
            .await
            .expect("health")
            .json()
            .await
            .expect("json");
        if named(&health) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health["cluster"]["replica"], "replica-a", "{health}");
    assert!(named(&health), "{health}");
    // A moment for the subscriptions, then records change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for round in 0..5 {
        change_records(&org, round);
    }
    assert!(
        eventually(15, || handled.lock().len() >= 15).await,
        "{:?}",
        handled.lock()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let events = handled.lock();
        assert_eq!(events.len(), 15, "each event once: {events:?}");
        // Each channel's events were handled by its one leader.
        let mut by_channel: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (replica, channel, _) in events.iter() {
            by_channel.entry(channel).or_default().insert(replica);
        }
        assert!(by_channel.values().all(|r| r.len() == 1), "{by_channel:?}");
    }

    // a stops gracefully: b leads everything within a second.
    let stopped = Instant::now();
    a.stop().await.expect("a stops");
    assert!(
        eventually(3, || leading(&b).len() == 3).await,
        "b leads {:?}",
        leading(&b)
    );
    let handover = stopped.elapsed();
    assert!(handover < Duration::from_secs(3), "{handover:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    handled.lock().clear();
    for round in 5..8 {
        change_records(&org, round);
    }
    assert!(
        eventually(15, || handled.lock().len() >= 9).await,
        "{:?}",
        handled.lock()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = handled.lock().clone();
    assert_eq!(
        events.len(),
        9,
        "each event once after the handover: {events:?}"
    );
    assert!(events.iter().all(|(r, ..)| r == "replica-b"));

    // The shared markers moved to the newest event of each channel.
    b.stop().await.expect("b stops");
    let store = RedisStore::connect(&redis.url(), None)
        .await
        .expect("redis");
    for channel in CHANNELS {
        let newest = events
            .iter()
            .filter(|(_, c, _)| c == channel)
            .map(|(_, _, id)| *id)
            .max()
            .expect("events");
        let stored = store.get(channel).await.expect("get").map(|m| m.replay_id);
        assert_eq!(stored, Some(newest), "{channel}");
    }
}

#[tokio::test]
async fn cluster_mode_refuses_a_store_the_replicas_cannot_share() {
    let org = emulator().await;
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = format!("CLUSTER:\n  REDIS_URI: {}", redis.url());
    let store = format!("REPLAY_STORE: file:{}", dir.path().join("m.redb").display());
    let started = Service::new(unique("clustered"))
        .config(config(&org, &cluster, &store))
        .handler(|| async {}, [handle_sobject_notification("Contact")])
        .start()
        .await;
    match started {
        Err(ServiceError::Cluster(reason)) => {
            assert!(reason.contains("redis://"), "{reason}")
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("started with a file store in cluster mode"),
    }
}
