//! Fault injection, for tests that prove clients survive what real orgs do,
//! and the control API that arms faults (`/_emulator/...`, served only when
//! the emulator was started with faults enabled, and only to loopback peers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::org::Org;
use crate::store::Record;

/// Faults armed for the next requests. Each counter is consumed one request at a time.
#[derive(Debug, Default)]
pub struct Faults {
    drop_connects: AtomicU32,
    busy_handshakes: AtomicU32,
    malformed: AtomicU32,
    delays: AtomicU32,
    delay_ms: AtomicU64,
    refused_subscribes: AtomicU32,
    subscribe_refusal: parking_lot::Mutex<String>,
    failing_logins: AtomicU32,
    pubsub_busy: AtomicU32,
    /// Logins fail until then.
    login_outage_until: parking_lot::Mutex<Option<Instant>>,
    /// Streaming allocations set at run time, over the config's.
    limits: parking_lot::Mutex<StreamingLimits>,
}

/// The streaming allocations an org enforces, set at run time
/// (`POST /_emulator/faults/limits`); `None` keeps the config's.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct StreamingLimits {
    /// The most CometD clients at once.
    #[serde(default)]
    pub concurrent_clients: Option<usize>,
    /// The daily streaming event deliveries.
    #[serde(default)]
    pub daily_events: Option<u64>,
}

/// What a refused subscribe says unless told otherwise.
const DEFAULT_SUBSCRIBE_REFUSAL: &str =
    "503::Server is too busy.  Please try your request again later.";

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}

impl Faults {
    /// Sets the streaming allocations (`None`: the config's).
    pub fn set_streaming_limits(&self, limits: StreamingLimits) {
        *self.limits.lock() = limits;
    }

    /// The streaming allocations set at run time.
    pub fn streaming_limits(&self) -> StreamingLimits {
        *self.limits.lock()
    }

    /// Closes the socket of the next `count` connect requests instead of answering.
    pub fn drop_connects(&self, count: u32) {
        self.drop_connects.store(count, Ordering::Release);
    }

    /// Refuses the next `count` handshakes with `503::Server is too busy`.
    pub fn busy_handshakes(&self, count: u32) {
        self.busy_handshakes.store(count, Ordering::Release);
    }

    /// Answers the next `count` CometD requests with truncated JSON.
    pub fn malformed_responses(&self, count: u32) {
        self.malformed.store(count, Ordering::Release);
    }

    /// Delays the next `count` CometD requests by `delay`.
    pub fn delay_responses(&self, delay: Duration, count: u32) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Release);
        self.delays.store(count, Ordering::Release);
    }

    /// Refuses the next `count` subscribes with `error` (a Bayeux error
    /// field; default `503::Server is too busy…`).
    pub fn refuse_subscribes(&self, count: u32, error: Option<String>) {
        *self.subscribe_refusal.lock() =
            error.unwrap_or_else(|| DEFAULT_SUBSCRIBE_REFUSAL.to_string());
        self.refused_subscribes.store(count, Ordering::Release);
    }

    /// Consumes one armed subscribe refusal: its error text.
    pub fn take_subscribe_refusal(&self) -> Option<String> {
        take(&self.refused_subscribes).then(|| self.subscribe_refusal.lock().clone())
    }

    /// Answers the next `count` logins (OAuth token endpoint and SOAP
    /// `login`) with HTTP 503, as during a maintenance window.
    pub fn fail_logins(&self, count: u32) {
        self.failing_logins.store(count, Ordering::Release);
    }

    /// Answers every login (OAuth token endpoint and SOAP `login`) with
    /// HTTP 503 for `duration` from now.
    pub fn login_outage(&self, duration: Duration) {
        *self.login_outage_until.lock() = Some(Instant::now() + duration);
    }

    /// Whether this login must fail (consumes one armed failing login
    /// unless an outage is under way).
    pub fn take_login_failure(&self) -> bool {
        let mut until = self.login_outage_until.lock();
        match *until {
            Some(end) if Instant::now() < end => return true,
            Some(_) => *until = None,
            None => {}
        }
        take(&self.failing_logins)
    }

    /// Ends the next `count` Pub/Sub streams (Subscribe, ManagedSubscribe,
    /// PublishStream) at once with `INTERNAL` and
    /// `sfdc.platform.eventbus.grpc.service.unavailable`.
    pub fn pubsub_busy(&self, count: u32) {
        self.pubsub_busy.store(count, Ordering::Release);
    }

    /// Consumes one armed busy Pub/Sub stream.
    pub fn take_pubsub_busy(&self) -> bool {
        take(&self.pubsub_busy)
    }

    /// Consumes one armed dropped connect.
    pub fn take_drop_connect(&self) -> bool {
        take(&self.drop_connects)
    }

    /// Consumes one armed busy handshake.
    pub fn take_busy_handshake(&self) -> bool {
        take(&self.busy_handshakes)
    }

    /// Consumes one armed malformed response.
    pub fn take_malformed(&self) -> bool {
        take(&self.malformed)
    }

    /// Consumes one armed delay.
    pub fn take_delay(&self) -> Option<Duration> {
        take(&self.delays).then(|| Duration::from_millis(self.delay_ms.load(Ordering::Acquire)))
    }
}

#[derive(Debug, Deserialize, Default)]
struct Count {
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    ms: u64,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize, Default)]
struct Refusal {
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct Expire {
    channel: Option<String>,
    through: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct GapEvents {
    entity: String,
    #[serde(default = "one")]
    count: u32,
}

#[derive(Debug, Deserialize)]
struct Load {
    channel: String,
    count: usize,
    #[serde(default)]
    sobject: Option<Record>,
}

/// Routes of the control API; none unless faults are enabled.
pub fn routes(org: &Arc<Org>) -> Router<Arc<Org>> {
    if !org.config.faults_enabled {
        return Router::new();
    }
    Router::new()
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/faults/{fault}", post(arm))
        .route("/_emulator/load", post(load))
        .route("/_emulator/records/{sobject}/{id}/undelete", post(undelete))
        .merge(crate::pubsub::control::routes())
        .layer(middleware::from_fn(loopback_only))
}

/// Every fault `POST /_emulator/faults/{fault}` arms.
pub const FAULTS: [&str; 17] = [
    "invalidate-tokens",
    "forget-clients",
    "restart",
    "drop-connects",
    "busy-handshakes",
    "malformed",
    "delay",
    "server-disconnect",
    "expire",
    "refuse-subscribes",
    "fail-logins",
    "login-outage",
    "busy",
    "drop-streams",
    "limits",
    "gap-events",
    "gap-overflow",
];

/// Refuses peers other than loopback ones.
pub(crate) async fn loopback_only(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if peer.is_some_and(|p| !p.ip().is_loopback()) {
        return (
            StatusCode::FORBIDDEN,
            "the control API answers loopback peers only",
        )
            .into_response();
    }
    next.run(request).await
}

async fn stats(State(org): State<Arc<Org>>) -> Response {
    axum::Json(stats_json(&org)).into_response()
}

/// The counters `GET /_emulator/stats` answers.
pub fn stats_json(org: &Org) -> Value {
    let mut stats = org.streaming.stats().to_json();
    stats["api_requests"] = json!(org.api_requests());
    stats["clients"] = json!(org.streaming.client_ids().len());
    stats["pubsub"] = org.pubsub.stats.to_json();
    stats
}

async fn arm(
    State(org): State<Arc<Org>>,
    Path(fault): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let count: Count = serde_json::from_slice(&body).unwrap_or_default();
    let count_n = count.count;
    match fault.as_str() {
        "invalidate-tokens" => org.tokens.invalidate_all(),
        "forget-clients" | "restart" => org.streaming.forget_clients(),
        "drop-connects" => org.faults.drop_connects(count_n),
        "busy-handshakes" => org.faults.busy_handshakes(count_n),
        "malformed" => org.faults.malformed_responses(count_n),
        "delay" => org
            .faults
            .delay_responses(Duration::from_millis(count.ms), count_n),
        "server-disconnect" => org.streaming.disconnect_all(),
        "refuse-subscribes" => {
            let refusal: Refusal = serde_json::from_slice(&body).unwrap_or_default();
            org.faults.refuse_subscribes(refusal.count, refusal.error);
        }
        "fail-logins" => org.faults.fail_logins(count_n),
        "busy" | "pubsub-busy" => org.faults.pubsub_busy(count_n),
        "drop-streams" => org.pubsub.drop_streams(),
        "login-outage" => org.faults.login_outage(Duration::from_millis(count.ms)),
        "limits" => {
            let limits: StreamingLimits = serde_json::from_slice(&body).unwrap_or_default();
            org.faults.set_streaming_limits(limits);
        }
        "gap-events" | "gap-overflow" => {
            let Ok(gaps) = serde_json::from_slice::<GapEvents>(&body) else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(
                        json!({"error": "expected {\"entity\": \"<sobject>\", \"count\": N}"}),
                    ),
                )
                    .into_response();
            };
            org.streaming
                .arm_gap_events(&gaps.entity, gaps.count, fault == "gap-overflow");
        }
        "expire" => {
            let expire: Expire = serde_json::from_slice(&body).unwrap_or_default();
            org.streaming
                .expire(expire.channel.as_deref(), expire.through);
        }
        other => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": format!("unknown fault '{other}'"), "faults": FAULTS})),
            )
                .into_response();
        }
    }
    axum::Json(json!({"armed": fault})).into_response()
}

async fn load(State(org): State<Arc<Org>>, axum::Json(load): axum::Json<Load>) -> Response {
    let sobject = load.sobject.unwrap_or_else(|| {
        let mut record = Record::new();
        record.insert("Id".into(), Value::String(crate::ids::make_id("003", 1)));
        record.insert("Name".into(), Value::String("Emulated Contact".into()));
        record
    });
    let last = org.streaming.preload(&load.channel, load.count, &sobject);
    axum::Json(json!({"channel": load.channel, "count": load.count, "last_replay_id": last}))
        .into_response()
}

async fn undelete(
    State(org): State<Arc<Org>>,
    Path((sobject, id)): Path<(String, String)>,
) -> Response {
    let user = org.user_id();
    match org.undelete_record(&sobject, &id, &user) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
