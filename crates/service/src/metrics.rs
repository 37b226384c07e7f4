//! Metrics through the `metrics` facade, rendered by a Prometheus recorder
//! owned by each service (not installed globally, so several services, or
//! tests, live in one process), and the `/metrics` and `/health` HTTP
//! endpoints.
//!
//! | Metric | Kind | Labels |
//! |---|---|---|
//! | `sfstream_events_received_total` | counter | `channel` |
//! | `sfstream_events_handled_total` | counter | `channel` |
//! | `sfstream_events_failed_total` | counter | `channel` |
//! | `sfstream_handler_seconds` | histogram | `channel` |
//! | `sfstream_handler_timeouts_total` | counter: handler calls cut off by `HANDLER_TIMEOUT` | `channel` |
//! | `sfstream_watermark_lag` | gauge: events received and not yet committed (at most `MAX_IN_FLIGHT`) | `channel` |
//! | `sfstream_channel_state` | gauge: 1 for the subscription's current state, 0 for the others | `channel`, `state` (`subscribed`, `retrying`, `failed`) |
//! | `sfstream_reconnects_total` | counter | |
//! | `sfstream_leading` | gauge (cluster mode): 1 while this replica leads the channel | `channel` |
//! | `sfstream_lease_changes_total` | counter (cluster mode): leases taken (`change="lead"`) and given up (`change="step_down"`) | `channel`, `change` |
//! | `sfstream_marker_age_seconds` | gauge: now minus the creation time of the event of the channel's stored marker (on commit, and from the store every 30 s) | `channel` |
//! | `sfstream_gaps_total` | counter: replay fallbacks after an expired marker (a [`Gap`](sfstream_salesforce::replay::Gap)) | `channel` |
//! | `sfstream_limit_remaining`, `sfstream_limit_max` | gauges: the org's watched limits (`SALESFORCE.LIMITS`, read at start and every `INTERVAL`) | `limit` (`DailyStreamingApiEvents`, `DailyDurableStreamingApiEvents`, `DailyDeliveredPlatformEvents`, `DailyApiRequests`) |
//!
//! Every metric carries the label `service`. `channel` is the
//! subscription as subscribed, `?filter` included.
//!
//! `GET /` is the status page and `GET /status` its JSON (see
//! [`status`](crate::status)).
//!
//! # `/health`
//!
//! `GET /health` answers JSON, 200 when healthy and 503 otherwise:
//!
//! ```json
//! {"status": "unhealthy", "connected": true, "channels": {
//!     "/topic/ContactUpdates": {"state": "subscribed"},
//!     "/topic/LeadUpdates": {"state": "retrying", "error": "…", "attempt": 2},
//!     "/topic/Gone": {"state": "failed", "error": "400::The channel you requested to subscribe to does not exist {/topic/Gone}"}}}
//! ```
//!
//! In cluster mode (`CLUSTER:`) it also says who streams what:
//! `"cluster": {"replica": "<this replica>", "channels": {"/topic/X":
//! {"role": "leading"}, "/topic/Y": {"role": "standby", "holder":
//! "<the replica leading it>"}}}`; `channels` then lists only the channels
//! this replica streams.
//!
//! Healthy means the streaming session is connected and no subscription
//! has failed for good. A subscription being retried is reported but
//! stays healthy (it is expected to come back); one given up for good
//! makes the service unhealthy until it restarts, while its other
//! channels keep delivering (so an orchestrator's health check, not the
//! runtime, decides whether to restart it).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use parking_lot::Mutex;
use serde::Serialize;

use crate::shutdown::ShutdownSignal;
use crate::status::StatusBoard;

const HANDLER_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The metrics of one channel.
#[derive(Clone)]
#[non_exhaustive]
pub struct ChannelMetrics {
    /// `sfstream_events_received_total`.
    pub received: Counter,
    /// `sfstream_events_handled_total`.
    pub handled: Counter,
    /// `sfstream_events_failed_total`.
    pub failed: Counter,
    /// `sfstream_handler_seconds`.
    pub handler_seconds: Histogram,
    /// `sfstream_watermark_lag`.
    pub watermark_lag: Gauge,
    /// `sfstream_handler_timeouts_total`.
    pub timeouts: Counter,
    /// What the status page shows of the channel's handling.
    pub activity: Arc<crate::status::Activity>,
}

/// The state of one subscription, as `/health` and
/// `sfstream_channel_state` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChannelState {
    /// The server accepted the subscription.
    Subscribed,
    /// The subscription was refused or lost and is being sent again.
    Retrying {
        /// What went wrong last.
        error: String,
        /// Consecutive failures so far.
        attempt: u32,
    },
    /// The subscription was refused and given up: no more events arrive
    /// on it until the service restarts.
    Failed {
        /// The server's error.
        error: String,
    },
}

impl ChannelState {
    /// The `state` label: `subscribed`, `retrying` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            ChannelState::Subscribed => "subscribed",
            ChannelState::Retrying { .. } => "retrying",
            ChannelState::Failed { .. } => "failed",
        }
    }

    const NAMES: [&'static str; 3] = ["subscribed", "retrying", "failed"];
}

impl std::fmt::Debug for ChannelMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelMetrics")
    }
}

/// A service's metrics: its own Prometheus recorder, and the connection
/// state `/health` reports.
///
/// ```
/// use sfstream_service::metrics::ServiceMetrics;
///
/// let metrics = ServiceMetrics::new("some-service");
/// metrics.channel("/topic/X").received.increment(1);
/// let text = metrics.render();
/// assert!(text.contains(r#"sfstream_events_received_total{service="some-service",channel="/topic/X"} 1"#), "{text}");
/// ```
pub struct ServiceMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    channels: Mutex<HashMap<String, ChannelMetrics>>,
    states: Mutex<BTreeMap<String, ChannelState>>,
    reconnects: Counter,
    connected: AtomicBool,
    /// Cluster mode: this replica and who leads each channel.
    cluster: Mutex<Option<ClusterStatus>>,
    /// What the status page shows.
    board: Arc<StatusBoard>,
}

/// Who streams what, in cluster mode (see [`ServiceMetrics::set_cluster`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// This replica's id.
    pub replica: String,
    /// Each channel's role here.
    pub channels: BTreeMap<String, ClusterRole>,
}

/// A channel's role on this replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ClusterRole {
    /// This replica streams it.
    Leading,
    /// Another replica (the holder, when known) streams it.
    Standby {
        /// The replica holding the channel's lease.
        #[serde(skip_serializing_if = "Option::is_none")]
        holder: Option<String>,
    },
}

impl std::fmt::Debug for ServiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMetrics")
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

static METADATA: Metadata<'static> =
    Metadata::new("sfstream_service", Level::INFO, Some(module_path!()));

impl ServiceMetrics {
    /// Metrics of the service `service` (its `service` label).
    pub fn new(service: &str) -> Self {
        let labelled = || PrometheusBuilder::new().add_global_label("service", service);
        // The buckets are valid constants; without them histograms render
        // as summaries.
        let builder = labelled()
            .set_buckets(HANDLER_BUCKETS)
            .unwrap_or_else(|_| labelled());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let reconnects =
            recorder.register_counter(&Key::from_name("sfstream_reconnects_total"), &METADATA);
        reconnects.increment(0);
        Self {
            recorder,
            handle,
            channels: Mutex::new(HashMap::new()),
            states: Mutex::new(BTreeMap::new()),
            reconnects,
            connected: AtomicBool::new(false),
            cluster: Mutex::new(None),
            board: Arc::new(StatusBoard::new(service)),
        }
    }

    /// The metrics of `channel` (registered on first use).
    pub fn channel(&self, channel: &str) -> ChannelMetrics {
        let mut channels = self.channels.lock();
        if let Some(metrics) = channels.get(channel) {
            return metrics.clone();
        }
        let labels = || vec![Label::new("channel", channel.to_string())];
        let counter = |name: &'static str| {
            let counter = self
                .recorder
                .register_counter(&Key::from_parts(name, labels()), &METADATA);
            counter.increment(0);
            counter
        };
        let metrics = ChannelMetrics {
            received: counter("sfstream_events_received_total"),
            handled: counter("sfstream_events_handled_total"),
            failed: counter("sfstream_events_failed_total"),
            handler_seconds: self.recorder.register_histogram(
                &Key::from_parts("sfstream_handler_seconds", labels()),
                &METADATA,
            ),
            watermark_lag: self.recorder.register_gauge(
                &Key::from_parts("sfstream_watermark_lag", labels()),
                &METADATA,
            ),
            timeouts: counter("sfstream_handler_timeouts_total"),
            activity: self.board.activity(channel),
        };
        metrics.watermark_lag.set(0.0);
        channels.insert(channel.to_string(), metrics.clone());
        metrics
    }

    /// A counter of this service's recorder, for other entrypoint kinds.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, String)]) -> Counter {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect();
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    /// Records the state of the subscription `channel`; returns the
    /// previous one.
    pub fn set_channel_state(&self, channel: &str, state: ChannelState) -> Option<ChannelState> {
        let mut states = self.states.lock();
        for name in ChannelState::NAMES {
            let labels = vec![
                Label::new("channel", channel.to_string()),
                Label::new("state", name),
            ];
            let gauge = self.recorder.register_gauge(
                &Key::from_parts("sfstream_channel_state", labels),
                &METADATA,
            );
            gauge.set(if name == state.name() { 1.0 } else { 0.0 });
        }
        self.board.set_state(channel, state.clone());
        states.insert(channel.to_string(), state)
    }

    /// The state of every subscription, by channel (as subscribed).
    pub fn channel_states(&self) -> BTreeMap<String, ChannelState> {
        self.states.lock().clone()
    }

    /// Whether the service is healthy: connected, and no subscription
    /// failed for good.
    pub fn is_healthy(&self) -> bool {
        self.is_connected()
            && !self
                .states
                .lock()
                .values()
                .any(|s| matches!(s, ChannelState::Failed { .. }))
    }

    /// Sets `sfstream_marker_age_seconds` of `channel`.
    pub fn set_marker_age(&self, channel: &str, age: std::time::Duration) {
        let labels = vec![Label::new("channel", channel.to_string())];
        self.recorder
            .register_gauge(
                &Key::from_parts("sfstream_marker_age_seconds", labels),
                &METADATA,
            )
            .set(age.as_secs_f64());
    }

    /// Counts a gap of `channel` (`sfstream_gaps_total`).
    pub fn gap(&self, channel: &str) {
        self.counter("sfstream_gaps_total", &[("channel", channel.to_string())])
            .increment(1);
    }

    /// Counts a reconnection of the streaming session.
    pub fn reconnected(&self) {
        self.reconnects.increment(1);
        self.board.reconnected();
    }

    /// Records whether the streaming session is connected.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        self.board.set_connected(connected);
    }

    /// Whether the streaming session is connected (what `/health` says).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Cluster mode: records who streams what (for `/health`), and the
    /// `sfstream_leading` gauges.
    pub fn set_cluster(&self, status: ClusterStatus) {
        for (channel, role) in &status.channels {
            let leading = matches!(role, ClusterRole::Leading);
            self.gauge("sfstream_leading", &[("channel", channel.clone())])
                .set(if leading { 1.0 } else { 0.0 });
        }
        self.board.set_cluster(status.clone());
        *self.cluster.lock() = Some(status);
    }

    /// Who streams what, in cluster mode.
    pub fn cluster(&self) -> Option<ClusterStatus> {
        self.cluster.lock().clone()
    }

    /// Forgets a channel's subscription state (a replica that stopped
    /// streaming it).
    pub fn remove_channel_state(&self, channel: &str) {
        self.board.clear_state(channel);
        if self.states.lock().remove(channel).is_some() {
            for name in ChannelState::NAMES {
                self.gauge(
                    "sfstream_channel_state",
                    &[
                        ("channel", channel.to_string()),
                        ("state", name.to_string()),
                    ],
                )
                .set(0.0);
            }
        }
    }

    /// A gauge of this service's recorder.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, String)]) -> Gauge {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect();
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    /// A histogram of this service's recorder (the handler buckets, in
    /// seconds).
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, String)]) -> Histogram {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect();
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// What the status page (`/` and `/status`) shows.
    pub fn status_board(&self) -> &Arc<StatusBoard> {
        &self.board
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Serves `GET /metrics` (Prometheus text), `GET /health` (JSON; 200
/// when [healthy](ServiceMetrics::is_healthy), 503 otherwise; see the
/// [module](self)), and the status page (`GET /` and its JSON `GET
/// /status`, see [`status`](crate::status)) on `port` of every interface
/// (0: a free port) until `shutdown`.
///
/// # Errors
///
/// When the port cannot be bound.
pub async fn serve(
    metrics: Arc<ServiceMetrics>,
    port: u16,
    shutdown: ShutdownSignal,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await?;
    let addr = listener.local_addr()?;
    let board = metrics.status_board().clone();
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/health", get(health))
        .with_state(metrics)
        .merge(crate::status::routes(board));
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "the metrics server stopped");
        }
    });
    Ok(addr)
}

async fn render(State(metrics): State<Arc<ServiceMetrics>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

async fn health(State(metrics): State<Arc<ServiceMetrics>>) -> impl IntoResponse {
    let healthy = metrics.is_healthy();
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "connected": metrics.is_connected(),
        "channels": metrics.channel_states(),
    });
    let mut body = body;
    if let Some(cluster) = metrics.cluster() {
        body["cluster"] = serde_json::json!(cluster);
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}
