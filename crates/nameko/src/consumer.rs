//! Supervised consumers: declare the topology, consume, and on channel or
//! connection loss re-open, redeclare and consume again with backoff.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::topology::QueueDeclaration;
use crate::{Connection, Error};

pub(crate) type DeliveryFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
pub(crate) type DeliveryFn = Arc<dyn Fn(Delivery) -> DeliveryFuture + Send + Sync + 'static>;

/// A running consumer (RPC server, event handler or reply listener).
///
/// [`shutdown`](Self::shutdown) stops it cleanly; dropping the handle stops
/// consuming without waiting for in-flight handlers (whose unacknowledged
/// messages are then redelivered by the broker).
#[derive(Debug)]
pub struct ConsumerHandle {
    queue: String,
    stop: watch::Sender<Option<Duration>>,
    task: Option<JoinHandle<bool>>,
}

impl ConsumerHandle {
    /// The name of the consumed queue.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// Stops consuming (basic.cancel), waits up to `timeout` for in-flight
    /// handlers to finish (and ack), then closes the channel. Returns whether
    /// all in-flight handlers finished in time.
    pub async fn shutdown(mut self, timeout: Duration) -> bool {
        self.stop.send_replace(Some(timeout));
        match self.task.take() {
            Some(task) => task.await.unwrap_or(false),
            None => true,
        }
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.stop.send_replace(Some(Duration::ZERO));
        }
    }
}

async fn setup(
    conn: &Connection,
    queue: &QueueDeclaration,
    prefetch: u16,
) -> Result<(lapin::Channel, lapin::Consumer), Error> {
    let channel = conn.channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    queue.declare(&channel).await?;
    let consumer = channel
        .basic_consume(
            queue.name.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((channel, consumer))
}

/// Starts a supervised consumer. Returns once the first declaration and
/// basic.consume succeeded, or with the error of that first attempt.
pub(crate) async fn spawn_consumer(
    conn: Connection,
    queue: QueueDeclaration,
    prefetch: u16,
    handler: DeliveryFn,
) -> Result<ConsumerHandle, Error> {
    let (stop, stop_rx) = watch::channel(None);
    let (ready_tx, ready_rx) = oneshot::channel();
    let name = queue.name.clone();
    let task = tokio::spawn(run(conn, queue, prefetch, handler, stop_rx, ready_tx));
    match ready_rx.await {
        Ok(Ok(())) => Ok(ConsumerHandle {
            queue: name,
            stop,
            task: Some(task),
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Closed),
    }
}

enum Exit {
    Stop(Duration),
    Lost,
}

async fn run(
    conn: Connection,
    queue: QueueDeclaration,
    prefetch: u16,
    handler: DeliveryFn,
    mut stop_rx: watch::Receiver<Option<Duration>>,
    ready_tx: oneshot::Sender<Result<(), Error>>,
) -> bool {
    let mut ready = Some(ready_tx);
    let mut inflight: JoinSet<()> = JoinSet::new();
    let mut closed = conn.closed_signal();
    let mut attempt = 0u32;
    let stop_requested = |rx: &watch::Receiver<Option<Duration>>| *rx.borrow();
    loop {
        if let Some(timeout) = stop_requested(&stop_rx) {
            return drain(&mut inflight, timeout).await;
        }
        let established = tokio::select! {
            r = setup(&conn, &queue, prefetch) => r,
            _ = stop_rx.changed() => continue,
        };
        let (channel, mut consumer) = match established {
            Ok(ok) => ok,
            Err(e) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Err(e));
                    return false;
                }
                if matches!(e, Error::Closed) {
                    return drain(&mut inflight, Duration::ZERO).await;
                }
                attempt = attempt.saturating_add(1);
                let delay = conn.backoff().delay(attempt);
                tracing::warn!(queue = %queue.name, error = %e, ?delay, "consumer setup failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop_rx.changed() => {}
                }
                continue;
            }
        };
        attempt = 0;
        if let Some(tx) = ready.take() {
            let _ = tx.send(Ok(()));
        }
        tracing::info!(queue = %queue.name, generation = conn.generation(), "consuming");
        let exit = loop {
            tokio::select! {
                changed = stop_rx.changed() => {
                    let t = if changed.is_err() { Duration::ZERO } else { stop_requested(&stop_rx).unwrap_or(Duration::ZERO) };
                    if changed.is_err() || stop_requested(&stop_rx).is_some() {
                        break Exit::Stop(t);
                    }
                }
                _ = closed.wait_for(|c| *c) => break Exit::Stop(Duration::ZERO),
                Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        inflight.spawn(handler(delivery));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(queue = %queue.name, error = %e, "consumer lost");
                        break Exit::Lost;
                    }
                    None => {
                        tracing::warn!(queue = %queue.name, "consumer cancelled or channel closed");
                        break Exit::Lost;
                    }
                },
            }
        };
        match exit {
            Exit::Stop(timeout) => {
                if channel.status().connected() {
                    let _ = channel
                        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                        .await;
                }
                let all_done = drain(&mut inflight, timeout).await;
                if channel.status().connected() {
                    let _ = channel.close(200, "OK".into()).await;
                }
                tracing::info!(queue = %queue.name, all_done, "consumer stopped");
                return all_done;
            }
            Exit::Lost => {
                if channel.status().connected() {
                    let _ = channel.close(200, "OK".into()).await;
                }
                // Handlers of the lost channel cannot ack any more: the broker
                // redelivers their messages. Let them finish in the background.
                tokio::select! {
                    _ = tokio::time::sleep(conn.backoff().delay(1)) => {}
                    _ = stop_rx.changed() => {}
                }
            }
        }
    }
}

async fn drain(inflight: &mut JoinSet<()>, timeout: Duration) -> bool {
    let all = async { while inflight.join_next().await.is_some() {} };
    if tokio::time::timeout(timeout, all).await.is_ok() {
        true
    } else {
        inflight.abort_all();
        false
    }
}
