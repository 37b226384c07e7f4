//! The commit loop: replay markers written to the store in batches, off the
//! hot path, with flush and close.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::client::{Emitter, StreamEvent};
use super::extension::Notice;
use crate::replay::{ReplayMarker, ReplayStore};

#[derive(Debug)]
pub(crate) enum Commit {
    Advance(String, ReplayMarker),
    Flush(oneshot::Sender<()>),
    /// Flush, then stop and release the store.
    Close(oneshot::Sender<()>),
}

/// Writes markers to the store in batches (the newest per channel), and
/// retries when the store fails, so a store outage never loses a marker
/// that was committed later than the outage began.
pub(crate) async fn commit_loop(
    store: Arc<dyn ReplayStore>,
    mut commits: mpsc::UnboundedReceiver<Commit>,
    mut notices: mpsc::UnboundedReceiver<Notice>,
    emit: Emitter,
) {
    let mut pending: HashMap<String, ReplayMarker> = HashMap::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    while open || !pending.is_empty() {
        if pending.is_empty() && waiters.is_empty() {
            tokio::select! {
                commit = commits.recv() => match commit {
                    Some(commit) => open &= take(commit, &mut pending, &mut waiters),
                    None => open = false,
                },
                Some(notice) = notices.recv() => fallback(&store, &mut pending, notice, &emit).await,
            }
        }
        while open && let Ok(commit) = commits.try_recv() {
            open &= take(commit, &mut pending, &mut waiters);
        }
        while let Ok(notice) = notices.try_recv() {
            fallback(&store, &mut pending, notice, &emit).await;
        }
        if !pending.is_empty() {
            let batch: Vec<(String, ReplayMarker)> =
                pending.iter().map(|(k, v)| (k.clone(), *v)).collect();
            match store.advance_many(&batch).await {
                Ok(_) => pending.clear(),
                Err(error) => {
                    emit.send(StreamEvent::StoreFailed {
                        error: error.to_string(),
                    });
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        if open {
            for waiter in waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
    // Release the store before telling `close` it may reopen it.
    drop(store);
    for waiter in waiters {
        let _ = waiter.send(());
    }
}

/// Adds a commit to the batch; returns false when the loop must stop.
fn take(
    commit: Commit,
    pending: &mut HashMap<String, ReplayMarker>,
    waiters: &mut Vec<oneshot::Sender<()>>,
) -> bool {
    match commit {
        Commit::Advance(channel, marker) => {
            let newest = pending
                .get(&channel)
                .is_none_or(|old| marker.is_newer_than(old));
            if newest {
                pending.insert(channel, marker);
            }
            true
        }
        Commit::Flush(waiter) => {
            waiters.push(waiter);
            true
        }
        Commit::Close(waiter) => {
            waiters.push(waiter);
            false
        }
    }
}

async fn fallback(
    store: &Arc<dyn ReplayStore>,
    pending: &mut HashMap<String, ReplayMarker>,
    notice: Notice,
    emit: &Emitter,
) {
    let Notice::Fallback {
        channel,
        expired,
        fallback,
    } = notice;
    pending.remove(&channel);
    // The stale marker must go, or every restart would hit the same error.
    if let Err(error) = store.remove(&channel).await {
        emit.send(StreamEvent::StoreFailed {
            error: error.to_string(),
        });
    }
    emit.send(StreamEvent::ReplayFallback {
        channel,
        expired_replay_id: expired,
        fallback,
    });
}
