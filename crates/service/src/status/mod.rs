//! The status page of a stream or a service: `/` (an HTML page that polls)
//! and `/status` (its JSON, a [`StatusReport`]), served beside `/metrics`
//! and `/health` on `METRICS_PORT` by services and `sfstream run`, and by
//! `sfstream listen --status-addr ADDR`.
//!
//! Every channel with its transport, state (`subscribed`, `retrying`,
//! `failed`; in a cluster `leading` or `standby`), stored replay marker and
//! its age against retention, lag (now minus the creation time of the last
//! handled event), events per second over the last minutes, handler
//! failures with the last error, and reconnects.
//!
//! A [`StatusBoard`] collects it: services feed theirs through
//! [`ServiceMetrics`](crate::metrics::ServiceMetrics); `sfstream listen`
//! feeds one of its own.

mod activity;
mod model;

pub use activity::{Activity, ActivitySnapshot, BUCKET_SECS, BUCKETS};
pub use model::{ChannelFacts, ChannelStatus, LastError, MarkerStatus, StatusReport, StoredMarker};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use sfstream_salesforce::Transport;
use sfstream_salesforce::replay::ReplayStore;

use crate::metrics::{ChannelState, ClusterStatus};
use crate::shutdown::ShutdownSignal;

/// The page, with its styles and script inline (no external links).
pub const PAGE: &str = include_str!("../../assets/status.html");

/// How long `/status` waits for the replay store before leaving markers out.
const STORE_WAIT: Duration = Duration::from_secs(2);

/// What a stream or a service reports on its status page.
pub struct StatusBoard {
    name: String,
    started: DateTime<Utc>,
    channels: Mutex<BTreeMap<String, Entry>>,
    /// The CometD session (None until a CometD client reports).
    connected: Mutex<Option<bool>>,
    reconnects: AtomicU64,
    store: Mutex<Option<Arc<dyn ReplayStore>>>,
    cluster: Mutex<Option<ClusterStatus>>,
}

#[derive(Default)]
struct Entry {
    transport: Option<Transport>,
    state: Option<ChannelState>,
    subscribes: u64,
    /// The session dropped since it was last subscribed.
    lost: bool,
    activity: Arc<Activity>,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl StatusBoard {
    /// A board named `name` (the service's name).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            started: Utc::now(),
            channels: Mutex::new(BTreeMap::new()),
            connected: Mutex::new(None),
            reconnects: AtomicU64::new(0),
            store: Mutex::new(None),
            cluster: Mutex::new(None),
        }
    }

    /// Lists `channel` with its transport.
    pub fn set_transport(&self, channel: &str, transport: Transport) {
        self.channels
            .lock()
            .entry(channel.to_string())
            .or_default()
            .transport = Some(transport);
    }

    /// Records the subscription state of `channel`: being subscribed again
    /// (after a failure, or after the session dropped) counts as a
    /// reconnect of the channel; the same news twice does not.
    pub fn set_state(&self, channel: &str, state: ChannelState) {
        let mut channels = self.channels.lock();
        let entry = channels.entry(channel.to_string()).or_default();
        if state == ChannelState::Subscribed
            && (entry.state != Some(ChannelState::Subscribed) || entry.lost)
        {
            entry.subscribes += 1;
            entry.lost = false;
        }
        entry.state = Some(state);
    }

    /// Forgets the subscription state of `channel` (cluster mode: another
    /// replica streams it), keeping its history.
    pub fn clear_state(&self, channel: &str) {
        if let Some(entry) = self.channels.lock().get_mut(channel) {
            entry.state = None;
        }
    }

    /// What `channel` handled: count events and failures on it.
    pub fn activity(&self, channel: &str) -> Arc<Activity> {
        let mut channels = self.channels.lock();
        if let Some(entry) = channels.get(channel) {
            return entry.activity.clone();
        }
        channels
            .entry(channel.to_string())
            .or_default()
            .activity
            .clone()
    }

    /// Records whether the CometD session is connected.
    pub fn set_connected(&self, connected: bool) {
        *self.connected.lock() = Some(connected);
        if !connected {
            for entry in self.channels.lock().values_mut() {
                entry.lost = true;
            }
        }
    }

    /// Counts a reconnection of a streaming session.
    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Where the markers are, to show them.
    pub fn set_store(&self, store: Arc<dyn ReplayStore>) {
        *self.store.lock() = Some(store);
    }

    /// Cluster mode: who streams what.
    pub fn set_cluster(&self, cluster: ClusterStatus) {
        *self.cluster.lock() = Some(cluster);
    }

    /// The report as of now (markers read from the store, at most
    /// two seconds each; left out when the store does not answer).
    pub async fn report(&self) -> StatusReport {
        let cluster = self.cluster.lock().clone();
        let now = Utc::now();
        let mut facts: Vec<ChannelFacts> = {
            let channels = self.channels.lock();
            channels
                .iter()
                .map(|(channel, entry)| ChannelFacts {
                    channel: channel.clone(),
                    transport: entry.transport,
                    state: entry.state.clone(),
                    role: cluster
                        .as_ref()
                        .and_then(|c| c.channels.get(channel).cloned()),
                    marker: None,
                    activity: entry.activity.snapshot(now),
                    subscribes: entry.subscribes,
                })
                .collect()
        };
        if let Some(cluster) = &cluster {
            // A standby channel may never have been streamed here.
            for (channel, role) in &cluster.channels {
                if !facts.iter().any(|f| &f.channel == channel) {
                    facts.push(ChannelFacts {
                        channel: channel.clone(),
                        transport: None,
                        state: None,
                        role: Some(role.clone()),
                        marker: None,
                        activity: Activity::default().snapshot(now),
                        subscribes: 0,
                    });
                }
            }
        }
        let store = self.store.lock().clone();
        if let Some(store) = store {
            for fact in &mut facts {
                fact.marker = stored_marker(store.as_ref(), &fact.channel, fact.transport).await;
            }
        }
        let connected = *self.connected.lock();
        StatusReport::new(
            &self.name,
            self.started,
            connected,
            self.reconnects.load(Ordering::Relaxed),
            cluster.map(|c| c.replica),
            facts,
            Utc::now(),
        )
    }
}

async fn stored_marker(
    store: &dyn ReplayStore,
    channel: &str,
    transport: Option<Transport>,
) -> Option<StoredMarker> {
    let read = async {
        if transport == Some(Transport::PubSub) {
            let marker = store.get_opaque(channel).await.ok()??;
            Some(StoredMarker {
                replay_id: marker.replay_id_text(),
                created: marker.created,
            })
        } else {
            let marker = store.get(channel).await.ok()??;
            Some(StoredMarker {
                replay_id: marker.replay_id.to_string(),
                created: marker.created,
            })
        }
    };
    tokio::time::timeout(STORE_WAIT, read).await.ok().flatten()
}

/// `GET /` (the page) and `GET /status` (its JSON) of `board`.
pub fn routes<S: Clone + Send + Sync + 'static>(board: Arc<StatusBoard>) -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/status", get(status))
        .with_state(board)
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
}

async fn status(State(board): State<Arc<StatusBoard>>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(board.report().await),
    )
}

/// Serves the page and `/status` of `board` on `addr` until `shutdown`
/// (for `sfstream listen --status-addr`); services serve them with their
/// metrics instead.
///
/// # Errors
///
/// When `addr` cannot be bound.
pub async fn serve(
    board: Arc<StatusBoard>,
    addr: SocketAddr,
    shutdown: ShutdownSignal,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app: Router = routes(board);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "the status server stopped");
        }
    });
    Ok(addr)
}

impl StatusBoard {
    /// Keeps the board in step with a CometD streaming client (for clients
    /// outside a service, such as `sfstream listen`).
    pub fn on_stream_event(&self, event: &sfstream_salesforce::StreamEvent) {
        use sfstream_bayeux::{ClientEvent, HandshakeReason};
        let sfstream_salesforce::StreamEvent::Connection(event) = event else {
            return;
        };
        match event {
            ClientEvent::Handshaken { reason, .. } => {
                self.set_connected(true);
                if *reason != HandshakeReason::Initial {
                    self.reconnected();
                }
            }
            ClientEvent::Reconnected => {
                self.set_connected(true);
                self.reconnected();
            }
            ClientEvent::ConnectionFailed { .. }
            | ClientEvent::ServerDisconnected
            | ClientEvent::Closed { .. } => self.set_connected(false),
            ClientEvent::Subscribed { channel } => {
                self.set_state(channel, ChannelState::Subscribed)
            }
            ClientEvent::SubscriptionRetrying {
                channel,
                error,
                attempt,
                ..
            } => self.set_state(
                channel,
                ChannelState::Retrying {
                    error: error.clone(),
                    attempt: *attempt,
                },
            ),
            ClientEvent::SubscriptionFailed { channel, error } => self.set_state(
                channel,
                ChannelState::Failed {
                    error: error.to_string(),
                },
            ),
            _ => {}
        }
    }

    /// Keeps the board in step with a Pub/Sub client (for clients outside
    /// a service, such as `sfstream listen --pubsub`).
    pub fn on_pubsub_event(&self, event: &sfstream_salesforce::pubsub::PubSubEvent) {
        use sfstream_salesforce::pubsub::PubSubEvent;
        match event {
            PubSubEvent::Subscribed { topic, .. } => {
                self.set_state(topic, ChannelState::Subscribed);
            }
            PubSubEvent::Reconnecting {
                topic,
                reason,
                attempt,
                ..
            } => {
                self.set_state(
                    topic,
                    ChannelState::Retrying {
                        error: reason.clone(),
                        attempt: *attempt,
                    },
                );
                self.reconnected();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use sfstream_bayeux::ClientEvent;
    use sfstream_salesforce::StreamEvent;
    use sfstream_salesforce::replay::{MemoryStore, ReplayMarker};

    use super::*;

    #[tokio::test]
    async fn a_board_fed_by_client_events_reports_states_markers_and_activity() {
        let board = StatusBoard::new("listen");
        let store = Arc::new(MemoryStore::new());
        let created = Utc::now() - chrono::Duration::seconds(30);
        store
            .advance("/topic/X", ReplayMarker::new(7, Some(created)))
            .await
            .expect("stored");
        board.set_store(store);
        board.set_transport("/topic/X", Transport::CometD);
        let feed = |event: ClientEvent| board.on_stream_event(&StreamEvent::Connection(event));
        feed(ClientEvent::Subscribed {
            channel: "/topic/X".into(),
        });
        // Told twice (a service reports its start too): still one subscription.
        board.set_state("/topic/X", ChannelState::Subscribed);
        board
            .activity("/topic/X")
            .handled(Some(created), Utc::now());

        let report = board.report().await;
        assert_eq!(report.name, "listen");
        let channel = &report.channels[0];
        assert_eq!(channel.state, "subscribed");
        assert_eq!(channel.handled, 1);
        assert!(
            channel.lag_secs.is_some_and(|lag| lag >= 30.0),
            "{channel:?}"
        );
        assert_eq!(channel.reconnects, 0);
        let marker = channel.marker.as_ref().expect("the stored marker");
        assert_eq!(marker.replay_id, "7");
        assert!(!marker.expired);

        // The session drops: the channel is retrying until subscribed again.
        feed(ClientEvent::ServerDisconnected);
        let report = board.report().await;
        assert_eq!(report.channels[0].state, "retrying");
        assert!(!report.healthy);
        feed(ClientEvent::Reconnected);
        feed(ClientEvent::Subscribed {
            channel: "/topic/X".into(),
        });
        let report = board.report().await;
        assert_eq!(report.channels[0].state, "subscribed");
        assert_eq!(report.channels[0].reconnects, 1);
        assert_eq!(report.reconnects, 1);
        assert!(report.healthy);
    }

    #[tokio::test]
    async fn the_page_and_its_json_are_served() {
        let board = Arc::new(StatusBoard::new("svc"));
        board.set_state("/topic/Y", ChannelState::Subscribed);
        let shutdown = crate::shutdown::Shutdown::new();
        let addr = serve(
            board,
            "127.0.0.1:0".parse().expect("addr"),
            shutdown.signal(),
        )
        .await
        .expect("served");
        let page = reqwest::get(format!("http://{addr}/"))
            .await
            .expect("page")
            .text()
            .await
            .expect("text");
        assert!(page.contains("<title>sfstream status</title>"));
        // No external links: everything is inline.
        for link in [
            "src=\"http",
            "href=\"http",
            "https://",
            "@import",
            "url(http",
        ] {
            assert!(!page.contains(link), "{link}");
        }
        let report: StatusReport = reqwest::get(format!("http://{addr}/status"))
            .await
            .expect("status")
            .json()
            .await
            .expect("JSON");
        assert_eq!(report.channels[0].channel, "/topic/Y");
        shutdown.trigger();
    }
}
