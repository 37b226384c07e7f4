//! The session task: one background task owns the Bayeux session
//! (handshake, the connect loop, subscriptions through the state machine of
//! `subscriptions.rs`, side requests, recovery as the server advises) and
//! serves the commands of the [`Client`](crate::Client) handles.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use sfstream_common::Backoff;
use tokio::sync::{mpsc, oneshot};

use crate::advice::{CurrentAdvice, Reconnect};
use crate::client::{
    AuthFailureCheck, BatchReply, ClientEvent, Command, EventHandler, HandshakeReason, Pending,
    Reauthenticate, SlowRetryCheck,
};
use crate::error::{Error, ErrorField, TransportError};
use crate::extension::SubscriptionFailure;
use crate::message::{CONNECT, DISCONNECT, HANDSHAKE, Message, SUBSCRIBE, UNSUBSCRIBE};
use crate::subscriptions::{Kind, Notice, Refusal, Reply, Request, Subscriptions};
use crate::transport::Transport;

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

/// What the builder decided: the task's settings.
pub(crate) struct Settings {
    pub(crate) max_pending: usize,
    pub(crate) backoff: Backoff,
    pub(crate) connection_timeout: Option<Duration>,
    pub(crate) request_margin: Duration,
    pub(crate) subscribe_timeout: Duration,
    pub(crate) reauthenticate: Option<Arc<dyn Reauthenticate>>,
    pub(crate) auth_failure: AuthFailureCheck,
    pub(crate) slow_retry: SlowRetryCheck,
    pub(crate) on_event: Option<EventHandler>,
    pub(crate) rehandshake_after_failure: bool,
}

/// The background task: owns the session.
pub(crate) struct Task {
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
    slow_retry: SlowRetryCheck,
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
    /// A task that has not handshaken yet; `ready` hears of the first handshake.
    pub(crate) fn new(
        transport: Arc<Transport>,
        commands: mpsc::Receiver<Command>,
        out: mpsc::UnboundedSender<Result<Message, Error>>,
        pending: Arc<Pending>,
        ready: oneshot::Sender<Result<(), Error>>,
        settings: Settings,
    ) -> Self {
        Self {
            transport,
            commands,
            out,
            pending,
            max_pending: settings.max_pending,
            backoff: settings.backoff,
            connection_timeout: settings.connection_timeout,
            request_margin: settings.request_margin,
            subscribe_timeout: settings.subscribe_timeout,
            reauthenticate: settings.reauthenticate,
            auth_failure: settings.auth_failure,
            slow_retry: settings.slow_retry,
            on_event: settings.on_event,
            rehandshake_after_failure: settings.rehandshake_after_failure,
            client_id: None,
            advice: CurrentAdvice::default(),
            subscriptions: Subscriptions::new(settings.backoff),
            next_id: 0,
            attempt: 0,
            auth_attempts: 0,
            failing_since: None,
            requests: FuturesUnordered::new(),
            interrupt: None,
            ready: Some(ready),
        }
    }

    pub(crate) async fn run(mut self) {
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

    /// Records a refusal to retry slowly (a spent quota): the delay is at
    /// least `floor`, doubled per further refusal (up to 8 times), and
    /// never past the connection timeout, where the client stops with the
    /// refusal itself (the clearest error there is).
    fn failed_slowly(
        &mut self,
        channel: &str,
        error: ErrorField,
        floor: Duration,
    ) -> Result<Duration, Stop> {
        self.attempt += 1;
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        let factor = 1u32 << (self.attempt - 1).min(3);
        let mut retry_in = self
            .backoff
            .delay(self.attempt)
            .max(floor.saturating_mul(factor));
        if let Some(limit) = self.connection_timeout {
            let left = limit.saturating_sub(since.elapsed());
            if left.is_zero() {
                return Err(Stop::Failed(Error::Refused {
                    channel: channel.to_string(),
                    error,
                }));
            }
            retry_in = retry_in.min(left);
        }
        tracing::error!(%error, attempt = self.attempt, ?retry_in, "{channel} refused; retrying slowly");
        self.emit(ClientEvent::ConnectionFailed {
            error: format!("{channel} refused: {error}"),
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
            if let Some(floor) = (self.slow_retry)(&reply) {
                let delay = self.failed_slowly(HANDSHAKE, error, floor)?;
                self.sleep(delay).await?;
                return Ok(Step::Handshake(reason));
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
        if let Some(floor) = (self.slow_retry)(&reply) {
            let delay = self.failed_slowly(CONNECT, error, floor)?;
            self.sleep(delay).await?;
            return Ok(Step::Connect);
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
