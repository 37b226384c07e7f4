//! Dispatch of a service's Salesforce events: bounded concurrent handler
//! calls with retries and timeouts, the per-subscription window below the
//! contiguous watermark (at most `MAX_IN_FLIGHT`, then taking pauses), and
//! the graceful stop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use futures::stream::BoxStream;
use parking_lot::Mutex;
use sfstream_bayeux::Backoff;

use super::sources::{Clients, SourceError};
use crate::received::Received;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::{BoundHandler, Subscriptions};
use crate::config::{Config, OnFailure};
use crate::delivery::{Ticket, Watermark};
use crate::error::ServiceError;
use crate::handler::EventContext;
use crate::runtime::ServiceContext;
use crate::shutdown::ShutdownSignal;

/// The longest delay between retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// What became of one event.
pub(super) enum Verdict {
    /// Every handler succeeded.
    Handled,
    /// A handler failed for good and the event was recorded as failed (skip).
    Skipped,
    /// A handler failed for good under the stop policy.
    Fatal(ServiceError),
}

/// An event taken and not yet below its channel's watermark.
struct InFlight {
    message: Arc<Received>,
    /// Its place in the window, given back when it passes the watermark.
    _room: OwnedSemaphorePermit,
}

/// The in-flight events of one subscription, at most `MAX_IN_FLIGHT`.
struct Window {
    watermark: Watermark<InFlight>,
    /// The places left in the window.
    room: Arc<Semaphore>,
    /// When a full window was last logged (to log it once per episode, not
    /// per event).
    full_logged: Option<Instant>,
}

/// How often a full window is logged at most.
const FULL_LOG_INTERVAL: Duration = Duration::from_secs(60);

type Windows = Mutex<HashMap<String, Window>>;

pub(super) struct Dispatcher {
    subscriptions: Arc<Subscriptions>,
    /// Cluster mode with work queues: events go to RabbitMQ, not to the
    /// handlers here.
    work: Option<Arc<super::work::WorkOut>>,
    gap_handlers: Arc<Vec<super::gaps::GapHandler>>,
    windows: Arc<Windows>,
    max_in_flight: usize,
    context: ServiceContext,
    config: Arc<Config>,
}

impl Dispatcher {
    pub(super) fn new(
        subscriptions: Subscriptions,
        max_in_flight: usize,
        context: ServiceContext,
        config: Arc<Config>,
    ) -> Self {
        Self {
            subscriptions: Arc::new(subscriptions),
            work: None,
            gap_handlers: Arc::default(),
            windows: Arc::new(Mutex::new(HashMap::new())),
            max_in_flight: max_in_flight.max(1),
            context,
            config,
        }
    }

    /// Calls these with every gap of the stream.
    pub(super) fn gap_handlers(mut self, handlers: Vec<super::gaps::GapHandler>) -> Self {
        self.gap_handlers = Arc::new(handlers);
        self
    }

    /// Publishes the events to the work queues instead of calling the
    /// handlers.
    pub(super) fn work(mut self, out: Arc<super::work::WorkOut>) -> Self {
        self.work = Some(out);
        self
    }

    pub(super) async fn run(
        self,
        clients: Clients,
        mut messages: BoxStream<'static, Result<Received, SourceError>>,
        shutdown: ShutdownSignal,
    ) -> Result<(), ServiceError> {
        // Publishing events is pipelined up to the publisher's window;
        // handlers run up to max_workers at once.
        let concurrency = match self.work {
            Some(_) => super::work::PUBLISHES_IN_FLIGHT,
            None => self.config.max_workers.max(1),
        };
        let workers = Arc::new(Semaphore::new(concurrency));
        let fatal: Arc<Mutex<Option<ServiceError>>> = Arc::new(Mutex::new(None));
        let mut tasks = JoinSet::new();
        let mut ended: Option<ServiceError> = None;
        let mut last_error: Option<String> = None;
        loop {
            // A free worker first, so a slow handler pauses the taking of
            // events (the client buffers up to MAX_PENDING and keeps the
            // long poll alive).
            let permit = tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                permit = workers.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let item = tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                item = messages.next() => item,
            };
            while tasks.try_join_next().is_some() {}
            match item {
                Some(Ok(message)) if message.gap().is_some() => {
                    // Not an event: the gap handlers take it (the client
                    // logged it), with a worker's place.
                    if let Some(gap) = message.gap().cloned() {
                        let handled = super::gaps::handle_gap(
                            self.gap_handlers.clone(),
                            gap,
                            self.context.metrics().clone(),
                            self.config.handler_timeout,
                        );
                        tasks.spawn(async move {
                            let _permit = permit;
                            handled.await;
                        });
                    }
                }
                Some(Ok(message)) => {
                    let key = self
                        .subscriptions
                        .of(message.subscription(), message.channel())
                        .to_string();
                    // A full window pauses the taking of events (of every
                    // channel: they share one stream); the streaming client
                    // then stops polling once MAX_PENDING are buffered.
                    let Some(room) = self.room(&key, &shutdown).await else {
                        break;
                    };
                    if let Some(work) = &self.work {
                        let forwarded = self
                            .forward(
                                work.clone(),
                                key,
                                message,
                                permit,
                                room,
                                &mut tasks,
                                &shutdown,
                            )
                            .await;
                        if !forwarded {
                            break;
                        }
                    } else {
                        self.dispatch(key, message, permit, room, &mut tasks, &fatal);
                    }
                }
                Some(Err(error)) => {
                    if let Some(channel) = error.failed_channel() {
                        // CometD reports it, with the channel's state,
                        // through the SubscriptionFailed event; Pub/Sub
                        // names the topic here.
                        if let Some(channel) = channel {
                            self.context.metrics().set_channel_state(
                                channel,
                                crate::metrics::ChannelState::Failed {
                                    error: error.to_string(),
                                },
                            );
                            tracing::warn!(%channel, %error, "subscription given up: no more events on this channel until a restart; the other channels keep running and /health reports 503");
                        }
                        tracing::debug!(%error, "subscription failed");
                    } else {
                        tracing::error!(%error, "streaming error");
                    }
                    last_error = Some(error.to_string());
                }
                None => {
                    ended = Some(ServiceError::StreamEnded(
                        last_error.unwrap_or_else(|| "the stream closed".into()),
                    ));
                    self.context.shutdown().trigger();
                    break;
                }
            }
        }

        // Stop: no new events; in-flight handlers finish within the timeout.
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, "waiting for in-flight handlers");
        }
        let timeout = self.config.shutdown_timeout;
        let drained = tokio::time::timeout(timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                still_running = tasks.len(),
                ?timeout,
                "handlers still running after SHUTDOWN_TIMEOUT; abandoning them (their events are not committed and will be delivered again)"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        // Commit what passed the watermark, then disconnect.
        clients.flush().await;
        clients.close().await;
        self.context.metrics().set_connected(false);
        drop(messages);
        let fatal = fatal.lock().take();
        match fatal.or(ended) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// A place in the window of `key`, waiting while it is full; `None`
    /// when the service stops first.
    async fn room(&self, key: &str, shutdown: &ShutdownSignal) -> Option<OwnedSemaphorePermit> {
        let room = {
            let mut windows = self.windows.lock();
            let window = windows.entry(key.to_string()).or_insert_with(|| Window {
                watermark: Watermark::new(),
                room: Arc::new(Semaphore::new(self.max_in_flight)),
                full_logged: None,
            });
            if let Ok(permit) = window.room.clone().try_acquire_owned() {
                return Some(permit);
            }
            if window
                .full_logged
                .is_none_or(|at| at.elapsed() >= FULL_LOG_INTERVAL)
            {
                window.full_logged = Some(Instant::now());
                let oldest = window
                    .watermark
                    .oldest_pending()
                    .and_then(|e| e.message.replay_text());
                tracing::warn!(
                    channel = %key, max_in_flight = self.max_in_flight, oldest_replay_id = ?oldest,
                    "MAX_IN_FLIGHT events waiting behind an unfinished one: taking no more events until it finishes or HANDLER_TIMEOUT ends it"
                );
            }
            window.room.clone()
        };
        tokio::select! {
            biased;
            _ = shutdown.wait() => None,
            permit = room.acquire_owned() => permit.ok(),
        }
    }

    fn dispatch(
        &self,
        key: String,
        message: Received,
        permit: OwnedSemaphorePermit,
        room: OwnedSemaphorePermit,
        tasks: &mut JoinSet<()>,
        fatal: &Arc<Mutex<Option<ServiceError>>>,
    ) {
        let metrics = self.context.metrics().channel(&key);
        metrics.received.increment(1);
        let handlers = self.subscriptions.handlers(&key);
        let message = Arc::new(message);
        let Some(ticket) = self.push(&key, &message, room, &metrics) else {
            return;
        };
        if handlers.is_empty() {
            tracing::warn!(channel = %key, replay_id = ?message.replay_text(), "no handler for this channel; skipping the event");
        }
        let windows = self.windows.clone();
        let context = self.context.clone();
        let config = self.config.clone();
        let fatal = fatal.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let outcomes = join_all(handlers.into_iter().map(|handler| {
                let event = Arc::new(EventContext {
                    message: message.clone(),
                    binding: handler.binding.clone(),
                    service: context.clone(),
                    method_name: handler.method_name.clone(),
                    worker: std::sync::OnceLock::new(),
                });
                call_with_policy(handler, event, &config, &metrics)
            }))
            .await;
            let mut skipped = false;
            for outcome in outcomes {
                match outcome {
                    Verdict::Handled => {}
                    Verdict::Skipped => skipped = true,
                    Verdict::Fatal(error) => {
                        metrics.failed.increment(1);
                        fatal.lock().get_or_insert(error);
                        context.shutdown().trigger();
                        // Never completed: the watermark stays below it.
                        return;
                    }
                }
            }
            if skipped {
                metrics.failed.increment(1);
            } else {
                metrics.handled.increment(1);
                metrics
                    .activity
                    .handled(message.created(), chrono::Utc::now());
            }
            complete(&windows, &key, ticket, &metrics, context.metrics());
        });
    }
}

impl Dispatcher {
    /// Puts an event in its subscription's window.
    fn push(
        &self,
        key: &str,
        message: &Arc<Received>,
        room: OwnedSemaphorePermit,
        metrics: &crate::metrics::ChannelMetrics,
    ) -> Option<Ticket> {
        let mut windows = self.windows.lock();
        // `room` made the window; it is never removed.
        let window = windows.get_mut(key)?;
        let ticket = window.watermark.push(InFlight {
            message: message.clone(),
            _room: room,
        });
        metrics
            .watermark_lag
            .set(window.watermark.in_flight() as f64);
        Some(ticket)
    }

    /// Cluster mode with work queues: hands the event to the publisher (in
    /// stream order) and commits it once RabbitMQ confirmed every message
    /// of it. `false` when the service stops meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        work: Arc<super::work::WorkOut>,
        key: String,
        message: Received,
        permit: OwnedSemaphorePermit,
        room: OwnedSemaphorePermit,
        tasks: &mut JoinSet<()>,
        shutdown: &ShutdownSignal,
    ) -> bool {
        let metrics = self.context.metrics().channel(&key);
        metrics.received.increment(1);
        let message = Arc::new(message);
        let Some(ticket) = self.push(&key, &message, room, &metrics) else {
            return true;
        };
        let sent = tokio::select! {
            biased;
            _ = shutdown.wait() => return false,
            sent = work.send(&key, &message) => sent,
        };
        let windows = self.windows.clone();
        let service = self.context.metrics().clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _permit = permit;
            if work.confirmed(&message, sent, &shutdown).await {
                complete(&windows, &key, ticket, &metrics, &service);
            }
        });
        true
    }
}

/// Marks an event done and commits the new watermark, if it moved (the
/// events that passed it give their places in the window back).
fn complete(
    windows: &Windows,
    key: &str,
    ticket: Ticket,
    metrics: &crate::metrics::ChannelMetrics,
    service: &crate::metrics::ServiceMetrics,
) {
    let committed = {
        let mut windows = windows.lock();
        let Some(window) = windows.get_mut(key) else {
            return;
        };
        let committed = window.watermark.complete(ticket);
        metrics
            .watermark_lag
            .set(window.watermark.in_flight() as f64);
        committed
    };
    if let Some(event) = committed {
        event.message.ack();
        if let Some(created) = event.message.created() {
            let age = sfstream_salesforce::replay::marker_age(created, chrono::Utc::now());
            service.set_marker_age(key, age);
        }
    }
}

/// Calls a handler, retrying with exponential backoff; applies the
/// failure policy once the retries are spent.
pub(super) async fn call_with_policy(
    handler: BoundHandler,
    event: Arc<EventContext>,
    config: &Config,
    metrics: &crate::metrics::ChannelMetrics,
) -> Verdict {
    let backoff = Backoff {
        initial: config.retry_delay,
        max: MAX_RETRY_DELAY,
    };
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let started = Instant::now();
        // A call still running at the timeout is dropped (cancelled at its
        // next await) and counts as a retryable failure, so one stuck call
        // cannot hold the watermark for ever.
        let result =
            match tokio::time::timeout(config.handler_timeout, (handler.handler)(event.clone()))
                .await
            {
                Ok(result) => result,
                Err(_) => {
                    metrics.timeouts.increment(1);
                    Err(crate::handler::HandlerError {
                        message: format!(
                            "the handler did not finish within {:?} (HANDLER_TIMEOUT)",
                            config.handler_timeout
                        ),
                        retryable: true,
                    })
                }
            };
        metrics
            .handler_seconds
            .record(started.elapsed().as_secs_f64());
        let error = match result {
            Ok(()) => return Verdict::Handled,
            Err(error) => error,
        };
        let channel = event.channel();
        let replay_id = event.replay_id();
        if error.retryable && attempts <= config.retries {
            let delay = backoff.delay(attempts);
            tracing::warn!(
                handler = %handler.name, %channel, ?replay_id, attempt = attempts,
                retry_in = ?delay, error = %error, "handler failed; retrying"
            );
            tokio::time::sleep(delay).await;
            continue;
        }
        metrics.activity.failed(&error.message, chrono::Utc::now());
        return match config.on_failure {
            OnFailure::Skip => {
                tracing::error!(
                    handler = %handler.name, %channel, ?replay_id, attempts, error = %error,
                    "handler failed; event recorded as failed and skipped (ON_FAILURE: skip)"
                );
                Verdict::Skipped
            }
            _ => {
                tracing::error!(
                    handler = %handler.name, %channel, ?replay_id, attempts, error = %error,
                    "handler failed; stopping the service (ON_FAILURE: stop)"
                );
                Verdict::Fatal(ServiceError::HandlerFailed {
                    handler: handler.name.to_string(),
                    channel: channel.to_string(),
                    replay_id,
                    attempts,
                    error: error.message,
                })
            }
        };
    }
}
