//! The org's limits in a running service: `limits/` read at start and
//! every `LIMITS.INTERVAL` ([`LimitsWatch`], the policy shared with
//! `sfstream listen`), the gauges `sfstream_limit_remaining` and
//! `sfstream_limit_max` (label `limit`), and a warning once per threshold
//! crossing.

use std::sync::Arc;

use sfstream_salesforce::SalesforceClient;
use sfstream_salesforce::limits_watch::{LimitsPolicy, LimitsWatch};

use crate::metrics::ServiceMetrics;
use crate::shutdown::ShutdownSignal;

/// Reads the limits until `shutdown` (nothing when `policy` is `None`).
pub(crate) fn watch(
    client: SalesforceClient,
    policy: Option<LimitsPolicy>,
    metrics: Arc<ServiceMetrics>,
    shutdown: ShutdownSignal,
) {
    let Some(policy) = policy else {
        return;
    };
    tokio::spawn(async move {
        let set = |limits: &[(String, sfstream_salesforce::rest::Limit)]| {
            for (name, limit) in limits {
                let labels = [("limit", name.clone())];
                metrics
                    .gauge("sfstream_limit_remaining", &labels)
                    .set(limit.remaining as f64);
                metrics
                    .gauge("sfstream_limit_max", &labels)
                    .set(limit.max as f64);
            }
        };
        LimitsWatch::new(policy)
            .run(client, set, async move { shutdown.wait().await })
            .await;
    });
}
