//! The streamer's side: persistent, mandatory publishing with publisher
//! confirms, pipelined in a bounded window, in order, across reconnections.
//!
//! One writer task owns the channel: messages are written in the order they
//! were handed to it, and after a channel or connection loss every message
//! not yet confirmed is written again, in the same order, on a new channel.
//! (Nameko's publisher retries each message on its own, with jittered
//! backoff, which would reorder a pipeline after a reconnection.)

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use sfstream_nameko::amqp::lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use sfstream_nameko::amqp::lapin::{self, BasicProperties, Channel, Confirmation};
use sfstream_nameko::amqp::{Connection, ExchangeDeclaration};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use super::{EventMeta, Ordering, Topology, WorkError, WorkQueues, partition_of};

/// Default window: messages written but not yet confirmed.
pub const DEFAULT_WINDOW: usize = 1000;

/// Options of a [`WorkPublisher`].
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Most messages written and not yet confirmed; more publishes wait.
    pub window: usize,
    /// Time limit of one publish: waiting for room in the window, writing
    /// (again after reconnections) and the confirmation.
    pub timeout: Duration,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            timeout: Duration::from_secs(30),
        }
    }
}

type Reply = oneshot::Sender<Result<(), WorkError>>;

struct Job {
    routing_key: String,
    body: Vec<u8>,
    properties: BasicProperties,
    reply: Reply,
}

/// Publishes events to the work queues (see the [module](super)
/// documentation). Cheap to share behind an `Arc`; [`close`](Self::close)
/// waits for the messages in flight.
///
/// ```no_run
/// use std::time::SystemTime;
/// use sfstream_cluster::queue::{EventMeta, Ordering, PublisherOptions, WorkPublisher, WorkQueues};
///
/// # async fn demo(conn: sfstream_nameko::Connection) -> Result<(), sfstream_cluster::queue::WorkError> {
/// let queues = WorkQueues::declare(&conn, "orders", &["on_order".into()], Ordering::ByRecord { partitions: 8 }).await?;
/// let publisher = WorkPublisher::start(&queues, PublisherOptions::default());
/// let meta = EventMeta::new("/data/OrderChangeEvent", "42").created_at(SystemTime::now());
/// publisher.publish("on_order", Some("801xx0000000001"), br#"{"x":1}"#, &meta).await?;
/// // Confirmed by RabbitMQ: now the replay marker may move past 42.
/// # Ok(()) }
/// ```
pub struct WorkPublisher {
    tx: mpsc::Sender<Job>,
    topology: Arc<Topology>,
    round_robin: AtomicUsize,
    timeout: Duration,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for WorkPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkPublisher")
            .field("service", &self.topology.service)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The confirmation of one message handed to [`WorkPublisher::send`]:
/// resolves to `Ok(())` once RabbitMQ confirmed it, or to an error (at the
/// latest when the publisher's time limit has passed).
#[must_use = "a message is only known to be queued once its Confirm resolved to Ok"]
pub struct Confirm {
    reply: oneshot::Receiver<Result<(), WorkError>>,
    deadline: Pin<Box<Sleep>>,
}

impl std::fmt::Debug for Confirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirm").finish_non_exhaustive()
    }
}

impl Future for Confirm {
    type Output = Result<(), WorkError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(r) = Pin::new(&mut self.reply).poll(cx) {
            return Poll::Ready(r.unwrap_or(Err(WorkError::Closed)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(WorkError::Timeout));
        }
        Poll::Pending
    }
}

impl WorkPublisher {
    /// Starts the writer task on the connection of `queues`. It opens its
    /// channel (in confirm mode, declaring the queues again) on the first
    /// publish and after each loss.
    pub fn start(queues: &WorkQueues, options: PublisherOptions) -> Self {
        let window = options.window.max(1);
        // The inbox only has to cover the writer's turn-around; the window
        // is what bounds the messages in flight.
        let (tx, rx) = mpsc::channel(window.min(256));
        let writer = Writer {
            conn: queues.connection().clone(),
            topology: queues.topology().clone(),
            window,
        };
        Self {
            tx,
            topology: queues.topology().clone(),
            round_robin: AtomicUsize::new(0),
            timeout: options.timeout,
            task: tokio::spawn(writer.run(rx)),
        }
    }

    /// Publishes one event to `entrypoint`'s queue and returns once RabbitMQ
    /// confirmed it (persistent message, mandatory), within the time limit.
    ///
    /// With [`Ordering::ByRecord`], `record_key` picks the partition
    /// ([`partition_of`]); events without a key go round-robin (they have no
    /// order to keep). Publishes are written in the order they are made;
    /// for order between concurrent publishes use [`send`](Self::send).
    pub async fn publish(
        &self,
        entrypoint: &str,
        record_key: Option<&str>,
        body: &[u8],
        meta: &EventMeta,
    ) -> Result<(), WorkError> {
        self.send(entrypoint, record_key, body, meta).await?.await
    }

    /// Hands one event to the writer and returns its [`Confirm`] without
    /// waiting for it: many messages in flight, written in the order of the
    /// `send` calls. Waits while the window is full (within the time limit).
    ///
    /// A streamer sends its events in order and moves its replay marker as
    /// their confirmations arrive, in the same order.
    pub async fn send(
        &self,
        entrypoint: &str,
        record_key: Option<&str>,
        body: &[u8],
        meta: &EventMeta,
    ) -> Result<Confirm, WorkError> {
        let routing_key = self.route(entrypoint, record_key)?;
        let deadline = Instant::now() + self.timeout;
        let (reply, confirm) = oneshot::channel();
        let job = Job {
            routing_key,
            body: body.to_vec(),
            properties: meta.properties(entrypoint, record_key),
            reply,
        };
        match tokio::time::timeout_at(deadline, self.tx.send(job)).await {
            Ok(Ok(())) => Ok(Confirm {
                reply: confirm,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
            }),
            Ok(Err(_)) => Err(WorkError::Closed),
            Err(_) => Err(WorkError::Timeout),
        }
    }

    fn route(&self, entrypoint: &str, record_key: Option<&str>) -> Result<String, WorkError> {
        let queues = self.topology.declarations(entrypoint)?;
        let index = match (self.topology.ordering(), record_key) {
            (Ordering::ByRecord { partitions }, Some(key)) => {
                usize::from(partition_of(key, partitions))
            }
            (Ordering::ByRecord { .. }, None) => {
                self.round_robin.fetch_add(1, AtomicOrdering::Relaxed) % queues.len()
            }
            _ => 0,
        };
        queues
            .get(index)
            .map(|q| q.routing_key.clone())
            .ok_or_else(|| WorkError::UnknownEntrypoint(entrypoint.to_owned()))
    }

    /// Stops taking messages and waits up to `timeout` for those in flight
    /// to be confirmed. Returns whether the writer finished in time.
    pub async fn close(self, timeout: Duration) -> bool {
        let mut task = self.task;
        drop(self.tx);
        match tokio::time::timeout(timeout, &mut task).await {
            Ok(_) => true,
            Err(_) => {
                task.abort();
                false
            }
        }
    }
}

type ConfirmFuture = BoxFuture<'static, (u64, lapin::Result<Confirmation>)>;

struct Writer {
    conn: Connection,
    topology: Arc<Topology>,
    window: usize,
}

impl Writer {
    async fn run(self, mut inbox: mpsc::Receiver<Job>) {
        let exchange = self.exchange();
        // Written and not yet confirmed, by writing order.
        let mut pending: BTreeMap<u64, Job> = BTreeMap::new();
        let mut confirms: FuturesUnordered<ConfirmFuture> = FuturesUnordered::new();
        let mut channel: Option<Channel> = None;
        let mut next_seq = 0u64;
        let mut attempt = 0u32;
        // Whether a channel was open before (what is pending then was
        // written once already).
        let mut reopened = false;
        let mut inbox_open = true;
        let mut closed = self.conn.closed_signal();
        loop {
            if channel.is_none() {
                // Callers that gave up (time limit) need no copy any more.
                pending.retain(|_, job| !job.reply.is_closed());
                if !inbox_open && pending.is_empty() {
                    return;
                }
                if pending.is_empty() && inbox_open {
                    // Connect lazily: wait for something to publish.
                    match inbox.recv().await {
                        Some(job) => {
                            pending.insert(next_seq, job);
                            next_seq += 1;
                        }
                        None => return,
                    }
                }
                match self.open(&exchange).await {
                    Ok(ch) => {
                        confirms = FuturesUnordered::new();
                        match write_all(&ch, &exchange, &pending, &mut confirms, reopened).await {
                            Ok(()) => {
                                attempt = 0;
                                reopened = true;
                                channel = Some(ch);
                            }
                            Err(e) => {
                                tracing::warn!(service = %self.topology.service, error = %e, "rewriting unconfirmed messages failed");
                            }
                        }
                    }
                    Err(WorkError::Amqp(sfstream_nameko::Error::Closed)) => {
                        fail_all(&mut pending, &mut inbox);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(service = %self.topology.service, error = %e, "work publisher channel failed");
                    }
                }
                if channel.is_none() {
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = tokio::time::sleep(self.conn.backoff().delay(attempt)) => {}
                        _ = closed.wait_for(|c| *c) => {}
                    }
                    continue;
                }
            }
            let Some(ch) = channel.as_ref() else { continue };
            tokio::select! {
                job = inbox.recv(), if inbox_open && pending.len() < self.window => match job {
                    None => inbox_open = false,
                    Some(job) => {
                        let seq = next_seq;
                        next_seq += 1;
                        let written = write(ch, &exchange, &job).await;
                        pending.insert(seq, job);
                        match written {
                            Ok(confirm) => confirms.push(Box::pin(async move { (seq, confirm.await) })),
                            Err(e) => {
                                tracing::warn!(service = %self.topology.service, error = %e, "work publish failed; reconnecting");
                                channel = None;
                            }
                        }
                    }
                },
                Some((seq, result)) = confirms.next() => match result {
                    Ok(confirmation) => {
                        if let Some(job) = pending.remove(&seq) {
                            let _ = job.reply.send(outcome(confirmation, &job.routing_key));
                        }
                    }
                    Err(e) => {
                        // The channel is gone: everything still pending is
                        // written again, in order, on the next one, except
                        // what was confirmed before the loss.
                        while let Some(Some((seq, result))) = confirms.next().now_or_never() {
                            if let Ok(confirmation) = result
                                && let Some(job) = pending.remove(&seq)
                            {
                                let _ = job.reply.send(outcome(confirmation, &job.routing_key));
                            }
                        }
                        tracing::warn!(service = %self.topology.service, error = %e, unconfirmed = pending.len(), "work publisher channel lost; reconnecting");
                        channel = None;
                    }
                },
                else => {
                    if !inbox_open && pending.is_empty() {
                        return;
                    }
                    // Pending messages with no confirmation to wait for:
                    // only after a failed write; start over on a new channel.
                    channel = None;
                }
            }
        }
    }

    fn exchange(&self) -> ExchangeDeclaration {
        let any = self.topology.queues.values().flatten().next();
        any.map(|q| q.exchange.clone()).unwrap_or_else(|| {
            ExchangeDeclaration::new(
                super::work_exchange_name(&self.topology.service),
                lapin::ExchangeKind::Direct,
            )
        })
    }

    async fn open(&self, exchange: &ExchangeDeclaration) -> Result<Channel, WorkError> {
        let channel = self.conn.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(sfstream_nameko::Error::from)?;
        // Declared again so that a broker that lost them (not durable
        // storage, a reset) gets them back before the first message.
        exchange.declare(&channel).await?;
        self.topology.declare_on(&channel).await?;
        Ok(channel)
    }
}

async fn write(
    channel: &Channel,
    exchange: &ExchangeDeclaration,
    job: &Job,
) -> Result<lapin::PublisherConfirm, lapin::Error> {
    channel
        .basic_publish(
            exchange.name.as_str().into(),
            job.routing_key.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            &job.body,
            job.properties.clone(),
        )
        .await
}

async fn write_all(
    channel: &Channel,
    exchange: &ExchangeDeclaration,
    pending: &BTreeMap<u64, Job>,
    confirms: &mut FuturesUnordered<ConfirmFuture>,
    again: bool,
) -> Result<(), lapin::Error> {
    for (&seq, job) in pending {
        let confirm = write(channel, exchange, job).await?;
        confirms.push(Box::pin(async move { (seq, confirm.await) }));
    }
    if again && !pending.is_empty() {
        tracing::info!(
            rewritten = pending.len(),
            "unconfirmed work messages written again"
        );
    }
    Ok(())
}

fn outcome(confirmation: Confirmation, routing_key: &str) -> Result<(), WorkError> {
    match confirmation {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(WorkError::Unroutable {
            routing_key: routing_key.to_owned(),
            reply_text: returned.reply_text.as_str().to_owned(),
        }),
        Confirmation::Nack(_) => Err(WorkError::Nacked),
    }
}

fn fail_all(pending: &mut BTreeMap<u64, Job>, inbox: &mut mpsc::Receiver<Job>) {
    inbox.close();
    for (_, job) in std::mem::take(pending) {
        let _ = job.reply.send(Err(WorkError::Closed));
    }
    while let Ok(job) = inbox.try_recv() {
        let _ = job.reply.send(Err(WorkError::Closed));
    }
}
