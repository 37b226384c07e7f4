//! The Salesforce streaming entrypoints at run time: declaration,
//! subscription, bounded concurrent dispatch, retries, the contiguous
//! watermark, and graceful stop.
//!
//! Events are routed, and their watermarks kept, by the subscription as
//! subscribed (`?filter` included). One CometD session allows one filter
//! per topic, so a service whose entrypoints give one topic different
//! filters is refused at start; the same subscription twice is one
//! subscription whose events go to both handlers.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use sfstream_bayeux::ClientEvent;
use sfstream_salesforce::pubsub::{PubSubClient, PubSubEvent};
use sfstream_salesforce::replay::{MemoryStore, RedisStore, ReplayStore, channel_key, open_store};
use sfstream_salesforce::rest::SalesforceClient;
use sfstream_salesforce::{Authenticator, Delivery, StreamEvent, StreamingClient, Transport};

use crate::config::{ReplayStoreConfig, SalesforceConfig};
use crate::entrypoints::{Binding, Entrypoint};
use crate::error::ServiceError;
use crate::handler::{BoxedHandler, Handler, boxed, function_name};
use crate::metrics::{ChannelState, ServiceMetrics};
use crate::runtime::{ContextBuilder, Entrypoints, RunningEntrypoints, ServiceContext};
use crate::shutdown::ShutdownSignal;

mod cluster;
mod dispatch;
mod gaps;
mod sources;
mod work;

pub(crate) use gaps::GapHandler;

use dispatch::Dispatcher;
use sources::Clients;

/// A handler bound to one entrypoint, as registered.
struct Route {
    entrypoint: Entrypoint,
    handler: BoxedHandler,
    handler_name: String,
    /// The handler's method name in Nameko call ids.
    method_name: String,
}

/// A handler bound to a resolved entrypoint.
#[derive(Clone)]
struct BoundHandler {
    binding: Arc<Binding>,
    handler: BoxedHandler,
    name: Arc<str>,
    method_name: Arc<str>,
}

/// Every Salesforce entrypoint of a service, and the Salesforce session
/// (its REST client, an extension of the service's context) they share
/// with every handler.
#[derive(Default)]
pub(crate) struct StreamingEntrypoints {
    routes: Vec<Route>,
    store: Option<Arc<dyn ReplayStore>>,
    gap_handlers: Vec<GapHandler>,
}

impl StreamingEntrypoints {
    /// Binds `handler` to `entrypoints`.
    pub(crate) fn add<H: Handler<Args>, Args>(
        &mut self,
        handler: H,
        entrypoints: impl IntoIterator<Item = Entrypoint>,
    ) {
        let name = std::any::type_name::<H>().to_string();
        let function = function_name::<H>();
        let boxed = boxed(handler);
        for entrypoint in entrypoints {
            let method_name = function.unwrap_or(entrypoint.kind()).to_owned();
            self.routes.push(Route {
                entrypoint,
                handler: boxed.clone(),
                handler_name: name.clone(),
                method_name,
            });
        }
    }

    /// Calls `handler` with every gap.
    pub(crate) fn on_gap(&mut self, handler: GapHandler) {
        self.gap_handlers.push(handler);
    }

    /// Keeps the replay markers in `store` instead of the configured one.
    pub(crate) fn replay_store(&mut self, store: Arc<dyn ReplayStore>) {
        self.store = Some(store);
    }
}

impl Entrypoints for StreamingEntrypoints {
    fn describe(&self) -> String {
        "Salesforce streaming".into()
    }

    fn provide<'a>(
        &'a mut self,
        context: &'a mut ContextBuilder,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async move {
            if !self.routes.is_empty() && context.config().salesforce.is_none() {
                return Err(ServiceError::NoSalesforceConfig);
            }
            provide_salesforce_client(context).await
        })
    }

    fn start(
        self: Box<Self>,
        context: ServiceContext,
        shutdown: ShutdownSignal,
    ) -> BoxFuture<'static, Result<RunningEntrypoints, ServiceError>> {
        Box::pin(async move {
            if self.routes.is_empty() {
                // The session only (for the REST client): nothing streams.
                let idle: RunningEntrypoints = Box::pin(async move {
                    shutdown.wait().await;
                    Ok(())
                });
                return Ok(idle);
            }
            start(
                self.routes,
                (self.store, self.gap_handlers),
                context,
                shutdown,
            )
            .await
        })
    }
}

/// Logs in with the config's `SALESFORCE:` credentials, once per service:
/// every group that talks to Salesforce shares the session, through the
/// [`SalesforceClient`] extension. Nothing without a `SALESFORCE:` section.
async fn provide_salesforce_client(context: &mut ContextBuilder) -> Result<(), ServiceError> {
    if context.extension::<SalesforceClient>().is_some() {
        return Ok(());
    }
    let Some(section) = &context.config().salesforce else {
        return Ok(());
    };
    let authenticator = Authenticator::new(section.credentials.clone())
        .with_login_url(section.login_url.clone())
        .with_api_version(section.api_version.clone());
    authenticator.login().await.map_err(ServiceError::Login)?;
    tracing::info!(service = %context.name(), flow = authenticator.credentials().flow(), "logged in to Salesforce");
    context.insert_extension(SalesforceClient::new(authenticator));
    Ok(())
}

async fn start(
    routes: Vec<Route>,
    (store, gap_handlers): (Option<Arc<dyn ReplayStore>>, Vec<GapHandler>),
    context: ServiceContext,
    shutdown: ShutdownSignal,
) -> Result<RunningEntrypoints, ServiceError> {
    let config = context.config().clone();
    let section = config
        .salesforce
        .clone()
        .ok_or(ServiceError::NoSalesforceConfig)?;
    let client = context
        .extension::<SalesforceClient>()
        .cloned()
        .ok_or(ServiceError::NoSalesforceConfig)?;

    // The org's limits, read now and periodically; the marker age warnings.
    crate::limits::watch(
        client.clone(),
        section.limits,
        context.metrics().clone(),
        shutdown.clone(),
    );
    if let Some(ages) = section.marker_age_warn {
        sfstream_salesforce::replay::set_warn_ages(ages);
    }

    // 1. One filter per topic; then declare every topic, once per name,
    // before anything streams.
    check_filters(&routes)?;
    let subscriptions = Subscriptions::new(declare(&client, routes).await?);

    // 2. Which transport carries each subscription: PushTopics and generic
    // channels CometD; change and platform events the entrypoint's choice,
    // else the config's TRANSPORT.
    let transports = transports(&subscriptions, section.transport)?;

    // Cluster mode: the replicas share the channels.
    if let Some(cluster_config) = config.cluster.clone() {
        let parts = cluster::Parts {
            subscriptions,
            transports,
            store,
            gap_handlers,
            section,
            client,
            cluster: cluster_config,
        };
        return cluster::start(parts, context, shutdown).await;
    }

    // 3. The replay store.
    let store = match store {
        Some(store) => store,
        None => replay_store(&section).await?,
    };

    // 4. Connect, with commit-on-acknowledge, sharing the REST session;
    // subscribe every channel once.
    let metrics = context.metrics().clone();
    let session = Arc::new(Session::default());
    let connected = connect(
        &client,
        &section,
        store.clone(),
        &transports,
        &metrics,
        &session,
    )
    .await?;
    if let Err(error) = connected
        .subscribe_all(&subscriptions.order, &transports, &metrics)
        .await
    {
        connected.clients.close().await;
        return Err(error);
    }
    metrics.set_connected(true);
    session
        .started
        .store(true, std::sync::atomic::Ordering::Relaxed);

    // The marker age gauges, from the store.
    watch_marker_ages(&subscriptions, &transports, store, &metrics, &shutdown);
    let dispatcher = Dispatcher::new(subscriptions, section.max_in_flight, context, config)
        .gap_handlers(gap_handlers);
    let messages = sources::merge(connected.cometd_messages, connected.pubsub_messages);
    Ok(Box::pin(dispatcher.run(
        connected.clients,
        messages,
        shutdown,
    )))
}

/// Keeps `sfstream_marker_age_seconds` of every channel current, from the
/// store.
fn watch_marker_ages(
    subscriptions: &Subscriptions,
    transports: &HashMap<String, Transport>,
    store: Arc<dyn ReplayStore>,
    metrics: &Arc<ServiceMetrics>,
    shutdown: &ShutdownSignal,
) {
    let watched = subscriptions
        .order
        .iter()
        .map(|c| (c.clone(), transports.get(c) == Some(&Transport::PubSub)))
        .collect();
    tokio::spawn(gaps::watch_marker_ages(
        store,
        watched,
        metrics.clone(),
        shutdown.clone(),
        gaps::MARKER_AGE_INTERVAL,
    ));
}

/// The streaming clients of a service, connected, and their messages.
struct Connected {
    clients: Clients,
    cometd_messages: Option<sfstream_salesforce::StreamMessages>,
    pubsub_messages: Option<sfstream_salesforce::pubsub::PubSubMessages>,
}

impl Connected {
    /// Subscribes `channel` on its transport.
    async fn subscribe(&self, channel: &str, transport: Transport) -> Result<(), ServiceError> {
        match (transport, &self.clients.cometd, &self.clients.pubsub) {
            (Transport::CometD, Some(cometd), _) => {
                cometd
                    .subscribe(channel)
                    .await
                    .map_err(|source| ServiceError::Subscribe {
                        channel: channel.to_string(),
                        source,
                    })?;
                tracing::info!(%channel, "subscribed");
            }
            (Transport::PubSub, _, Some(pubsub)) => {
                pubsub.subscribe(channel).await.map_err(|source| {
                    ServiceError::PubSubSubscribe {
                        channel: channel.to_string(),
                        source: Box::new(source),
                    }
                })?;
                tracing::info!(%channel, "subscribed (Pub/Sub)");
            }
            _ => {
                return Err(ServiceError::StreamEnded(format!(
                    "no {transport} client for {channel}"
                )));
            }
        }
        Ok(())
    }

    /// Subscribes every channel once, in order.
    async fn subscribe_all(
        &self,
        channels: &[String],
        transports: &HashMap<String, Transport>,
        metrics: &ServiceMetrics,
    ) -> Result<(), ServiceError> {
        for channel in channels {
            let transport = transports.get(channel).copied().unwrap_or_default();
            self.subscribe(channel, transport).await?;
            metrics.set_channel_state(channel, ChannelState::Subscribed);
        }
        Ok(())
    }

    /// Stops streaming `channel` (cluster mode: another replica leads it).
    fn unsubscribe(&self, channel: &str, transport: Transport) {
        match (transport, &self.clients.cometd, &self.clients.pubsub) {
            (Transport::CometD, Some(cometd), _) => {
                let cometd = cometd.clone();
                let channel = channel.to_string();
                tokio::spawn(async move {
                    if let Err(error) = cometd.unsubscribe(&channel).await {
                        tracing::warn!(%channel, %error, "unsubscribing failed");
                    }
                });
            }
            (Transport::PubSub, _, Some(pubsub)) => pubsub.unsubscribe(channel),
            _ => {}
        }
    }
}

/// Connects the clients the channels' transports need (with
/// commit-on-acknowledge, sharing the REST session's login), subscribing
/// nothing yet.
async fn connect(
    client: &SalesforceClient,
    section: &SalesforceConfig,
    store: Arc<dyn ReplayStore>,
    transports: &HashMap<String, Transport>,
    metrics: &Arc<ServiceMetrics>,
    session: &Arc<Session>,
) -> Result<Connected, ServiceError> {
    // What the status page shows of each channel.
    let board = metrics.status_board();
    board.set_store(store.clone());
    for (channel, transport) in transports {
        board.set_transport(channel, *transport);
    }
    let needs = |t: Transport| transports.values().any(|v| *v == t);
    let mut clients = Clients::default();
    let mut cometd_messages = None;
    if needs(Transport::CometD) {
        let events_metrics = metrics.clone();
        let events_session = session.clone();
        let (streaming, messages) = StreamingClient::builder(client.authenticator().clone())
            .replay_store(store.clone())
            .default_replay(section.default_replay)
            .replay_fallback(section.replay_fallback)
            .delivery(Delivery::Acknowledged)
            .max_pending(section.max_pending)
            .fetch_gap_records(section.fetch_gap_records)
            .backfill(section.backfill)
            .backfill_max_records(section.backfill_max_records)
            .on_event(move |event| on_stream_event(event, &events_metrics, &events_session))
            .connect()
            .await
            .map_err(ServiceError::Streaming)?;
        clients.cometd = Some(streaming);
        cometd_messages = Some(messages);
    }
    let mut pubsub_messages = None;
    if needs(Transport::PubSub) {
        let events_metrics = metrics.clone();
        let connected = PubSubClient::builder(client.authenticator().clone())
            .url(&section.pubsub_url)
            .replay_store(store)
            .default_replay(section.default_replay)
            .replay_fallback(section.replay_fallback)
            .delivery(Delivery::Acknowledged)
            .max_pending(section.max_pending)
            .fetch_gap_records(section.fetch_gap_records)
            .backfill(section.backfill)
            .backfill_max_records(section.backfill_max_records)
            .on_event(move |event| on_pubsub_event(event, &events_metrics))
            .connect()
            .await;
        match connected {
            Ok((pubsub, messages)) => {
                clients.pubsub = Some(pubsub);
                pubsub_messages = Some(messages);
            }
            Err(error) => {
                clients.close().await;
                return Err(ServiceError::PubSub(Box::new(error)));
            }
        }
    }
    Ok(Connected {
        clients,
        cometd_messages,
        pubsub_messages,
    })
}

/// What the session's event handler remembers.
#[derive(Default)]
struct Session {
    handshakes: std::sync::atomic::AtomicU64,
    /// Every channel was subscribed once: the service runs.
    started: std::sync::atomic::AtomicBool,
}

/// Keeps the connection metrics and channel states in step (the streaming
/// client logs the events).
fn on_stream_event(event: &StreamEvent, metrics: &ServiceMetrics, session: &Session) {
    use std::sync::atomic::Ordering;
    match event {
        StreamEvent::Connection(ClientEvent::Handshaken { .. }) => {
            metrics.set_connected(true);
            if session.handshakes.fetch_add(1, Ordering::Relaxed) > 0 {
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
        StreamEvent::Connection(ClientEvent::Subscribed { channel }) => {
            metrics.set_channel_state(channel, ChannelState::Subscribed);
        }
        StreamEvent::Connection(ClientEvent::SubscriptionRetrying {
            channel,
            error,
            attempt,
            ..
        }) => {
            metrics.set_channel_state(
                channel,
                ChannelState::Retrying {
                    error: error.clone(),
                    attempt: *attempt,
                },
            );
        }
        StreamEvent::Connection(ClientEvent::SubscriptionFailed { channel, error }) => {
            let state = ChannelState::Failed {
                error: error.to_string(),
            };
            let before = metrics.set_channel_state(channel, state);
            // The streaming client logs the refusal itself (as an error);
            // say once what it means for a running service (at start, the
            // start-up fails instead).
            let running = session.started.load(Ordering::Relaxed);
            if running && !matches!(before, Some(ChannelState::Failed { .. })) {
                tracing::warn!(
                    %channel,
                    "subscription given up: no more events on this channel until a restart; the other channels keep running and /health reports 503"
                );
            }
        }
        _ => {}
    }
}

/// Keeps the channel states in step with the Pub/Sub client (which logs
/// the events).
fn on_pubsub_event(event: &PubSubEvent, metrics: &ServiceMetrics) {
    match event {
        PubSubEvent::Subscribed { topic, .. } => {
            metrics.set_channel_state(topic, ChannelState::Subscribed);
        }
        PubSubEvent::Reconnecting {
            topic,
            reason,
            attempt,
            ..
        } => {
            metrics.set_channel_state(
                topic,
                ChannelState::Retrying {
                    error: reason.clone(),
                    attempt: *attempt,
                },
            );
            metrics.reconnected();
        }
        _ => {}
    }
}

/// The transport of each subscription; two entrypoints of one channel
/// that ask for different ones are refused.
fn transports(
    subscriptions: &Subscriptions,
    preferred: Transport,
) -> Result<HashMap<String, Transport>, ServiceError> {
    let mut chosen: HashMap<String, (Transport, String)> = HashMap::new();
    for channel in &subscriptions.order {
        for handler in subscriptions.handlers(channel) {
            let entrypoint = &handler.binding.entrypoint;
            let transport =
                Transport::for_channel(entrypoint.transport().unwrap_or(preferred), channel);
            match chosen.get(channel) {
                Some((first, first_entrypoint)) if *first != transport => {
                    return Err(ServiceError::ConflictingTransports {
                        channel: channel.clone(),
                        first: first_entrypoint.clone(),
                        first_transport: *first,
                        second: entrypoint.to_string(),
                        second_transport: transport,
                    });
                }
                Some(_) => {}
                None => {
                    chosen.insert(channel.clone(), (transport, entrypoint.to_string()));
                }
            }
        }
    }
    Ok(chosen.into_iter().map(|(c, (t, _))| (c, t)).collect())
}

/// Refuses entrypoints that give one topic different filters (Salesforce
/// allows one filter per PushTopic in a CometD session).
fn check_filters(routes: &[Route]) -> Result<(), ServiceError> {
    let mut by_topic: HashMap<String, (&Entrypoint, String)> = HashMap::new();
    for route in routes {
        let subscription = route.entrypoint.channel();
        let topic = channel_key(&subscription).to_string();
        match by_topic.get(&topic) {
            Some((first, first_subscription)) if *first_subscription != subscription => {
                return Err(ServiceError::ConflictingFilters {
                    topic,
                    first: first.to_string(),
                    first_subscription: first_subscription.clone(),
                    second: route.entrypoint.to_string(),
                    second_subscription: subscription,
                });
            }
            Some(_) => {}
            None => {
                by_topic.insert(topic, (&route.entrypoint, subscription));
            }
        }
    }
    Ok(())
}

/// The subscriptions of a service and the handlers of each.
struct Subscriptions {
    /// Subscription (as subscribed, filter included) -> its handlers.
    handlers: HashMap<String, Vec<BoundHandler>>,
    /// Topic (without filter) -> its one subscription.
    by_topic: HashMap<String, String>,
    /// Every subscription once, in declaration order.
    order: Vec<String>,
}

impl Subscriptions {
    fn new(bound: Vec<BoundHandler>) -> Self {
        let mut this = Self {
            handlers: HashMap::new(),
            by_topic: HashMap::new(),
            order: Vec::new(),
        };
        for handler in bound {
            let subscription = handler.binding.channel.clone();
            if !this.handlers.contains_key(&subscription) {
                this.order.push(subscription.clone());
                this.by_topic
                    .insert(channel_key(&subscription).to_string(), subscription.clone());
            }
            this.handlers.entry(subscription).or_default().push(handler);
        }
        this
    }

    /// The subscription an event belongs to: the one the client names;
    /// failing that, the topic's one subscription (one filter per topic is
    /// enforced at start); failing that, what the client named.
    fn of<'a>(&'a self, subscription: &'a str, channel: &str) -> &'a str {
        if self.handlers.contains_key(subscription) {
            return subscription;
        }
        self.by_topic
            .get(channel_key(channel))
            .map_or(subscription, String::as_str)
    }

    fn handlers(&self, subscription: &str) -> Vec<BoundHandler> {
        self.handlers.get(subscription).cloned().unwrap_or_default()
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

#[cfg(test)]
mod tests;
