//! The Salesforce streaming entrypoints at run time: declaration,
//! subscription, bounded concurrent dispatch, retries, the contiguous
//! watermark, and graceful stop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::{BoxFuture, join_all};
use parking_lot::Mutex;
use sfstream_bayeux::ClientEvent;
use sfstream_salesforce::replay::{MemoryStore, RedisStore, ReplayStore, channel_key, open_store};
use sfstream_salesforce::rest::SalesforceClient;
use sfstream_salesforce::{Delivery, StreamEvent, StreamMessage, StreamingClient};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::{Config, OnFailure, ReplayStoreConfig, SalesforceConfig};
use crate::delivery::{Ticket, Watermark};
use crate::entrypoints::{Binding, Entrypoint};
use crate::error::ServiceError;
use crate::handler::{BoxedHandler, EventContext};
use crate::metrics::ServiceMetrics;
use crate::service::{Entrypoints, RunningEntrypoints, ServiceContext};
use crate::shutdown::ShutdownSignal;

/// The longest delay between retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// A handler bound to one entrypoint, as registered.
pub(crate) struct Route {
    pub(crate) entrypoint: Entrypoint,
    pub(crate) handler: BoxedHandler,
    pub(crate) handler_name: String,
    /// The handler's method name in Nameko call ids.
    pub(crate) method_name: String,
}

/// A handler bound to a resolved entrypoint.
#[derive(Clone)]
struct BoundHandler {
    binding: Arc<Binding>,
    handler: BoxedHandler,
    name: Arc<str>,
    method_name: Arc<str>,
}

/// Every Salesforce entrypoint of a service.
pub(crate) struct StreamingEntrypoints {
    routes: Vec<Route>,
    store: Option<Arc<dyn ReplayStore>>,
}

impl StreamingEntrypoints {
    pub(crate) fn new(routes: Vec<Route>, store: Option<Arc<dyn ReplayStore>>) -> Self {
        Self { routes, store }
    }
}

impl Entrypoints for StreamingEntrypoints {
    fn describe(&self) -> String {
        "Salesforce streaming".into()
    }

    fn start(
        self: Box<Self>,
        context: ServiceContext,
        shutdown: ShutdownSignal,
    ) -> BoxFuture<'static, Result<RunningEntrypoints, ServiceError>> {
        Box::pin(async move { start(self.routes, self.store, context, shutdown).await })
    }
}

async fn start(
    routes: Vec<Route>,
    store: Option<Arc<dyn ReplayStore>>,
    context: ServiceContext,
    shutdown: ShutdownSignal,
) -> Result<RunningEntrypoints, ServiceError> {
    let config = context.config().clone();
    let section = config
        .salesforce
        .clone()
        .ok_or(ServiceError::NoSalesforceConfig)?;
    let client = context
        .salesforce()
        .cloned()
        .ok_or(ServiceError::NoSalesforceConfig)?;

    // 1. Declare every topic, once per name, before anything streams.
    let bound = declare(&client, routes).await?;
    let mut channels: Vec<String> = Vec::new();
    let mut table: HashMap<String, Vec<BoundHandler>> = HashMap::new();
    for handler in bound {
        let channel = handler.binding.channel.clone();
        if !channels.contains(&channel) {
            channels.push(channel.clone());
        }
        table
            .entry(channel_key(&channel).to_string())
            .or_default()
            .push(handler);
    }

    // 2. The replay store.
    let store = match store {
        Some(store) => store,
        None => replay_store(&section).await?,
    };

    // 3. Connect, with commit-on-acknowledge, sharing the REST session.
    let metrics = context.metrics().clone();
    let events_metrics = metrics.clone();
    let handshakes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (streaming, messages) = StreamingClient::builder(client.authenticator().clone())
        .replay_store(store)
        .default_replay(section.default_replay)
        .replay_fallback(section.replay_fallback)
        .delivery(Delivery::Acknowledged)
        .max_pending(section.max_pending)
        .on_event(move |event| on_stream_event(event, &events_metrics, &handshakes))
        .connect()
        .await
        .map_err(ServiceError::Streaming)?;

    // 4. Subscribe every channel once.
    for channel in &channels {
        if let Err(source) = streaming.subscribe(channel).await {
            streaming.close().await;
            return Err(ServiceError::Subscribe {
                channel: channel.clone(),
                source,
            });
        }
        tracing::info!(%channel, "subscribed");
    }
    metrics.set_connected(true);

    let dispatcher = Dispatcher {
        table: Arc::new(table),
        windows: Arc::new(Mutex::new(HashMap::new())),
        context,
        config,
    };
    Ok(Box::pin(dispatcher.run(streaming, messages, shutdown)))
}

/// Keeps the connection metrics in step (the streaming client logs the events).
fn on_stream_event(
    event: &StreamEvent,
    metrics: &ServiceMetrics,
    handshakes: &std::sync::atomic::AtomicU64,
) {
    use std::sync::atomic::Ordering;
    match event {
        StreamEvent::Connection(ClientEvent::Handshaken { .. }) => {
            metrics.set_connected(true);
            if handshakes.fetch_add(1, Ordering::Relaxed) > 0 {
                metrics.reconnected();
            }
        }
        StreamEvent::Connection(ClientEvent::Reconnected) => {
            metrics.set_connected(true);
            metrics.reconnected();
        }
        StreamEvent::Connection(
            ClientEvent::ConnectionFailed { .. }
            | ClientEvent::ServerDisconnected
            | ClientEvent::Closed { .. },
        ) => metrics.set_connected(false),
        _ => {}
    }
}

/// Declares the topics of the routes and resolves their bindings.
async fn declare(
    client: &SalesforceClient,
    routes: Vec<Route>,
) -> Result<Vec<BoundHandler>, ServiceError> {
    // Topic name -> (declaring entrypoint, its declaration, channel).
    let mut declared: HashMap<String, (Entrypoint, String)> = HashMap::new();
    let mut bound = Vec::with_capacity(routes.len());
    for route in routes {
        let entrypoint = route.entrypoint;
        let described = entrypoint.to_string();
        let conflict = |topic: String, first: &Entrypoint| ServiceError::ConflictingTopics {
            topic,
            first: first.to_string(),
            second: described.clone(),
        };
        let channel = match &entrypoint {
            Entrypoint::Notification(n) if n.query.is_some() => {
                let Some(spec) = entrypoint.push_topic() else {
                    continue;
                };
                match declared.get(&n.name) {
                    Some((first, _)) if first != &entrypoint => {
                        return Err(conflict(n.name.clone(), first));
                    }
                    Some((_, channel)) => channel.clone(),
                    None => {
                        let outcome = client.declare_topic(&spec).await.map_err(|source| {
                            ServiceError::Declaration {
                                entrypoint: described.clone(),
                                source,
                            }
                        })?;
                        tracing::info!(entrypoint = %described, ?outcome, "PushTopic declared");
                        declared.insert(n.name.clone(), (entrypoint.clone(), spec.channel()));
                        spec.channel()
                    }
                }
            }
            Entrypoint::Sobject(s) if s.declare => {
                let name = s.topic.topic_name();
                match declared.get(&name) {
                    Some((first, _)) if first != &entrypoint => {
                        return Err(conflict(name, first));
                    }
                    Some((_, channel)) => channel.clone(),
                    None => {
                        let topic =
                            client
                                .declare_sobject_topic(&s.topic)
                                .await
                                .map_err(|source| ServiceError::Declaration {
                                    entrypoint: described.clone(),
                                    source,
                                })?;
                        tracing::info!(entrypoint = %described, query = %topic.query, outcome = ?topic.outcome, "PushTopic declared");
                        declared.insert(name, (entrypoint.clone(), topic.channel.clone()));
                        topic.channel
                    }
                }
            }
            other => other.channel(),
        };
        bound.push(BoundHandler {
            binding: Arc::new(Binding::new(entrypoint, channel)),
            handler: route.handler,
            name: route.handler_name.into(),
            method_name: route.method_name.into(),
        });
    }
    Ok(bound)
}

async fn replay_store(section: &SalesforceConfig) -> Result<Arc<dyn ReplayStore>, ServiceError> {
    Ok(match &section.replay_store {
        ReplayStoreConfig::Memory => Arc::new(MemoryStore::new()),
        ReplayStoreConfig::Redis { url, ttl } => Arc::new(
            RedisStore::connect(url, *ttl)
                .await
                .map_err(ServiceError::ReplayStore)?,
        ),
        ReplayStoreConfig::Uri(uri) => open_store(uri).await.map_err(ServiceError::ReplayStore)?,
    })
}

/// What became of one event.
enum Outcome {
    /// Every handler succeeded.
    Handled,
    /// A handler failed for good and the event was recorded as failed (skip).
    Skipped,
    /// A handler failed for good under the stop policy.
    Fatal(ServiceError),
}

struct Dispatcher {
    table: Arc<HashMap<String, Vec<BoundHandler>>>,
    windows: Arc<Mutex<HashMap<String, Watermark<Arc<StreamMessage>>>>>,
    context: ServiceContext,
    config: Arc<Config>,
}

impl Dispatcher {
    async fn run(
        self,
        streaming: StreamingClient,
        mut messages: sfstream_salesforce::StreamMessages,
        shutdown: ShutdownSignal,
    ) -> Result<(), ServiceError> {
        let workers = Arc::new(Semaphore::new(self.config.max_workers.max(1)));
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
                Some(Ok(message)) => self.dispatch(message, permit, &mut tasks, &fatal),
                Some(Err(error)) => {
                    tracing::error!(%error, "streaming error");
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
        streaming.flush().await;
        streaming.close().await;
        self.context.metrics().set_connected(false);
        drop(messages);
        let fatal = fatal.lock().take();
        match fatal.or(ended) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn dispatch(
        &self,
        message: StreamMessage,
        permit: tokio::sync::OwnedSemaphorePermit,
        tasks: &mut JoinSet<()>,
        fatal: &Arc<Mutex<Option<ServiceError>>>,
    ) {
        let key = channel_key(&message.channel).to_string();
        let metrics = self.context.metrics().channel(&key);
        metrics.received.increment(1);
        let handlers = self.table.get(&key).cloned().unwrap_or_default();
        let message = Arc::new(message);
        let ticket = {
            let mut windows = self.windows.lock();
            let window = windows.entry(key.clone()).or_default();
            let ticket = window.push(message.clone());
            metrics.watermark_lag.set(window.in_flight() as f64);
            ticket
        };
        if handlers.is_empty() {
            tracing::warn!(channel = %key, replay_id = ?message.replay_id(), "no handler for this channel; skipping the event");
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
                    Outcome::Handled => {}
                    Outcome::Skipped => skipped = true,
                    Outcome::Fatal(error) => {
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
            }
            complete(&windows, &key, ticket, &metrics);
        });
    }
}

/// Marks an event done and commits the new watermark, if it moved.
fn complete(
    windows: &Mutex<HashMap<String, Watermark<Arc<StreamMessage>>>>,
    key: &str,
    ticket: Ticket,
    metrics: &crate::metrics::ChannelMetrics,
) {
    let committed = {
        let mut windows = windows.lock();
        let Some(window) = windows.get_mut(key) else {
            return;
        };
        let committed = window.complete(ticket);
        metrics.watermark_lag.set(window.in_flight() as f64);
        committed
    };
    if let Some(message) = committed {
        message.ack();
    }
}

/// Calls a handler, retrying with exponential backoff; applies the
/// failure policy once the retries are spent.
async fn call_with_policy(
    handler: BoundHandler,
    event: Arc<EventContext>,
    config: &Config,
    metrics: &crate::metrics::ChannelMetrics,
) -> Outcome {
    let mut delay = config.retry_delay;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let started = Instant::now();
        let result = (handler.handler)(event.clone()).await;
        metrics
            .handler_seconds
            .record(started.elapsed().as_secs_f64());
        let error = match result {
            Ok(()) => return Outcome::Handled,
            Err(error) => error,
        };
        let channel = event.channel();
        let replay_id = event.replay_id();
        if error.retryable && attempts <= config.retries {
            tracing::warn!(
                handler = %handler.name, %channel, ?replay_id, attempt = attempts,
                retry_in = ?delay, error = %error, "handler failed; retrying"
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
            continue;
        }
        return match config.on_failure {
            OnFailure::Skip => {
                tracing::error!(
                    handler = %handler.name, %channel, ?replay_id, attempts, error = %error,
                    "handler failed; event recorded as failed and skipped (ON_FAILURE: skip)"
                );
                Outcome::Skipped
            }
            _ => {
                tracing::error!(
                    handler = %handler.name, %channel, ?replay_id, attempts, error = %error,
                    "handler failed; stopping the service (ON_FAILURE: stop)"
                );
                Outcome::Fatal(ServiceError::HandlerFailed {
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
