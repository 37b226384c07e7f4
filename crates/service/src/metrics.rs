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
//! | `sfstream_watermark_lag` | gauge: events received and not yet committed | `channel` |
//! | `sfstream_reconnects_total` | counter | |
//!
//! Every metric carries the label `service`.

use std::collections::HashMap;
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

use crate::shutdown::ShutdownSignal;

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
    reconnects: Counter,
    connected: AtomicBool,
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
            reconnects,
            connected: AtomicBool::new(false),
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

    /// Counts a reconnection of the streaming session.
    pub fn reconnected(&self) {
        self.reconnects.increment(1);
    }

    /// Records whether the streaming session is connected.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// Whether the streaming session is connected (what `/health` says).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Serves `GET /metrics` (Prometheus text) and `GET /health` (200 when
/// the streaming session is connected, 503 otherwise) on `port` of every
/// interface (0: a free port) until `shutdown`.
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
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/health", get(health))
        .with_state(metrics);
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
    if metrics.is_connected() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not connected\n")
    }
}
