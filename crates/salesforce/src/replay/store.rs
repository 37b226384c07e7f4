//! The [`ReplayStore`] trait and its error type.

use std::fmt::Debug;

use async_trait::async_trait;

use super::marker::{ReplayFrom, ReplayMarker};
use super::opaque::OpaqueMarker;

/// Durable storage of the newest processed [`ReplayMarker`] per channel
/// (aiosfstream's `ReplayMarkerStorage`).
///
/// Markers are keyed by subscription, exactly as subscribed: `/topic/X` and
/// `/topic/X?Status__c=Open` are two streams with a marker each. A client advances the marker only after the
/// handler of an event succeeded (at-least-once delivery), and
/// [`advance`](ReplayStore::advance) never moves a stored marker backwards,
/// even with concurrent advancers, so handlers that finish out of order are
/// harmless.
///
/// The durable stores keep creation times to the millisecond, the precision
/// of Salesforce's dates.
///
/// ```
/// use sfstream_salesforce::replay::{MemoryStore, ReplayMarker, ReplayStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sfstream_salesforce::replay::StoreError> {
/// let store = MemoryStore::new();
/// assert!(store.advance("/topic/X", ReplayMarker::new(10, None)).await?);
/// // An older marker (a slow handler finishing late) does not move it back.
/// assert!(!store.advance("/topic/X", ReplayMarker::new(9, None)).await?);
/// assert_eq!(store.get("/topic/X").await?, Some(ReplayMarker::new(10, None)));
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait ReplayStore: Send + Sync + Debug {
    /// The stored marker of `channel`, if any.
    async fn get(&self, channel: &str) -> Result<Option<ReplayMarker>, StoreError>;

    /// Stores `marker` for `channel` if it is newer
    /// ([`ReplayMarker::is_newer_than`]) than the stored one, or nothing is
    /// stored. Returns whether the stored marker moved. Atomic against
    /// concurrent advancers on the same store.
    async fn advance(&self, channel: &str, marker: ReplayMarker) -> Result<bool, StoreError>;

    /// [`advance`](ReplayStore::advance) for a batch, in order, as one
    /// transaction or round trip where the store can. Returns how many
    /// markers moved.
    ///
    /// The default implementation advances one marker at a time.
    async fn advance_many(&self, markers: &[(String, ReplayMarker)]) -> Result<usize, StoreError> {
        let mut moved = 0;
        for (channel, marker) in markers {
            if self.advance(channel, *marker).await? {
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// Stores `marker` for `channel` unconditionally, even when it is older:
    /// used when a replay id outside the retention window is replaced by a
    /// fallback.
    async fn replace(&self, channel: &str, marker: ReplayMarker) -> Result<(), StoreError>;

    /// Forgets the marker of `channel`. Removing a missing marker is not an
    /// error.
    async fn remove(&self, channel: &str) -> Result<(), StoreError>;

    /// Every stored `(channel, marker)`, sorted by channel.
    async fn list(&self) -> Result<Vec<(String, ReplayMarker)>, StoreError>;

    /// The stored opaque (Pub/Sub API) marker of `topic`, if any. Opaque
    /// markers are kept apart from the integer ones: `get("/data/X")` and
    /// `get_opaque("/data/X")` never see each other's marker.
    async fn get_opaque(&self, topic: &str) -> Result<Option<OpaqueMarker>, StoreError>;

    /// Stores `marker` for `topic`, replacing what is stored. Opaque ids
    /// cannot be compared, so the caller decides what is newest (the Pub/Sub
    /// client orders markers by arrival).
    async fn put_opaque(&self, topic: &str, marker: &OpaqueMarker) -> Result<(), StoreError>;

    /// [`put_opaque`](ReplayStore::put_opaque) for a batch (a later entry
    /// of the same topic wins), as one transaction or round trip where the
    /// store can.
    async fn put_opaque_many(&self, markers: &[(String, OpaqueMarker)]) -> Result<(), StoreError>;

    /// Forgets the opaque marker of `topic` (a missing one is not an error).
    async fn remove_opaque(&self, topic: &str) -> Result<(), StoreError>;

    /// Every stored opaque `(topic, marker)`, sorted by topic.
    async fn list_opaque(&self) -> Result<Vec<(String, OpaqueMarker)>, StoreError>;
}

/// Where `channel` should start: after its stored marker, or at `default`
/// when nothing is stored (aiosfstream's `DefaultMappingStorage`).
///
/// ```
/// use sfstream_salesforce::replay::{start_point, MemoryStore, ReplayFrom, ReplayMarker, ReplayStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sfstream_salesforce::replay::StoreError> {
/// let store = MemoryStore::new();
/// assert_eq!(start_point(&store, "/topic/X", ReplayFrom::All).await?, ReplayFrom::All);
/// store.advance("/topic/X", ReplayMarker::new(42, None)).await?;
/// assert_eq!(start_point(&store, "/topic/X", ReplayFrom::All).await?, ReplayFrom::Id(42));
/// # Ok(())
/// # }
/// ```
pub async fn start_point(
    store: &(impl ReplayStore + ?Sized),
    channel: &str,
    default: ReplayFrom,
) -> Result<ReplayFrom, StoreError> {
    Ok(match store.get(channel).await? {
        Some(marker) => ReplayFrom::Id(marker.replay_id),
        None => default,
    })
}

/// A failure of a replay store. Messages name the store (a redis URL with
/// its password replaced by `***`) and never carry a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("replay store {store}: {context}: {source}")]
    Io {
        /// The store, e.g. `file:/var/lib/sfstream/replay.redb`.
        store: String,
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The redb database failed.
    #[error("replay store {store}: {source}")]
    Database {
        /// The store, e.g. `file:/var/lib/sfstream/replay.redb`.
        store: String,
        /// The underlying error.
        #[source]
        source: redb::Error,
    },
    /// The database file is already open, in this process or another.
    #[error("replay store {store}: the file is already open (by another process or store)")]
    InUse {
        /// The store, e.g. `file:/var/lib/sfstream/replay.redb`.
        store: String,
    },
    /// Redis failed or could not be reached.
    #[error("replay store {store}: {source}")]
    Redis {
        /// The store: its redis URL with the password redacted.
        store: String,
        /// The underlying error.
        #[source]
        source: redis::RedisError,
    },
    /// Stored data is not what this store writes.
    #[error("replay store {store}: corrupt data: {detail}")]
    Corrupt {
        /// The store.
        store: String,
        /// What is wrong, and where.
        detail: String,
    },
    /// A store URI that [`open_store`](super::open_store) does not accept.
    #[error(
        "invalid replay store URI `{uri}`: {reason}; expected memory:, file:PATH, redis://[USER:PASSWORD@]HOST[:PORT][/DB][?ttl=SECONDS] or rediss://…"
    )]
    InvalidUri {
        /// The URI, password redacted.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A background task running a store operation failed.
    #[error("replay store {store}: background task failed: {detail}")]
    Task {
        /// The store.
        store: String,
        /// What happened.
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_travel_between_threads() {
        fn send_sync_static<T: Send + Sync + 'static>() {}
        send_sync_static::<StoreError>();
    }
}
