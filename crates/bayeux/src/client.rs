//! The client: a handle that sends commands to one background task, which
//! owns the Bayeux session (handshake, connect loop, subscriptions,
//! recovery), and a stream of the messages it receives.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::advice::{CurrentAdvice, Reconnect};
use crate::error::{Error, ErrorField, TransportError};
use crate::extension::{Extension, SubscriptionFailure};
use crate::message::{CONNECT, DISCONNECT, HANDSHAKE, Message, SUBSCRIBE, UNSUBSCRIBE};
use crate::subscriptions::{Kind, Notice, Refusal, Reply, Request, Subscriptions};
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

type EventHandler = Arc<dyn Fn(&ClientEvent) + Send + Sync>;

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
        let task = Task {
            transport,
            commands: commands_rx,
            out: out_tx,
            pending: pending.clone(),
            max_pending: self.max_pending,
            backoff: self.backoff,
            connection_timeout: self.connection_timeout,
            request_margin: self.request_margin,
            subscribe_timeout: self.subscribe_timeout,
            reauthenticate: self.reauthenticate,
            auth_failure: self.auth_failure,
            on_event: self.on_event,
            rehandshake_after_failure: self.rehandshake_after_failure,
            client_id: None,
            advice: CurrentAdvice::default(),
            subscriptions: Subscriptions::new(self.backoff),
            next_id: 0,
            attempt: 0,
            auth_attempts: 0,
            failing_since: None,
            requests: FuturesUnordered::new(),
            interrupt: None,
            ready: Some(ready_tx),
        };
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
type BatchReply = oneshot::Sender<Vec<Result<(), Error>>>;

enum Command {
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

#[derive(Debug, Default)]
struct Pending {
    count: AtomicUsize,
    notify: Notify,
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

/// What a finished side request (subscribes and unsubscribes, or a publish) reports.
struct RequestDone {
    kind: RequestKind,
    /// The session it was sent in.
    session: u64,
    result: Result<Vec<Message>, TransportError>,
}

enum RequestKind {
    Subscriptions(Vec<Request>),
    Publish {
        channel: String,
        id: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// What the main loop does next.
enum Step {
    Handshake(HandshakeReason),
    Connect,
    /// Log in again, then handshake.
    Reauthenticate(String),
}

type SubscribeWaiter = oneshot::Sender<Result<(), Error>>;

struct Task {
    transport: Arc<Transport>,
    commands: mpsc::Receiver<Command>,
    out: mpsc::UnboundedSender<Result<Message, Error>>,
    pending: Arc<Pending>,
    max_pending: usize,
    backoff: Backoff,
    connection_timeout: Option<Duration>,
    request_margin: Duration,
    subscribe_timeout: Duration,
    reauthenticate: Option<Arc<dyn Reauthenticate>>,
    auth_failure: AuthFailureCheck,
    on_event: Option<EventHandler>,
    rehandshake_after_failure: bool,
    client_id: Option<String>,
    advice: CurrentAdvice,
    subscriptions: Subscriptions<SubscribeWaiter>,
    next_id: u64,
    /// Consecutive failures of the main loop (reset by a successful connect).
    attempt: u32,
    /// Consecutive re-logins not followed by a successful connect.
    auth_attempts: u32,
    failing_since: Option<Instant>,
    requests: FuturesUnordered<BoxFuture<'static, RequestDone>>,
    /// Set when a side request learned that the session is gone or the
    /// credentials were refused: the main loop stops waiting and acts.
    interrupt: Option<Step>,
    ready: Option<oneshot::Sender<Result<(), Error>>>,
}

/// Why the main loop stops what it is doing.
enum Stop {
    Disconnected,
    Failed(Error),
    /// Not a stop: go to this step at once.
    Interrupted(Step),
}

impl Task {
    async fn run(mut self) {
        let mut step = Step::Handshake(HandshakeReason::Initial);
        let outcome = loop {
            let result = match step {
                Step::Handshake(reason) => self.handshake(reason).await,
                Step::Connect => self.connect().await,
                Step::Reauthenticate(why) => self.reauthenticate(why).await,
            };
            match result {
                Ok(next) | Err(Stop::Interrupted(next)) => step = next,
                Err(stop) => break stop,
            }
        };
        let error = match outcome {
            Stop::Failed(error) => Some(error),
            _ => None,
        };
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(error.clone().unwrap_or(Error::Closed)));
        } else if let Some(error) = &error {
            let _ = self.out.send(Err(error.clone()));
        }
        self.subscriptions
            .close(&error.clone().unwrap_or(Error::Closed));
        self.emit(ClientEvent::Closed {
            error: error.map(|e| e.to_string()),
        });
    }

    fn emit(&self, event: ClientEvent) {
        tracing::debug!(?event, "bayeux");
        if let Some(handler) = &self.on_event {
            handler(&event);
        }
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    fn request_timeout(&self) -> Duration {
        self.advice.timeout + self.request_margin
    }

    /// Runs `work` while still serving commands, side requests and the
    /// subscription timers; returns early when a side request interrupts.
    async fn serve_while<T>(&mut self, work: impl Future<Output = T>) -> Result<T, Stop> {
        tokio::pin!(work);
        loop {
            if let Some(step) = self.interrupt.take() {
                return Err(Stop::Interrupted(step));
            }
            let due = self.subscriptions.next_due();
            tokio::select! {
                done = &mut work => return Ok(done),
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command)?,
                    None => return Err(Stop::Disconnected),
                },
                Some(done) = self.requests.next(), if !self.requests.is_empty() => self.request_done(done),
                _ = sleep_until(due), if due.is_some() => self.pump(),
            }
        }
    }

    /// Records a failure; returns the delay before retrying, or stops when
    /// the connection timeout has passed.
    fn failed(&mut self, error: String) -> Result<Duration, Stop> {
        self.attempt += 1;
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if let Some(limit) = self.connection_timeout
            && since.elapsed() >= limit
        {
            return Err(Stop::Failed(Error::ConnectionTimeout(limit)));
        }
        let retry_in = self.backoff.delay(self.attempt).max(self.advice.interval);
        tracing::warn!(%error, attempt = self.attempt, ?retry_in, "bayeux request failed");
        self.emit(ClientEvent::ConnectionFailed {
            error,
            attempt: self.attempt,
            retry_in,
        });
        Ok(retry_in)
    }

    /// A connect succeeded: the connection works again.
    fn succeeded(&mut self) {
        if self.attempt > 0 && self.client_id.is_some() {
            self.emit(ClientEvent::Reconnected);
        }
        self.attempt = 0;
        self.auth_attempts = 0;
        self.failing_since = None;
    }

    async fn sleep(&mut self, delay: Duration) -> Result<(), Stop> {
        if delay.is_zero() {
            return Ok(());
        }
        self.serve_while(tokio::time::sleep(delay)).await
    }

    /// Forgets the session: nothing is sent in it any more.
    fn end_session(&mut self) -> Option<String> {
        self.subscriptions.session_ended();
        self.client_id.take()
    }

    async fn handshake(&mut self, reason: HandshakeReason) -> Result<Step, Stop> {
        self.end_session();
        let mut message = Message::new(HANDSHAKE);
        message.id = Some(self.id());
        message.version = Some("1.0".into());
        message.minimum_version = Some("1.0".into());
        message.supported_connection_types = Some(vec!["long-polling".into()]);
        let transport = self.transport.clone();
        let timeout = self.request_margin.max(Duration::from_secs(30));
        let result = self
            .serve_while(transport.send(vec![message], timeout))
            .await?;
        let replies = match result {
            Ok(replies) => replies,
            Err(error) if error.is_unauthorized() => {
                return Ok(Step::Reauthenticate(error.to_string()));
            }
            Err(error) => {
                let delay = self.failed(format!("handshake: {error}"))?;
                self.sleep(delay).await?;
                return Ok(Step::Handshake(reason));
            }
        };
        self.deliver_events(&replies);
        let Some(reply) = replies.into_iter().find(|m| m.channel == HANDSHAKE) else {
            let delay = self.failed("handshake: no handshake reply".into())?;
            self.sleep(delay).await?;
            return Ok(Step::Handshake(reason));
        };
        if let Some(advice) = &reply.advice {
            self.advice.update(advice);
        }
        if !reply.is_successful() || reply.client_id.is_none() {
            let error = reply
                .error_field()
                .unwrap_or_else(|| ErrorField::parse("handshake refused"));
            if (self.auth_failure)(&reply) {
                return Ok(Step::Reauthenticate(error.to_string()));
            }
            if own_reconnect(&reply) == Some(Reconnect::None) {
                return Err(Stop::Failed(Error::ReconnectForbidden(error.to_string())));
            }
            let delay = self.failed(format!("handshake refused: {error}"))?;
            self.sleep(delay).await?;
            return Ok(Step::Handshake(reason));
        }
        let client_id = reply.client_id.unwrap_or_default();
        self.client_id = Some(client_id.clone());
        self.advice.reconnect = Reconnect::Retry;
        self.subscriptions.session_started();
        self.emit(ClientEvent::Handshaken { client_id, reason });
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Ok(()));
        }
        // Every wanted channel is subscribed again in the new session.
        self.pump();
        Ok(Step::Connect)
    }

    async fn reauthenticate(&mut self, why: String) -> Result<Step, Stop> {
        self.end_session();
        let Some(hook) = self.reauthenticate.clone() else {
            return Err(Stop::Failed(Error::Unauthorized(why)));
        };
        self.auth_attempts += 1;
        if self.auth_attempts > 3 {
            return Err(Stop::Failed(Error::Unauthorized(format!(
                "{why} (still refused after logging in again 3 times)"
            ))));
        }
        if self.auth_attempts > 1 {
            let delay = self.backoff.delay(self.auth_attempts);
            self.sleep(delay).await?;
        }
        tracing::info!(reason = %why, "credentials refused; logging in again");
        match self.serve_while(hook.reauthenticate()).await? {
            Ok(url) => {
                if let Some(url) = url {
                    self.transport.set_url(url);
                }
                self.emit(ClientEvent::Reauthenticated);
                Ok(Step::Handshake(HandshakeReason::Reauthenticated))
            }
            Err(error) => Err(Stop::Failed(Error::Unauthorized(format!(
                "{why}; logging in again failed: {error}"
            )))),
        }
    }

    async fn connect(&mut self) -> Result<Step, Stop> {
        let pending = self.pending.clone();
        let max = self.max_pending;
        self.serve_while(wait_below(&pending, max)).await?;
        let interval = self.advice.interval;
        self.sleep(interval).await?;
        let Some(client_id) = self.client_id.clone() else {
            return Ok(Step::Handshake(HandshakeReason::SessionLost));
        };
        let mut message = Message::new(CONNECT);
        message.id = Some(self.id());
        message.client_id = Some(client_id);
        message.connection_type = Some("long-polling".into());
        let transport = self.transport.clone();
        let timeout = self.request_timeout();
        let replies = match self
            .serve_while(transport.send(vec![message], timeout))
            .await?
        {
            Ok(replies) => replies,
            Err(error) if error.is_unauthorized() => {
                return Ok(Step::Reauthenticate(error.to_string()));
            }
            Err(error) => return self.connect_lost(format!("connect: {error}")).await,
        };
        self.deliver_events(&replies);
        let server_disconnect = replies.iter().any(|m| m.channel == DISCONNECT);
        let reply = replies.into_iter().find(|m| m.channel == CONNECT);
        if server_disconnect {
            self.emit(ClientEvent::ServerDisconnected);
            self.succeeded();
            return Ok(Step::Handshake(HandshakeReason::ServerDisconnect));
        }
        let Some(reply) = reply else {
            return self.connect_lost("connect: no connect reply".into()).await;
        };
        let own = own_reconnect(&reply);
        if let Some(advice) = &reply.advice {
            self.advice.update(advice);
        }
        if reply.is_successful() {
            self.succeeded();
            return match self.advice.reconnect {
                Reconnect::Retry => Ok(Step::Connect),
                Reconnect::Handshake => Ok(Step::Handshake(HandshakeReason::SessionLost)),
                Reconnect::None => Err(Stop::Failed(Error::ReconnectForbidden(
                    "the server's connect reply advised reconnect: none".into(),
                ))),
            };
        }
        let error = reply
            .error_field()
            .unwrap_or_else(|| ErrorField::parse("connect refused"));
        if (self.auth_failure)(&reply) {
            return Ok(Step::Reauthenticate(error.to_string()));
        }
        // The reply's own advice decides; without one, a server that no
        // longer knows the client needs a handshake, not the dead client id.
        let reconnect = own.unwrap_or(if session_unknown(&reply) {
            Reconnect::Handshake
        } else {
            self.advice.reconnect
        });
        match reconnect {
            Reconnect::None => Err(Stop::Failed(Error::ReconnectForbidden(error.to_string()))),
            Reconnect::Handshake => {
                // Backed off too: a server that forgets every new session
                // must not get a handshake storm.
                let delay = self.failed(format!("session lost: {error}"))?;
                self.sleep(delay).await?;
                Ok(Step::Handshake(HandshakeReason::SessionLost))
            }
            Reconnect::Retry => {
                let delay = self.failed(format!("connect refused: {error}"))?;
                self.sleep(delay).await?;
                Ok(Step::Connect)
            }
        }
    }

    /// A connect failed without a usable reply: wait, then connect again,
    /// or handshake again when responses may have been lost.
    async fn connect_lost(&mut self, error: String) -> Result<Step, Stop> {
        let delay = self.failed(error)?;
        self.sleep(delay).await?;
        if !self.rehandshake_after_failure {
            return Ok(Step::Connect);
        }
        if let Some(old) = self.end_session() {
            // Politely end the old session; the server would drop it anyway.
            let mut message = Message::new(DISCONNECT);
            message.id = Some(self.id());
            message.client_id = Some(old);
            let transport = self.transport.clone();
            tokio::spawn(async move {
                let _ = transport.send(vec![message], Duration::from_secs(5)).await;
            });
        }
        Ok(Step::Handshake(HandshakeReason::ConnectionLost))
    }

    /// Hands every event of a response to the consumer, whatever reply
    /// carried it: servers may deliver queued events with the reply to a
    /// subscribe, an unsubscribe or a publish, not only to a connect.
    fn deliver_events(&self, replies: &[Message]) {
        let mut delivered = 0;
        for message in replies {
            // A reply to a publish also names the channel, but carries
            // `successful`; an event does not.
            if !message.is_meta() && message.successful.is_none() {
                delivered += 1;
                let _ = self.out.send(Ok(message.clone()));
            }
        }
        self.pending.count.fetch_add(delivered, Ordering::AcqRel);
    }

    fn command(&mut self, command: Command) -> Result<(), Stop> {
        match command {
            Command::Subscribe(channels, reply) => self.want(channels, Kind::Subscribe, reply),
            Command::Unsubscribe(channels, reply) => self.want(channels, Kind::Unsubscribe, reply),
            Command::Publish(channel, data, reply) => {
                let Some(client_id) = self.client_id.clone() else {
                    let _ = reply.send(Err(Error::Transport(TransportError::Network(
                        "not connected".into(),
                    ))));
                    return Ok(());
                };
                let id = self.id();
                let mut message = Message::new(channel.clone());
                message.id = Some(id.clone());
                message.client_id = Some(client_id);
                message.data = Some(data);
                self.send_request(vec![message], RequestKind::Publish { channel, id, reply });
            }
            Command::Disconnect(reply) => {
                if let Some(client_id) = self.end_session() {
                    let mut message = Message::new(DISCONNECT);
                    message.id = Some(self.id());
                    message.client_id = Some(client_id);
                    let transport = self.transport.clone();
                    tokio::spawn(async move {
                        let _ = transport.send(vec![message], Duration::from_secs(5)).await;
                        let _ = reply.send(());
                    });
                } else {
                    let _ = reply.send(());
                }
                return Err(Stop::Disconnected);
            }
        }
        Ok(())
    }

    /// Records what the user wants for each channel; the outcomes go to `reply`.
    fn want(&mut self, channels: Vec<String>, kind: Kind, reply: BatchReply) {
        let deadline = Instant::now() + self.subscribe_timeout;
        let (waiters, receivers): (Vec<_>, Vec<_>) =
            channels.iter().map(|_| oneshot::channel()).unzip();
        tokio::spawn(async move {
            let mut results = Vec::new();
            for rx in receivers {
                results.push(rx.await.unwrap_or(Err(Error::Closed)));
            }
            let _ = reply.send(results);
        });
        for (channel, waiter) in channels.iter().zip(waiters) {
            self.subscriptions.want(channel, kind, waiter, deadline);
        }
        self.pump();
    }

    /// Sends what the subscription state machine says is due, and reports
    /// what it noticed.
    fn pump(&mut self) {
        let requests = self.subscriptions.poll(Instant::now());
        self.report();
        if requests.is_empty() {
            return;
        }
        let Some(client_id) = self.client_id.clone() else {
            return;
        };
        let messages = requests
            .iter()
            .map(|request| {
                let mut m = Message::new(match request.kind {
                    Kind::Subscribe => SUBSCRIBE,
                    Kind::Unsubscribe => UNSUBSCRIBE,
                });
                m.id = Some(request.id.clone());
                m.client_id = Some(client_id.clone());
                m.subscription = Some(request.channel.clone());
                m
            })
            .collect();
        self.send_request(messages, RequestKind::Subscriptions(requests));
    }

    fn report(&mut self) {
        for notice in self.subscriptions.take_notices() {
            match notice {
                Notice::Subscribed(channel) => self.emit(ClientEvent::Subscribed { channel }),
                Notice::Retrying {
                    channel,
                    error,
                    attempt,
                    retry_in,
                } => {
                    tracing::warn!(%channel, %error, attempt, ?retry_in, "subscribe failed; retrying");
                    self.emit(ClientEvent::SubscriptionRetrying {
                        channel,
                        error,
                        attempt,
                        retry_in,
                    });
                }
                Notice::Failed { channel, error } => {
                    // The consumer must hear of it, not only the event hook.
                    let _ = self.out.send(Err(Error::SubscriptionFailed {
                        channel: channel.clone(),
                        error: error.clone(),
                    }));
                    self.emit(ClientEvent::SubscriptionFailed { channel, error });
                }
            }
        }
    }

    fn send_request(&mut self, messages: Vec<Message>, kind: RequestKind) {
        let transport = self.transport.clone();
        let timeout = self.request_margin.max(Duration::from_secs(30));
        let session = self.subscriptions.session();
        self.requests.push(Box::pin(async move {
            let result = transport.send(messages, timeout).await;
            RequestDone {
                kind,
                session,
                result,
            }
        }));
    }

    fn request_done(&mut self, done: RequestDone) {
        if let Ok(replies) = &done.result {
            self.deliver_events(replies);
        }
        let current = self.subscriptions.is_current(done.session);
        match done.kind {
            RequestKind::Subscriptions(requests) => {
                for request in requests {
                    let reply = match &done.result {
                        Err(error) => {
                            if current && error.is_unauthorized() {
                                self.interrupt = Some(Step::Reauthenticate(error.to_string()));
                            }
                            Reply::Lost(error.to_string())
                        }
                        Ok(replies) => self.classify(&request, replies, current),
                    };
                    self.subscriptions
                        .reply(&request.channel, &request.id, done.session, reply);
                }
                self.pump();
            }
            RequestKind::Publish { channel, id, reply } => {
                let result = match done.result {
                    Ok(replies) => match reply_to(&replies, &channel, &id, |m| {
                        m.successful.is_some() && m.channel == channel
                    }) {
                        Some(m) if m.is_successful() => Ok(()),
                        Some(m) => Err(refused(&channel, m)),
                        None => Err(missing_reply(&channel)),
                    },
                    Err(error) => Err(Error::Transport(error)),
                };
                let _ = reply.send(result);
            }
        }
    }

    /// What the server said to one subscribe or unsubscribe, and what to do
    /// about a refusal (following the reply's advice, the credentials
    /// check, and the extensions).
    fn classify(&mut self, request: &Request, replies: &[Message], current: bool) -> Reply {
        let meta = match request.kind {
            Kind::Subscribe => SUBSCRIBE,
            Kind::Unsubscribe => UNSUBSCRIBE,
        };
        let Some(message) = reply_to(replies, meta, &request.id, |m| {
            m.subscription.as_deref() == Some(request.channel.as_str())
        }) else {
            return Reply::Lost(format!("no {meta} reply in the response"));
        };
        if message.is_successful() {
            return Reply::Accepted;
        }
        let error = message
            .error_field()
            .unwrap_or_else(|| ErrorField::parse(&format!("{meta} refused")));
        let action = if (self.auth_failure)(message) {
            if current {
                self.interrupt = Some(Step::Reauthenticate(error.to_string()));
            }
            Refusal::AfterHandshake
        } else if session_unknown(message) {
            if current {
                self.interrupt = Some(Step::Handshake(HandshakeReason::SessionLost));
            }
            Refusal::AfterHandshake
        } else if request.kind == Kind::Unsubscribe {
            Refusal::GiveUp
        } else {
            let opinions: Vec<SubscriptionFailure> = self
                .transport
                .extensions()
                .iter()
                .map(|e| e.subscription_failed(&request.channel, &error))
                .collect();
            if opinions.contains(&SubscriptionFailure::Retry) {
                Refusal::Now
            } else if opinions.contains(&SubscriptionFailure::GiveUp)
                || own_reconnect(message) == Some(Reconnect::None)
            {
                Refusal::GiveUp
            } else {
                Refusal::Later
            }
        };
        Reply::Refused { error, action }
    }
}

/// The `advice.reconnect` a reply carries itself (not the advice in force).
fn own_reconnect(message: &Message) -> Option<Reconnect> {
    message.advice.as_ref().and_then(|a| a.reconnect)
}

/// Whether a refused reply says the server no longer knows the client:
/// advice `handshake`, Bayeux's "unknown client" (402 in the specification,
/// 401 in Faye, 403 in Salesforce) or CometD's `session_unknown`.
fn session_unknown(message: &Message) -> bool {
    if own_reconnect(message) == Some(Reconnect::Handshake) {
        return true;
    }
    let text = message
        .error
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    text.contains("unknown client") || text.contains("session_unknown")
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due.into()).await,
        None => std::future::pending().await,
    }
}

async fn wait_below(pending: &Pending, max: usize) {
    loop {
        let notified = pending.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if pending.count.load(Ordering::Acquire) < max {
            return;
        }
        notified.await;
    }
}

/// The reply on `channel` to the message `id`; servers that do not echo
/// ids are matched by `fallback`.
fn reply_to<'a>(
    replies: &'a [Message],
    channel: &str,
    id: &str,
    fallback: impl Fn(&Message) -> bool,
) -> Option<&'a Message> {
    replies
        .iter()
        .find(|m| m.channel == channel && m.id.as_deref() == Some(id))
        .or_else(|| {
            replies
                .iter()
                .find(|m| m.channel == channel && m.id.is_none() && fallback(m))
        })
}

fn refused(channel: &str, message: &Message) -> Error {
    Error::Refused {
        channel: channel.to_string(),
        error: message
            .error_field()
            .unwrap_or_else(|| ErrorField::parse("refused")),
    }
}

fn missing_reply(channel: &str) -> Error {
    Error::Transport(TransportError::Malformed(format!(
        "no {channel} reply in the response"
    )))
}
