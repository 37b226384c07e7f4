//! [`PubSubClientBuilder`] and [`PubSubClient`]: the Pub/Sub API behind the
//! same subscription, replay-marker and handler API as the CometD client.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use sfstream_common::Backoff;
use sfstream_pubsub::proto::{ReplayPreset, TopicInfo};
use tokio::sync::{mpsc, watch};

use super::commit::{CLOSE_TIMEOUT, Commit, FLUSH_TIMEOUT, FlushError, commit_loop};
use super::connect::{Connection, Transport, channel};
use super::error::PubSubError;
use super::event::{Emitter, EventHandler, PubSubEvent};
use super::message::{Item, PubSubMessages, TopicShared};
use super::publish::{Published, Publisher};
use super::schema::{Schemas, get_schema, get_topic};
use super::subscription::{Kind, Start, Subscription};
use crate::auth::Authenticator;
use crate::recovery::{Recovery, RecoveryOptions};
use crate::replay::{MemoryStore, ReplayFrom, ReplayStore, warn_if_old};
use crate::streaming::Delivery;

/// How long the server may stay silent while it owes events: its keepalive
/// period (270 s) plus a margin, after which the stream is opened again.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(270 + 30);

/// The registry key of a managed subscription (topics start with `/`).
fn managed_key(developer_name: &str) -> String {
    format!("managed:{developer_name}")
}

/// Builds a [`PubSubClient`].
pub struct PubSubClientBuilder {
    authenticator: Authenticator,
    transport: Transport,
    org_id: Option<String>,
    store: Arc<dyn ReplayStore>,
    default_replay: ReplayFrom,
    fallback: Option<ReplayFrom>,
    delivery: Delivery,
    max_pending: usize,
    connection_timeout: Option<Duration>,
    rpc_timeout: Duration,
    idle_timeout: Duration,
    backoff: Backoff,
    on_event: Option<EventHandler>,
    recovery: RecoveryOptions,
}

impl std::fmt::Debug for PubSubClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubClientBuilder")
            .field("url", &self.transport.url)
            .field("store", &self.store)
            .field("default_replay", &self.default_replay)
            .field("fallback", &self.fallback)
            .field("delivery", &self.delivery)
            .field("max_pending", &self.max_pending)
            .finish_non_exhaustive()
    }
}

/// `New` is `LATEST`, `All` is `EARLIEST`; a replay id is not a preset.
fn preset(from: ReplayFrom) -> Result<ReplayPreset, PubSubError> {
    match from {
        ReplayFrom::New => Ok(ReplayPreset::Latest),
        ReplayFrom::All => Ok(ReplayPreset::Earliest),
        other => Err(PubSubError::NoPreset(other.to_string())),
    }
}

impl PubSubClientBuilder {
    /// The Pub/Sub endpoint (default [`sfstream_pubsub::DEFAULT_URL`]);
    /// plain `http://` only to loopback hosts.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.transport.url = url.into();
        self
    }

    /// Trusts this CA certificate (PEM) besides the webpki roots, e.g. a
    /// TLS-intercepting corporate proxy's.
    pub fn add_root_certificate(mut self, pem: impl Into<String>) -> Self {
        self.transport.extra_roots.push(pem.into());
        self
    }

    /// The org id sent as `tenantid`, when the login flow gives none and
    /// the access token does not start with it.
    pub fn org_id(mut self, org_id: impl Into<String>) -> Self {
        self.org_id = Some(org_id.into());
        self
    }

    /// Where markers are kept (default: in memory).
    pub fn replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.store = store;
        self
    }

    /// Where a topic starts when the store has nothing for it: `New`
    /// (`LATEST`, the default) or `All` (`EARLIEST`).
    pub fn default_replay(mut self, from: ReplayFrom) -> Self {
        self.default_replay = from;
        self
    }

    /// When a stored replay id is refused (corrupt or expired), resubscribe
    /// with this (`New` or `All`) and remove the marker, instead of ending
    /// the subscription with [`PubSubError::ReplayIdInvalid`].
    pub fn replay_fallback(mut self, fallback: Option<ReplayFrom>) -> Self {
        self.fallback = fallback;
        self
    }

    /// When markers are committed (on hand-out, or on [`ack`](super::PubSubMessage::ack)).
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Most events per subscription requested from the server or waiting
    /// to be taken (default [`DEFAULT_MAX_PENDING`](crate::DEFAULT_MAX_PENDING)).
    pub fn max_pending(mut self, max: usize) -> Self {
        self.max_pending = max.max(1);
        self
    }

    /// Give up when a stream (or a re-login) could not be re-established
    /// for this long (`None`: retry forever).
    pub fn connection_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Bound of unary calls (GetTopic, GetSchema, Publish) and of opening a
    /// stream (default 30 s).
    pub fn rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc_timeout = timeout;
        self
    }

    /// Reopen a stream that stays silent (no event, no keepalive) this long
    /// while it owes events (default [`DEFAULT_IDLE_TIMEOUT`]).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// HTTP/2 keepalive pings while streams are open: every `interval`, the
    /// connection is dropped when one is not answered within `timeout`
    /// (default 300 s and 20 s, gRPC's usual client setting: gRPC servers
    /// by default answer pings more frequent than every 5 minutes with a
    /// `too_many_pings` GOAWAY). The idle watchdog
    /// ([`idle_timeout`](Self::idle_timeout)) catches a silent stream too.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.transport.keepalive_interval = interval;
        self.transport.keepalive_timeout = timeout;
        self
    }

    /// Retry delays.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Called for every [`PubSubEvent`].
    pub fn on_event(mut self, handler: impl Fn(&PubSubEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(handler));
        self
    }

    /// For a Change Data Capture gap event (`GAP_CREATE`, …,
    /// `GAP_OVERFLOW`: a header without field values), read the records it
    /// stands for through the REST API before handing it out: its
    /// `payload` gains `"fetched": true` and `"fetchedRecords": […]`, as
    /// with the CometD client ([`Recovery::fetch_gap`]). Off by default.
    pub fn fetch_gap_records(mut self, fetch: bool) -> Self {
        self.recovery.fetch_gap_records = fetch;
        self
    }

    /// After a [`Gap`](crate::replay::Gap), read the records the topic's
    /// entity changed in the gap's window through the REST API and hand
    /// them out ([`PubSubMessage::backfilled`](super::PubSubMessage::backfilled)),
    /// after the gap and before the topic's next events
    /// ([`Recovery::backfill`]). Off by default.
    pub fn backfill(mut self, backfill: bool) -> Self {
        self.recovery.backfill = backfill;
        self
    }

    /// Most records one backfill delivers (default
    /// [`DEFAULT_BACKFILL_MAX_RECORDS`](crate::recovery::DEFAULT_BACKFILL_MAX_RECORDS)).
    pub fn backfill_max_records(mut self, max: usize) -> Self {
        self.recovery.max_records = max.max(1);
        self
    }

    /// Logs in and sets up the channel (connected by the first call).
    pub async fn connect(self) -> Result<(PubSubClient, PubSubMessages), PubSubError> {
        let recovery = self.recovery.any().then(|| {
            Arc::new(Recovery::new(
                crate::rest::SalesforceClient::new(self.authenticator.clone()),
                self.recovery,
            ))
        });
        let default_preset = preset(self.default_replay)?;
        let fallback = self.fallback.map(preset).transpose()?;
        let emit = Emitter(self.on_event);
        let channel = channel(&self.transport, self.authenticator.insecure_http_allowed())?;
        let connection = Arc::new(Connection::new(
            channel,
            self.authenticator,
            self.org_id,
            emit.clone(),
            self.backoff,
            self.connection_timeout,
            self.rpc_timeout,
        ));
        connection.auth().await?;
        let (commits, commit_rx) = mpsc::unbounded_channel();
        tokio::spawn(commit_loop(self.store.clone(), commit_rx, emit));
        let (out, rx) = mpsc::unbounded_channel();
        let client = PubSubClient {
            inner: Arc::new(Inner {
                connection,
                schemas: Arc::new(Schemas::default()),
                store: self.store,
                default_preset,
                fallback,
                max_pending: self.max_pending,
                idle_timeout: self.idle_timeout,
                commits,
                out: parking_lot::Mutex::new(Some(out)),
                topics: Arc::default(),
                next_id: AtomicU64::new(0),
                recovery,
            }),
        };
        Ok((
            client,
            PubSubMessages {
                rx,
                delivery: self.delivery,
            },
        ))
    }
}

#[derive(Debug)]
struct Inner {
    connection: Arc<Connection>,
    schemas: Arc<Schemas>,
    store: Arc<dyn ReplayStore>,
    default_preset: ReplayPreset,
    fallback: Option<ReplayPreset>,
    max_pending: usize,
    idle_timeout: Duration,
    commits: mpsc::UnboundedSender<Commit>,
    /// Taken by close, so the message stream ends once the subscriptions
    /// have stopped.
    out: parking_lot::Mutex<Option<mpsc::UnboundedSender<Item>>>,
    /// Per topic (or `managed:<name>`): its shared state, kept across
    /// resubscribes so its sequence of markers keeps growing, and the stop
    /// switch of its running subscription.
    topics: Arc<parking_lot::Mutex<HashMap<String, TopicEntry>>>,
    next_id: AtomicU64,
    /// REST reads for gap events and backfills, when asked for.
    recovery: Option<Arc<Recovery>>,
}

#[derive(Debug)]
struct TopicEntry {
    shared: Arc<TopicShared>,
    /// Dropping it (or sending `true`) stops the subscription.
    running: Option<(u64, watch::Sender<bool>)>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schemas")
    }
}

/// A Pub/Sub API client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PubSubClient {
    inner: Arc<Inner>,
}

impl PubSubClient {
    /// A builder that logs in with `authenticator`.
    pub fn builder(authenticator: Authenticator) -> PubSubClientBuilder {
        PubSubClientBuilder {
            authenticator,
            transport: Transport {
                url: sfstream_pubsub::DEFAULT_URL.to_string(),
                keepalive_interval: Duration::from_secs(300),
                keepalive_timeout: Duration::from_secs(20),
                connect_timeout: Duration::from_secs(10),
                extra_roots: Vec::new(),
            },
            org_id: None,
            store: Arc::new(MemoryStore::new()),
            default_replay: ReplayFrom::New,
            fallback: None,
            delivery: Delivery::Automatic,
            max_pending: crate::DEFAULT_MAX_PENDING,
            connection_timeout: Some(crate::DEFAULT_CONNECTION_TIMEOUT),
            rpc_timeout: Duration::from_secs(30),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            backoff: Backoff::default(),
            on_event: None,
            recovery: RecoveryOptions::default(),
        }
    }

    /// GetTopic.
    pub async fn get_topic(&self, topic: &str) -> Result<TopicInfo, PubSubError> {
        get_topic(&self.inner.connection, topic).await
    }

    /// GetSchema: the Avro schema (JSON text) of `schema_id`.
    pub async fn get_schema(&self, schema_id: &str) -> Result<String, PubSubError> {
        get_schema(&self.inner.connection, schema_id).await
    }

    /// Subscribes to `topic` (`/event/Order__e`, `/data/AccountChangeEvent`),
    /// starting after its stored marker, or from the default replay preset
    /// when nothing is stored. Checks the topic first (GetTopic). A stored
    /// marker older than its topic's
    /// [`warn_age`](crate::replay::warn_age) is logged as a warning.
    pub async fn subscribe(&self, topic: &str) -> Result<(), PubSubError> {
        let (start, created) = match self.inner.store.get_opaque(topic).await? {
            Some(marker) => {
                warn_if_old(topic, marker.created);
                (Start::Custom(marker.replay_id), marker.created)
            }
            None => (Start::Preset(self.inner.default_preset), None),
        };
        self.start_at(topic, start, created).await
    }

    /// Subscribes to `topic` from `ReplayFrom::New`/`All`, or from a replay
    /// id (`replay_id`), ignoring the store.
    pub async fn subscribe_from(
        &self,
        topic: &str,
        from: ReplayFrom,
        replay_id: Option<Vec<u8>>,
    ) -> Result<(), PubSubError> {
        let start = match replay_id {
            Some(id) => Start::Custom(id),
            None => Start::Preset(preset(from)?),
        };
        self.start_at(topic, start, None).await
    }

    /// Subscribes through a managed subscription (`ManagedSubscribe`, by
    /// developer name): the server keeps its position, committed after the
    /// handler succeeded (on hand-out or on [`ack`](super::PubSubMessage::ack)).
    pub async fn subscribe_managed(&self, developer_name: &str) -> Result<(), PubSubError> {
        let kind = Kind::Managed {
            developer_name: developer_name.to_string(),
        };
        self.spawn(
            &managed_key(developer_name),
            developer_name,
            kind,
            Start::Preset(ReplayPreset::Latest),
            None,
        )
        .await
    }

    /// Ends the subscription of `topic` (or of the managed subscription
    /// `managed:<developer name>`); events already received are still
    /// delivered. Unsubscribing what is not subscribed does nothing.
    pub fn unsubscribe(&self, topic: &str) {
        if let Some(entry) = self.inner.topics.lock().get_mut(topic) {
            entry.running = None;
        }
    }

    async fn start_at(
        &self,
        topic: &str,
        start: Start,
        created: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), PubSubError> {
        self.check_free(topic)?;
        {
            let info = self.get_topic(topic).await?;
            if !info.can_subscribe {
                return Err(PubSubError::NotPermitted {
                    topic: topic.to_string(),
                    what: "subscribed to",
                });
            }
        }
        let kind = Kind::Topic {
            fallback: self.inner.fallback,
        };
        self.spawn(topic, topic, kind, start, created).await
    }

    fn check_free(&self, key: &str) -> Result<(), PubSubError> {
        match self.inner.topics.lock().get(key) {
            Some(TopicEntry {
                running: Some(_), ..
            }) => Err(PubSubError::AlreadySubscribed {
                topic: key.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Starts the subscription task of `key` (a topic, or
    /// `managed:<name>`), refusing a second one, and waits (at most the
    /// RPC timeout) until its stream is open: from then on a LATEST
    /// subscription gets every new event, as a CometD subscribe's answer
    /// promises. A stream that cannot open yet is retried in the
    /// background and reported through the events and the message stream.
    async fn spawn(
        &self,
        key: &str,
        topic: &str,
        kind: Kind,
        start: Start,
        created: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), PubSubError> {
        let (first_open, opened) = tokio::sync::oneshot::channel();
        self.spawn_task(key, topic, kind, (start, created), first_open)?;
        let _ = tokio::time::timeout(self.inner.connection.rpc_timeout, opened).await;
        Ok(())
    }

    fn spawn_task(
        &self,
        key: &str,
        topic: &str,
        kind: Kind,
        (start, start_created): (Start, Option<chrono::DateTime<chrono::Utc>>),
        first_open: tokio::sync::oneshot::Sender<()>,
    ) -> Result<(), PubSubError> {
        let inner = &self.inner;
        let out = inner.out.lock().clone().ok_or(PubSubError::Closed)?;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (stop, shutdown) = watch::channel(false);
        let shared = {
            let mut topics = inner.topics.lock();
            let entry = topics.entry(key.to_string()).or_insert_with(|| TopicEntry {
                shared: Arc::new(TopicShared::default()),
                running: None,
            });
            if entry.running.is_some() {
                return Err(PubSubError::AlreadySubscribed {
                    topic: key.to_string(),
                });
            }
            entry.running = Some((id, stop));
            entry.shared.clone()
        };
        let subscription = Subscription {
            topic: topic.into(),
            kind,
            start,
            start_created,
            connection: inner.connection.clone(),
            schemas: inner.schemas.clone(),
            shared,
            out,
            commits: inner.commits.clone(),
            max_pending: inner.max_pending,
            idle_timeout: inner.idle_timeout,
            subscribe_timeout: inner.connection.rpc_timeout,
            shutdown,
            first_open: Some(first_open),
            recovery: inner.recovery.clone(),
            json_len: Default::default(),
        };
        let topics = inner.topics.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            subscription.run().await;
            // Free the topic for a new subscription (unless a newer one
            // took it already).
            if let Some(entry) = topics.lock().get_mut(&key)
                && entry
                    .running
                    .as_ref()
                    .is_some_and(|(running, _)| *running == id)
            {
                entry.running = None;
            }
        });
        Ok(())
    }

    /// Publishes JSON events to `topic`, encoded with its schema; one
    /// outcome per event, in order.
    pub async fn publish(
        &self,
        topic: &str,
        events: &[Value],
    ) -> Result<Vec<Published>, PubSubError> {
        super::publish::publish(&self.inner.connection, &self.inner.schemas, topic, events).await
    }

    /// Opens a PublishStream to `topic`.
    pub async fn publisher(&self, topic: &str) -> Result<Publisher, PubSubError> {
        Publisher::open(
            self.inner.connection.clone(),
            self.inner.schemas.clone(),
            topic,
        )
        .await
    }

    /// The replay store.
    pub fn replay_store(&self) -> &Arc<dyn ReplayStore> {
        &self.inner.store
    }

    /// Waits (up to 30 s) until every marker committed so far is stored;
    /// logs what is not.
    pub async fn flush(&self) {
        if let Err(error) = self.flush_within(FLUSH_TIMEOUT).await {
            tracing::warn!(%error, "flushing Pub/Sub replay markers");
        }
    }

    /// Waits up to `timeout` until every marker committed so far is stored.
    pub async fn flush_within(&self, timeout: Duration) -> Result<(), FlushError> {
        super::commit::flush(&self.inner.commits, timeout).await
    }

    /// Ends every subscription, tries for up to 10 s to store pending
    /// markers, and releases the store.
    pub async fn close(&self) {
        self.inner.out.lock().take();
        for entry in self.inner.topics.lock().values_mut() {
            entry.running = None;
        }
        super::commit::close(&self.inner.commits, CLOSE_TIMEOUT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_options_map_to_presets() {
        assert_eq!(preset(ReplayFrom::New).ok(), Some(ReplayPreset::Latest));
        assert_eq!(preset(ReplayFrom::All).ok(), Some(ReplayPreset::Earliest));
        let error = preset(ReplayFrom::Id(5)).expect_err("not a preset");
        assert!(error.to_string().contains("subscribe_from"), "{error}");
        assert_eq!(managed_key("Accounts"), "managed:Accounts");
    }
}
