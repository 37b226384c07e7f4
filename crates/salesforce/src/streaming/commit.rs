//! The commit loop: replay markers written to the store in batches, off the
//! hot path, with bounded flush and close.
//!
//! Everything reaches the loop through one queue, in causal order:
//! acknowledged markers, the fallback notices of the Salesforce extension
//! (sent when a subscribe with an expired replay id is retried with the
//! fallback, so before any event of the new subscription exists), flushes
//! and close. Applying them in arrival order is what keeps a fallback from
//! erasing a marker acknowledged after it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sfstream_bayeux::Backoff;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::client::{Emitter, StreamEvent};
use super::extension::Notice;
use crate::replay::{ReplayMarker, ReplayStore, StoreError};

/// How long [`StreamingClient::flush`](super::StreamingClient::flush) waits.
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`StreamingClient::close`](super::StreamingClient::close) keeps
/// trying to store pending markers before it gives up on them.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes of a steady stream of markers are at least this far apart (a
/// flush or close writes at once): each write is a durable commit (an
/// fsync for the file store, a round trip for Redis), and markers only
/// lag meanwhile, which after a crash means a few more events delivered
/// again, never one lost.
pub(crate) const COMMIT_INTERVAL: Duration = Duration::from_millis(50);

/// Retry delays of failed store writes: short, because markers only lag
/// while the store is down, and should catch up soon after it is back.
const STORE_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// What the commit loop is asked to do.
#[derive(Debug)]
pub(crate) enum Commit {
    /// Store this marker of this channel (key) if it is the newest.
    Advance(String, ReplayMarker),
    /// A notice of the Salesforce extension.
    Notice(Notice),
    /// Answer once every marker taken before this is stored, or with what
    /// is not stored when the deadline passes.
    Flush {
        deadline: Instant,
        /// The timeout the deadline came from, for the error.
        timeout: Duration,
        reply: oneshot::Sender<Result<(), FlushError>>,
    },
    /// Store what is pending until the deadline, then stop and release the
    /// store; answered after the store is released.
    Close(Instant, oneshot::Sender<()>),
}

/// Replay markers that were not stored in time
/// ([`StreamingClient::flush_within`](super::StreamingClient::flush_within)).
///
/// Markers that are not stored only lag: after a restart, the events after
/// the last stored marker are delivered again (at-least-once), none is lost.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The store did not take the markers before the deadline (it is down,
    /// or slow); the client keeps retrying.
    #[error("{}", describe_timeout(*.timeout, .markers, .removals, .last_error.as_deref()))]
    Timeout {
        /// How long the flush waited.
        timeout: Duration,
        /// Per channel key, the newest marker not stored yet, sorted by channel.
        markers: Vec<(String, ReplayMarker)>,
        /// Channels whose expired marker (replaced by a replay fallback)
        /// is not removed from the store yet, sorted.
        removals: Vec<String>,
        /// The store's last error, if a write failed.
        last_error: Option<String>,
    },
    /// The client was closed: nothing more is stored.
    #[error("the streaming client is closed; its replay markers are no longer stored")]
    Closed,
}

fn describe_timeout(
    timeout: Duration,
    markers: &[(String, ReplayMarker)],
    removals: &[String],
    last_error: Option<&str>,
) -> String {
    let mut text = format!("replay markers not stored within {timeout:?}:");
    for (channel, marker) in markers {
        let _ = write!(text, " {channel} at replay id {};", marker.replay_id);
    }
    for channel in removals {
        let _ = write!(text, " {channel} (removal of its expired marker);");
    }
    if markers.is_empty() && removals.is_empty() {
        text.push_str(" a write is still in progress;");
    }
    match last_error {
        Some(error) => {
            let _ = write!(text, " last store error: {error}");
        }
        None => text.push_str(" the store has not answered"),
    }
    text
}

/// Asks the loop to flush, waiting at most `timeout`.
pub(crate) async fn flush(
    commits: &mpsc::UnboundedSender<Commit>,
    timeout: Duration,
) -> Result<(), FlushError> {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = oneshot::channel();
    let flush = Commit::Flush {
        deadline,
        timeout,
        reply: tx,
    };
    if commits.send(flush).is_err() {
        return Err(FlushError::Closed);
    }
    // The loop answers by the deadline; the margin only guards against a
    // loop that cannot run at all.
    match tokio::time::timeout_at(deadline + Duration::from_secs(1), rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(FlushError::Closed),
        Err(_) => Err(FlushError::Timeout {
            timeout,
            markers: Vec::new(),
            removals: Vec::new(),
            last_error: Some("the commit loop did not answer".into()),
        }),
    }
}

/// Asks the loop to store what it can within `timeout`, then stop and
/// release the store; waits for that (bounded).
pub(crate) async fn close(commits: &mpsc::UnboundedSender<Commit>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = oneshot::channel();
    if commits.send(Commit::Close(deadline, tx)).is_ok() {
        let _ = tokio::time::timeout_at(deadline + Duration::from_secs(1), rx).await;
    }
}

/// A flush waiting for its markers.
struct Waiter {
    /// Answered when a write covering this sequence number succeeds.
    seq: u64,
    deadline: Instant,
    timeout: Duration,
    reply: oneshot::Sender<Result<(), FlushError>>,
}

/// One write to the store: what it covers, so that its success clears
/// exactly that.
struct Job {
    /// Every change taken up to this sequence number is in the job.
    seq: u64,
    /// Channels whose expired marker is replaced by the fallback's first
    /// marker (remove-then-advance in one step).
    replace: Vec<(String, ReplayMarker)>,
    /// Channels whose expired marker is removed.
    remove: Vec<String>,
    advance: Vec<(String, ReplayMarker)>,
    /// The fallback each replace or remove settles: (channel, its seq).
    settles: Vec<(String, u64)>,
}

impl Job {
    async fn run(
        store: Arc<dyn ReplayStore>,
        replace: Vec<(String, ReplayMarker)>,
        remove: Vec<String>,
        advance: Vec<(String, ReplayMarker)>,
    ) -> Result<(), StoreError> {
        for (channel, marker) in &replace {
            store.replace(channel, *marker).await?;
        }
        for channel in &remove {
            store.remove(channel).await?;
        }
        if !advance.is_empty() {
            store.advance_many(&advance).await?;
        }
        Ok(())
    }
}

/// The loop's state.
struct CommitLoop {
    store: Option<Arc<dyn ReplayStore>>,
    emit: Emitter,
    /// The newest marker per channel not stored yet.
    pending: HashMap<String, ReplayMarker>,
    /// Channels whose stored (expired) marker must go before anything newer
    /// is written, with the sequence number of the fallback.
    stale: HashMap<String, u64>,
    /// Sequence number of the last change taken.
    seq: u64,
    /// Every change up to this one is stored.
    stored: u64,
    flushes: Vec<Waiter>,
    closing: Option<(Instant, Vec<oneshot::Sender<()>>)>,
    last_error: Option<String>,
    failures: u32,
}

impl CommitLoop {
    /// Takes one request; returns false when nothing more must be received.
    fn take(&mut self, commit: Commit) -> bool {
        match commit {
            Commit::Advance(channel, marker) => {
                let newest = self
                    .pending
                    .get(&channel)
                    .is_none_or(|old| marker.is_newer_than(old));
                if newest {
                    self.seq += 1;
                    self.pending.insert(channel, marker);
                }
            }
            Commit::Notice(Notice::Fallback {
                channel,
                expired,
                fallback,
                gap,
            }) => {
                // Only markers taken before the notice are dropped; the
                // store removal happens before any later marker is written.
                self.seq += 1;
                self.pending.remove(&channel);
                self.stale.insert(channel.clone(), self.seq);
                self.emit.send(StreamEvent::ReplayFallback {
                    channel,
                    expired_replay_id: expired,
                    fallback,
                });
                self.emit.send(StreamEvent::Gap(*gap));
            }
            Commit::Flush {
                deadline,
                timeout,
                reply,
            } => {
                if self.seq <= self.stored {
                    let _ = reply.send(Ok(()));
                } else {
                    self.flushes.push(Waiter {
                        seq: self.seq,
                        deadline,
                        timeout,
                        reply,
                    });
                }
            }
            Commit::Close(deadline, reply) => {
                let (at, replies) = self.closing.get_or_insert_with(|| (deadline, Vec::new()));
                *at = (*at).min(deadline);
                replies.push(reply);
                return false;
            }
        }
        true
    }

    /// Whether anything waits to be written.
    fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.stale.is_empty()
    }

    /// The next write, if there is anything to write.
    fn job(&self) -> Option<(Job, BoxFuture<'static, Result<(), StoreError>>)> {
        let store = self.store.clone()?;
        if self.pending.is_empty() && self.stale.is_empty() {
            return None;
        }
        let mut job = Job {
            seq: self.seq,
            replace: Vec::new(),
            remove: Vec::new(),
            advance: Vec::new(),
            settles: Vec::new(),
        };
        for (channel, fallback_seq) in &self.stale {
            match self.pending.get(channel) {
                Some(marker) => job.replace.push((channel.clone(), *marker)),
                None => job.remove.push(channel.clone()),
            }
            job.settles.push((channel.clone(), *fallback_seq));
        }
        for (channel, marker) in &self.pending {
            if !self.stale.contains_key(channel) {
                job.advance.push((channel.clone(), *marker));
            }
        }
        let run = Job::run(
            store,
            job.replace.clone(),
            job.remove.clone(),
            job.advance.clone(),
        );
        Some((job, Box::pin(run)))
    }

    /// Clears what a successful job stored, and answers the flushes it covers.
    fn stored(&mut self, job: Job) {
        for (channel, marker) in job.replace.iter().chain(&job.advance) {
            if self.pending.get(channel) == Some(marker) {
                self.pending.remove(channel);
            }
        }
        for (channel, seq) in job.settles {
            if self.stale.get(&channel) == Some(&seq) {
                self.stale.remove(&channel);
            }
        }
        // Every change up to the job's is stored (later ones that replaced
        // a marker of the job are still pending).
        self.stored = if self.pending.is_empty() && self.stale.is_empty() {
            self.seq
        } else {
            job.seq
        };
        self.failures = 0;
        self.last_error = None;
        let stored = self.stored;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|w| w.seq <= stored);
        self.flushes = waiting;
        for waiter in done {
            let _ = waiter.reply.send(Ok(()));
        }
    }

    fn failed(&mut self, error: &StoreError) -> Instant {
        self.failures += 1;
        self.last_error = Some(error.to_string());
        self.emit.send(StreamEvent::StoreFailed {
            error: error.to_string(),
        });
        Instant::now() + STORE_BACKOFF.delay(self.failures)
    }

    /// What is not stored yet, for errors and logs.
    fn uncommitted(&self) -> (Vec<(String, ReplayMarker)>, Vec<String>) {
        let mut markers: Vec<_> = self.pending.iter().map(|(c, m)| (c.clone(), *m)).collect();
        markers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut removals: Vec<_> = self.stale.keys().cloned().collect();
        removals.sort();
        (markers, removals)
    }

    fn timeout_error(&self, timeout: Duration) -> FlushError {
        let (markers, removals) = self.uncommitted();
        FlushError::Timeout {
            timeout,
            markers,
            removals,
            last_error: self.last_error.clone(),
        }
    }

    /// The earliest deadline of a flush or of close.
    fn next_deadline(&self) -> Option<Instant> {
        self.flushes
            .iter()
            .map(|w| w.deadline)
            .chain(self.closing.as_ref().map(|(at, _)| *at))
            .min()
    }

    /// Answers the flushes whose deadline passed; returns whether close's did.
    fn expire(&mut self, now: Instant) -> bool {
        let (late, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|w| w.deadline <= now);
        self.flushes = waiting;
        for waiter in late {
            let _ = waiter.reply.send(Err(self.timeout_error(waiter.timeout)));
        }
        self.closing.as_ref().is_some_and(|(at, _)| *at <= now)
    }
}

/// Writes markers to the store in batches (the newest per channel), and
/// retries with backoff when the store fails, so a store outage never loses
/// a marker taken after the outage began. Flushes are answered by their
/// deadline; after close (or when every sender is gone) it stores what it
/// can until close's deadline, then stops, logs what was not stored, and
/// releases the store.
pub(crate) async fn commit_loop(
    store: Arc<dyn ReplayStore>,
    mut commits: mpsc::UnboundedReceiver<Commit>,
    emit: Emitter,
) {
    let mut state = CommitLoop {
        store: Some(store),
        emit,
        pending: HashMap::new(),
        stale: HashMap::new(),
        seq: 0,
        stored: 0,
        flushes: Vec::new(),
        closing: None,
        last_error: None,
        failures: 0,
    };
    let mut receiving = true;
    let mut write: Option<(Job, BoxFuture<'static, Result<(), StoreError>>)> = None;
    let mut retry_at: Option<Instant> = None;
    // When the next write may start unless someone waits for it.
    let mut write_at: Option<Instant> = None;
    loop {
        let urgent = !state.flushes.is_empty() || state.closing.is_some();
        let due = urgent || write_at.is_none_or(|at| at <= Instant::now());
        if write.is_none() && retry_at.is_none() && due {
            write = state.job();
            write_at = None;
        }
        if write.is_none() && state.closing.is_some() && retry_at.is_none() {
            break; // everything is stored
        }
        let deadline = state.next_deadline();
        tokio::select! {
            commit = commits.recv(), if receiving => match commit {
                Some(commit) => {
                    receiving = state.take(commit);
                    // Batch what is already queued.
                    while receiving && let Ok(commit) = commits.try_recv() {
                        receiving = state.take(commit);
                    }
                }
                None => {
                    receiving = false;
                    state.closing.get_or_insert_with(|| (Instant::now() + CLOSE_TIMEOUT, Vec::new()));
                }
            },
            result = async {
                match write.as_mut() {
                    Some((_, run)) => run.await,
                    None => std::future::pending().await,
                }
            }, if write.is_some() => {
                if let Some((job, _)) = write.take() {
                    match result {
                        Ok(()) => {
                            state.stored(job);
                            write_at = Some(Instant::now() + COMMIT_INTERVAL);
                        }
                        Err(error) => retry_at = Some(state.failed(&error)),
                    }
                }
            },
            () = sleep_until(write_at), if write.is_none() && write_at.is_some() && state.has_pending() => {},
            () = sleep_until(retry_at), if retry_at.is_some() => retry_at = None,
            () = sleep_until(deadline), if deadline.is_some() => {
                if state.expire(Instant::now()) {
                    break;
                }
            },
        }
    }
    // Give up on what is not stored: it only lags (the events after the
    // last stored marker are delivered again after a restart).
    let (markers, removals) = state.uncommitted();
    if !markers.is_empty() || !removals.is_empty() {
        tracing::warn!(
            ?markers,
            ?removals,
            last_error = state.last_error.as_deref().unwrap_or("none"),
            "closing with replay markers not stored; the events after the stored markers will be delivered again"
        );
    }
    for waiter in std::mem::take(&mut state.flushes) {
        let answer = if markers.is_empty() && removals.is_empty() {
            Ok(())
        } else {
            Err(state.timeout_error(waiter.timeout))
        };
        let _ = waiter.reply.send(answer);
    }
    // Release the store (the write in progress holds it too) before telling
    // `close` it may be reopened.
    drop(write);
    state.store = None;
    if let Some((_, replies)) = state.closing.take() {
        for reply in replies {
            let _ = reply.send(());
        }
    }
}

/// Sleeps until `at` (forever when `None`: the branch is disabled then).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
