//! The open Pub/Sub subscriptions, for the console: each registers while
//! it runs and keeps its cursor up to date.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

/// Open subscriptions by a number of their own.
#[derive(Debug, Default)]
pub struct Listing {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Entry>>,
}

#[derive(Debug)]
struct Entry {
    topic: String,
    managed: bool,
    user_id: String,
    since: DateTime<Utc>,
    cursor: Arc<AtomicI64>,
}

/// An open subscription, as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PubSubSubscriptionSummary {
    /// The topic.
    pub topic: String,
    /// Whether it is a ManagedSubscribe.
    pub managed: bool,
    /// The user the token belongs to.
    pub user_id: String,
    /// When it opened (RFC 3339).
    pub since: String,
    /// The last replay id delivered (or where it started).
    pub replay_id: i64,
}

/// Keeps a subscription listed until dropped.
#[derive(Debug)]
pub struct Listed {
    listing: Arc<super::PubSubState>,
    id: u64,
    cursor: Arc<AtomicI64>,
}

impl Listed {
    /// Records how far the subscription has delivered.
    pub fn set_cursor(&self, cursor: i64) {
        self.cursor.store(cursor, Ordering::Relaxed);
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.listing.listing.open.lock().remove(&self.id);
    }
}

impl Listing {
    /// Lists a subscription of `state` until the returned guard drops.
    pub fn register(
        state: &Arc<super::PubSubState>,
        topic: &str,
        managed: bool,
        user_id: &str,
        cursor: i64,
    ) -> Listed {
        let listing = &state.listing;
        let id = listing.next.fetch_add(1, Ordering::Relaxed);
        let cursor = Arc::new(AtomicI64::new(cursor));
        listing.open.lock().insert(
            id,
            Entry {
                topic: topic.to_string(),
                managed,
                user_id: user_id.to_string(),
                since: Utc::now(),
                cursor: cursor.clone(),
            },
        );
        Listed {
            listing: state.clone(),
            id,
            cursor,
        }
    }

    /// Every open subscription, oldest first.
    pub fn summaries(&self) -> Vec<PubSubSubscriptionSummary> {
        self.open
            .lock()
            .values()
            .map(|e| PubSubSubscriptionSummary {
                topic: e.topic.clone(),
                managed: e.managed,
                user_id: e.user_id.clone(),
                since: crate::store::event_datetime(e.since),
                replay_id: e.cursor.load(Ordering::Relaxed),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmulatorConfig;

    #[test]
    fn subscriptions_are_listed_while_open() {
        let state = Arc::new(super::super::PubSubState::new(&EmulatorConfig::default()));
        let listed = Listing::register(&state, "/data/ChangeEvents", true, "005x", 4);
        listed.set_cursor(9);
        let all = state.listing.summaries();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].topic, "/data/ChangeEvents");
        assert!(all[0].managed);
        assert_eq!(all[0].replay_id, 9);
        drop(listed);
        assert!(state.listing.summaries().is_empty());
    }
}
