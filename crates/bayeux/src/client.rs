//! The client: its builder, a handle that sends commands to the background
//! task that owns the Bayeux session (`session.rs`), and the stream of the
//! messages it receives.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::Stream;
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::error::{Error, ErrorField};
use crate::extension::Extension;
use crate::message::Message;
use crate::session::{Settings, Task};
use crate::transport::{DEFAULT_MAX_RESPONSE_BYTES, Transport};
use sfstream_common::Backoff;

/// Why the client (re-)handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeReason {
    /// The first handshake.
    Initial,
    /// The server forgot the session (`403::Unknown client`, advice `handshake`).
    SessionLost,
    /// The server sent `/meta/disconnect`.
    ServerDisconnect,
    /// After logging in again.
    Reauthenticated,
    /// A connect failed in a way that may have lost a response (see
    /// [`ClientBuilder::rehandshake_after_failure`]).
    ConnectionLost,
}

/// Something that happened to the connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A handshake succeeded.
    Handshaken {
        /// The new client id.
        client_id: String,
        /// Why the handshake was made.
        reason: HandshakeReason,
    },
    /// A request failed; the client will retry after `retry_in`.
    ConnectionFailed {
        /// What failed.
        error: String,
        /// Consecutive failures so far.
        attempt: u32,
        /// Delay before the next try.
        retry_in: Duration,
    },
    /// A connect succeeded after failures.
    Reconnected,
    /// Credentials were renewed after the server refused them.
    Reauthenticated,
    /// The server sent `/meta/disconnect`.
    ServerDisconnected,
    /// The server accepted a subscription (the first subscribe, or a
    /// resubscribe after a new handshake).
    Subscribed {
        /// The channel (the subscription as sent, filter included).
        channel: String,
    },
    /// A subscribe was refused or lost and will be sent again after `retry_in`.
    SubscriptionRetrying {
        /// The channel.
        channel: String,
        /// What went wrong.
        error: String,
        /// Consecutive failures of this subscription.
        attempt: u32,
        /// Delay before the next subscribe.
        retry_in: Duration,
    },
    /// A subscription was refused and given up.
    SubscriptionFailed {
        /// The channel.
        channel: String,
        /// The server's error.
        error: ErrorField,
    },
    /// The client stopped.
    Closed {
        /// Why, when it was an error.
        error: Option<String>,
    },
}

/// Renews credentials when the server refuses them: returns the endpoint
/// URL to use from now on (`None` keeps the current one), or why it failed.
pub trait Reauthenticate: Send + Sync + 'static {
    /// Logs in again.
    fn reauthenticate(&self) -> BoxFuture<'_, Result<Option<String>, String>>;
}

/// Decides whether a refused reply means "your credentials are no good"
/// (what that looks like is the server's own convention: the generic
/// client recognises none, the Salesforce layer knows Salesforce's text).
pub type AuthFailureCheck = Arc<dyn Fn(&Message) -> bool + Send + Sync>;

/// Decides whether a refused handshake or connect means "retry, but
/// slowly" (a quota is spent: retrying at the usual pace would burn what is
/// left, or storm the server), and the least delay before the first retry
/// (it doubles on each further refusal, up to 8 times). `None`: handled as
/// usual. What that looks like is the server's convention (the Salesforce
/// layer knows Salesforce's limit errors).
pub type SlowRetryCheck = Arc<dyn Fn(&Message) -> Option<Duration> + Send + Sync>;

pub(crate) type EventHandler = Arc<dyn Fn(&ClientEvent) + Send + Sync>;

/// Builds a [`Client`].
pub struct ClientBuilder {
    url: String,
    extensions: Vec<Arc<dyn Extension>>,
    backoff: Backoff,
    connection_timeout: Option<Duration>,
    max_pending: usize,
    max_response_bytes: usize,
    request_margin: Duration,
    subscribe_timeout: Duration,
    reauthenticate: Option<Arc<dyn Reauthenticate>>,
    auth_failure: AuthFailureCheck,
    slow_retry: SlowRetryCheck,
    on_event: Option<EventHandler>,
    rehandshake_after_failure: bool,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("extensions", &self.extensions.len())
            .field("backoff", &self.backoff)
            .field("connection_timeout", &self.connection_timeout)
            .field("max_pending", &self.max_pending)
            .finish()
    }
}

/// Default bound of received messages waiting to be consumed.
pub const DEFAULT_MAX_PENDING: usize = 10_000;

/// Default bound of a subscribe or unsubscribe call.
pub const DEFAULT_SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(60);

impl ClientBuilder {
    /// A client of the Bayeux endpoint at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            extensions: Vec::new(),
            backoff: Backoff::default(),
            connection_timeout: Some(Duration::from_secs(600)),
            max_pending: DEFAULT_MAX_PENDING,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            request_margin: Duration::from_secs(30),
            subscribe_timeout: DEFAULT_SUBSCRIBE_TIMEOUT,
            reauthenticate: None,
            auth_failure: Arc::new(|_: &Message| false),
            slow_retry: Arc::new(|_: &Message| None),
            on_event: None,
            rehandshake_after_failure: false,
        }
    }

    /// Handshake again (and resubscribe) after a connect whose response
    /// was lost or unreadable, instead of retrying the connect. The server
    /// may have handed events to that lost response; with a replay
    /// extension, resubscribing from the last received ids brings them back.
    pub fn rehandshake_after_failure(mut self, enabled: bool) -> Self {
        self.rehandshake_after_failure = enabled;
        self
    }

    /// Adds an extension (hooks run in the order added).
    pub fn extension(mut self, extension: Arc<dyn Extension>) -> Self {
        self.extensions.push(extension);
        self
    }

    /// Retry delays.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Give up when no connection could be re-established for this long
    /// (`None`: keep trying forever). Default 10 minutes.
    pub fn connection_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Most received messages waiting to be consumed; when reached the
    /// client stops polling instead of buffering more.
    pub fn max_pending(mut self, max: usize) -> Self {
        self.max_pending = max.max(1);
        self
    }

    /// Largest response body accepted.
    pub fn max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }

    /// How much longer than the server's hold time a connect may take
    /// before it counts as lost (default 30 s).
    pub fn request_margin(mut self, margin: Duration) -> Self {
        self.request_margin = margin;
        self
    }

    /// The longest a subscribe or unsubscribe call waits for its outcome
    /// (default [`DEFAULT_SUBSCRIBE_TIMEOUT`]); a subscribe that times out
    /// fails and is not made later behind the caller's back.
    pub fn subscribe_timeout(mut self, timeout: Duration) -> Self {
        self.subscribe_timeout = timeout;
        self
    }

    /// How to log in again when the server refuses the credentials.
    pub fn reauthenticate(mut self, hook: Arc<dyn Reauthenticate>) -> Self {
        self.reauthenticate = Some(hook);
        self
    }

    /// Which refused replies mean "credentials refused" (default: none; a
    /// refused reply is otherwise handled as its advice says).
    pub fn auth_failure(mut self, check: AuthFailureCheck) -> Self {
        self.auth_failure = check;
        self
    }

    /// Which refused handshakes and connects are retried slowly, and how
    /// slowly ([`SlowRetryCheck`]; default: none). The delays stay within
    /// the connection timeout: when it passes, the client stops with the
    /// refusal ([`Error::Refused`]).
    pub fn slow_retry(mut self, check: SlowRetryCheck) -> Self {
        self.slow_retry = check;
        self
    }

    /// Called for every [`ClientEvent`].
    pub fn on_event(mut self, handler: impl Fn(&ClientEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(handler));
        self
    }

    /// Starts the client and waits for the first handshake. Transient
    /// failures are retried (within the connection timeout); refused
    /// credentials or `reconnect: none` fail at once.
    pub async fn connect(self) -> Result<(Client, Messages), Error> {
        let extensions: Arc<[Arc<dyn Extension>]> = self.extensions.into();
        let transport = Arc::new(Transport::new(
            self.url,
            extensions,
            self.max_response_bytes,
        )?);
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let pending = Arc::new(Pending::default());
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = Task::new(
            transport,
            commands_rx,
            out_tx,
            pending.clone(),
            ready_tx,
            Settings {
                max_pending: self.max_pending,
                backoff: self.backoff,
                connection_timeout: self.connection_timeout,
                request_margin: self.request_margin,
                subscribe_timeout: self.subscribe_timeout,
                reauthenticate: self.reauthenticate,
                auth_failure: self.auth_failure,
                slow_retry: self.slow_retry,
                on_event: self.on_event,
                rehandshake_after_failure: self.rehandshake_after_failure,
            },
        );
        tokio::spawn(task.run());
        match ready_rx.await {
            Ok(Ok(())) => Ok((
                Client {
                    commands: commands_tx,
                },
                Messages {
                    receiver: out_rx,
                    pending,
                },
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Closed),
        }
    }
}

/// A handle on a running client. Cheap to clone; the session ends when
/// [`Client::disconnect`] is called or every handle and the stream are dropped.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
}

/// Where the per-channel results of a batched subscribe or unsubscribe go.
pub(crate) type BatchReply = oneshot::Sender<Vec<Result<(), Error>>>;

pub(crate) enum Command {
    Subscribe(Vec<String>, BatchReply),
    Unsubscribe(Vec<String>, BatchReply),
    Publish(String, Box<RawValue>, oneshot::Sender<Result<(), Error>>),
    Disconnect(oneshot::Sender<()>),
}

impl Client {
    /// A builder for a client of the endpoint at `url`.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// Subscribes to one channel; resolves when the server accepted it.
    pub async fn subscribe(&self, channel: &str) -> Result<(), Error> {
        self.subscribe_many(&[channel])
            .await
            .pop()
            .unwrap_or(Err(Error::Closed))
    }

    /// Subscribes to several channels in one request.
    pub async fn subscribe_many(&self, channels: &[&str]) -> Vec<Result<(), Error>> {
        self.batch(channels, Command::Subscribe).await
    }

    /// Unsubscribes from one channel.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), Error> {
        self.unsubscribe_many(&[channel])
            .await
            .pop()
            .unwrap_or(Err(Error::Closed))
    }

    /// Unsubscribes from several channels in one request.
    pub async fn unsubscribe_many(&self, channels: &[&str]) -> Vec<Result<(), Error>> {
        self.batch(channels, Command::Unsubscribe).await
    }

    async fn batch(
        &self,
        channels: &[&str],
        make: fn(Vec<String>, BatchReply) -> Command,
    ) -> Vec<Result<(), Error>> {
        if let Some(bad) = channels.iter().find(|c| !valid_channel(c)) {
            return channels
                .iter()
                .map(|_| {
                    Err(Error::InvalidArgument(format!(
                        "not a channel name: {bad:?}"
                    )))
                })
                .collect();
        }
        let (tx, rx) = oneshot::channel();
        let list = channels.iter().map(|c| c.to_string()).collect();
        if self.commands.send(make(list, tx)).await.is_err() {
            return channels.iter().map(|_| Err(Error::Closed)).collect();
        }
        rx.await
            .unwrap_or_else(|_| channels.iter().map(|_| Err(Error::Closed)).collect())
    }

    /// Publishes `data` on `channel`.
    pub async fn publish<T: serde::Serialize>(&self, channel: &str, data: &T) -> Result<(), Error> {
        if !valid_channel(channel) || channel.starts_with("/meta/") || channel.contains('?') {
            return Err(Error::InvalidArgument(format!(
                "cannot publish to {channel:?}"
            )));
        }
        let raw = serde_json::value::to_raw_value(data)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Publish(channel.to_string(), raw, tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Disconnects and stops; the message stream ends after what was received.
    pub async fn disconnect(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Disconnect(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// A channel name, optionally followed by a `?filter` (Salesforce's filtered
/// subscriptions, e.g. `/topic/X?Industry='Energy'&ShippingCity='San Francisco'`):
/// the name has no whitespace, the filter no control characters.
fn valid_channel(channel: &str) -> bool {
    let (name, filter) = channel.split_once('?').unwrap_or((channel, ""));
    name.starts_with('/')
        && name.len() > 1
        && !name.contains(char::is_whitespace)
        && !filter.contains(char::is_control)
}

/// How many received messages wait to be taken, and a wake-up for the
/// session task when one is taken.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) count: AtomicUsize,
    pub(crate) notify: Notify,
}

/// The messages the client receives, in order. Items are events
/// (`Ok(message)`), subscription failures that do not stop the stream
/// (`Err(Error::SubscriptionFailed)`), and a final error if the client
/// stopped on one; the stream ends when the client stops.
#[derive(Debug)]
pub struct Messages {
    receiver: mpsc::UnboundedReceiver<Result<Message, Error>>,
    pending: Arc<Pending>,
}

impl Messages {
    /// Messages received and not yet taken.
    pub fn pending_count(&self) -> usize {
        self.pending.count.load(Ordering::Relaxed)
    }

    /// Takes every message already received, without waiting, into `out`
    /// (at most `max`); returns how many were taken.
    pub fn drain_ready(&mut self, out: &mut Vec<Result<Message, Error>>, max: usize) -> usize {
        let mut taken = 0;
        while taken < max {
            match self.receiver.try_recv() {
                Ok(item) => {
                    self.taken(&item);
                    out.push(item);
                    taken += 1;
                }
                Err(_) => break,
            }
        }
        taken
    }

    fn taken(&self, item: &Result<Message, Error>) {
        if item.is_ok() {
            self.pending.count.fetch_sub(1, Ordering::AcqRel);
            self.pending.notify.notify_one();
        }
    }
}

impl Stream for Messages {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.receiver.poll_recv(cx);
        if let Poll::Ready(Some(item)) = &polled {
            self.taken(item);
        }
        polled
    }
}
