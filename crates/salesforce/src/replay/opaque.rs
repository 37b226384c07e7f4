//! [`OpaqueMarker`]: the replay marker of a Pub/Sub API topic, whose replay
//! ids are opaque bytes.

use chrono::{DateTime, Utc};

/// The replay marker of a Pub/Sub API (gRPC) topic: an opaque replay id and,
/// when known, when the event was created.
///
/// Opaque ids cannot be compared, so stores keep whatever they are given
/// ([`ReplayStore::put_opaque`](super::ReplayStore::put_opaque)): deciding
/// which marker is the newest is the client's job (it knows the order the
/// events arrived in). Opaque markers live apart from the integer markers
/// of CometD channels, even under the same topic name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OpaqueMarker {
    /// The replay id, as Salesforce sent it.
    pub replay_id: Vec<u8>,
    /// When the event was created, if known.
    pub created: Option<DateTime<Utc>>,
}

impl OpaqueMarker {
    /// A marker of `replay_id`, created at `created`.
    pub fn new(replay_id: impl Into<Vec<u8>>, created: Option<DateTime<Utc>>) -> Self {
        Self {
            replay_id: replay_id.into(),
            created,
        }
    }

    /// The creation time in epoch milliseconds, if known.
    pub fn created_millis(&self) -> Option<i64> {
        self.created.map(|t| t.timestamp_millis())
    }

    /// The replay id as text (standard base64), as logs and the CLI show it.
    pub fn replay_id_text(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&self.replay_id)
    }
}

impl std::fmt::Debug for OpaqueMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpaqueMarker")
            .field("replay_id", &self.replay_id_text())
            .field("created", &self.created)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_id_as_base64() {
        let marker = OpaqueMarker::new(vec![0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0], None);
        assert_eq!(marker.replay_id_text(), "AAAAAAAAEjQAAA==");
        assert!(format!("{marker:?}").contains("AAAAAAAAEjQAAA=="));
        let t = DateTime::from_timestamp_millis(1_700_000_000_123);
        assert_eq!(
            OpaqueMarker::new(vec![1], t).created_millis(),
            Some(1_700_000_000_123)
        );
    }
}
