//! The Salesforce Streaming API client: logs in, streams events from
//! replay markers, recovers from every failure Salesforce produces, and
//! commits markers to a store (when handed out, or when acknowledged).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use serde_json::value::RawValue;
use sfstream_bayeux::{Backoff, ClientEvent, HandshakeReason, Message, Messages};
use tokio::sync::mpsc;

use super::commit::{CLOSE_TIMEOUT, Commit, FLUSH_TIMEOUT, FlushError, commit_loop};
use super::extension::{
    DEFAULT_LIMIT_RETRY, MAX_PENDING_GAPS, Received, SalesforceExtension, is_auth_failure,
    is_invalid_replay_id, slow_retry,
};
use super::relogin::Relogin;
use crate::auth::{AuthError, Authenticator, Session};
use crate::recovery::{Recovery, RecoveryOptions};
use crate::replay::{
    Gap, MemoryStore, ReplayFrom, ReplayMarker, ReplayStore, StoreError, warn_if_old,
};

/// When a channel's replay marker is committed to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// When the message is handed out by the stream (at-most-once for a
    /// consumer that crashes while handling it).
    #[default]
    Automatic,
    /// When the consumer calls [`StreamMessage::ack`] (at-least-once).
    Acknowledged,
}

/// Errors of the streaming client.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StreamingError {
    /// Logging in failed.
    #[error("login failed: {0}")]
    Login(#[from] Arc<AuthError>),
    /// The Bayeux session failed.
    #[error(transparent)]
    Bayeux(#[from] sfstream_bayeux::Error),
    /// The replay store failed.
    #[error("replay store: {0}")]
    Store(#[from] Arc<StoreError>),
    /// The stored replay id is outside the retention window and no
    /// fallback is configured.
    #[error(
        "the replay id {replay_id} of {channel} is outside the retention window; resubscribe with a fallback (NEW or ALL) or reset the marker"
    )]
    ReplayIdExpired {
        /// The channel.
        channel: String,
        /// The refused replay id.
        replay_id: i64,
        /// The server's error, as Salesforce worded it (`400::The replayId
        /// {N} you provided was invalid.  Please provide …`).
        error: sfstream_bayeux::ErrorField,
    },
    /// The channel is already subscribed with another filter; Salesforce
    /// allows one subscription per channel in a session.
    #[error(
        "cannot subscribe to {subscription}: this session already subscribes to {held}, and Salesforce allows one filter per channel in a session"
    )]
    FilterConflict {
        /// The subscription asked for.
        subscription: String,
        /// The subscription of the same channel already held.
        held: String,
    },
}

impl From<AuthError> for StreamingError {
    fn from(error: AuthError) -> Self {
        StreamingError::Login(Arc::new(error))
    }
}

impl From<StoreError> for StreamingError {
    fn from(error: StoreError) -> Self {
        StreamingError::Store(Arc::new(error))
    }
}

/// Something that happened to the streaming session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StreamEvent {
    /// The Bayeux connection: handshakes (and why), failures, reconnects,
    /// server disconnects, re-logins.
    Connection(ClientEvent),
    /// Logged in (again) to this instance.
    LoggedIn {
        /// The instance URL of the new session.
        instance_url: String,
    },
    /// A stored replay id had left the retention window; the channel was
    /// resubscribed with the fallback and the stale marker removed.
    ReplayFallback {
        /// The channel.
        channel: String,
        /// The refused replay id.
        expired_replay_id: i64,
        /// What it resubscribed with.
        fallback: ReplayFrom,
    },
    /// The events of this window may have been missed (a replay fallback):
    /// also an item of the message stream ([`StreamMessage::gap`]).
    Gap(Gap),
    /// Writing markers to the store failed; it is retried.
    StoreFailed {
        /// The store's error.
        error: String,
    },
}

pub(crate) type EventHandler = Arc<dyn Fn(&StreamEvent) + Send + Sync>;

/// Builds a [`StreamingClient`].
pub struct StreamingClientBuilder {
    authenticator: Authenticator,
    store: Arc<dyn ReplayStore>,
    default_replay: ReplayFrom,
    fallback: Option<ReplayFrom>,
    delivery: Delivery,
    max_pending: usize,
    connection_timeout: Option<Duration>,
    backoff: Backoff,
    limit_retry: Duration,
    on_event: Option<EventHandler>,
    recovery: RecoveryOptions,
}

impl std::fmt::Debug for StreamingClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingClientBuilder")
            .field("authenticator", &self.authenticator)
            .field("store", &self.store)
            .field("default_replay", &self.default_replay)
            .field("fallback", &self.fallback)
            .field("delivery", &self.delivery)
            .field("max_pending", &self.max_pending)
            .field("connection_timeout", &self.connection_timeout)
            .finish()
    }
}

impl StreamingClientBuilder {
    /// Where markers are kept (default: in memory).
    pub fn replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.store = store;
        self
    }

    /// Where a channel starts when the store has nothing for it (default `New`).
    pub fn default_replay(mut self, from: ReplayFrom) -> Self {
        self.default_replay = from;
        self
    }

    /// On an expired replay id, resubscribe with this (`New` or `All`)
    /// instead of failing the subscription.
    pub fn replay_fallback(mut self, fallback: Option<ReplayFrom>) -> Self {
        self.fallback = fallback;
        self
    }

    /// When markers are committed.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Most received events waiting to be consumed before polling pauses
    /// (default [`DEFAULT_MAX_PENDING`](crate::DEFAULT_MAX_PENDING)).
    pub fn max_pending(mut self, max: usize) -> Self {
        self.max_pending = max;
        self
    }

    /// Give up when no connection could be re-established for this long
    /// (`None`: retry forever). Default
    /// [`DEFAULT_CONNECTION_TIMEOUT`](crate::defaults::DEFAULT_CONNECTION_TIMEOUT).
    pub fn connection_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Retry delays.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The least delay before retrying when Salesforce refuses the session
    /// for a spent org allocation (`403::Organization total events daily
    /// limit exceeded`, `403::Organization concurrent user limit exceeded`);
    /// it doubles per further refusal (up to 8 times), and the client stops
    /// with the refusal once the connection timeout passes. Default 5
    /// minutes: a reconnect storm would only burn the allocation.
    pub fn limit_retry(mut self, delay: Duration) -> Self {
        self.limit_retry = delay;
        self
    }

    /// Called for every [`StreamEvent`].
    pub fn on_event(mut self, handler: impl Fn(&StreamEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(handler));
        self
    }

    /// For a Change Data Capture gap event (`GAP_CREATE`, `GAP_UPDATE`,
    /// `GAP_DELETE`, `GAP_UNDELETE`, `GAP_OVERFLOW`: a header without field
    /// values), read the records it stands for through the REST API before
    /// handing it out: its `payload` gains `"fetched": true` and
    /// `"fetchedRecords": […]` ([`Recovery::fetch_gap`]). Off by default:
    /// gap events are handed out as they came.
    pub fn fetch_gap_records(mut self, fetch: bool) -> Self {
        self.recovery.fetch_gap_records = fetch;
        self
    }

    /// After a [`Gap`] (a stored replay id had expired and the channel fell
    /// back), read the records the channel changed in the gap's window
    /// through the REST API and hand them out, marked `"backfilled": true`
    /// ([`StreamMessage::backfilled`]), after the gap and before the
    /// channel's next events ([`Recovery::backfill`]). Off by default.
    pub fn backfill(mut self, backfill: bool) -> Self {
        self.recovery.backfill = backfill;
        self
    }

    /// Most records one backfill delivers (default
    /// [`DEFAULT_BACKFILL_MAX_RECORDS`](crate::recovery::DEFAULT_BACKFILL_MAX_RECORDS));
    /// past it a warning says what was left out.
    pub fn backfill_max_records(mut self, max: usize) -> Self {
        self.recovery.max_records = max.max(1);
        self
    }

    /// Logs in, handshakes, and starts streaming (nothing is subscribed yet).
    pub async fn connect(self) -> Result<(StreamingClient, StreamMessages), StreamingError> {
        let emit = Emitter(self.on_event.clone());
        let session = self.authenticator.login().await?;
        let recovery = self.recovery.any().then(|| {
            Arc::new(Recovery::new(
                crate::rest::SalesforceClient::new(self.authenticator.clone()),
                self.recovery,
            ))
        });
        emit.send(StreamEvent::LoggedIn {
            instance_url: session.instance_url.clone(),
        });
        let api_version = self.authenticator.api_version().to_string();
        // One queue for markers and fallback notices: the loop applies them
        // in the order they happened.
        let (commits, commit_rx) = mpsc::unbounded_channel();
        let (gaps, gap_rx) = mpsc::channel(MAX_PENDING_GAPS);
        let extension = Arc::new(SalesforceExtension::new(
            session.access_token.expose(),
            self.fallback,
            commits.clone(),
            gaps,
        ));
        let relogin = Arc::new(Relogin {
            authenticator: self.authenticator.clone(),
            extension: extension.clone(),
            emit: emit.clone(),
            backoff: self.backoff,
            connection_timeout: self.connection_timeout,
        });
        let connection_events = emit.clone();
        let (bayeux, messages) =
            sfstream_bayeux::Client::builder(cometd_url(&session, &api_version))
                .extension(extension.clone())
                .reauthenticate(relogin)
                .auth_failure(Arc::new(is_auth_failure))
                .slow_retry(slow_retry(self.limit_retry))
                .max_pending(self.max_pending)
                .connection_timeout(self.connection_timeout)
                .backoff(self.backoff)
                .rehandshake_after_failure(true)
                .on_event(move |event| {
                    connection_events.send(StreamEvent::Connection(event.clone()))
                })
                .connect()
                .await?;
        tokio::spawn(commit_loop(self.store.clone(), commit_rx, emit));
        let client = StreamingClient {
            bayeux,
            extension,
            store: self.store,
            default_replay: self.default_replay,
            commits: commits.clone(),
        };
        let stream = StreamMessages {
            inner: messages,
            gaps: gap_rx,
            delivery: self.delivery,
            commits,
            extension: client.extension.clone(),
            recovery,
            ready: VecDeque::new(),
            work: std::sync::Mutex::new(None),
        };
        Ok((client, stream))
    }
}

pub(crate) fn cometd_url(session: &Session, api_version: &str) -> String {
    format!(
        "{}/cometd/{api_version}",
        session.instance_url.trim_end_matches('/')
    )
}

#[derive(Clone)]
pub(crate) struct Emitter(pub(crate) Option<EventHandler>);

impl Emitter {
    pub(crate) fn send(&self, event: StreamEvent) {
        event.log();
        if let Some(handler) = &self.0 {
            handler(&event);
        }
    }
}

impl StreamEvent {
    /// Logs the event once, at its level (failed requests are logged by the
    /// Bayeux client itself).
    fn log(&self) {
        match self {
            StreamEvent::Connection(ClientEvent::Handshaken { reason, .. })
                if *reason != HandshakeReason::Initial =>
            {
                tracing::info!(?reason, "streaming session re-established")
            }
            StreamEvent::Connection(ClientEvent::Reconnected) => {
                tracing::info!("streaming connection re-established")
            }
            StreamEvent::Connection(ClientEvent::Reauthenticated) => {
                tracing::info!("logged in again after the token was refused")
            }
            StreamEvent::Connection(ClientEvent::ServerDisconnected) => {
                tracing::warn!("Salesforce disconnected the streaming session")
            }
            StreamEvent::Connection(ClientEvent::SubscriptionFailed { channel, error }) => {
                tracing::error!(%channel, %error, "subscription refused")
            }
            StreamEvent::Connection(ClientEvent::Closed { error: Some(error) }) => {
                tracing::error!(%error, "streaming session closed")
            }
            StreamEvent::LoggedIn { instance_url } => tracing::info!(%instance_url, "logged in"),
            StreamEvent::ReplayFallback {
                channel,
                expired_replay_id,
                fallback,
            } => {
                tracing::info!(%channel, expired_replay_id, %fallback, "replay id outside the retention window; resubscribed with the fallback")
            }
            StreamEvent::Gap(gap) => gap.log(),
            StreamEvent::StoreFailed { error } => {
                tracing::warn!(%error, "writing replay markers failed; retrying")
            }
            _ => {}
        }
    }
}

/// A handle on a streaming session. Cheap to clone.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::StreamExt;
/// use sfstream_salesforce::replay::FileStore;
/// use sfstream_salesforce::{Authenticator, Credentials, Delivery, LoginUrl, Secret, StreamingClient};
/// # let org = sfstream_emulator::Emulator::start(Default::default()).await?;
/// # let (url, user) = (org.url(), org.org().user_id());
/// # let topic = serde_json::json!({"Name": "ContactChanges", "Query": "SELECT Id, Name FROM Contact", "ApiVersion": 62.0});
/// # org.org().create_record("PushTopic", topic.as_object().cloned().unwrap_or_default(), &user)?;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("markers.redb");
///
/// let login = Authenticator::new(Credentials::password(
///     "emulator@example.com", "password", Some(Secret::new("token")),
///     "emulator-consumer-key", "emulator-consumer-secret",
/// ))
/// .with_login_url(LoginUrl::parse(&url)?);
/// let (client, mut events) = StreamingClient::builder(login)
///     .replay_store(std::sync::Arc::new(FileStore::open(&path)?))
///     .delivery(Delivery::Acknowledged)
///     .connect()
///     .await?;
/// client.subscribe("/topic/ContactChanges").await?;
/// # let contact = serde_json::json!({"LastName": "Lovelace"});
/// # org.org().create_record("Contact", contact.as_object().cloned().unwrap_or_default(), &user)?;
/// let event = events.next().await.expect("an event")?;
/// println!("{} #{:?}: {}", event.channel, event.replay_id(), event.data.get());
/// event.ack(); // the marker is stored only now
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StreamingClient {
    bayeux: sfstream_bayeux::Client,
    extension: Arc<SalesforceExtension>,
    store: Arc<dyn ReplayStore>,
    default_replay: ReplayFrom,
    commits: mpsc::UnboundedSender<Commit>,
}

impl StreamingClient {
    /// A builder that logs in with `authenticator`.
    pub fn builder(authenticator: Authenticator) -> StreamingClientBuilder {
        StreamingClientBuilder {
            authenticator,
            store: Arc::new(MemoryStore::new()),
            default_replay: ReplayFrom::New,
            fallback: None,
            delivery: Delivery::Automatic,
            max_pending: crate::DEFAULT_MAX_PENDING,
            connection_timeout: Some(crate::defaults::DEFAULT_CONNECTION_TIMEOUT),
            backoff: Backoff::default(),
            limit_retry: DEFAULT_LIMIT_RETRY,
            on_event: None,
            recovery: RecoveryOptions::default(),
        }
    }

    /// Subscribes to a channel, starting after its stored marker (or from
    /// the default replay option when nothing is stored).
    ///
    /// `channel` may carry a filter (`/topic/X?Industry='Energy'`); its
    /// marker is then kept under the whole subscription, filter included.
    /// Salesforce allows one subscription per channel in a session: a
    /// second one with another filter is refused
    /// ([`StreamingError::FilterConflict`]).
    ///
    /// A stored marker older than its channel's
    /// [`warn_age`](crate::replay::warn_age) is logged as a warning.
    pub async fn subscribe(&self, channel: &str) -> Result<(), StreamingError> {
        let (from, created) = match self.store.get(channel).await? {
            Some(marker) => {
                warn_if_old(channel, marker.created);
                (ReplayFrom::Id(marker.replay_id), marker.created)
            }
            None => (self.default_replay, None),
        };
        self.subscribe_at(channel, from, created).await
    }

    /// Subscribes to a channel from an explicit point, ignoring the store.
    pub async fn subscribe_from(
        &self,
        channel: &str,
        from: ReplayFrom,
    ) -> Result<(), StreamingError> {
        self.subscribe_at(channel, from, None).await
    }

    async fn subscribe_at(
        &self,
        channel: &str,
        from: ReplayFrom,
        created: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StreamingError> {
        if let Err(held) = self.extension.claim_at(channel, from, created) {
            return Err(StreamingError::FilterConflict {
                subscription: channel.to_string(),
                held,
            });
        }
        let result = match self.bayeux.subscribe(channel).await {
            Ok(()) => return Ok(()),
            Err(sfstream_bayeux::Error::SubscriptionFailed { channel, error })
                if is_invalid_replay_id(&error) =>
            {
                Err(StreamingError::ReplayIdExpired {
                    channel,
                    replay_id: from.as_i64(),
                    error,
                })
            }
            Err(error) => Err(error.into()),
        };
        // Not subscribed: the channel is free for another filter.
        self.extension.forget(channel);
        result
    }

    /// Unsubscribes from a channel.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), StreamingError> {
        self.bayeux.unsubscribe(channel).await?;
        self.extension.forget(channel);
        Ok(())
    }

    /// Publishes on a channel (generic Bayeux servers; Salesforce refuses
    /// CometD publishing: use the REST API for platform events).
    pub async fn publish<T: serde::Serialize>(
        &self,
        channel: &str,
        data: &T,
    ) -> Result<(), StreamingError> {
        Ok(self.bayeux.publish(channel, data).await?)
    }

    /// The replay store.
    pub fn replay_store(&self) -> &Arc<dyn ReplayStore> {
        &self.store
    }

    /// Waits (up to 30 s) until every marker committed so far is in the
    /// store; logs a warning naming what is not stored when the store does
    /// not take it in time. See [`StreamingClient::flush_within`] to learn
    /// the outcome.
    pub async fn flush(&self) {
        if let Err(error) = self.flush_within(FLUSH_TIMEOUT).await {
            tracing::warn!(%error, "flushing replay markers");
        }
    }

    /// Waits up to `timeout` until every marker committed so far is in the
    /// store.
    ///
    /// # Errors
    ///
    /// [`FlushError::Timeout`], naming the markers (and expired-marker
    /// removals) not stored yet and the store's last error, when the store
    /// is down or slow (the client keeps retrying them);
    /// [`FlushError::Closed`] after [`StreamingClient::close`].
    pub async fn flush_within(&self, timeout: Duration) -> Result<(), FlushError> {
        super::commit::flush(&self.commits, timeout).await
    }

    /// Disconnects, tries for up to 10 s to store pending markers, and
    /// releases the store (a file store can be opened again at once).
    /// Markers not stored by then are logged and dropped: they only lag
    /// (the events after the last stored marker are delivered again after a
    /// restart). Markers committed after this are not stored.
    pub async fn close(&self) {
        self.bayeux.disconnect().await;
        super::commit::close(&self.commits, CLOSE_TIMEOUT).await;
    }
}

/// One received event.
#[derive(Debug)]
pub struct StreamMessage {
    /// The channel it arrived on.
    pub channel: String,
    /// The subscription it belongs to, exactly as subscribed (with its
    /// `?filter`, if any): what markers are keyed by.
    pub subscription: String,
    /// Its data, as received.
    pub data: Box<RawValue>,
    /// Its replay marker, when it has one.
    pub marker: Option<ReplayMarker>,
    /// Set when this item is not an event but a [`Gap`]: a stored replay
    /// id had expired and the subscription fell back, so the events of
    /// this window may be missed. `data` is then the gap as JSON
    /// (`{"gap": {…}}`, [`Gap::to_json`]), `marker` is `None` and
    /// [`ack`](Self::ack) does nothing.
    pub gap: Option<Gap>,
    /// Set when this item was not streamed but read from the REST API to
    /// fill a [`Gap`] (the builder's
    /// [`backfill`](StreamingClientBuilder::backfill)): `data` carries
    /// `"backfilled": true`, `marker` is `None` and
    /// [`ack`](Self::ack) does nothing.
    pub backfilled: bool,
    commits: Option<mpsc::UnboundedSender<Commit>>,
}

impl StreamMessage {
    fn of_gap(gap: Gap) -> Self {
        let data =
            serde_json::value::to_raw_value(&gap.to_json()).unwrap_or_else(|_| unreachable_null());
        StreamMessage {
            channel: crate::replay::channel_key(&gap.channel).to_string(),
            subscription: gap.channel.clone(),
            data,
            marker: None,
            gap: Some(gap),
            backfilled: false,
            commits: None,
        }
    }

    pub(super) fn of_backfill(gap: &Gap, data: &serde_json::Value) -> Self {
        StreamMessage {
            channel: crate::replay::channel_key(&gap.channel).to_string(),
            subscription: gap.channel.clone(),
            data: serde_json::value::to_raw_value(data).unwrap_or_else(|_| unreachable_null()),
            marker: None,
            gap: None,
            backfilled: true,
            commits: None,
        }
    }

    /// The data as a JSON value.
    pub fn data_value(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_str(self.data.get())
    }

    /// The data as one of the typed payloads (`PushTopicEvent`, `ChangeEvent`, …).
    pub fn data_as<'a, T: serde::Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        serde_json::from_str(self.data.get())
    }

    /// The replay id, when the event has one.
    pub fn replay_id(&self) -> Option<i64> {
        self.marker.map(|m| m.replay_id)
    }

    /// Commits this event's marker (in [`Delivery::Acknowledged`] mode; a
    /// no-op otherwise). The store never moves backwards, so acknowledging
    /// out of order never loses a later marker, but a consumer that needs
    /// "every earlier event handled" must acknowledge in order.
    pub fn ack(&self) {
        if let (Some(commits), Some(marker)) = (&self.commits, self.marker) {
            let _ = commits.send(Commit::Advance(self.subscription.clone(), marker));
        }
    }
}

/// The events of the subscribed channels, in order. A subscription that
/// fails for good (e.g. an expired replay id on an automatic resubscribe
/// without fallback) yields an error and the stream goes on; an error that
/// ends the session is the last item.
pub struct StreamMessages {
    inner: Messages,
    gaps: mpsc::Receiver<Gap>,
    delivery: Delivery,
    commits: mpsc::UnboundedSender<Commit>,
    extension: Arc<SalesforceExtension>,
    /// REST reads for gap events and backfills, when asked for.
    recovery: Option<Arc<Recovery>>,
    /// Items ready to hand out before anything else.
    ready: VecDeque<StreamMessage>,
    /// A REST read under way; nothing else is handed out meanwhile (the
    /// order stays the stream's). In a mutex only to keep the stream
    /// `Sync`; it is reached through `&mut self`, never locked.
    work: std::sync::Mutex<Option<BoxFuture<'static, Vec<StreamMessage>>>>,
}

impl std::fmt::Debug for StreamMessages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamMessages")
            .field("inner", &self.inner)
            .field("delivery", &self.delivery)
            .field("ready", &self.ready.len())
            .field("recovering", &self.work.lock().map(|w| w.is_some()).ok())
            .finish_non_exhaustive()
    }
}

impl StreamMessages {
    /// Events received and not yet taken.
    pub fn pending_count(&self) -> usize {
        self.inner.pending_count()
    }

    fn convert(
        &self,
        item: Result<Message, sfstream_bayeux::Error>,
    ) -> Result<StreamMessage, StreamingError> {
        match item {
            Ok(message) => {
                // The extension parsed the marker on receipt: not again here.
                let received = message
                    .attachment
                    .as_ref()
                    .and_then(|a| a.get::<Received>());
                let marker = received.map(|r| r.marker);
                let subscription = match received {
                    Some(r) => r.subscription.to_string(),
                    None => self
                        .extension
                        .subscription_of(&message.channel)
                        .unwrap_or_else(|| message.channel.clone()),
                };
                let data = message.data.unwrap_or_else(|| {
                    RawValue::from_string("null".into()).unwrap_or_else(|_| unreachable_null())
                });
                let commits = match (self.delivery, marker) {
                    (Delivery::Automatic, Some(marker)) => {
                        let _ = self
                            .commits
                            .send(Commit::Advance(subscription.clone(), marker));
                        None
                    }
                    (Delivery::Acknowledged, _) => Some(self.commits.clone()),
                    _ => None,
                };
                Ok(StreamMessage {
                    subscription,
                    channel: message.channel,
                    data,
                    marker,
                    gap: None,
                    backfilled: false,
                    commits,
                })
            }
            Err(sfstream_bayeux::Error::SubscriptionFailed { channel, error })
                if is_invalid_replay_id(&error) =>
            {
                let replay_id = error
                    .message
                    .split(['{', '}'])
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_default();
                Err(StreamingError::ReplayIdExpired {
                    channel,
                    replay_id,
                    error,
                })
            }
            Err(error) => Err(error.into()),
        }
    }
}

pub(super) fn unreachable_null() -> Box<RawValue> {
    serde_json::value::to_raw_value(&serde_json::Value::Null).unwrap_or_default()
}

impl Stream for StreamMessages {
    type Item = Result<StreamMessage, StreamingError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(message)));
            }
            let this = &mut *self;
            let work = this.work.get_mut().unwrap_or_else(|e| e.into_inner());
            if let Some(future) = work.as_mut() {
                let Poll::Ready(messages) = future.poll_unpin(cx) else {
                    return Poll::Pending;
                };
                *work = None;
                this.ready.extend(messages);
                continue;
            }
            // A gap is queued before the subscribe that follows it goes
            // out: taking gaps first puts it before that subscription's
            // events (and its backfill between the two).
            if let Poll::Ready(Some(gap)) = self.gaps.poll_recv(cx) {
                if let Some(recovery) = self.recovery.clone()
                    && recovery.options().backfill
                {
                    *self.work.get_mut().unwrap_or_else(|e| e.into_inner()) =
                        Some(super::recover::backfill(recovery, gap.clone()).boxed());
                }
                return Poll::Ready(Some(Ok(StreamMessage::of_gap(gap))));
            }
            return match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let item = self.convert(item);
                    match (item, self.recovery.clone()) {
                        (Ok(message), Some(recovery)) if recovery.options().fetch_gap_records => {
                            match super::recover::gap_event_data(&message) {
                                Some(data) => {
                                    *self.work.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(
                                        super::recover::fetch_gap(recovery, message, data).boxed(),
                                    );
                                    continue;
                                }
                                None => Poll::Ready(Some(Ok(message))),
                            }
                        }
                        (item, _) => Poll::Ready(Some(item)),
                    }
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}
