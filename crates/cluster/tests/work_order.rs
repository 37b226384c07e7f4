//! Ordered work queues against the real RabbitMQ (a virtual host per test):
//! strict order with a handover between replicas, order per record over
//! partitions.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::{ENTRYPOINT, eventually, meta, replica, text};
use parking_lot::Mutex;
use sfstream_cluster::queue::{
    ConsumerOptions, Ordering, Outcome, PublisherOptions, WorkConsumer, WorkPublisher, partition_of,
};
use sfstream_testkit::rabbitmq::Vhost;

const LIMIT: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_order_has_one_active_replica_and_a_handover_in_order() {
    let vhost = Vhost::create();
    let (a, b) = (
        replica(&vhost, Ordering::Strict).await,
        replica(&vhost, Ordering::Strict).await,
    );
    // (replica, number) in handling order, over both replicas.
    let log = Arc::new(Mutex::new(Vec::new()));
    let start = |queues, name: &'static str| {
        let log = log.clone();
        let options = ConsumerOptions {
            prefetch: 5,
            ..Default::default()
        };
        WorkConsumer::start(queues, ENTRYPOINT, options, move |msg| {
            let log = log.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(15)).await;
                let n: usize = text(msg.body()).parse().expect("number");
                log.lock().push((name, n));
                Outcome::Done
            }
        })
    };
    let first = start(&a, "a").await.expect("consume");
    let second = start(&b, "b").await.expect("consume");
    let publisher = WorkPublisher::start(&a, PublisherOptions::default());
    let mut confirms = Vec::new();
    for n in 0..60 {
        confirms.push(
            publisher
                .send(ENTRYPOINT, None, n.to_string().as_bytes(), &meta(n))
                .await
                .expect("send"),
        );
    }
    for c in confirms {
        c.await.expect("confirmed");
    }
    assert!(eventually(LIMIT, || log.lock().len() >= 10).await);
    assert!(first.shutdown(Duration::from_secs(2)).await, "handover");
    assert!(
        eventually(LIMIT, || log.lock().len() >= 60).await,
        "{}",
        log.lock().len()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(second.shutdown(Duration::from_secs(2)).await);

    let log = log.lock().clone();
    let numbers: Vec<usize> = log.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        numbers,
        (0..60).collect::<Vec<_>>(),
        "in order, each once: {log:?}"
    );
    let handover = log
        .iter()
        .position(|(r, _)| *r == "b")
        .expect("b took over");
    assert!(handover >= 10, "a alone at first");
    assert!(log[..handover].iter().all(|(r, _)| *r == "a"));
    assert!(
        log[handover..].iter().all(|(r, _)| *r == "b"),
        "one active at a time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_record_keeps_each_records_order_on_its_partition() {
    const PARTITIONS: u16 = 4;
    let ordering = Ordering::ByRecord {
        partitions: PARTITIONS,
    };
    let vhost = Vhost::create();
    let (a, b) = (
        replica(&vhost, ordering).await,
        replica(&vhost, ordering).await,
    );
    assert_eq!(
        a.queue_names(ENTRYPOINT).expect("queues"),
        (0..4)
            .map(|i| format!("sfstream.work.orders.on_order.{i}"))
            .collect::<Vec<_>>()
    );
    // (replica, partition, record, sequence) in handling order.
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut consumers = Vec::new();
    for (queues, name) in [(&a, "a"), (&b, "b")] {
        let log = log.clone();
        let consumer =
            WorkConsumer::start(queues, ENTRYPOINT, ConsumerOptions::default(), move |msg| {
                let log = log.clone();
                async move {
                    // Handlers of a partition overlapping would reorder these.
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    let body = text(msg.body());
                    let (record, seq) = body.split_once('#').expect("record#seq");
                    let entry = (
                        name,
                        msg.partition().expect("partition"),
                        record.to_owned(),
                        seq.parse::<usize>().expect("seq"),
                    );
                    assert_eq!(msg.record_key().as_deref(), Some(record));
                    log.lock().push(entry);
                    Outcome::Done
                }
            })
            .await
            .expect("consume");
        consumers.push(consumer);
    }
    let records: Vec<String> = (0..12).map(|i| format!("001xx00000{i:05}")).collect();
    let publisher = WorkPublisher::start(&a, PublisherOptions::default());
    let mut confirms = Vec::new();
    for seq in 0..10 {
        for record in &records {
            let body = format!("{record}#{seq}");
            confirms.push(
                publisher
                    .send(ENTRYPOINT, Some(record), body.as_bytes(), &meta(seq))
                    .await
                    .expect("send"),
            );
        }
    }
    for c in confirms {
        c.await.expect("confirmed");
    }
    assert!(
        eventually(LIMIT, || log.lock().len() >= 120).await,
        "{}",
        log.lock().len()
    );
    for consumer in consumers {
        assert!(consumer.shutdown(Duration::from_secs(2)).await);
    }

    let log = log.lock().clone();
    assert_eq!(log.len(), 120);
    let mut per_record: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut partitions = BTreeSet::new();
    for (_, partition, record, seq) in &log {
        assert_eq!(
            *partition,
            partition_of(record, PARTITIONS),
            "{record} on its partition"
        );
        per_record.entry(record).or_default().push(*seq);
        partitions.insert(*partition);
    }
    for (record, seqs) in &per_record {
        assert_eq!(*seqs, (0..10).collect::<Vec<_>>(), "{record} in order");
    }
    assert!(
        partitions.len() >= 3,
        "records spread over partitions: {partitions:?}"
    );
    // One active consumer per partition.
    let mut active: BTreeMap<u16, BTreeSet<&str>> = BTreeMap::new();
    for (replica, partition, _, _) in &log {
        active.entry(*partition).or_default().insert(replica);
    }
    assert!(active.values().all(|r| r.len() == 1), "{active:?}");
}
