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

/// The task run for one delivery (it acks, nacks or rejects it itself).
pub type DeliveryFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Makes the task of each delivery. It is called in delivery order, on the
/// consumer's task, before the returned future is spawned: work done in the
/// call itself (not in the future) sees the deliveries in order.
pub type DeliveryFn = Arc<dyn Fn(Delivery) -> DeliveryFuture + Send + Sync + 'static>;

/// How a consumer is asked to stop.
#[derive(Debug, Clone, Copy)]
struct StopRequest {
    timeout: Duration,
    cancel: bool,
}

/// A running consumer (RPC server, event handler, reply listener, or any
/// consumer started with [`spawn_consumer`]).
///
/// [`shutdown`](Self::shutdown) stops it cleanly; dropping the handle stops
/// consuming without waiting for in-flight handlers (whose unacknowledged
/// messages are then redelivered by the broker).
#[derive(Debug)]
pub struct ConsumerHandle {
    queue: String,
    stop: watch::Sender<Option<StopRequest>>,
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
    pub async fn shutdown(self, timeout: Duration) -> bool {
        self.stop_with(StopRequest {
            timeout,
            cancel: true,
        })
        .await
    }

    /// Like [`shutdown`](Self::shutdown) but without basic.cancel: the
    /// consumer stays registered while in-flight handlers finish, and closing
    /// the channel then requeues the unacknowledged messages and removes the
    /// consumer in one step. With `x-single-active-consumer` this keeps the
    /// queue's order across a handover: the next consumer cannot become
    /// active before the messages this one did not ack are back in the queue.
    /// Handlers should not start new work once this is called (deliveries
    /// still arrive until the channel closes).
    pub async fn close(self, timeout: Duration) -> bool {
        self.stop_with(StopRequest {
            timeout,
            cancel: false,
        })
        .await
    }

    async fn stop_with(mut self, request: StopRequest) -> bool {
        self.stop.send_replace(Some(request));
        match self.task.take() {
            Some(task) => task.await.unwrap_or(false),
            None => true,
        }
    }
}

impl Drop for ConsumerHandle {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.stop.send_replace(Some(StopRequest {
                timeout: Duration::ZERO,
                cancel: true,
            }));
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

/// Starts a supervised consumer of `queue`: opens a channel with
/// `basic.qos(prefetch)` (0: unlimited), declares the queue (and its
/// exchange and binding), consumes, and spawns `handler(delivery)` for each
/// delivery. After a channel or connection loss it re-opens, redeclares and
/// consumes again with backoff; the tasks of the lost channel finish in the
/// background (their acks fail, the broker redelivers their messages).
///
/// Returns once the first declaration and basic.consume succeeded, or with
/// the error of that first attempt.
pub async fn spawn_consumer(
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
    Stop(StopRequest),
    Lost,
}

async fn run(
    conn: Connection,
    queue: QueueDeclaration,
    prefetch: u16,
    handler: DeliveryFn,
    mut stop_rx: watch::Receiver<Option<StopRequest>>,
    ready_tx: oneshot::Sender<Result<(), Error>>,
) -> bool {
    let mut ready = Some(ready_tx);
    let mut inflight: JoinSet<()> = JoinSet::new();
    let mut closed = conn.closed_signal();
    let mut attempt = 0u32;
    let stop_requested = |rx: &watch::Receiver<Option<StopRequest>>| *rx.borrow();
    loop {
        if let Some(request) = stop_requested(&stop_rx) {
            return drain(&mut inflight, request.timeout).await;
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
                    let now = StopRequest { timeout: Duration::ZERO, cancel: true };
                    if changed.is_err() {
                        break Exit::Stop(now);
                    }
                    if let Some(request) = stop_requested(&stop_rx) {
                        break Exit::Stop(request);
                    }
                }
                _ = closed.wait_for(|c| *c) => break Exit::Stop(StopRequest { timeout: Duration::ZERO, cancel: true }),
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
            Exit::Stop(request) => {
                if request.cancel && channel.status().connected() {
                    let _ = channel
                        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                        .await;
                }
                let all_done = drain(&mut inflight, request.timeout).await;
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
