//! Replay markers and their durable stores.
//!
//! Salesforce keeps events for 24 to 72 hours and numbers them with replay
//! ids that grow per channel. A client that stores the [`ReplayMarker`] of
//! the newest event it *finished handling* can resubscribe after a restart
//! or a `403::Unknown client` with `ext.replay` set to that id and miss
//! nothing (at-least-once delivery).
//!
//! - [`ReplayMarker`]: replay id and creation time, extracted from any
//!   payload kind with [`ReplayMarker::from_event`] or the cheaper
//!   [`ReplayMarker::from_slice`]; ordered by [`ReplayMarker::is_newer_than`].
//! - [`ReplayFrom`]: `NEW` (-1), `ALL` (-2) or a replay id, where a
//!   subscription starts when nothing is stored ([`start_point`]).
//! - [`ReplayStore`]: the store trait, implemented by [`MemoryStore`],
//!   [`FileStore`] (redb, crash-safe) and [`RedisStore`] (compatible with
//!   the Python Nameko Salesforce extension); [`open_store`] opens one from
//!   a URI.
//! - [`OpaqueMarker`]: the marker of a Pub/Sub API topic (an opaque replay
//!   id), kept by every store apart from the integer markers
//!   ([`ReplayStore::get_opaque`] and friends).
//!
//! - [`warn_age`]: when a stored marker nears its channel's [`retention`]
//!   (the clients warn when they start from such a marker); [`Gap`]: the
//!   window of events that may be missed after an expired marker.
//!
//! Stores key markers by subscription, exactly as subscribed: a channel
//! (`/topic/X`, the Python-compatible key) or a channel with its filter
//! (`/topic/X?Status__c='Open'`), which is a stream of its own. They never
//! move a marker backwards. A marker is usable
//! for the channel's [`retention`] (24 or 72 hours).

#![warn(missing_docs)]

mod age;
mod file;
mod gap;
mod marker;
mod memory;
mod opaque;
mod redis;
mod store;
mod uri;

pub use self::redis::{
    DEFAULT_CREATED_PREFIX, DEFAULT_ID_PREFIX, DEFAULT_OPAQUE_PREFIX, Fence, RedisStore,
};
pub use age::{
    AgeStatus, WarnAges, age_status, marker_age, set_warn_ages, warn_age, warn_ages, warn_if_old,
};
pub use file::FileStore;
pub use gap::{ExpiredReplayId, Gap};
pub use marker::{ParseReplayFromError, ReplayFrom, ReplayMarker, ReplayOption};
pub use memory::MemoryStore;
pub use opaque::OpaqueMarker;
pub use sfstream_common::redact_url;
pub use store::{ReplayStore, StoreError, start_point};
pub use uri::{open_redis_store, open_store};

/// A channel without its `?filter` query string: the channel a filtered
/// subscription streams from (markers are kept under the whole subscription).
///
/// ```
/// use sfstream_salesforce::replay::channel_key;
///
/// assert_eq!(channel_key("/topic/Invoices?Status__c=Open"), "/topic/Invoices");
/// assert_eq!(channel_key("/data/ChangeEvents"), "/data/ChangeEvents");
/// ```
pub fn channel_key(channel: &str) -> &str {
    match channel.split_once('?') {
        Some((key, _)) => key,
        None => channel,
    }
}

/// How long Salesforce keeps the events of `channel`, i.e. how long a
/// stored replay marker stays usable: 72 hours for Change Data Capture
/// (`/data/…`) and platform events (`/event/…`, high volume), 24 hours for
/// PushTopics (`/topic/…`), generic channels (`/u/…`) and anything else.
///
/// ```
/// use std::time::Duration;
/// use sfstream_salesforce::replay::retention;
///
/// assert_eq!(retention("/topic/Invoices?Status__c=Open"), Duration::from_secs(24 * 3600));
/// assert_eq!(retention("/data/AccountChangeEvent"), Duration::from_secs(72 * 3600));
/// ```
pub fn retention(channel: &str) -> std::time::Duration {
    const HOUR: u64 = 3600;
    let key = channel_key(channel);
    if key.starts_with("/data/") || key.starts_with("/event/") {
        std::time::Duration::from_secs(72 * HOUR)
    } else {
        std::time::Duration::from_secs(24 * HOUR)
    }
}

/// The shortest [`retention`] of any channel.
pub(crate) const MIN_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn marker(id: i64, ms: Option<i64>) -> ReplayMarker {
        ReplayMarker::new(id, ms.and_then(DateTime::<Utc>::from_timestamp_millis))
    }

    /// The maximum of markers that all have times, or all lack them (the
    /// order is total then: by (time, id), or by id).
    fn max_of(markers: &[ReplayMarker]) -> Option<ReplayMarker> {
        markers
            .iter()
            .copied()
            .reduce(|a, b| if b.is_newer_than(&a) { b } else { a })
    }

    fn runtime() -> tokio::runtime::Runtime {
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("runtime: {e}"),
        }
    }

    /// Advances `markers` from concurrent tasks (split into `tasks` groups)
    /// and returns the stored marker.
    fn advance_concurrently(markers: &[ReplayMarker], tasks: usize) -> Option<ReplayMarker> {
        runtime().block_on(async {
            let store = Arc::new(MemoryStore::new());
            let mut handles = Vec::new();
            for t in 0..tasks {
                let store = Arc::clone(&store);
                let mine: Vec<_> = markers.iter().copied().skip(t).step_by(tasks).collect();
                handles.push(tokio::spawn(async move {
                    let mut last_seen: Option<ReplayMarker> = None;
                    for m in mine {
                        store.advance("/topic/P", m).await.expect("memory");
                        tokio::task::yield_now().await;
                        let now = store.get("/topic/P").await.expect("memory");
                        // What a task observes never moves backwards.
                        if let (Some(before), Some(now)) = (last_seen, now) {
                            assert!(!before.is_newer_than(&now), "{before:?} -> {now:?}");
                        }
                        last_seen = now;
                    }
                }));
            }
            for h in handles {
                h.await.expect("task");
            }
            store.get("/topic/P").await.expect("memory")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn timed_markers_end_at_max(
            raw in prop::collection::vec((0i64..50, 0i64..20), 1..40),
            tasks in 1usize..5,
        ) {
            let markers: Vec<_> = raw.iter().map(|(id, ms)| marker(*id, Some(*ms))).collect();
            let stored = advance_concurrently(&markers, tasks);
            let max = max_of(&markers);
            prop_assert_eq!(stored, max);
            // The maximum by the ordering is the maximum by (time, id).
            let by_tuple = markers.iter().max_by_key(|m| (m.created, m.replay_id)).copied();
            prop_assert_eq!(stored, by_tuple);
        }

        #[test]
        fn untimed_markers_end_at_max_id(
            ids in prop::collection::vec(-5i64..1000, 1..40),
            tasks in 1usize..5,
        ) {
            let markers: Vec<_> = ids.iter().map(|id| marker(*id, None)).collect();
            let stored = advance_concurrently(&markers, tasks);
            prop_assert_eq!(stored.map(|m| m.replay_id), ids.iter().copied().max());
        }

        #[test]
        fn mixed_markers_never_move_backwards(
            raw in prop::collection::vec((0i64..50, prop::option::of(0i64..20)), 1..40),
        ) {
            let rt = runtime();
            rt.block_on(async {
                let store = MemoryStore::new();
                let mut stored: Option<ReplayMarker> = None;
                for (id, ms) in &raw {
                    let m = marker(*id, *ms);
                    let moved = store.advance("/topic/M", m).await.expect("memory");
                    let want = stored.is_none_or(|s| m.is_newer_than(&s));
                    assert_eq!(moved, want);
                    if moved {
                        stored = Some(m);
                    }
                    assert_eq!(store.get("/topic/M").await.expect("memory"), stored);
                }
            });
        }

        #[test]
        fn batch_equals_one_by_one(
            raw in prop::collection::vec((0usize..3, 0i64..50, prop::option::of(0i64..20)), 0..40),
        ) {
            let rt = runtime();
            rt.block_on(async {
                let channels = ["/topic/A", "/topic/B?x=1", "/topic/B"];
                let batch: Vec<(String, ReplayMarker)> = raw
                    .iter()
                    .map(|(c, id, ms)| (channels[*c].to_string(), marker(*id, *ms)))
                    .collect();
                let one = MemoryStore::new();
                let mut moved_one = 0;
                for (c, m) in &batch {
                    if one.advance(c, *m).await.expect("memory") {
                        moved_one += 1;
                    }
                }
                let many = MemoryStore::new();
                let moved_many = many.advance_many(&batch).await.expect("memory");
                assert_eq!(moved_one, moved_many);
                assert_eq!(one.list().await.expect("memory"), many.list().await.expect("memory"));
            });
        }
    }
}
