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
    /// The filter of a channel subscribed with one (`/topic/X?Field='v'&…`).
    pub filters: HashMap<String, Filter>,
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
            filters: HashMap::new(),
            last_seen: Instant::now(),
            connect_generation: 0,
            connect_outstanding: false,
            disconnect_pending: false,
        }
    }
}

/// A PushTopic subscription filter, `Field=value&Field='text'&…`: an
/// event passes when any condition matches a field of its `sobject` (the
/// `&` acts as OR, as Salesforce documents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter(Vec<(String, String)>);

impl Filter {
    /// The filter of a subscription, if it has one.
    pub fn of(subscription: &str) -> Option<Self> {
        let (_, expression) = subscription.split_once('?')?;
        let conditions = expression
            .split('&')
            .filter_map(|condition| condition.split_once('='))
            .map(|(field, value)| {
                let value = value.trim();
                let value = value
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .unwrap_or(value);
                (field.trim().to_string(), value.to_string())
            })
            .collect();
        Some(Self(conditions))
    }

    /// The conditions as `Field=value&…` (for display).
    pub fn expression(&self) -> String {
        let conditions: Vec<String> = self.0.iter().map(|(f, v)| format!("{f}={v}")).collect();
        conditions.join("&")
    }

    /// Whether a serialised PushTopic message passes.
    pub fn passes(&self, message: &[u8]) -> bool {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(message) else {
            return false;
        };
        let sobject = &message["data"]["sobject"];
        self.0.iter().any(|(field, value)| match &sobject[field] {
            serde_json::Value::String(text) => text == value,
            serde_json::Value::Null => value.eq_ignore_ascii_case("null"),
            other => serde_json::from_str::<serde_json::Value>(value).is_ok_and(|v| &v == other),
        })
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
