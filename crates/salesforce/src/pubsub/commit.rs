//! The commit loop of the Pub/Sub client: opaque markers written to the
//! store in batches (at most every 50 ms, like the CometD client's), in
//! stream order, with bounded flush and close.
//!
//! Opaque ids cannot be compared, so every marker carries the local
//! sequence number of its topic (the order the events arrived in): a marker
//! older than one taken or stored before is dropped, so acknowledgements
//! out of order never move a stored marker backwards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sfstream_common::Backoff;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::event::{Emitter, PubSubEvent};
use crate::replay::{OpaqueMarker, ReplayStore, StoreError};

/// How long `flush` waits.
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `close` keeps trying to store pending markers.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Writes of a steady stream are at least this far apart.
pub(crate) const COMMIT_INTERVAL: Duration = Duration::from_millis(50);

const STORE_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(5),
};

/// What the loop is asked to do.
#[derive(Debug)]
pub(crate) enum Commit {
    /// Store `marker` (`None`: remove the stored one, after a replay
    /// fallback) as topic's marker number `seq`, unless a later one came.
    Mark {
        topic: Arc<str>,
        seq: u64,
        marker: Option<OpaqueMarker>,
    },
    /// Answer once everything taken before is stored, or by the deadline.
    Flush {
        deadline: Instant,
        timeout: Duration,
        reply: oneshot::Sender<Result<(), FlushError>>,
    },
    /// Store what is pending until the deadline, then release the store.
    Close(Instant, oneshot::Sender<()>),
}

/// Replay markers that were not stored in time. They only lag: after a
/// restart the events after the stored markers are delivered again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The store did not take the markers by the deadline (it keeps being
    /// retried).
    #[error(
        "Pub/Sub replay markers not stored within {timeout:?}: topics {topics:?}; last store error: {}",
        last_error.as_deref().unwrap_or("none (the store has not answered)")
    )]
    Timeout {
        /// How long the flush waited.
        timeout: Duration,
        /// The topics whose marker is not stored yet, sorted.
        topics: Vec<String>,
        /// The store's last error, if a write failed.
        last_error: Option<String>,
    },
    /// The client is closed.
    #[error("the Pub/Sub client is closed; its replay markers are no longer stored")]
    Closed,
}

pub(crate) async fn flush(
    commits: &mpsc::UnboundedSender<Commit>,
    timeout: Duration,
) -> Result<(), FlushError> {
    let deadline = Instant::now() + timeout;
    let (reply, rx) = oneshot::channel();
    if commits
        .send(Commit::Flush {
            deadline,
            timeout,
            reply,
        })
        .is_err()
    {
        return Err(FlushError::Closed);
    }
    match tokio::time::timeout_at(deadline + Duration::from_secs(1), rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(FlushError::Closed),
        Err(_) => Err(FlushError::Timeout {
            timeout,
            topics: Vec::new(),
            last_error: Some("the commit loop did not answer".into()),
        }),
    }
}

pub(crate) async fn close(commits: &mpsc::UnboundedSender<Commit>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = oneshot::channel();
    if commits.send(Commit::Close(deadline, tx)).is_ok() {
        let _ = tokio::time::timeout_at(deadline + Duration::from_secs(1), rx).await;
    }
}

struct Waiter {
    change: u64,
    deadline: Instant,
    timeout: Duration,
    reply: oneshot::Sender<Result<(), FlushError>>,
}

type Pending = HashMap<Arc<str>, (u64, Option<OpaqueMarker>)>;

#[derive(Default)]
struct State {
    /// The newest marker (or removal) per topic not stored yet.
    pending: Pending,
    /// The newest sequence number taken per topic: older ones are dropped.
    newest: HashMap<Arc<str>, u64>,
    /// Changes taken, and changes stored (all up to it).
    changes: u64,
    stored: u64,
    flushes: Vec<Waiter>,
    closing: Option<(Instant, Vec<oneshot::Sender<()>>)>,
    last_error: Option<String>,
    failures: u32,
}

impl State {
    fn take(&mut self, commit: Commit) -> bool {
        match commit {
            Commit::Mark { topic, seq, marker } => {
                if self.newest.get(&topic).is_none_or(|newest| seq > *newest) {
                    self.newest.insert(topic.clone(), seq);
                    self.changes += 1;
                    self.pending.insert(topic, (seq, marker));
                }
            }
            Commit::Flush {
                deadline,
                timeout,
                reply,
            } => {
                if self.pending.is_empty() {
                    let _ = reply.send(Ok(()));
                } else {
                    self.flushes.push(Waiter {
                        change: self.changes,
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

    fn stored(&mut self, job: Pending, changes: u64) {
        for (topic, (seq, _)) in job {
            if self.pending.get(&topic).is_some_and(|(s, _)| *s == seq) {
                self.pending.remove(&topic);
            }
        }
        self.stored = if self.pending.is_empty() {
            self.changes
        } else {
            changes
        };
        self.failures = 0;
        self.last_error = None;
        let stored = self.stored;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|w| w.change <= stored);
        self.flushes = waiting;
        for waiter in done {
            let _ = waiter.reply.send(Ok(()));
        }
    }

    fn error(&self, timeout: Duration) -> FlushError {
        let mut topics: Vec<String> = self.pending.keys().map(|t| t.to_string()).collect();
        topics.sort();
        FlushError::Timeout {
            timeout,
            topics,
            last_error: self.last_error.clone(),
        }
    }

    fn expire(&mut self, now: Instant) -> bool {
        let (late, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|w| w.deadline <= now);
        self.flushes = waiting;
        for waiter in late {
            let _ = waiter.reply.send(Err(self.error(waiter.timeout)));
        }
        self.closing.as_ref().is_some_and(|(at, _)| *at <= now)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.flushes
            .iter()
            .map(|w| w.deadline)
            .chain(self.closing.as_ref().map(|(at, _)| *at))
            .min()
    }
}

async fn write(store: Arc<dyn ReplayStore>, job: Pending) -> Result<(), StoreError> {
    let mut puts = Vec::new();
    for (topic, (_, marker)) in job {
        match marker {
            Some(marker) => puts.push((topic.to_string(), marker)),
            None => store.remove_opaque(&topic).await?,
        }
    }
    store.put_opaque_many(&puts).await
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

type Write = (Pending, u64, BoxFuture<'static, Result<(), StoreError>>);

/// Writes markers in batches, retrying with backoff while the store fails;
/// after close (or when every sender is gone) stores what it can by close's
/// deadline, then releases the store.
pub(crate) async fn commit_loop(
    store: Arc<dyn ReplayStore>,
    mut commits: mpsc::UnboundedReceiver<Commit>,
    emit: Emitter,
) {
    let mut state = State::default();
    let mut store = Some(store);
    let mut receiving = true;
    let mut write_job: Option<Write> = None;
    let mut retry_at: Option<Instant> = None;
    let mut write_at: Option<Instant> = None;
    loop {
        let urgent = !state.flushes.is_empty() || state.closing.is_some();
        let due = urgent || write_at.is_none_or(|at| at <= Instant::now());
        if write_job.is_none()
            && retry_at.is_none()
            && due
            && !state.pending.is_empty()
            && let Some(store) = &store
        {
            let job = state.pending.clone();
            let run = Box::pin(write(store.clone(), job.clone()));
            write_job = Some((job, state.changes, run));
            write_at = None;
        }
        if write_job.is_none() && state.closing.is_some() && retry_at.is_none() {
            break;
        }
        let deadline = state.next_deadline();
        tokio::select! {
            commit = commits.recv(), if receiving => match commit {
                Some(commit) => {
                    receiving = state.take(commit);
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
                match write_job.as_mut() {
                    Some((_, _, run)) => run.await,
                    None => std::future::pending().await,
                }
            }, if write_job.is_some() => {
                if let Some((job, changes, _)) = write_job.take() {
                    match result {
                        Ok(()) => {
                            state.stored(job, changes);
                            write_at = Some(Instant::now() + COMMIT_INTERVAL);
                        }
                        Err(error) => {
                            state.failures += 1;
                            state.last_error = Some(error.to_string());
                            emit.send(PubSubEvent::StoreFailed { error: error.to_string() });
                            retry_at = Some(Instant::now() + STORE_BACKOFF.delay(state.failures));
                        }
                    }
                }
            },
            () = sleep_until(write_at), if write_job.is_none() && write_at.is_some() && !state.pending.is_empty() => {},
            () = sleep_until(retry_at), if retry_at.is_some() => retry_at = None,
            () = sleep_until(deadline), if deadline.is_some() => {
                if state.expire(Instant::now()) {
                    break;
                }
            },
        }
    }
    if !state.pending.is_empty() {
        let mut topics: Vec<&str> = state.pending.keys().map(|t| &**t).collect();
        topics.sort();
        tracing::warn!(
            ?topics,
            last_error = state.last_error.as_deref().unwrap_or("none"),
            "closing with Pub/Sub replay markers not stored; the events after the stored markers will be delivered again"
        );
    }
    for waiter in std::mem::take(&mut state.flushes) {
        let answer = if state.pending.is_empty() {
            Ok(())
        } else {
            Err(state.error(waiter.timeout))
        };
        let _ = waiter.reply.send(answer);
    }
    drop(write_job);
    store.take();
    if let Some((_, replies)) = state.closing.take() {
        for reply in replies {
            let _ = reply.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::MemoryStore;

    fn mark(seq: u64, id: u8) -> Commit {
        Commit::Mark {
            topic: "/event/E__e".into(),
            seq,
            marker: Some(OpaqueMarker::new(vec![id], None)),
        }
    }

    async fn stored(store: &MemoryStore) -> Option<Vec<u8>> {
        store
            .get_opaque("/event/E__e")
            .await
            .expect("get")
            .map(|m| m.replay_id)
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Whatever the order and batching of acknowledgements, the stored
        /// marker is the one of the newest event, and it never moves back.
        #[test]
        fn acks_in_any_order_end_at_the_newest(
            order in proptest::sample::subsequence((1u8..=40).collect::<Vec<_>>(), 1..40)
                .prop_shuffle(),
            flush_every in 1usize..8,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let store = Arc::new(MemoryStore::new());
                let (commits, rx) = mpsc::unbounded_channel();
                tokio::spawn(commit_loop(store.clone(), rx, Emitter::default()));
                let mut newest = 0u8;
                for (i, id) in order.iter().enumerate() {
                    let _ = commits.send(mark(u64::from(*id), *id));
                    newest = newest.max(*id);
                    if i % flush_every == 0 {
                        flush(&commits, Duration::from_secs(2)).await.expect("flush");
                        assert_eq!(stored(&store).await, Some(vec![newest]));
                    }
                }
                flush(&commits, Duration::from_secs(2)).await.expect("flush");
                assert_eq!(stored(&store).await, Some(vec![newest]));
            });
        }
    }

    #[tokio::test]
    async fn markers_are_stored_in_stream_order_whatever_the_ack_order() {
        let store = Arc::new(MemoryStore::new());
        let (commits, rx) = mpsc::unbounded_channel();
        tokio::spawn(commit_loop(store.clone(), rx, Emitter::default()));
        let _ = commits.send(mark(2, 2));
        let _ = commits.send(mark(1, 1));
        flush(&commits, Duration::from_secs(2))
            .await
            .expect("flush");
        assert_eq!(stored(&store).await, Some(vec![2]));
        // Once stored, an older ack still cannot move it back.
        let _ = commits.send(mark(1, 1));
        flush(&commits, Duration::from_secs(2))
            .await
            .expect("flush");
        assert_eq!(stored(&store).await, Some(vec![2]));
        // A removal (a replay fallback) is an ordered change like any other.
        let _ = commits.send(Commit::Mark {
            topic: "/event/E__e".into(),
            seq: 3,
            marker: None,
        });
        flush(&commits, Duration::from_secs(2))
            .await
            .expect("flush");
        assert_eq!(stored(&store).await, None);
        let _ = commits.send(mark(4, 4));
        close(&commits, Duration::from_secs(2)).await;
        assert_eq!(stored(&store).await, Some(vec![4]));
        assert_eq!(Arc::strong_count(&store), 1, "released");
        assert_eq!(
            flush(&commits, Duration::from_secs(1)).await,
            Err(FlushError::Closed)
        );
    }
}
