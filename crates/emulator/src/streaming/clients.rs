//! CometD clients: their browser cookie, subscriptions with replay cursors,
//! and liveness.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One handshaken CometD client.
#[derive(Debug)]
pub struct Client {
    /// The `BAYEUX_BROWSER` cookie value issued at handshake.
    pub browser: String,
    /// Subscribed channel (without `?filter`) to the last replay id delivered.
    pub subscriptions: HashMap<String, i64>,
    /// When the last response to it was sent.
    pub last_seen: Instant,
    /// Number of connects so far; a newer connect supersedes a held one.
    pub connect_generation: u64,
    /// A connect is being held for it (it cannot expire meanwhile).
    pub connect_outstanding: bool,
    /// It must receive a server-side `/meta/disconnect`.
    pub disconnect_pending: bool,
}

impl Client {
    /// A client just handshaken with the given browser cookie.
    pub fn new(browser: String) -> Self {
        Self {
            browser,
            subscriptions: HashMap::new(),
            last_seen: Instant::now(),
            connect_generation: 0,
            connect_outstanding: false,
            disconnect_pending: false,
        }
    }
}

/// Counters of CometD traffic, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct StreamingStats {
    /// Handshake requests (successful or not).
    pub handshakes: AtomicU64,
    /// Successful handshakes.
    pub handshakes_ok: AtomicU64,
    /// Connect requests.
    pub connects: AtomicU64,
    /// Subscribe requests.
    pub subscribes: AtomicU64,
    /// Events raised on any channel.
    pub events_raised: AtomicU64,
    /// Events delivered to clients.
    pub events_delivered: AtomicU64,
}

impl StreamingStats {
    /// The counters as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "handshakes": get(&self.handshakes),
            "handshakes_ok": get(&self.handshakes_ok),
            "connects": get(&self.connects),
            "subscribes": get(&self.subscribes),
            "events_raised": get(&self.events_raised),
            "events_delivered": get(&self.events_delivered),
        })
    }
}
