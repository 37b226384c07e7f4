//! Every replica's side: consume an entrypoint's queue(s) with a prefetch,
//! run the handler, and turn its [`Outcome`] into ack, in-place retry,
//! requeue, dead-lettering or stopping.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;
use sfstream_nameko::amqp::lapin::BasicProperties;
use sfstream_nameko::amqp::lapin::message::Delivery;
use sfstream_nameko::amqp::lapin::options::{BasicAckOptions, BasicNackOptions};
use sfstream_nameko::amqp::lapin::types::FieldTable;
use sfstream_nameko::amqp::{ConsumerHandle, DeliveryFn, spawn_consumer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::headers::{text_header, time_header};
use super::sequencer::{Sequencer, Ticket};
use super::{
    HEADER_CHANNEL, HEADER_CREATED_AT, HEADER_PUBLISHED_AT, HEADER_RECORD_KEY, HEADER_REPLAY_ID,
    Ordering, WorkError, WorkQueues,
};

/// What became of a message, as the handler decides (the retry, skip and
/// stop policy is the caller's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled: the message is acked.
    Done,
    /// Call the handler again with the same message after this delay
    /// (its [`attempt`](WorkMessage::attempt) grows), keeping the message
    /// (and, on ordered queues, the order). If the consumer stops meanwhile
    /// the message goes back to the queue.
    Retry(Duration),
    /// Give the message back to RabbitMQ at once (`nack`, requeue): it is
    /// delivered again, maybe to another replica, with
    /// [`redelivered`](WorkMessage::redelivered) set. On ordered queues the
    /// messages after it may be handled before it comes back.
    Requeue,
    /// Give up on it: `nack` without requeue, so RabbitMQ dead-letters it
    /// to the entrypoint's dead-letter queue, headers and all.
    Skip,
    /// Stop consuming the entrypoint without acking this message; it goes
    /// back to the queue when the consumer's channels close, to be handled
    /// by another replica (or this one, once consuming again).
    Stop,
}

/// Why a [`WorkConsumer`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// [`WorkConsumer::shutdown`] was called or the consumer was dropped.
    Shutdown,
    /// A handler returned [`Outcome::Stop`].
    Handler,
    /// A handler panicked (treated as [`Outcome::Stop`]: neither lost nor
    /// retried in a loop).
    Panic,
}

/// Options of a [`WorkConsumer`].
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Messages delivered and not yet acked, per queue (`basic.qos`). With
    /// [`Ordering::None`] this is also how many handlers run at once; on
    /// ordered queues handlers run one at a time and the prefetch only saves
    /// round trips.
    pub prefetch: u16,
    /// How long in-flight handlers may finish when a handler asked to stop.
    pub stop_timeout: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            prefetch: 10,
            stop_timeout: Duration::from_secs(30),
        }
    }
}

/// A message as a handler sees it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkMessage {
    data: Arc<MessageData>,
    attempt: u32,
}

#[derive(Debug)]
struct MessageData {
    body: Vec<u8>,
    entrypoint: String,
    queue: String,
    partition: Option<u16>,
    redelivered: bool,
    properties: BasicProperties,
}

impl WorkMessage {
    /// The body, as published.
    pub fn body(&self) -> &[u8] {
        &self.data.body
    }

    /// The entrypoint.
    pub fn entrypoint(&self) -> &str {
        &self.data.entrypoint
    }

    /// The queue it came from.
    pub fn queue(&self) -> &str {
        &self.data.queue
    }

    /// The partition, with [`Ordering::ByRecord`].
    pub fn partition(&self) -> Option<u16> {
        self.data.partition
    }

    /// 1 for the first call of the handler with this delivery, then 2, 3…
    /// after each [`Outcome::Retry`]. Starts again at 1 when RabbitMQ
    /// delivers the message again (see [`redelivered`](Self::redelivered)).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether RabbitMQ delivered it before (to this or another replica)
    /// without an ack.
    pub fn redelivered(&self) -> bool {
        self.data.redelivered
    }

    /// The Salesforce channel of the event.
    pub fn channel(&self) -> Option<String> {
        text_header(self.headers(), HEADER_CHANNEL)
    }

    /// The event's replay id (text).
    pub fn replay_id(&self) -> Option<String> {
        text_header(self.headers(), HEADER_REPLAY_ID)
    }

    /// The record key the publisher partitioned by, if any.
    pub fn record_key(&self) -> Option<String> {
        text_header(self.headers(), HEADER_RECORD_KEY)
    }

    /// When Salesforce created the event, if the publisher knew.
    pub fn created_at(&self) -> Option<SystemTime> {
        time_header(self.headers(), HEADER_CREATED_AT)
    }

    /// When the streamer published it.
    pub fn published_at(&self) -> Option<SystemTime> {
        time_header(self.headers(), HEADER_PUBLISHED_AT)
    }

    /// The handler lag: time from the event's creation until now (zero if
    /// the clocks disagree).
    pub fn lag(&self) -> Option<Duration> {
        let created = self.created_at()?;
        Some(
            SystemTime::now()
                .duration_since(created)
                .unwrap_or_default(),
        )
    }

    /// All headers (the `sfstream-*` ones, the publisher's own, and
    /// RabbitMQ's `x-death` on dead-lettered messages).
    pub fn headers(&self) -> Option<&FieldTable> {
        self.data.properties.headers().as_ref()
    }

    /// All AMQP properties.
    pub fn properties(&self) -> &BasicProperties {
        &self.data.properties
    }
}

type HandlerFn = Arc<dyn Fn(WorkMessage) -> BoxFuture<'static, Outcome> + Send + Sync>;

struct Shared {
    handler: HandlerFn,
    entrypoint: String,
    ordered: bool,
    stop_timeout: Duration,
    /// Set once stopping began: no handler call starts after that.
    stopping: watch::Sender<Option<StopCause>>,
    /// Set once every channel is closed.
    stopped: watch::Sender<Option<StopCause>>,
}

impl Shared {
    fn request_stop(&self, cause: StopCause) {
        self.stopping.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(cause);
                true
            } else {
                false
            }
        });
    }

    fn is_stopping(&self) -> bool {
        self.stopping.borrow().is_some()
    }
}

/// Consumes one entrypoint's queue(s) (one per partition) and runs a
/// handler for each message; see [`Outcome`] for what becomes of it.
///
/// ```no_run
/// use std::time::Duration;
/// use sfstream_cluster::queue::{ConsumerOptions, Outcome, WorkConsumer, WorkQueues};
///
/// # async fn demo(queues: WorkQueues) -> Result<(), sfstream_cluster::queue::WorkError> {
/// let consumer = WorkConsumer::start(&queues, "on_order", ConsumerOptions::default(), |msg| async move {
///     match serde_handle(msg.body()) {
///         Ok(()) => Outcome::Done,
///         Err(_) if msg.attempt() < 5 => Outcome::Retry(Duration::from_secs(1)),
///         Err(_) => Outcome::Skip,
///     }
/// })
/// .await?;
/// consumer.shutdown(Duration::from_secs(10)).await;
/// # Ok(()) }
/// # fn serde_handle(_: &[u8]) -> Result<(), ()> { Ok(()) }
/// ```
pub struct WorkConsumer {
    shared: Arc<Shared>,
    control: watch::Sender<Option<Duration>>,
    task: JoinHandle<bool>,
}

impl std::fmt::Debug for WorkConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkConsumer")
            .field("entrypoint", &self.shared.entrypoint)
            .field("ordered", &self.shared.ordered)
            .finish()
    }
}

impl WorkConsumer {
    /// Starts consuming `entrypoint`'s queue(s) on the connection of
    /// `queues`. Returns once every queue is consumed, or with the first
    /// error.
    pub async fn start<F, Fut>(
        queues: &WorkQueues,
        entrypoint: &str,
        options: ConsumerOptions,
        handler: F,
    ) -> Result<Self, WorkError>
    where
        F: Fn(WorkMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let declarations = queues.topology().declarations(entrypoint)?.to_vec();
        let ordering = queues.ordering();
        let shared = Arc::new(Shared {
            handler: Arc::new(move |m| handler(m).boxed()),
            entrypoint: entrypoint.to_owned(),
            ordered: ordering.is_ordered(),
            stop_timeout: options.stop_timeout,
            stopping: watch::channel(None).0,
            stopped: watch::channel(None).0,
        });
        let mut handles = Vec::with_capacity(declarations.len());
        for (index, declaration) in declarations.into_iter().enumerate() {
            let partition = match ordering {
                Ordering::ByRecord { .. } => u16::try_from(index).ok(),
                _ => None,
            };
            let queue = Arc::new((declaration.name.clone(), partition));
            let sequencer = shared.ordered.then(|| Arc::new(Sequencer::new()));
            let s = shared.clone();
            let on_delivery: DeliveryFn = Arc::new(move |delivery| {
                // Taken here, in delivery order, not in the spawned task.
                let ticket = sequencer.as_ref().map(Sequencer::ticket);
                process(s.clone(), queue.clone(), delivery, ticket).boxed()
            });
            let started = spawn_consumer(
                queues.connection().clone(),
                declaration,
                options.prefetch,
                on_delivery,
            )
            .await;
            match started {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    for handle in handles {
                        handle.shutdown(Duration::ZERO).await;
                    }
                    return Err(e.into());
                }
            }
        }
        let (control, control_rx) = watch::channel(None);
        let task = tokio::spawn(supervise(handles, shared.clone(), control_rx));
        Ok(Self {
            shared,
            control,
            task,
        })
    }

    /// The entrypoint.
    pub fn entrypoint(&self) -> &str {
        &self.shared.entrypoint
    }

    /// Waits until the consumer has stopped (every channel closed, the
    /// messages it did not ack back in the queue), and tells why.
    pub async fn stopped(&self) -> StopCause {
        let mut rx = self.shared.stopped.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(cause) => cause.unwrap_or(StopCause::Shutdown),
            Err(_) => StopCause::Shutdown,
        }
    }

    /// Whether it stopped or is stopping.
    pub fn is_stopping(&self) -> bool {
        self.shared.is_stopping()
    }

    /// Stops: no handler call starts any more, the running ones get up to
    /// `timeout` to finish and ack, then the channels close (messages not
    /// acked go back to the queue). Returns whether all handlers finished
    /// in time (or, if a handler had asked to stop, whether that stop did).
    pub async fn shutdown(self, timeout: Duration) -> bool {
        self.control.send_replace(Some(timeout));
        let mut task = self.task;
        // Closing the channels is bounded by the handlers' timeout plus the
        // broker's answers; do not wait for an unresponsive broker forever.
        match tokio::time::timeout(timeout + Duration::from_secs(10), &mut task).await {
            Ok(result) => result.unwrap_or(false),
            Err(_) => {
                task.abort();
                false
            }
        }
    }
}

async fn supervise(
    handles: Vec<ConsumerHandle>,
    shared: Arc<Shared>,
    mut control: watch::Receiver<Option<Duration>>,
) -> bool {
    let mut stopping = shared.stopping.subscribe();
    let timeout = tokio::select! {
        changed = control.changed() => {
            shared.request_stop(StopCause::Shutdown);
            match changed {
                Ok(()) => control.borrow().unwrap_or_default(),
                Err(_) => Duration::ZERO,
            }
        }
        _ = stopping.wait_for(Option::is_some) => shared.stop_timeout,
    };
    let cause = (*shared.stopping.borrow()).unwrap_or(StopCause::Shutdown);
    tracing::info!(entrypoint = %shared.entrypoint, ?cause, "work consumer stopping");
    let ordered = shared.ordered;
    let closing = handles.into_iter().map(|handle| async move {
        if ordered {
            // No basic.cancel first: the next single active consumer must
            // not start before our unacked messages are back in the queue.
            handle.close(timeout).await
        } else {
            handle.shutdown(timeout).await
        }
    });
    let all_done = futures::future::join_all(closing)
        .await
        .into_iter()
        .all(|done| done);
    shared.stopped.send_replace(Some(cause));
    tracing::info!(entrypoint = %shared.entrypoint, all_done, "work consumer stopped");
    all_done
}

async fn process(
    shared: Arc<Shared>,
    queue: Arc<(String, Option<u16>)>,
    mut delivery: Delivery,
    ticket: Option<Ticket>,
) {
    if let Some(ticket) = &ticket {
        let mut stopping = shared.stopping.subscribe();
        tokio::select! {
            _ = ticket.turn() => {}
            _ = stopping.wait_for(Option::is_some) => return,
        }
    }
    // Not acked: RabbitMQ delivers it again once the channel is closed (or
    // was lost already).
    if shared.is_stopping() || delivery.acker.poisoned() {
        return;
    }
    let acker = delivery.acker.clone();
    let data = Arc::new(MessageData {
        body: std::mem::take(&mut delivery.data),
        entrypoint: shared.entrypoint.clone(),
        queue: queue.0.clone(),
        partition: queue.1,
        redelivered: delivery.redelivered,
        properties: delivery.properties.clone(),
    });
    let mut attempt = 1u32;
    loop {
        let message = WorkMessage {
            data: data.clone(),
            attempt,
        };
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| (shared.handler)(message)));
        let outcome = match call {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        let outcome = outcome.unwrap_or_else(|_| {
            tracing::error!(entrypoint = %shared.entrypoint, queue = %queue.0, "work handler panicked; stopping the consumer");
            shared.request_stop(StopCause::Panic);
            Outcome::Stop
        });
        let settled = match outcome {
            Outcome::Done => acker.ack(BasicAckOptions::default()).await,
            Outcome::Skip => {
                acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: false,
                    })
                    .await
            }
            Outcome::Requeue => {
                acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await
            }
            Outcome::Stop => {
                shared.request_stop(StopCause::Handler);
                return;
            }
            Outcome::Retry(after) => {
                let mut stopping = shared.stopping.subscribe();
                tokio::select! {
                    _ = tokio::time::sleep(after) => {}
                    _ = stopping.wait_for(Option::is_some) => return,
                }
                if acker.poisoned() {
                    return;
                }
                attempt = attempt.saturating_add(1);
                continue;
            }
        };
        match settled {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(entrypoint = %shared.entrypoint, ?outcome, "channel lost before the outcome was sent; RabbitMQ delivers the message again")
            }
            Err(e) => {
                tracing::warn!(entrypoint = %shared.entrypoint, ?outcome, error = %e, "sending the outcome failed; RabbitMQ delivers the message again")
            }
        }
        return;
    }
}
