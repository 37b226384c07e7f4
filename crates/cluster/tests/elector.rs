//! Electors of several replicas against a real Redis (127.0.0.1:6379;
//! groups unique per test).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use sfstream_cluster::{Election, Elector, ElectorConfig, ElectorHandle, Role, StepDownReason};
use sfstream_testkit::unique;
use tokio::sync::mpsc;

const TTL: Duration = Duration::from_secs(1);

async fn redis() -> ConnectionManager {
    let client = redis::Client::open("redis://127.0.0.1:6379/0").expect("redis url");
    ConnectionManager::new(client)
        .await
        .expect("Redis on 127.0.0.1:6379 (scripts/test-deps.sh starts it)")
}

fn channels() -> Vec<String> {
    ["/topic/A", "/topic/B", "/topic/C", "/topic/D"]
        .map(String::from)
        .to_vec()
}

fn config(group: &str, replica: &str) -> ElectorConfig {
    ElectorConfig {
        group: group.into(),
        replica: replica.into(),
        ttl: TTL,
        channels: channels(),
    }
}

/// The channels a replica leads, from its events so far.
#[derive(Default)]
struct Led(BTreeSet<String>);

impl Led {
    fn apply(&mut self, event: Election) {
        match event {
            Election::Lead { channel, .. } => {
                assert!(self.0.insert(channel), "led twice without stepping down");
            }
            Election::StepDown { channel, .. } => {
                assert!(
                    self.0.remove(&channel),
                    "stepped down from a channel not led"
                );
            }
        }
    }

    fn drain(&mut self, events: &mut mpsc::Receiver<Election>) {
        while let Ok(event) = events.try_recv() {
            self.apply(event);
        }
    }
}

fn leaders(handles: &[&ElectorHandle]) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for handle in handles {
        for (channel, role) in handle.roles() {
            if matches!(role, Role::Leading { .. }) {
                *count.entry(channel).or_insert(0) += 1;
            }
        }
    }
    count
}

async fn until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

#[tokio::test]
async fn two_replicas_split_the_channels_and_a_graceful_stop_hands_over_within_a_second() {
    let group = unique("svc");
    let (a, mut a_events) = Elector::start(redis().await, config(&group, "replica-a"));
    let (b, mut b_events) = Elector::start(redis().await, config(&group, "replica-b"));
    let (mut led_a, mut led_b) = (Led::default(), Led::default());
    let split = until(Duration::from_secs(5), || {
        led_a.drain(&mut a_events);
        led_b.drain(&mut b_events);
        led_a.0.len() == 2 && led_b.0.len() == 2
    })
    .await;
    assert!(split, "a leads {:?}, b leads {:?}", led_a.0, led_b.0);
    assert!(led_a.0.is_disjoint(&led_b.0));
    assert!(leaders(&[&a, &b]).values().all(|n| *n == 1));

    // a stops gracefully: b leads everything within a second.
    let stopping = Instant::now();
    a.stop(Duration::from_secs(2)).await;
    led_a.drain(&mut a_events);
    assert!(led_a.0.is_empty(), "a stepped down from everything");
    let took_over = until(Duration::from_secs(1), || {
        led_b.drain(&mut b_events);
        led_b.0.len() == 4
    })
    .await;
    assert!(
        took_over,
        "b leads {:?} {:?} after a's stop",
        led_b.0,
        stopping.elapsed()
    );
    b.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_crashed_replica_is_replaced_within_its_ttl() {
    let group = unique("svc");
    // a runs on its own runtime, shut down without any cleanup: a crash.
    let (tx, rx) = std::sync::mpsc::channel();
    let crashed_group = group.clone();
    let runtime_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (_a, mut events) =
                Elector::start(redis().await, config(&crashed_group, "replica-a"));
            let mut led = Led::default();
            while led.0.len() < 4 {
                match events.recv().await {
                    Some(event) => led.apply(event),
                    None => break,
                }
            }
            tx.send(led.0.len()).expect("report");
            // Keep renewing until the test says crash: stop here abruptly.
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        runtime.shutdown_timeout(Duration::ZERO);
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).expect("a leads"), 4);
    let (b, mut b_events) = Elector::start(redis().await, config(&group, "replica-b"));
    runtime_thread.join().expect("a's thread");
    let crashed = Instant::now();
    let mut led_b = Led::default();
    let replaced = until(Duration::from_secs(5), || {
        led_b.drain(&mut b_events);
        led_b.0.len() == 4
    })
    .await;
    assert!(replaced, "b leads {:?}", led_b.0);
    assert!(
        crashed.elapsed() < TTL * 3,
        "replaced after {:?}",
        crashed.elapsed()
    );
    b.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_replica_that_joins_gets_its_share_by_handover() {
    let group = unique("svc");
    let (a, mut a_events) = Elector::start(redis().await, config(&group, "replica-a"));
    let mut led_a = Led::default();
    assert!(
        until(Duration::from_secs(5), || {
            led_a.drain(&mut a_events);
            led_a.0.len() == 4
        })
        .await
    );
    let (b, mut b_events) = Elector::start(redis().await, config(&group, "replica-b"));
    let mut led_b = Led::default();
    let mut rebalanced = Vec::new();
    let balanced = until(Duration::from_secs(5), || {
        while let Ok(event) = a_events.try_recv() {
            if let Election::StepDown { reason, .. } = &event {
                rebalanced.push(*reason);
            }
            led_a.apply(event);
        }
        led_b.drain(&mut b_events);
        led_a.0.len() == 2 && led_b.0.len() == 2
    })
    .await;
    assert!(balanced, "a {:?} b {:?}", led_a.0, led_b.0);
    assert!(rebalanced.iter().all(|r| *r == StepDownReason::Rebalance));
    assert!(led_a.0.is_disjoint(&led_b.0));
    a.stop(Duration::from_secs(2)).await;
    b.stop(Duration::from_secs(2)).await;
}
