//! `sfstream listen`: a `kcat` for Salesforce. One JSON object per event
//! per line on stdout; logs and a live status line on stderr; a channel's
//! replay marker committed only after its line was written and flushed.
//! Over CometD (the default) or the Pub/Sub API (`--pubsub`), with the same
//! lines and the same replay options.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use sfstream_bayeux::{ClientEvent, HandshakeReason};
use sfstream_salesforce::limits_watch::{LimitsPolicy, LimitsWatch};
use sfstream_salesforce::pubsub::{PubSubClient, PubSubError, PubSubEvent, PubSubMessage};
use sfstream_salesforce::replay::{ReplayFrom, WarnAges, open_store, set_warn_ages};
use sfstream_salesforce::{
    Authenticator, DEFAULT_MAX_PENDING, Delivery, SalesforceClient, StreamEvent, StreamMessage,
    StreamingClient, StreamingError, Transport,
};
use sfstream_service::shutdown::{Shutdown, ShutdownSignal};
use sfstream_service::status::StatusBoard;

use super::login::LoginArgs;
use super::pubsub::{PubSubArgs, PubSubStart, parse_start};

/// Options of `sfstream listen`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  sfstream listen --sandbox --username me@example.com /topic/ContactChanges
  SALESFORCE_ACCESS_TOKEN=... sfstream listen --instance-url https://acme.my.salesforce.com /data/ChangeEvents
  sfstream listen --replay-store file:markers.redb --replay ALL --max-events 100 /event/Order__e
  sfstream listen --cometd-url http://127.0.0.1:8000/bayeux /chat/room
  sfstream listen --pubsub --replay-store file:markers.redb /data/AccountChangeEvent
  sfstream listen --status-addr 127.0.0.1:9310 /topic/ContactChanges   # a status page

stdout: one {\"channel\": ..., \"data\": ...} object per line; with --replay-fallback,
a {\"gap\": {\"channel\", \"from\", \"to\", \"fallback\", \"expired_replay_id\"}} line where
events may have been missed (with --backfill, followed by the records changed in that
window, their data marked \"backfilled\": true). Exit status: 0 when
--max-events was reached or on Ctrl-C, 1 on a fatal error (one line on stderr).")]
pub struct ListenArgs {
    #[command(flatten)]
    login: LoginArgs,
    /// Channels: /topic/<PushTopic>, /data/ChangeEvents, /data/<Object>ChangeEvent, /event/<Name>__e, /u/<channel>.
    #[arg(required = true, value_name = "CHANNEL")]
    channels: Vec<String>,
    /// Any Bayeux server at URL (no Salesforce login, no replay).
    #[arg(long, env = "SALESFORCE_COMETD_URL", value_name = "URL")]
    cometd_url: Option<String>,
    #[command(flatten)]
    pubsub: PubSubArgs,
    /// Where replay markers live: memory: | file:PATH | redis://HOST:PORT/DB.
    #[arg(
        long,
        env = "SALESFORCE_REPLAY_STORE",
        value_name = "URI",
        default_value = "memory:"
    )]
    replay_store: String,
    /// Start point when nothing is stored for a channel: NEW, ALL or a replay id (with --pubsub: base64).
    #[arg(
        long,
        env = "SALESFORCE_REPLAY",
        value_name = "NEW|ALL|ID",
        default_value = "NEW",
        value_parser = super::pubsub::replay_arg
    )]
    replay: String,
    /// On an expired replay id, resubscribe with this (default: exit non-zero).
    #[arg(long, env = "SALESFORCE_REPLAY_FALLBACK", value_name = "NEW|ALL")]
    replay_fallback: Option<ReplayFrom>,
    /// Exit 0 after writing N events.
    #[arg(long, env = "SALESFORCE_MAX_EVENTS", value_name = "N")]
    max_events: Option<u64>,
    /// Give up when no connection could be (re-)established for this many seconds.
    #[arg(
        long,
        env = "SALESFORCE_CONNECTION_TIMEOUT",
        value_name = "SECS",
        default_value_t = sfstream_salesforce::DEFAULT_CONNECTION_TIMEOUT.as_secs()
    )]
    connection_timeout: u64,
    /// Most received events buffered before polling pauses.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PENDING)]
    max_pending: usize,
    /// No live status line on stderr, even on a terminal.
    #[arg(long)]
    no_status: bool,
    /// Serve a status page at / and its JSON at /status on ADDR (port 0
    /// picks one; the URL is printed on stderr).
    #[arg(long, env = "SFSTREAM_STATUS_ADDR", value_name = "ADDR")]
    status_addr: Option<SocketAddr>,
    #[command(flatten)]
    recovery: RecoveryArgs,
}

/// Gap recovery, quotas and marker age options of `sfstream listen`.
#[derive(Debug, Args)]
struct RecoveryArgs {
    /// For a Change Data Capture gap event (GAP_CREATE … GAP_OVERFLOW: no
    /// field values), read its records through the REST API first: its
    /// payload gains "fetched": true and "fetchedRecords".
    #[arg(long, env = "SALESFORCE_FETCH_GAP_RECORDS")]
    fetch_gap_records: bool,
    /// After a gap line, write the records the channel changed in the gap's
    /// window (read through the REST API) marked "backfilled": true, then
    /// stream on. Needs --replay-fallback.
    #[arg(long, env = "SALESFORCE_BACKFILL")]
    backfill: bool,
    /// Most records one backfill writes.
    #[arg(long, value_name = "N", default_value_t = sfstream_salesforce::recovery::DEFAULT_BACKFILL_MAX_RECORDS)]
    backfill_max_records: usize,
    /// Read the org's limits every SECS (0: only at start) and warn once a
    /// watched one is used to --limits-warn-at.
    #[arg(long, value_name = "SECS", default_value_t = sfstream_salesforce::limits_watch::DEFAULT_LIMITS_INTERVAL.as_secs())]
    limits_interval: u64,
    /// The share of an allocation used (0 to 1) that gets a warning.
    #[arg(long, value_name = "SHARE", default_value_t = sfstream_salesforce::limits_watch::DEFAULT_LIMITS_WARN_AT)]
    limits_warn_at: f64,
    /// Warn when a stored marker is older than these hours, for 24 h
    /// channels and 72 h ones (default 18,60).
    #[arg(long, value_name = "H24,H72", value_parser = warn_hours)]
    marker_age_warn_hours: Option<WarnAges>,
}

/// `18,60`: the warn ages of 24 h and 72 h channels, each under its retention.
fn warn_hours(text: &str) -> Result<WarnAges, String> {
    let (short, long) = text
        .split_once(',')
        .ok_or_else(|| format!("`{text}` is not H24,H72 (e.g. 18,60)"))?;
    let hours = |t: &str, max: f64| -> Result<Duration, String> {
        let h: f64 = t
            .trim()
            .parse()
            .map_err(|_| format!("`{t}` is not a number of hours"))?;
        if h > 0.0 && h < max {
            Ok(Duration::from_secs_f64(h * 3600.0))
        } else {
            Err(format!("{h} is not between 0 and {max} hours"))
        }
    };
    Ok(WarnAges {
        short: hours(short, 24.0)?,
        long: hours(long, 72.0)?,
    })
}

impl RecoveryArgs {
    fn check(&self) -> anyhow::Result<()> {
        if !(self.limits_warn_at > 0.0 && self.limits_warn_at <= 1.0) {
            bail!("--limits-warn-at takes a share of the allocation, more than 0 and at most 1");
        }
        if let Some(ages) = self.marker_age_warn_hours {
            set_warn_ages(ages);
        }
        Ok(())
    }

    /// Reads the org's limits now (a warning when one is past the
    /// threshold) and, with an interval, again until `stop`.
    async fn watch_limits(&self, authenticator: &Authenticator, stop: ShutdownSignal) {
        let policy = LimitsPolicy {
            interval: Duration::from_secs(self.limits_interval.max(1)),
            warn_at: self.limits_warn_at,
        };
        let client = SalesforceClient::new(authenticator.clone());
        let mut watch = LimitsWatch::new(policy);
        if let Err(error) = watch.check(&client).await {
            tracing::warn!(%error, "could not read the org's limits");
        }
        if self.limits_interval > 0 {
            tokio::spawn(async move {
                // The first read was just made.
                tokio::select! {
                    () = tokio::time::sleep(policy.interval) => {}
                    () = stop.wait() => return,
                }
                watch
                    .run(client, |_| {}, async move { stop.wait().await })
                    .await;
            });
        }
    }
}

/// An event ready to be written, with what commits its marker afterwards.
struct Received {
    channel: String,
    /// The subscription (`?filter` included), as the status page lists it.
    subscription: String,
    /// When the event was created, when known.
    created: Option<chrono::DateTime<chrono::Utc>>,
    /// `None` for a Pub/Sub event: written from its message (`commit`).
    data: Option<Box<RawValue>>,
    /// `data` is a whole line of its own (a `{"gap": {…}}`), not an event.
    gap: bool,
    /// `None` for a Pub/Sub event: taken from its message when needed.
    replay_id: Option<String>,
    commit: Option<Commit>,
}

impl Received {
    /// Appends the line's `data` to `line`.
    fn write_data(&self, line: &mut Vec<u8>) -> serde_json::Result<()> {
        match (&self.data, &self.commit) {
            (Some(data), _) => line.extend_from_slice(data.get().as_bytes()),
            (None, Some(Commit::PubSub(message))) => message.write_line_data(line)?,
            (None, _) => line.extend_from_slice(b"null"),
        }
        Ok(())
    }

    /// The replay id the status line shows.
    fn replay_id(&self) -> Option<String> {
        match (&self.replay_id, &self.commit) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(Commit::PubSub(message))) => Some(message.replay_id_text()),
            _ => None,
        }
    }
}

/// What acknowledges a written event.
enum Commit {
    CometD(StreamMessage),
    PubSub(PubSubMessage),
}

impl Commit {
    fn ack(&self) {
        match self {
            Commit::CometD(message) => message.ack(),
            Commit::PubSub(message) => message.ack(),
        }
    }
}

type Source = BoxStream<'static, anyhow::Result<Received>>;

/// Counters behind the status line, and the status page's board (with
/// `--status-addr`).
#[derive(Default)]
struct Status {
    events: AtomicU64,
    reconnects: AtomicU64,
    last: Mutex<BTreeMap<String, String>>,
    board: Option<Arc<StatusBoard>>,
}

/// Runs `sfstream listen`.
pub async fn run(args: ListenArgs) -> anyhow::Result<ExitCode> {
    if let Some(fallback) = args.replay_fallback
        && !matches!(fallback, ReplayFrom::New | ReplayFrom::All)
    {
        bail!("--replay-fallback takes NEW or ALL, not a replay id");
    }
    args.pubsub.check()?;
    args.recovery.check()?;
    if args.recovery.backfill && args.replay_fallback.is_none() {
        bail!(
            "--backfill fills the gap a replay fallback leaves: give --replay-fallback NEW or ALL too"
        );
    }
    let stop_page = Shutdown::new();
    let board = match args.status_addr {
        Some(addr) => {
            let board = Arc::new(StatusBoard::new("sfstream listen"));
            let bound = sfstream_service::status::serve(board.clone(), addr, stop_page.signal())
                .await
                .with_context(|| format!("--status-addr {addr}"))?;
            eprintln!("status page on http://{bound}/");
            Some(board)
        }
        None => None,
    };
    let status = Arc::new(Status {
        board,
        ..Status::default()
    });
    let (source, closer) = match &args.cometd_url {
        Some(_) if args.pubsub.pubsub => {
            bail!("--cometd-url and --pubsub are two transports; give one")
        }
        Some(url) => generic_source(url, &args.channels, &args, status.board.as_deref()).await?,
        None if args.pubsub.pubsub => {
            pubsub_source(&args, status.clone(), stop_page.signal()).await?
        }
        None => salesforce_source(&args, status.clone(), stop_page.signal()).await?,
    };
    let ticker = (!args.no_status && std::io::stderr().is_terminal())
        .then(|| tokio::spawn(status_line(status.clone())));
    let outcome = pump(source, &args, &status).await;
    if let Some(ticker) = ticker {
        ticker.abort();
        eprint!("\r\x1b[2K");
    }
    closer.close().await;
    stop_page.trigger();
    outcome.map(|()| ExitCode::SUCCESS)
}

/// How to end the session cleanly (and store the last markers).
enum Closer {
    Salesforce(StreamingClient),
    PubSub(PubSubClient),
    Generic(sfstream_bayeux::Client),
}

impl Closer {
    async fn close(self) {
        match self {
            Closer::Salesforce(client) => client.close().await,
            Closer::PubSub(client) => client.close().await,
            Closer::Generic(client) => client.disconnect().await,
        }
    }
}

async fn salesforce_source(
    args: &ListenArgs,
    status: Arc<Status>,
    stop: ShutdownSignal,
) -> anyhow::Result<(Source, Closer)> {
    let replay: ReplayFrom = args.replay.parse().map_err(|e| anyhow!("--replay: {e}"))?;
    let authenticator = args.login.authenticator()?;
    let store = open_store(&args.replay_store)
        .await
        .context("--replay-store")?;
    if let Some(board) = &status.board {
        board.set_store(store.clone());
        for channel in &args.channels {
            board.set_transport(channel, Transport::CometD);
        }
    }
    let (client, events) = StreamingClient::builder(authenticator.clone())
        .replay_store(store)
        .default_replay(replay)
        .replay_fallback(args.replay_fallback)
        .delivery(Delivery::Acknowledged)
        .max_pending(args.max_pending)
        .connection_timeout(Some(Duration::from_secs(args.connection_timeout)))
        .fetch_gap_records(args.recovery.fetch_gap_records)
        .backfill(args.recovery.backfill)
        .backfill_max_records(args.recovery.backfill_max_records)
        .on_event(move |event| log_event(event, &status))
        .connect()
        .await
        .map_err(|e| anyhow!(explain(&e)))?;
    args.recovery.watch_limits(&authenticator, stop).await;
    for channel in &args.channels {
        client
            .subscribe(channel)
            .await
            .map_err(|e| anyhow!("cannot subscribe to {channel}: {}", explain(&e)))?;
        tracing::info!(%channel, "subscribed");
    }
    let source = events
        .map(|item| match item {
            Ok(message) => Ok(Received {
                channel: message.channel.clone(),
                subscription: message.subscription.clone(),
                created: message.marker.and_then(|m| m.created),
                data: Some(message.data.clone()),
                gap: message.gap.is_some(),
                replay_id: message.replay_id().map(|id| id.to_string()),
                commit: Some(Commit::CometD(message)),
            }),
            Err(error) => Err(anyhow!(explain(&error))),
        })
        .boxed();
    Ok((source, Closer::Salesforce(client)))
}

/// Pub/Sub: the same lines (`data` is `{"schema", "payload", "event":
/// {"replayId": <base64>}}`), markers (opaque) committed the same way.
async fn pubsub_source(
    args: &ListenArgs,
    status: Arc<Status>,
    stop: ShutdownSignal,
) -> anyhow::Result<(Source, Closer)> {
    let start = parse_start(&args.replay)?;
    let authenticator = args.login.authenticator()?;
    let store = open_store(&args.replay_store)
        .await
        .context("--replay-store")?;
    if let Some(board) = &status.board {
        board.set_store(store.clone());
        for channel in &args.channels {
            board.set_transport(channel, Transport::PubSub);
        }
    }
    let default = match &start {
        PubSubStart::Preset(from) => *from,
        PubSubStart::After(_) => ReplayFrom::New,
    };
    let (client, events) = args
        .pubsub
        .builder(authenticator.clone())?
        .replay_store(store.clone())
        .default_replay(default)
        .replay_fallback(args.replay_fallback)
        .delivery(Delivery::Acknowledged)
        .max_pending(args.max_pending)
        .fetch_gap_records(args.recovery.fetch_gap_records)
        .backfill(args.recovery.backfill)
        .backfill_max_records(args.recovery.backfill_max_records)
        .connection_timeout(Some(Duration::from_secs(args.connection_timeout)))
        .on_event(move |event| {
            if let PubSubEvent::Reconnecting { .. } = event {
                status.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(board) = &status.board {
                board.on_pubsub_event(event);
            }
        })
        .connect()
        .await
        .map_err(|e| anyhow!(explain_pubsub(&e)))?;
    args.recovery.watch_limits(&authenticator, stop).await;
    for channel in &args.channels {
        // A replay id given on the command line applies where nothing is
        // stored, as NEW and ALL do.
        let stored = store.get_opaque(channel).await.context("--replay-store")?;
        let subscribed = match (&start, stored) {
            (PubSubStart::After(id), None) => {
                client
                    .subscribe_from(channel, ReplayFrom::New, Some(id.clone()))
                    .await
            }
            _ => client.subscribe(channel).await,
        };
        subscribed.map_err(|e| anyhow!("cannot subscribe to {channel}: {}", explain_pubsub(&e)))?;
        tracing::info!(%channel, "subscribed (Pub/Sub)");
    }
    let source = events
        .map(|item| match item {
            Ok(message) => {
                // An event's line is written from the message itself.
                let gap = message.gap.is_some();
                let data = if gap {
                    Some(message.line_json()?)
                } else {
                    None
                };
                Ok(Received {
                    channel: message.topic.clone(),
                    gap,
                    subscription: message.topic.clone(),
                    created: message.created,
                    data,
                    replay_id: None,
                    commit: Some(Commit::PubSub(message)),
                })
            }
            Err(error) => Err(anyhow!(explain_pubsub(&error))),
        })
        .boxed();
    Ok((source, Closer::PubSub(client)))
}

/// A one-line reason for a Pub/Sub error, with what to do when obvious.
fn explain_pubsub(error: &PubSubError) -> String {
    match error {
        PubSubError::ReplayIdInvalid { .. } => format!(
            "{error}; rerun with --replay-fallback ALL (or NEW), or reset the marker with `sfstream replay reset`"
        ),
        other => other.to_string(),
    }
}

async fn generic_source(
    url: &str,
    channels: &[String],
    args: &ListenArgs,
    board: Option<&StatusBoard>,
) -> anyhow::Result<(Source, Closer)> {
    let (client, messages) = sfstream_bayeux::Client::builder(url)
        .max_pending(args.max_pending)
        .connection_timeout(Some(Duration::from_secs(args.connection_timeout)))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    for channel in channels {
        client
            .subscribe(channel)
            .await
            .with_context(|| format!("cannot subscribe to {channel}"))?;
        if let Some(board) = board {
            board.set_transport(channel, Transport::CometD);
            board.set_state(channel, sfstream_service::metrics::ChannelState::Subscribed);
        }
    }
    let source = messages
        .map(|item| {
            let message = item?;
            let data = match message.data {
                Some(data) => data,
                None => RawValue::from_string("null".into())?,
            };
            Ok(Received {
                subscription: message.channel.clone(),
                channel: message.channel,
                created: None,
                data: Some(data),
                gap: false,
                replay_id: None,
                commit: None,
            })
        })
        .boxed();
    Ok((source, Closer::Generic(client)))
}

/// A one-line reason for a streaming error, with what to do when obvious.
fn explain(error: &StreamingError) -> String {
    match error {
        StreamingError::ReplayIdExpired {
            channel, replay_id, ..
        } => format!(
            "the stored replay id {replay_id} of {channel} is outside the retention window; \
             rerun with --replay-fallback ALL (or NEW), or reset it with `sfstream replay reset`"
        ),
        other => other.to_string(),
    }
}

/// Counts reconnects for the status line (the client logs the events).
fn log_event(event: &StreamEvent, status: &Status) {
    if let Some(board) = &status.board {
        board.on_stream_event(event);
    }
    if let StreamEvent::Connection(ClientEvent::Handshaken { reason, .. }) = event
        && *reason != HandshakeReason::Initial
    {
        status.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// Most events written between two flushes.
const BATCH: usize = 1_000;

/// Writes events as they come, a batch at a time: write every line, flush,
/// then commit the markers of what was written.
async fn pump(mut source: Source, args: &ListenArgs, status: &Status) -> anyhow::Result<()> {
    let limit = args.max_events.unwrap_or(u64::MAX);
    let mut written = 0u64;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut batch: Vec<Received> = Vec::with_capacity(BATCH);
    let mut line = Vec::with_capacity(1024);
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    while written < limit {
        let first = tokio::select! {
            item = source.next() => item,
            _ = &mut shutdown => {
                tracing::info!("stopping");
                return Ok(());
            }
        };
        let Some(first) = first else {
            bail!("the stream ended");
        };
        let first = first?;
        // Gaps are lines, not events: --max-events does not count them.
        let mut events = u64::from(!first.gap);
        batch.push(first);
        while batch.len() < BATCH && written + events < limit {
            match source.next().now_or_never() {
                Some(Some(item)) => {
                    let item = item?;
                    events += u64::from(!item.gap);
                    batch.push(item);
                }
                _ => break,
            }
        }
        for event in &batch {
            line.clear();
            if event.gap {
                event.write_data(&mut line)?;
                line.push(b'\n');
            } else {
                line.extend_from_slice(b"{\"channel\":");
                serde_json::to_writer(&mut line, &event.channel)?;
                line.extend_from_slice(b",\"data\":");
                event.write_data(&mut line)?;
                line.extend_from_slice(b"}\n");
            }
            if let Err(error) = out.write_all(&line) {
                return stdout_closed(error);
            }
        }
        if let Err(error) = out.flush() {
            return stdout_closed(error);
        }
        written += events;
        status.events.store(written, Ordering::Relaxed);
        {
            // Each channel's newest replay id of the batch.
            let mut last = status.last.lock();
            let mut seen: Vec<&str> = Vec::new();
            for event in batch.iter().rev() {
                if seen.contains(&event.channel.as_str()) {
                    continue;
                }
                if let Some(id) = event.replay_id() {
                    seen.push(&event.channel);
                    last.insert(event.channel.clone(), id);
                }
            }
        }
        if let Some(board) = &status.board {
            let now = chrono::Utc::now();
            for event in &batch {
                board
                    .activity(&event.subscription)
                    .handled(event.created, now);
            }
        }
        for event in batch.drain(..) {
            if let Some(message) = event.commit {
                message.ack();
            }
        }
    }
    Ok(())
}

/// A closed stdout (e.g. `| head`) ends the run quietly; what was not
/// written is not committed.
fn stdout_closed(error: std::io::Error) -> anyhow::Result<()> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(error).context("writing to stdout")
    }
}

async fn status_line(status: Arc<Status>) {
    let started = Instant::now();
    let mut previous = (Instant::now(), 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let events = status.events.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate =
            (events - previous.1) as f64 / now.duration_since(previous.0).as_secs_f64().max(1e-3);
        previous = (now, events);
        let last: Vec<String> = status
            .last
            .lock()
            .iter()
            .map(|(c, id)| format!("{c} #{id}"))
            .collect();
        eprint!(
            "\r\x1b[2K{events} events | {rate:.0}/s | {} reconnects | {}s | {}",
            status.reconnects.load(Ordering::Relaxed),
            started.elapsed().as_secs(),
            last.join(", ")
        );
    }
}
