//! A broker connection loss while publishing (every connection of the
//! test's virtual host closed by `rabbitmqctl`; the shared broker keeps
//! running): every publish is confirmed, none is lost, the order is kept;
//! duplicates are allowed (messages RabbitMQ had queued but not yet
//! confirmed when the connection went are written again).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ENTRYPOINT, eventually, meta, replica, text};
use parking_lot::Mutex;
use sfstream_cluster::queue::{
    ConsumerOptions, Ordering, Outcome, PublisherOptions, WorkConsumer, WorkPublisher,
};
use sfstream_testkit::rabbitmq::Vhost;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_survive_a_connection_loss_confirmed_and_in_order() {
    let vhost = Arc::new(Vhost::create());
    let streamer = replica(&vhost, Ordering::Strict).await;
    let options = PublisherOptions {
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let publisher = Arc::new(WorkPublisher::start(&streamer, options));
    let conn = streamer.connection().clone();
    assert_eq!(conn.generation(), 1);

    let (confirm_tx, mut confirm_rx) = tokio::sync::mpsc::unbounded_channel();
    let p = publisher.clone();
    let c = conn.clone();
    // Publishes in order, a little at a time, until 100 more went out on
    // the reconnected connection (at most 8 s).
    let sender = tokio::spawn(async move {
        let start = Instant::now();
        let mut n = 0usize;
        let mut after_loss = 0usize;
        while after_loss < 100 && start.elapsed() < Duration::from_secs(8) {
            let confirm = p
                .send(ENTRYPOINT, None, n.to_string().as_bytes(), &meta(n))
                .await
                .expect("send");
            confirm_tx.send((n, confirm)).expect("collector");
            n += 1;
            if c.generation() > 1 {
                after_loss += 1;
            }
            if n.is_multiple_of(10) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        n
    });
    let confirmed = Arc::new(Mutex::new(0usize));
    let counted = confirmed.clone();
    let collector = tokio::spawn(async move {
        while let Some((n, confirm)) = confirm_rx.recv().await {
            if let Err(e) = confirm.await {
                panic!("message {n} not confirmed: {e}");
            }
            *counted.lock() += 1;
        }
    });
    assert!(eventually(Duration::from_secs(5), || *confirmed.lock() >= 50).await);
    let v = vhost.clone();
    tokio::task::spawn_blocking(move || v.close_connections())
        .await
        .expect("rabbitmqctl");
    let sent = sender.await.expect("sender");
    collector.await.expect("every publish confirmed");
    assert!(
        conn.generation() >= 2,
        "the connection was lost and re-opened"
    );
    assert_eq!(*confirmed.lock(), sent);
    assert!(sent >= 150, "published across the loss: {sent}");

    // One consumer reads the queue back.
    let consumer_side = replica(&vhost, Ordering::Strict).await;
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let consumer = WorkConsumer::start(
        &consumer_side,
        ENTRYPOINT,
        ConsumerOptions {
            prefetch: 100,
            ..Default::default()
        },
        move |msg| {
            g.lock()
                .push(text(msg.body()).parse::<usize>().expect("number"));
            async { Outcome::Done }
        },
    )
    .await
    .expect("consume");
    let all_there = || got.lock().iter().collect::<BTreeSet<_>>().len() == sent;
    assert!(
        eventually(Duration::from_secs(5), all_there).await,
        "none lost"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(consumer.shutdown(Duration::from_secs(2)).await);

    let got = got.lock().clone();
    let duplicates = got.len() - sent;
    // First occurrences in publishing order: unconfirmed messages were
    // written again in their order.
    let mut firsts = Vec::new();
    let mut seen = BTreeSet::new();
    for n in &got {
        if seen.insert(*n) {
            firsts.push(*n);
        }
    }
    assert_eq!(firsts, (0..sent).collect::<Vec<_>>());
    eprintln!("{sent} published across a connection loss, {duplicates} duplicates");
    let publisher = Arc::into_inner(publisher).expect("last handle");
    assert!(publisher.close(Duration::from_secs(2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_resume_after_a_connection_loss_and_lose_nothing() {
    let vhost = Arc::new(Vhost::create());
    let queues = replica(&vhost, Ordering::None).await;
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let conn = queues.connection().clone();
    let consumer = WorkConsumer::start(
        &queues,
        ENTRYPOINT,
        ConsumerOptions {
            prefetch: 4,
            ..Default::default()
        },
        move |msg| {
            let g = g.clone();
            let conn = conn.clone();
            async move {
                // After 8 messages, hold the ones in hand until the
                // connection is lost: their acks fail, RabbitMQ must
                // deliver them again on the new connection.
                let start = Instant::now();
                while g.lock().len() >= 8
                    && conn.generation() < 2
                    && start.elapsed() < Duration::from_secs(6)
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                g.lock()
                    .push(text(msg.body()).parse::<usize>().expect("number"));
                Outcome::Done
            }
        },
    )
    .await
    .expect("consume");
    let publisher = WorkPublisher::start(&queues, PublisherOptions::default());
    for n in 0..80 {
        publisher
            .send(ENTRYPOINT, None, n.to_string().as_bytes(), &meta(n))
            .await
            .expect("send")
            .await
            .expect("confirmed");
    }
    assert!(eventually(Duration::from_secs(5), || got.lock().len() >= 8).await);
    let v = vhost.clone();
    tokio::task::spawn_blocking(move || v.close_connections())
        .await
        .expect("rabbitmqctl");
    let all = || got.lock().iter().collect::<BTreeSet<_>>().len() == 80;
    assert!(
        eventually(Duration::from_secs(10), all).await,
        "{:?}",
        got.lock()
    );
    assert!(queues.connection().generation() >= 2, "reconnected");
    assert!(consumer.shutdown(Duration::from_secs(2)).await);
    let queue = &queues.queue_names(ENTRYPOINT).expect("queue")[0];
    assert_eq!(
        common::ready(&vhost, queue).await,
        0,
        "all acked in the end"
    );
    assert!(publisher.close(Duration::from_secs(2)).await);
}
