//! The Pub/Sub API (gRPC, `eventbus.v1`) of the emulated org, served beside
//! the HTTP endpoints on the same org state: one record change raises one
//! event with one replay id, read by CometD and Pub/Sub subscribers alike.
//!
//! - [`schema`]: Avro schemas generated from the sobject schemas.
//! - [`payload`]: stored event JSON to and from Avro-shaped JSON.
//! - [`auth`]: the `accesstoken`/`instanceurl`/`tenantid` metadata check.
//! - [`subscribe`]: flow-controlled delivery, keepalives, idle close.
//! - [`publish`]: Publish and PublishStream.
//! - [`managed`]: ManagedEventSubscription records and their commits.
//! - [`service`]: the RPCs.
//! - [`serve`]: the listener, TLS, dropping every stream on demand.

pub mod auth;
pub mod codec;
pub mod control;
pub mod listing;
pub mod managed;
pub mod payload;
pub mod publish;
pub mod schema;
pub mod serve;
pub mod service;
pub mod subscribe;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::watch;

use crate::config::EmulatorConfig;
use schema::EventSchema;

/// The most schemas remembered for `GetSchema` (old versions included).
const MAX_SCHEMAS: usize = 10_000;

/// A replay id on the wire: the 8-byte big-endian CometD replay id, then
/// two zero bytes (as observed on Salesforce).
pub fn replay_bytes(id: i64) -> Vec<u8> {
    let mut bytes = id.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0, 0]);
    bytes
}

/// The CometD replay id of wire bytes, if they are one of ours.
pub fn replay_number(bytes: &[u8]) -> Option<i64> {
    let (head, tail) = bytes.split_at_checked(8)?;
    if tail != [0, 0] {
        return None;
    }
    let id = i64::from_be_bytes(head.try_into().ok()?);
    (id >= 0).then_some(id)
}

/// A schema with its parsed form, for encoding and decoding.
#[derive(Debug)]
pub struct Registered {
    /// The schema and how it maps sobject fields.
    pub schema: EventSchema,
    /// The parsed Avro schema.
    pub parsed: codec::Schema,
}

/// Counters of Pub/Sub traffic.
#[derive(Debug, Default)]
pub struct PubSubStats {
    /// Open connections.
    pub connections: AtomicU64,
    /// Open Subscribe, ManagedSubscribe and PublishStream streams.
    pub streams: AtomicU64,
    /// Subscribe and ManagedSubscribe calls.
    pub subscribes: AtomicU64,
    /// Events published over Pub/Sub.
    pub events_published: AtomicU64,
    /// Events delivered to Pub/Sub subscribers.
    pub events_delivered: AtomicU64,
}

impl PubSubStats {
    /// The counters as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "clients": get(&self.connections),
            "streams": get(&self.streams),
            "subscribes": get(&self.subscribes),
            "events_published": get(&self.events_published),
            "events_delivered": get(&self.events_delivered),
        })
    }
}

/// Decrements an open-count when dropped.
#[derive(Debug)]
pub struct OpenGuard(Arc<PubSubState>, fn(&PubSubStats) -> &AtomicU64);

impl OpenGuard {
    /// Counts one more open thing until the guard drops.
    pub fn new(state: Arc<PubSubState>, counter: fn(&PubSubStats) -> &AtomicU64) -> Self {
        counter(&state.stats).fetch_add(1, Ordering::Relaxed);
        Self(state, counter)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        (self.1)(&self.0.stats).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Pub/Sub state of the org that outlives its server: schemas, managed
/// subscriptions and their commits, counters, the drop-streams signal.
#[derive(Debug)]
pub struct PubSubState {
    /// Sent with no events owed for this long, a subscription sends a keepalive.
    pub keepalive: Duration,
    /// With nothing requested for this long, a subscription is closed.
    pub idle_timeout: Duration,
    schemas: Mutex<HashMap<String, Arc<Registered>>>,
    /// Managed subscriptions.
    pub managed: managed::Registry,
    /// Counters.
    pub stats: PubSubStats,
    /// Open subscriptions (for the console).
    pub listing: listing::Listing,
    drops: watch::Sender<u64>,
}

impl PubSubState {
    /// State for an org with these settings.
    pub fn new(config: &EmulatorConfig) -> Self {
        Self {
            keepalive: config.pubsub_keepalive.max(Duration::from_millis(10)),
            idle_timeout: config.pubsub_idle_timeout.max(Duration::from_millis(10)),
            schemas: Mutex::new(HashMap::new()),
            managed: managed::Registry::default(),
            stats: PubSubStats::default(),
            listing: listing::Listing::default(),
            drops: watch::channel(0).0,
        }
    }

    /// Ends every open Pub/Sub connection abruptly, as a lost connection
    /// (or an RST_STREAM of each stream) would.
    pub fn drop_streams(&self) {
        self.drops.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes on every [`PubSubState::drop_streams`].
    pub fn watch_drops(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// Registers a schema (parsing it once) and returns it.
    pub fn register(&self, schema: EventSchema) -> Result<Arc<Registered>, String> {
        if let Some(found) = self.schemas.lock().get(&schema.id) {
            return Ok(found.clone());
        }
        let parsed = codec::parse_schema(&schema.json).map_err(|e| e.to_string())?;
        let registered = Arc::new(Registered { schema, parsed });
        let mut schemas = self.schemas.lock();
        if schemas.len() >= MAX_SCHEMAS {
            schemas.clear();
        }
        schemas.insert(registered.schema.id.clone(), registered.clone());
        Ok(registered)
    }

    /// A registered schema by id.
    pub fn schema_by_id(&self, id: &str) -> Option<Arc<Registered>> {
        self.schemas.lock().get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_ids_are_ten_bytes() {
        let bytes = replay_bytes(0x1234);
        assert_eq!(bytes, [0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0]);
        assert_eq!(replay_number(&bytes), Some(0x1234));
        assert_eq!(replay_number(&bytes[..9]), None);
        assert_eq!(replay_number(b"garbage!!!"), None);
    }
}
