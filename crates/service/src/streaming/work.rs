//! Cluster mode with work queues (`CLUSTER:` and `AMQP_URI`): the replica
//! that streams a channel publishes each event to a durable RabbitMQ queue
//! per entrypoint and moves the channel's replay marker once RabbitMQ has
//! confirmed it; every replica consumes those queues and acks an event
//! after its handler succeeded. The retry/stop/skip policy is the one of
//! local dispatch ([`call_with_policy`]): a skipped event is dead-lettered,
//! a stop leaves it in the queue for another replica and stops this one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;
use sfstream_bayeux::Backoff;
use sfstream_cluster::queue::{
    Confirm, ConsumerOptions, EventMeta, Ordering, Outcome, PublisherOptions, WorkConsumer,
    WorkError, WorkMessage, WorkPublisher, WorkQueues,
};
use sfstream_nameko::Connection;
use sfstream_nameko::amqp::lapin::options::QueueDeclareOptions;
use sfstream_nameko::amqp::lapin::types::{AMQPValue, FieldTable, LongString};
use sfstream_salesforce::replay::channel_key;

use super::Subscriptions;
use super::dispatch::{self, Verdict};
use crate::config::{Config, WorkQueueConfig};
use crate::error::ServiceError;
use crate::handler::EventContext;
use crate::metrics::ServiceMetrics;
use crate::received::{Queued, Received};
use crate::runtime::ServiceContext;
use crate::shutdown::ShutdownSignal;

/// Header: the subscription (a topic's filter included) of a work message.
const HEADER_SUBSCRIPTION: &str = "sfstream-subscription";
/// Header: `cometd` or `pubsub`, the transport the event came over.
const HEADER_TRANSPORT: &str = "sfstream-transport";

/// How often the queue depths are read.
const DEPTH_INTERVAL: Duration = Duration::from_secs(5);

/// Events published and not yet confirmed by RabbitMQ, all channels
/// together (the publisher's window); more pauses the taking of events.
pub(super) const PUBLISHES_IN_FLIGHT: usize = sfstream_cluster::queue::DEFAULT_WINDOW;

/// The longest wait between publishing attempts of one event.
const MAX_PUBLISH_RETRY: Duration = Duration::from_secs(10);

/// The work queue name of each handler: `<method>@<topic>`, and `#<n>`
/// after the first when one method handles one topic twice. Stable across
/// replicas and restarts of the same code.
pub(super) fn entrypoint_names(subscriptions: &Subscriptions) -> Vec<(String, usize, String)> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut names = Vec::new();
    for subscription in &subscriptions.order {
        for (index, handler) in subscriptions.handlers(subscription).iter().enumerate() {
            let base = format!("{}@{}", handler.method_name, channel_key(subscription));
            let count = seen.entry(base.clone()).or_insert(0);
            *count += 1;
            let name = if *count == 1 {
                base
            } else {
                format!("{base}#{count}")
            };
            names.push((subscription.clone(), index, name));
        }
    }
    names
}

/// The streaming replica's side: publishes each event to its handlers'
/// queues.
pub(super) struct WorkOut {
    publisher: WorkPublisher,
    /// Subscription -> the queues of its handlers.
    routes: HashMap<String, Vec<Arc<Route>>>,
    by_record: bool,
}

/// One handler's queue and its counters (registered once, not per event).
struct Route {
    /// The entrypoint name (`<method>@<topic>`).
    entrypoint: String,
    /// `sfstream_queue_published_total{queue}`.
    published: metrics::Counter,
    /// `sfstream_queue_publish_retries_total{queue}`.
    retries: metrics::Counter,
}

/// One event handed to the publisher: its headers, record key, and the
/// confirmation of each handler's message.
pub(super) struct Sent {
    meta: EventMeta,
    key: Option<String>,
    confirms: Vec<(Arc<Route>, Result<Confirm, WorkError>)>,
}

impl WorkOut {
    /// Hands the event to the publisher, one message per handler, in the
    /// order events arrive (waits while the publisher's window is full).
    pub(super) async fn send(&self, subscription: &str, message: &Received) -> Sent {
        let (meta, key) = self.meta(subscription, message);
        let mut confirms = Vec::new();
        let body = message.data().get().as_bytes();
        for route in self.routes.get(subscription).into_iter().flatten() {
            let confirm = self
                .publisher
                .send(&route.entrypoint, key.as_deref(), body, &meta)
                .await;
            confirms.push((route.clone(), confirm));
        }
        Sent {
            meta,
            key,
            confirms,
        }
    }

    /// Waits for the confirmations of `sent`, publishing again with
    /// backoff what RabbitMQ did not confirm, until all are confirmed
    /// (`true`) or the service stops (`false`: the marker stays before the
    /// event, which is streamed again after a restart or failover).
    pub(super) async fn confirmed(
        &self,
        message: &Received,
        sent: Sent,
        shutdown: &ShutdownSignal,
    ) -> bool {
        let Sent {
            meta,
            key,
            confirms,
        } = sent;
        let backoff = Backoff {
            initial: Duration::from_millis(200),
            max: MAX_PUBLISH_RETRY,
        };
        for (route, confirm) in confirms {
            let entrypoint = &route.entrypoint;
            let mut result = match confirm {
                Ok(confirm) => confirm.await,
                Err(error) => Err(error),
            };
            let mut attempt = 0;
            while let Err(error) = result {
                attempt += 1;
                let delay = backoff.delay(attempt);
                tracing::warn!(%entrypoint, replay_id = ?meta.replay_id, %error, attempt, retry_in = ?delay, "RabbitMQ did not take the event; publishing it again (the replay marker waits)");
                route.retries.increment(1);
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => return false,
                    _ = tokio::time::sleep(delay) => {}
                }
                let body = message.data().get().as_bytes();
                result = tokio::select! {
                    biased;
                    _ = shutdown.wait() => return false,
                    r = self.publisher.publish(entrypoint, key.as_deref(), body, &meta) => r,
                };
            }
            route.published.increment(1);
        }
        true
    }

    fn meta(&self, subscription: &str, message: &Received) -> (EventMeta, Option<String>) {
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        let transport = if message.is_cometd() {
            "cometd"
        } else {
            "pubsub"
        };
        let mut meta = EventMeta::new(message.channel(), message.replay_text().unwrap_or_default())
            .header(HEADER_SUBSCRIPTION, text(subscription))
            .header(HEADER_TRANSPORT, text(transport));
        if let Some(created) = message.created()
            && let Ok(ms) = u64::try_from(created.timestamp_millis())
        {
            meta = meta.created_at(UNIX_EPOCH + Duration::from_millis(ms));
        }
        let key = if self.by_record {
            record_key(message.data())
        } else {
            None
        };
        (meta, key)
    }

    /// Stops taking events and waits up to `timeout` for the confirmations
    /// in flight.
    pub(super) async fn close(self, timeout: Duration) -> bool {
        self.publisher.close(timeout).await
    }
}

/// The record an event is about, for [`Ordering::ByRecord`]: a change
/// event's first record id, a PushTopic notification's `sobject.Id`.
fn record_key(data: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        payload: Option<Payload>,
        sobject: Option<Sobject>,
    }
    #[derive(Deserialize)]
    struct Payload {
        #[serde(rename = "ChangeEventHeader")]
        header: Option<Header>,
    }
    #[derive(Deserialize)]
    struct Header {
        #[serde(rename = "recordIds", default)]
        record_ids: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Sobject {
        #[serde(rename = "Id")]
        id: Option<String>,
    }
    let probe: Probe = serde_json::from_str(data.get()).ok()?;
    probe
        .payload
        .and_then(|p| p.header)
        .and_then(|h| h.record_ids.into_iter().next())
        .or_else(|| probe.sobject.and_then(|s| s.id))
}

/// The event a work message carries, as handlers read it; `None` when the
/// body is not JSON (it is then dead-lettered).
fn queued(message: &WorkMessage) -> Option<Received> {
    let data = std::str::from_utf8(message.body()).ok()?;
    let data = RawValue::from_string(data.to_owned()).ok()?;
    let header = |name: &str| header_text(message.headers(), name);
    let channel = message.channel().unwrap_or_default();
    let subscription = header(HEADER_SUBSCRIPTION).unwrap_or_else(|| channel.clone());
    let created = message
        .created_at()
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| chrono::DateTime::from_timestamp_millis(i64::try_from(d.as_millis()).ok()?));
    Some(Received::Queued(Queued {
        channel,
        subscription,
        data,
        replay: message.replay_id().filter(|r| !r.is_empty()),
        cometd: header(HEADER_TRANSPORT).as_deref() != Some("pubsub"),
        created,
    }))
}

fn header_text(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The work queues of a service, declared, with its publisher and every
/// replica's consumers.
pub(super) struct Work {
    pub(super) out: Arc<WorkOut>,
    consumers: Vec<WorkConsumer>,
    /// A handler's failure under `ON_FAILURE: stop`.
    fatal: Arc<Mutex<Option<ServiceError>>>,
    depths: tokio::task::JoinHandle<()>,
    connection: Connection,
}

impl Work {
    /// Connects to `AMQP_URI`, declares the queues of every handler and
    /// starts consuming them.
    pub(super) async fn start(
        subscriptions: &Subscriptions,
        settings: WorkQueueConfig,
        context: &ServiceContext,
        config: &Arc<Config>,
    ) -> Result<Work, ServiceError> {
        let failed = |message: String| ServiceError::Cluster(message);
        let uri = config
            .amqp_uri
            .as_deref()
            .ok_or_else(|| failed("CLUSTER work queues need AMQP_URI".into()))?;
        let connection = Connection::connect(uri).await.map_err(|e| {
            failed(format!(
                "work queues: cannot connect to {}: {e}",
                sfstream_nameko::redact_uri(uri)
            ))
        })?;
        let names = entrypoint_names(subscriptions);
        let entrypoints: Vec<String> = names.iter().map(|(_, _, name)| name.clone()).collect();
        let queues =
            WorkQueues::declare(&connection, context.name(), &entrypoints, settings.ordering)
                .await
                .map_err(|e| failed(format!("declaring the work queues: {e}")))?;
        let mut routes: HashMap<String, Vec<Arc<Route>>> = HashMap::new();
        for (subscription, _, name) in &names {
            let queue = [("queue", name.clone())];
            let metrics = context.metrics();
            routes
                .entry(subscription.clone())
                .or_default()
                .push(Arc::new(Route {
                    entrypoint: name.clone(),
                    published: metrics.counter("sfstream_queue_published_total", &queue),
                    retries: metrics.counter("sfstream_queue_publish_retries_total", &queue),
                }));
        }
        let out = Arc::new(WorkOut {
            publisher: WorkPublisher::start(&queues, PublisherOptions::default()),
            routes,
            by_record: matches!(settings.ordering, Ordering::ByRecord { .. }),
        });
        let fatal: Arc<Mutex<Option<ServiceError>>> = Arc::default();
        let mut consumers = Vec::new();
        for (subscription, index, name) in &names {
            let Some(handler) = subscriptions.handlers(subscription).get(*index).cloned() else {
                continue;
            };
            let options = ConsumerOptions {
                prefetch: settings.prefetch,
                stop_timeout: config.shutdown_timeout,
            };
            let handling = Arc::new(Handling {
                metrics: context.metrics().channel(subscription),
                lag: context.metrics().histogram(
                    "sfstream_handler_lag_seconds",
                    &[("channel", subscription.clone())],
                ),
                handler,
                context: context.clone(),
                config: config.clone(),
                fatal: fatal.clone(),
            });
            let started = WorkConsumer::start(&queues, name, options, move |message| {
                let handling = handling.clone();
                async move { handling.handle(message).await }
            })
            .await;
            match started {
                Ok(consumer) => consumers.push(consumer),
                Err(error) => {
                    for consumer in consumers {
                        consumer.shutdown(Duration::ZERO).await;
                    }
                    return Err(failed(format!("consuming the work queue {name}: {error}")));
                }
            }
        }
        let depths = tokio::spawn(watch_depths(queues, context.metrics().clone()));
        tracing::info!(
            queues = entrypoints.len(),
            ordering = ?settings.ordering,
            prefetch = settings.prefetch,
            "cluster mode: handlers spread over RabbitMQ work queues"
        );
        Ok(Work {
            out,
            consumers,
            fatal,
            depths,
            connection,
        })
    }

    /// Stops consuming (running handlers get `timeout` to finish and ack;
    /// what is not acked goes back to the queue), closes the publisher and
    /// the connection; returns a handler's failure under `ON_FAILURE: stop`.
    pub(super) async fn stop(self, timeout: Duration) -> Option<ServiceError> {
        self.depths.abort();
        futures::future::join_all(self.consumers.into_iter().map(|c| c.shutdown(timeout))).await;
        if let Ok(out) = Arc::try_unwrap(self.out) {
            out.close(timeout).await;
        }
        self.connection.close().await;
        self.fatal.lock().take()
    }
}

/// What a handler's consumer needs for each message (made once).
struct Handling {
    handler: super::BoundHandler,
    context: ServiceContext,
    config: Arc<Config>,
    /// A handler's failure under `ON_FAILURE: stop`.
    fatal: Arc<Mutex<Option<ServiceError>>>,
    /// The subscription's metrics.
    metrics: crate::metrics::ChannelMetrics,
    /// `sfstream_handler_lag_seconds{channel}`.
    lag: metrics::Histogram,
}

impl Handling {
    /// One work message through the handler, under the service's retry and
    /// failure policy.
    async fn handle(&self, message: WorkMessage) -> Outcome {
        let Some(received) = queued(&message) else {
            tracing::error!(queue = %message.queue(), "a work message that is not a JSON event; dead-lettering it");
            return Outcome::Skip;
        };
        if let Some(lag) = message.lag() {
            self.lag.record(lag.as_secs_f64());
        }
        let created = received.created();
        let event = Arc::new(EventContext {
            message: Arc::new(received),
            binding: self.handler.binding.clone(),
            service: self.context.clone(),
            method_name: self.handler.method_name.clone(),
            worker: std::sync::OnceLock::new(),
        });
        let metrics = &self.metrics;
        match dispatch::call_with_policy(self.handler.clone(), event, &self.config, metrics).await {
            Verdict::Handled => {
                metrics.handled.increment(1);
                metrics.activity.handled(created, chrono::Utc::now());
                Outcome::Done
            }
            Verdict::Skipped => {
                metrics.failed.increment(1);
                Outcome::Skip
            }
            Verdict::Fatal(error) => {
                metrics.failed.increment(1);
                self.fatal.lock().get_or_insert(error);
                self.context.shutdown().trigger();
                Outcome::Stop
            }
        }
    }
}

/// Keeps `sfstream_queue_depth{queue}` (ready messages of every work and
/// dead-letter queue) current.
async fn watch_depths(queues: WorkQueues, metrics: Arc<ServiceMetrics>) {
    let mut names: Vec<String> = Vec::new();
    for entrypoint in queues.entrypoints() {
        names.extend(queues.queue_names(entrypoint).unwrap_or_default());
        names.extend(queues.dead_letter_queue(entrypoint));
    }
    let mut tick = tokio::time::interval(DEPTH_INTERVAL);
    loop {
        tick.tick().await;
        let Ok(channel) = queues.connection().channel().await else {
            continue;
        };
        for name in &names {
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            let declared = tokio::time::timeout(
                Duration::from_secs(5),
                channel.queue_declare(name.as_str().into(), options, FieldTable::default()),
            )
            .await;
            match declared {
                Ok(Ok(queue)) => metrics
                    .gauge("sfstream_queue_depth", &[("queue", name.clone())])
                    .set(f64::from(queue.message_count())),
                _ => break,
            }
        }
        let _ = channel.close(200, "OK".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_of_change_events_and_notifications() {
        let raw = |s: &str| RawValue::from_string(s.to_string()).expect("json");
        let cdc = raw(
            r#"{"schema":"s","payload":{"ChangeEventHeader":{"recordIds":["001A","001B"]},"Name":"x"},"event":{"replayId":1}}"#,
        );
        assert_eq!(record_key(&cdc).as_deref(), Some("001A"));
        let notification = raw(r#"{"event":{"replayId":2},"sobject":{"Id":"003X","Name":"y"}}"#);
        assert_eq!(record_key(&notification).as_deref(), Some("003X"));
        let platform = raw(r#"{"payload":{"Amount__c":1},"event":{"replayId":3}}"#);
        assert_eq!(record_key(&platform), None);
    }
}
