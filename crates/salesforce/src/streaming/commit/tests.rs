//! Unit tests of the commit loop.

use super::*;
use crate::replay::{MemoryStore, OpaqueMarker, ReplayFrom};
use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};

const X: &str = "/topic/X";

fn fallback(expired: i64) -> Commit {
    Commit::Notice(Notice::Fallback {
        channel: X.into(),
        expired,
        fallback: ReplayFrom::New,
        gap: Box::new(crate::replay::Gap {
            channel: X.into(),
            from: None,
            to: chrono::Utc::now(),
            fallback: ReplayFrom::New,
            expired_replay_id: crate::replay::ExpiredReplayId::Number(expired),
        }),
    })
}

fn advance(id: i64) -> Commit {
    Commit::Advance(X.into(), ReplayMarker::new(id, None))
}

fn start(store: Arc<dyn ReplayStore>) -> mpsc::UnboundedSender<Commit> {
    let (commits, rx) = mpsc::unbounded_channel();
    tokio::spawn(commit_loop(store, rx, Emitter(None)));
    commits
}

#[tokio::test]
async fn an_ack_taken_after_the_fallback_notice_is_kept() {
    for _ in 0..20 {
        let store = Arc::new(MemoryStore::new());
        store
            .advance(X, ReplayMarker::new(45, None))
            .await
            .expect("stale marker");
        let (commits, rx) = mpsc::unbounded_channel();
        // In causal order, all in one batch: a late ack of an old event,
        // the fallback, then an event of the fallback subscription.
        let _ = commits.send(advance(44));
        let _ = commits.send(fallback(45));
        let _ = commits.send(advance(100));
        tokio::spawn(commit_loop(store.clone(), rx, Emitter(None)));
        flush(&commits, Duration::from_secs(5))
            .await
            .expect("flushed");
        assert_eq!(
            store.get(X).await.expect("get"),
            Some(ReplayMarker::new(100, None)),
            "the acknowledged marker was erased by the fallback"
        );
        close(&commits, Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn a_fallback_removes_the_stale_marker_and_what_came_before_it_only() {
    let store = Arc::new(MemoryStore::new());
    store
        .advance(X, ReplayMarker::new(45, None))
        .await
        .expect("stale marker");
    let commits = start(store.clone());
    let _ = commits.send(advance(44));
    let _ = commits.send(fallback(45));
    flush(&commits, Duration::from_secs(5))
        .await
        .expect("flushed");
    assert_eq!(store.get(X).await.expect("get"), None);
    // Later markers are stored as usual, even older-looking ones (the
    // replay ids of a channel may restart after a sandbox refresh).
    let _ = commits.send(advance(3));
    flush(&commits, Duration::from_secs(5))
        .await
        .expect("flushed");
    assert_eq!(
        store.get(X).await.expect("get"),
        Some(ReplayMarker::new(3, None))
    );
    close(&commits, Duration::from_secs(5)).await;
    assert_eq!(Arc::strong_count(&store), 1, "released");
}

/// A store whose writes fail while `down` is set.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
    /// Successful marker writes.
    writes: std::sync::atomic::AtomicUsize,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::Acquire) {
            return Err(StoreError::Task {
                store: "flaky".into(),
                detail: "down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ReplayStore for Flaky {
    async fn get(&self, channel: &str) -> Result<Option<ReplayMarker>, StoreError> {
        self.inner.get(channel).await
    }
    async fn advance(&self, channel: &str, marker: ReplayMarker) -> Result<bool, StoreError> {
        self.check()?;
        self.writes.fetch_add(1, Ordering::AcqRel);
        self.inner.advance(channel, marker).await
    }
    async fn replace(&self, channel: &str, marker: ReplayMarker) -> Result<(), StoreError> {
        self.check()?;
        self.inner.replace(channel, marker).await
    }
    async fn remove(&self, channel: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.remove(channel).await
    }
    async fn list(&self) -> Result<Vec<(String, ReplayMarker)>, StoreError> {
        self.inner.list().await
    }
    async fn get_opaque(&self, topic: &str) -> Result<Option<OpaqueMarker>, StoreError> {
        self.inner.get_opaque(topic).await
    }
    async fn put_opaque(&self, topic: &str, marker: &OpaqueMarker) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_opaque(topic, marker).await
    }
    async fn put_opaque_many(&self, markers: &[(String, OpaqueMarker)]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_opaque_many(markers).await
    }
    async fn remove_opaque(&self, topic: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.remove_opaque(topic).await
    }
    async fn list_opaque(&self) -> Result<Vec<(String, OpaqueMarker)>, StoreError> {
        self.inner.list_opaque().await
    }
}

#[tokio::test]
async fn a_steady_stream_is_written_once_per_interval_and_a_flush_writes_at_once() {
    let store = Arc::new(Flaky::default());
    let commits = start(store.clone());
    let started = Instant::now();
    for id in 1..=100 {
        let _ = commits.send(advance(id));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    flush(&commits, Duration::from_secs(2))
        .await
        .expect("flushed");
    let writes = store.writes.load(Ordering::Acquire);
    let bound = (elapsed.as_millis() / COMMIT_INTERVAL.as_millis()) as usize + 2;
    assert!(
        (1..=bound).contains(&writes),
        "{writes} writes in {elapsed:?} (at most {bound})"
    );
    assert_eq!(
        store.get(X).await.expect("get"),
        Some(ReplayMarker::new(100, None))
    );
    // Right after a write, a flush does not wait for the interval.
    let _ = commits.send(advance(101));
    let asked = Instant::now();
    flush(&commits, Duration::from_secs(2))
        .await
        .expect("flushed");
    assert!(asked.elapsed() < COMMIT_INTERVAL, "{:?}", asked.elapsed());
    assert_eq!(
        store.get(X).await.expect("get"),
        Some(ReplayMarker::new(101, None))
    );
}

#[tokio::test]
async fn flush_says_what_is_not_stored_and_succeeds_once_the_store_is_back() {
    let store = Arc::new(Flaky::default());
    let commits = start(store.clone());
    flush(&commits, Duration::from_secs(1))
        .await
        .expect("nothing to flush");
    store.down.store(true, Ordering::Release);
    let _ = commits.send(advance(7));
    let _ = commits.send(fallback(3));
    let _ = commits.send(advance(9));
    let _ = commits.send(Commit::Advance(
        "/topic/Y".into(),
        ReplayMarker::new(1, None),
    ));
    let started = Instant::now();
    let error = flush(&commits, Duration::from_millis(300))
        .await
        .expect_err("store down");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(900),
        "{waited:?}"
    );
    match &error {
        FlushError::Timeout {
            timeout,
            markers,
            removals,
            last_error,
        } => {
            assert_eq!(*timeout, Duration::from_millis(300));
            assert_eq!(
                markers,
                &vec![
                    ("/topic/X".to_string(), ReplayMarker::new(9, None)),
                    ("/topic/Y".to_string(), ReplayMarker::new(1, None)),
                ]
            );
            assert_eq!(removals, &vec![X.to_string()]);
            assert!(last_error.as_deref().is_some_and(|e| e.contains("down")));
        }
        other => panic!("{other:?}"),
    }
    let shown = error.to_string();
    assert!(shown.contains("/topic/X at replay id 9"), "{shown}");
    store.down.store(false, Ordering::Release);
    flush(&commits, Duration::from_secs(10))
        .await
        .expect("stored once the store is back");
    assert_eq!(
        store.get(X).await.expect("get"),
        Some(ReplayMarker::new(9, None))
    );
    close(&commits, Duration::from_secs(5)).await;
    assert!(matches!(
        flush(&commits, Duration::from_secs(1)).await,
        Err(FlushError::Closed)
    ));
}

#[tokio::test]
async fn close_gives_up_by_its_deadline_and_releases_the_store() {
    let store = Arc::new(Flaky::default());
    store.down.store(true, Ordering::Release);
    let commits = start(store.clone());
    let _ = commits.send(advance(7));
    let started = Instant::now();
    close(&commits, Duration::from_millis(400)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_millis(1000),
        "{waited:?}"
    );
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "the loop still holds the store"
    );
    assert_eq!(store.inner.get(X).await.expect("get"), None);
}

#[tokio::test]
async fn the_loop_stops_when_every_sender_is_gone() {
    let store = Arc::new(MemoryStore::new());
    let commits = start(store.clone());
    let _ = commits.send(advance(5));
    drop(commits);
    for _ in 0..100 {
        if Arc::strong_count(&store) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(Arc::strong_count(&store), 1);
    assert_eq!(
        store.get(X).await.expect("get"),
        Some(ReplayMarker::new(5, None))
    );
}
