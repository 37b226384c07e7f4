//! [`MemoryStore`]: markers in a map, for tests and for clients that only
//! need to survive reconnects, not restarts.

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::marker::ReplayMarker;
use super::opaque::OpaqueMarker;
use super::store::{ReplayStore, StoreError};

/// Markers kept in memory (lost when the process ends).
///
/// ```
/// use sfstream_salesforce::replay::{MemoryStore, ReplayMarker, ReplayStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sfstream_salesforce::replay::StoreError> {
/// let store = MemoryStore::new();
/// store.advance_many(&[
///     ("/topic/A".to_string(), ReplayMarker::new(3, None)),
///     ("/topic/B".to_string(), ReplayMarker::new(8, None)),
/// ]).await?;
/// assert_eq!(store.list().await?.len(), 2);
/// store.remove("/topic/A").await?;
/// assert_eq!(store.get("/topic/A").await?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    markers: Mutex<HashMap<String, ReplayMarker>>,
    opaque: Mutex<HashMap<String, OpaqueMarker>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Stores `marker` under `channel` in `map` if it is newer.
fn advance_in(
    map: &mut HashMap<String, ReplayMarker>,
    channel: &str,
    marker: ReplayMarker,
) -> bool {
    let key = channel;
    match map.get_mut(key) {
        Some(stored) if marker.is_newer_than(stored) => {
            *stored = marker;
            true
        }
        Some(_) => false,
        None => {
            map.insert(key.to_string(), marker);
            true
        }
    }
}

#[async_trait]
impl ReplayStore for MemoryStore {
    async fn get(&self, channel: &str) -> Result<Option<ReplayMarker>, StoreError> {
        Ok(self.markers.lock().get(channel).copied())
    }

    async fn advance(&self, channel: &str, marker: ReplayMarker) -> Result<bool, StoreError> {
        Ok(advance_in(&mut self.markers.lock(), channel, marker))
    }

    async fn advance_many(&self, markers: &[(String, ReplayMarker)]) -> Result<usize, StoreError> {
        let mut map = self.markers.lock();
        let mut moved = 0;
        for (channel, marker) in markers {
            if advance_in(&mut map, channel, *marker) {
                moved += 1;
            }
        }
        Ok(moved)
    }

    async fn replace(&self, channel: &str, marker: ReplayMarker) -> Result<(), StoreError> {
        self.markers.lock().insert(channel.to_string(), marker);
        Ok(())
    }

    async fn remove(&self, channel: &str) -> Result<(), StoreError> {
        self.markers.lock().remove(channel);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<(String, ReplayMarker)>, StoreError> {
        let mut all: Vec<_> = self
            .markers
            .lock()
            .iter()
            .map(|(channel, marker)| (channel.clone(), *marker))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    async fn get_opaque(&self, topic: &str) -> Result<Option<OpaqueMarker>, StoreError> {
        Ok(self.opaque.lock().get(topic).cloned())
    }

    async fn put_opaque(&self, topic: &str, marker: &OpaqueMarker) -> Result<(), StoreError> {
        self.opaque.lock().insert(topic.to_string(), marker.clone());
        Ok(())
    }

    async fn put_opaque_many(&self, markers: &[(String, OpaqueMarker)]) -> Result<(), StoreError> {
        let mut map = self.opaque.lock();
        for (topic, marker) in markers {
            map.insert(topic.clone(), marker.clone());
        }
        Ok(())
    }

    async fn remove_opaque(&self, topic: &str) -> Result<(), StoreError> {
        self.opaque.lock().remove(topic);
        Ok(())
    }

    async fn list_opaque(&self) -> Result<Vec<(String, OpaqueMarker)>, StoreError> {
        let mut all: Vec<_> = self
            .opaque
            .lock()
            .iter()
            .map(|(topic, marker)| (topic.clone(), marker.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }
}
