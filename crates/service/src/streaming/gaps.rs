//! Gaps and marker ages of a running service: [`GapHandler`]s called for
//! each [`Gap`] of the stream, and the `sfstream_marker_age_seconds` gauges
//! kept from the replay store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use sfstream_salesforce::replay::{AgeStatus, Gap, ReplayStore, marker_age, warn_if_old};

use crate::metrics::ServiceMetrics;
use crate::shutdown::ShutdownSignal;

/// A handler of gaps, as [`Service::on_gap`](crate::Service::on_gap) keeps it.
pub(crate) type GapHandler = Arc<dyn Fn(Gap) -> BoxFuture<'static, ()> + Send + Sync>;

/// How often the marker ages are read from the store.
pub(crate) const MARKER_AGE_INTERVAL: Duration = Duration::from_secs(30);

/// Bound of one store read.
const STORE_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Calls every gap handler with `gap` (each bounded by `timeout`); counts it.
pub(crate) async fn handle_gap(
    handlers: Arc<Vec<GapHandler>>,
    gap: Gap,
    metrics: Arc<ServiceMetrics>,
    timeout: Duration,
) {
    metrics.gap(&gap.channel);
    for handler in handlers.iter() {
        if tokio::time::timeout(timeout, handler(gap.clone()))
            .await
            .is_err()
        {
            tracing::warn!(channel = %gap.channel, ?timeout, "a gap handler did not finish within HANDLER_TIMEOUT");
        }
    }
}

/// Sets the marker age gauges of `channels` from the store now and every
/// [`MARKER_AGE_INTERVAL`] until `shutdown`, warning once per episode when
/// a marker passes its channel's warn age.
pub(crate) async fn watch_marker_ages(
    store: Arc<dyn ReplayStore>,
    channels: Vec<(String, bool)>,
    metrics: Arc<ServiceMetrics>,
    shutdown: ShutdownSignal,
    interval: Duration,
) {
    // The status last seen per channel: warn when it gets worse.
    let mut seen: HashMap<String, AgeStatus> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        for (channel, pubsub) in &channels {
            let created = tokio::time::timeout(STORE_READ_TIMEOUT, async {
                if *pubsub {
                    store
                        .get_opaque(channel)
                        .await
                        .map(|m| m.and_then(|m| m.created))
                } else {
                    store.get(channel).await.map(|m| m.and_then(|m| m.created))
                }
            })
            .await;
            let Ok(Ok(Some(created))) = created else {
                continue;
            };
            metrics.set_marker_age(channel, marker_age(created, Utc::now()));
            let before = seen.get(channel).copied().unwrap_or(AgeStatus::Fresh);
            let now =
                sfstream_salesforce::replay::age_status(channel, marker_age(created, Utc::now()));
            if now != before && now != AgeStatus::Fresh {
                warn_if_old(channel, Some(created));
            }
            seen.insert(channel.clone(), now);
        }
    }
}
