//! One subscription's task: opens the Subscribe (or ManagedSubscribe)
//! stream, asks for events as the consumer takes them, decodes them, and
//! recovers from every failure by its remedy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use sfstream_pubsub::errors::{Remedy, remedy};
use sfstream_pubsub::proto::{
    CommitReplayRequest, ConsumerEvent, FetchRequest, ManagedFetchRequest, ReplayPreset,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::commit::Commit;
use super::connect::{Auth, Connection};
use super::decode::decode_event;
use super::error::PubSubError;
use super::event::PubSubEvent;
use super::flow::Flow;
use super::message::{AckTo, Item, PubSubMessage, TopicShared};
use super::payload::Payload;
use super::schema::Schemas;
use crate::replay::{ExpiredReplayId, Gap, OpaqueMarker, ReplayFrom};

/// Where a stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    Preset(ReplayPreset),
    Custom(Vec<u8>),
}

/// What is subscribed.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Topic { fallback: Option<ReplayPreset> },
    Managed { developer_name: String },
}

/// Everything a subscription task needs.
pub(crate) struct Subscription {
    pub(crate) topic: Arc<str>,
    pub(crate) kind: Kind,
    pub(crate) start: Start,
    /// When the event of a `Custom` start was created, if known.
    pub(crate) start_created: Option<chrono::DateTime<chrono::Utc>>,
    pub(crate) connection: Arc<Connection>,
    pub(crate) schemas: Arc<Schemas>,
    pub(crate) shared: Arc<TopicShared>,
    pub(crate) out: mpsc::UnboundedSender<Item>,
    pub(crate) commits: mpsc::UnboundedSender<Commit>,
    pub(crate) max_pending: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) subscribe_timeout: Duration,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Told when the first stream is open (the server has taken the
    /// first FetchRequest, so a LATEST subscription's position is set).
    pub(crate) first_open: Option<tokio::sync::oneshot::Sender<()>>,
    /// REST reads for gap events and backfills, when asked for.
    pub(crate) recovery: Option<Arc<crate::recovery::Recovery>>,
    /// The JSON length of the last decoded event (sizes the next one's).
    pub(crate) json_len: std::sync::atomic::AtomicUsize,
}

/// The common part of FetchResponse and ManagedFetchResponse.
struct Batch {
    events: Vec<ConsumerEvent>,
    latest_replay_id: Vec<u8>,
    pending_num_requested: i32,
}

/// How one stream ended.
enum Ended {
    Status(tonic::Status),
    Silent,
    /// The Subscribe call was not answered in time.
    OpenTimeout,
    /// A clean end; `owed` is whether events were still requested (a
    /// stream with nothing requested is closed by the server when idle).
    ClosedByServer {
        owed: bool,
    },
    Shutdown,
    /// Nothing more to do (the consumer is gone, or a fatal error was sent).
    Done,
}

impl Subscription {
    fn send(&self, item: Result<PubSubMessage, PubSubError>) -> bool {
        self.out.send((self.shared.clone(), item)).is_ok()
    }

    /// Ends the subscription with `error`.
    fn fail(&self, error: PubSubError) {
        let _ = self.send(Err(error));
    }

    pub(crate) async fn run(mut self) {
        let mut flow = Flow::new(self.max_pending);
        // Items of an earlier subscription of the topic were counted by it.
        let mut taken_seen = self.shared.taken.load(Ordering::Acquire);
        let mut start = self.start.clone();
        let mut start_created = self.start_created;
        let mut attempt = 0u32;
        let mut failing_since: Option<Instant> = None;
        // Re-logins since the last healthy stream: a token refused again
        // right after a login is retried with backoff, not in a loop.
        let mut relogins = 0u32;
        let mut auth = match self.connection.auth().await {
            Ok(auth) => auth,
            Err(error) => return self.fail(error),
        };
        let (managed_tx, mut managed_rx) = mpsc::unbounded_channel();
        loop {
            flow.restart();
            let mut opened = false;
            let (ended, resume, healthy) = self
                .stream(
                    &auth,
                    &start,
                    &mut flow,
                    &mut taken_seen,
                    (&managed_tx, &mut managed_rx),
                    &mut opened,
                )
                .await;
            if let Some(resume) = resume {
                start = Start::Custom(resume);
                start_created = *self.shared.last_created.lock();
            }
            // The server accepting the stream is a working connection (the
            // connection timeout starts again); delivering is progress (so
            // does the backoff).
            if opened {
                failing_since = None;
            }
            if healthy {
                attempt = 0;
                relogins = 0;
            }
            let reason = match ended {
                Ended::Shutdown | Ended::Done => return,
                Ended::Silent => "no event and no keepalive within the idle timeout".to_string(),
                Ended::OpenTimeout => format!(
                    "Subscribe was not answered within {:?}",
                    self.subscribe_timeout
                ),
                // Idle close of a paused stream: expected, reopened as soon
                // as the consumer makes room.
                Ended::ClosedByServer { owed: false } => continue,
                Ended::ClosedByServer { owed: true } => "the server ended the stream".to_string(),
                Ended::Status(status) => match remedy(&status) {
                    Remedy::LogInAgain if relogins < 2 => {
                        relogins += 1;
                        match self.connection.relogin(&auth).await {
                            Ok(fresh) => {
                                auth = fresh;
                                continue;
                            }
                            Err(error) => return self.fail(error),
                        }
                    }
                    Remedy::LogInAgain => {
                        relogins = 0;
                        format!("the new session was refused too: {}", status.message())
                    }
                    Remedy::ReplayIdInvalid => {
                        let (
                            Start::Custom(refused),
                            Kind::Topic {
                                fallback: Some(fallback),
                            },
                        ) = (&start, &self.kind)
                        else {
                            return self.fail(match &start {
                                Start::Custom(id) => PubSubError::ReplayIdInvalid {
                                    topic: self.topic.to_string(),
                                    replay_id: sfstream_pubsub::replay_id::to_text(id),
                                },
                                Start::Preset(_) => {
                                    PubSubError::rpc(format!("Subscribe {}", self.topic), &status)
                                }
                            });
                        };
                        let fallback = *fallback;
                        // The stale marker goes, ordered before any marker
                        // of the new stream.
                        let _ = self.commits.send(Commit::Mark {
                            topic: self.topic.clone(),
                            seq: self.shared.next_seq(),
                            marker: None,
                        });
                        self.connection.emit.send(PubSubEvent::ReplayFallback {
                            topic: self.topic.to_string(),
                            refused_replay_id: sfstream_pubsub::replay_id::to_text(refused),
                            fallback: fallback.as_str_name().to_string(),
                        });
                        let gap = Gap {
                            channel: self.topic.to_string(),
                            from: start_created.take(),
                            to: chrono::Utc::now(),
                            fallback: match fallback {
                                ReplayPreset::Earliest => ReplayFrom::All,
                                _ => ReplayFrom::New,
                            },
                            expired_replay_id: ExpiredReplayId::Opaque(
                                sfstream_pubsub::replay_id::to_text(refused),
                            ),
                        };
                        self.connection.emit.send(PubSubEvent::Gap(gap.clone()));
                        // In the stream before any event of the new one,
                        // and so is its backfill.
                        if !self.send(Ok(PubSubMessage::of_gap(self.topic.clone(), gap.clone()))) {
                            return;
                        }
                        if let Some(recovery) = self.recovery.clone()
                            && recovery.options().backfill
                        {
                            for data in recovery.backfill(&gap).await {
                                let message = PubSubMessage::of_backfill(
                                    self.topic.clone(),
                                    data["payload"].clone(),
                                );
                                if !self.send(Ok(message)) {
                                    return;
                                }
                            }
                        }
                        start = Start::Preset(fallback);
                        continue;
                    }
                    Remedy::Retry => format!("{}: {}", status.code(), status.message()),
                    Remedy::Fail => {
                        return self.fail(PubSubError::rpc(
                            format!("Subscribe {}", self.topic),
                            &status,
                        ));
                    }
                },
            };
            attempt += 1;
            let since = *failing_since.get_or_insert_with(Instant::now);
            if let Some(limit) = self.connection.connection_timeout
                && since.elapsed() >= limit
            {
                return self.fail(PubSubError::GaveUp {
                    topic: self.topic.to_string(),
                    timeout: limit,
                    last_error: reason,
                });
            }
            let delay = self.connection.backoff.delay(attempt);
            self.connection.emit.send(PubSubEvent::Reconnecting {
                topic: self.topic.to_string(),
                reason,
                attempt,
                delay,
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = self.shutdown.changed() => return,
            }
        }
    }

    /// Runs one stream until it ends; returns how, the replay id to resume
    /// from (the newest received), and whether it delivered anything.
    async fn stream(
        &mut self,
        auth: &Arc<Auth>,
        start: &Start,
        flow: &mut Flow,
        taken_seen: &mut u64,
        (managed_tx, managed_rx): ManagedCommits<'_>,
        opened: &mut bool,
    ) -> (Ended, Option<Vec<u8>>, bool) {
        let mut resume = None;
        let mut healthy = false;
        // Wait for room: a slow consumer pauses the subscription here.
        let first = loop {
            sync_taken(&self.shared, flow, taken_seen);
            if let Some(n) = flow.request() {
                break n;
            }
            if *self.shutdown.borrow() {
                return (Ended::Shutdown, None, false);
            }
            tokio::select! {
                () = self.shared.notify.notified() => {}
                _ = self.shutdown.changed() => return (Ended::Shutdown, None, false),
                // The consumer dropped the message stream.
                () = self.out.closed() => return (Ended::Done, None, false),
            }
        };
        let (requests, request_rx) = mpsc::unbounded_channel::<Outbound>();
        let _ = requests.send(self.first_request(start, first));
        let mut client = self.connection.client();
        let call_result = match &self.kind {
            Kind::Topic { .. } => {
                let stream = outbound_stream(request_rx, |o| match o {
                    Outbound::Fetch(f) => Some(f),
                    Outbound::Managed(_) => None,
                });
                let call = client.subscribe(auth.request(stream));
                match tokio::time::timeout(self.subscribe_timeout, call).await {
                    Ok(Ok(response)) => Ok(response
                        .into_inner()
                        .map(|r| {
                            r.map(|r| Batch {
                                events: r.events,
                                latest_replay_id: r.latest_replay_id,
                                pending_num_requested: r.pending_num_requested,
                            })
                        })
                        .boxed()),
                    Ok(Err(status)) => Err(Ended::Status(status)),
                    Err(_) => Err(Ended::OpenTimeout),
                }
            }
            Kind::Managed { .. } => {
                let stream = outbound_stream(request_rx, |o| match o {
                    Outbound::Managed(m) => Some(m),
                    Outbound::Fetch(_) => None,
                });
                let call = client.managed_subscribe(auth.request(stream));
                match tokio::time::timeout(self.subscribe_timeout, call).await {
                    Ok(Ok(response)) => Ok(response
                        .into_inner()
                        .map(|r| {
                            r.map(|r| Batch {
                                events: r.events,
                                latest_replay_id: r.latest_replay_id,
                                pending_num_requested: r.pending_num_requested,
                            })
                        })
                        .boxed()),
                    Ok(Err(status)) => Err(Ended::Status(status)),
                    Err(_) => Err(Ended::OpenTimeout),
                }
            }
        };
        let mut inbound = match call_result {
            Ok(inbound) => inbound,
            Err(ended) => return (ended, None, false),
        };
        *opened = true;
        if let Some(first_open) = self.first_open.take() {
            let _ = first_open.send(());
        }
        self.connection.emit.send(PubSubEvent::Subscribed {
            topic: self.topic.to_string(),
            replay: match start {
                Start::Preset(p) => p.as_str_name().to_string(),
                Start::Custom(_) => "CUSTOM".to_string(),
            },
        });
        let mut newest_managed_commit = 0u64;
        let mut last_heard = Instant::now();
        loop {
            // The server sends a keepalive within its period only while it
            // owes events: the watchdog runs only then.
            let watchdog = (flow.outstanding() > 0).then(|| last_heard + self.idle_timeout);
            tokio::select! {
                next = inbound.next() => {
                    let batch = match next {
                        Some(Ok(batch)) => batch,
                        Some(Err(status)) => return (Ended::Status(status), resume, healthy),
                        None => {
                            let owed = flow.outstanding() > 0;
                            return (Ended::ClosedByServer { owed }, resume, healthy);
                        }
                    };
                    last_heard = Instant::now();
                    healthy = true;
                    let received = u32::try_from(batch.events.len()).unwrap_or(u32::MAX);
                    flow.received(received);
                    flow.server_owes(batch.pending_num_requested);
                    for event in batch.events {
                        match self.deliver(event, managed_tx).await {
                            Ok(Some(id)) => resume = Some(id),
                            Ok(None) => return (Ended::Done, resume, healthy),
                            // GetSchema failed: resume before this event.
                            Err(status) => return (Ended::Status(status), resume, healthy),
                        }
                    }
                    if received == 0 && !batch.latest_replay_id.is_empty() {
                        resume = Some(batch.latest_replay_id.clone());
                        self.keepalive(flow, taken_seen, batch.latest_replay_id);
                    }
                }
                () = self.shared.notify.notified() => {}
                commit = managed_rx.recv() => {
                    if let Some((seq, replay_id)) = commit
                        && seq > newest_managed_commit
                    {
                        newest_managed_commit = seq;
                        let _ = requests.send(Outbound::Managed(ManagedFetchRequest {
                            commit_replay_id_request: Some(CommitReplayRequest {
                                commit_request_id: uuid::Uuid::new_v4().to_string(),
                                replay_id,
                            }),
                            ..Default::default()
                        }));
                    }
                }
                () = sleep_until(watchdog) => return (Ended::Silent, resume, healthy),
                _ = self.shutdown.changed() => return (Ended::Shutdown, resume, healthy),
                () = self.out.closed() => return (Ended::Done, resume, healthy),
            }
            sync_taken(&self.shared, flow, taken_seen);
            if let Some(n) = flow.request() {
                let _ = requests.send(self.more(n));
            }
        }
    }

    /// Stores a keepalive's latest replay id when nothing delivered awaits
    /// its commit, so a quiet topic's marker does not age out.
    fn keepalive(&self, flow: &mut Flow, taken_seen: &mut u64, latest: Vec<u8>) {
        sync_taken(&self.shared, flow, taken_seen);
        let idle = flow.buffered() == 0 && self.shared.unacked.load(Ordering::Acquire) == 0;
        if idle && matches!(self.kind, Kind::Topic { .. }) {
            let _ = self.commits.send(Commit::Mark {
                topic: self.topic.clone(),
                seq: self.shared.next_seq(),
                marker: Some(OpaqueMarker::new(latest, None)),
            });
            self.connection.emit.send(PubSubEvent::KeepaliveMarker {
                topic: self.topic.to_string(),
            });
        }
    }

    /// Decodes and hands one event on; returns its replay id, `None` when
    /// the consumer is gone, or the status of a failed GetSchema.
    async fn deliver(
        &self,
        event: ConsumerEvent,
        managed: &mpsc::UnboundedSender<(u64, Vec<u8>)>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let replay_id = event.replay_id.clone();
        let seq = self.shared.next_seq();
        let decoded = match decode_event(
            &self.connection,
            &self.schemas,
            &self.topic,
            event,
            &self.json_len,
        )
        .await
        {
            Ok(mut decoded) => {
                if let Some(recovery) = &self.recovery
                    && recovery.options().fetch_gap_records
                    && decoded.payload.json().contains("\"GAP_")
                {
                    // Rare (a gap event, or a field holding that text):
                    // the value is built, completed and written again.
                    let mut value = std::mem::take(&mut decoded.payload).into_value();
                    recovery.fetch_gap(&mut value).await;
                    decoded.payload = Payload::from(value);
                }
                Ok(decoded)
            }
            Err(error) => Err(error),
        };
        let item = match decoded {
            Ok(decoded) => Ok(PubSubMessage {
                gap: None,
                backfilled: false,
                topic: self.topic.to_string(),
                schema_id: decoded.schema_id,
                event_id: decoded.event_id,
                created: {
                    *self.shared.last_created.lock() = decoded.created;
                    decoded.created
                },
                payload: decoded.payload,
                replay_id: replay_id.clone(),
                key: self.topic.clone(),
                seq,
                ack_to: Some(match self.kind {
                    Kind::Topic { .. } => AckTo::Store(self.commits.clone()),
                    Kind::Managed { .. } => AckTo::Managed(managed.clone()),
                }),
                shared: None,
                acked: AtomicBool::new(false),
            }),
            // The schema could not be fetched for now: the stream is
            // reopened before this event (it is not skipped).
            Err(PubSubError::Rpc { code, message, .. })
                if !matches!(
                    code,
                    tonic::Code::NotFound
                        | tonic::Code::InvalidArgument
                        | tonic::Code::PermissionDenied
                ) =>
            {
                return Err(tonic::Status::new(code, message));
            }
            Err(PubSubError::Timeout { what, timeout }) => {
                return Err(tonic::Status::deadline_exceeded(format!(
                    "{what} did not finish within {timeout:?}"
                )));
            }
            // Undecodable, or its schema unknown: reported, and the stream
            // goes on.
            Err(error) => Err(error),
        };
        Ok(self.send(item).then_some(replay_id))
    }

    fn first_request(&self, start: &Start, n: i32) -> Outbound {
        match &self.kind {
            Kind::Topic { .. } => {
                let (preset, replay_id) = match start {
                    Start::Preset(p) => (*p, Vec::new()),
                    Start::Custom(id) => (ReplayPreset::Custom, id.clone()),
                };
                Outbound::Fetch(FetchRequest {
                    topic_name: self.topic.to_string(),
                    replay_preset: preset as i32,
                    replay_id,
                    num_requested: n,
                    ..Default::default()
                })
            }
            Kind::Managed { developer_name } => Outbound::Managed(ManagedFetchRequest {
                developer_name: developer_name.clone(),
                num_requested: n,
                ..Default::default()
            }),
        }
    }

    fn more(&self, n: i32) -> Outbound {
        match &self.kind {
            Kind::Topic { .. } => Outbound::Fetch(FetchRequest {
                num_requested: n,
                ..Default::default()
            }),
            Kind::Managed { .. } => Outbound::Managed(ManagedFetchRequest {
                num_requested: n,
                ..Default::default()
            }),
        }
    }
}

/// The acknowledgements of a managed subscription, to send as commits.
type ManagedCommits<'a> = (
    &'a mpsc::UnboundedSender<(u64, Vec<u8>)>,
    &'a mut mpsc::UnboundedReceiver<(u64, Vec<u8>)>,
);

enum Outbound {
    Fetch(FetchRequest),
    Managed(ManagedFetchRequest),
}

/// The requests of one stream, as the stream tonic sends.
fn outbound_stream<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<Outbound>,
    pick: fn(Outbound) -> Option<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            let next = rx.recv().await?;
            if let Some(item) = pick(next) {
                return Some((item, rx));
            }
        }
    })
}

fn sync_taken(shared: &TopicShared, flow: &mut Flow, seen: &mut u64) {
    let taken = shared.taken.load(Ordering::Acquire);
    let delta = taken.saturating_sub(*seen);
    *seen = taken;
    flow.taken(u32::try_from(delta).unwrap_or(u32::MAX));
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
