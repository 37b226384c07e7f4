//! Watching the org's allocations: which `limits/` entries matter to a
//! streaming client, how often they are read, and when they deserve a
//! warning. The one policy the services and `sfstream listen` share.
//!
//! [`LimitsWatch::observe`] warns once per crossing: when a limit's use
//! reaches the threshold ([`LimitsPolicy::warn_at`] of its `Max`), once,
//! and again only after it went back under (the daily allocations
//! replenish over a rolling 24 hours).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use crate::rest::{Limit, RestError, SalesforceClient};

/// The `limits/` entries watched: daily streaming deliveries (CometD
/// PushTopics and generic channels; durable ones: Change Data Capture and
/// platform events over CometD), platform event deliveries (Pub/Sub and
/// CometD), and API requests (logins, REST calls, recovery reads).
pub const WATCHED_LIMITS: [&str; 4] = [
    "DailyStreamingApiEvents",
    "DailyDurableStreamingApiEvents",
    "DailyDeliveredPlatformEvents",
    "DailyApiRequests",
];

/// How often `limits/` is read by default (a call each, counted against
/// `DailyApiRequests`).
pub const DEFAULT_LIMITS_INTERVAL: Duration = Duration::from_secs(300);

/// The share of an allocation used at which a warning is logged by default.
pub const DEFAULT_LIMITS_WARN_AT: f64 = 0.8;

/// Bound of one `limits/` read.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How often and at which threshold limits are read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitsPolicy {
    /// Between two reads.
    pub interval: Duration,
    /// The share of `Max` used (0 to 1) at which a warning is logged.
    pub warn_at: f64,
}

impl Default for LimitsPolicy {
    fn default() -> Self {
        Self {
            interval: DEFAULT_LIMITS_INTERVAL,
            warn_at: DEFAULT_LIMITS_WARN_AT,
        }
    }
}

/// A watched limit whose use reached the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    /// The limit's name, e.g. `DailyStreamingApiEvents`.
    pub name: String,
    /// The limit.
    pub limit: Limit,
}

/// One read of the watched limits.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The watched limits, in [`WATCHED_LIMITS`] order (those the org has).
    pub limits: Vec<(String, Limit)>,
    /// The limits that crossed the threshold with this read.
    pub crossings: Vec<Crossing>,
}

/// The watched limits and which of them are over the threshold.
#[derive(Debug, Clone, Default)]
pub struct LimitsWatch {
    policy: LimitsPolicy,
    over: BTreeSet<String>,
}

impl LimitsWatch {
    /// A watch with `policy`.
    pub fn new(policy: LimitsPolicy) -> Self {
        Self {
            policy,
            over: BTreeSet::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> LimitsPolicy {
        self.policy
    }

    /// Whether `limit` is used up to the threshold.
    pub fn is_over(&self, limit: &Limit) -> bool {
        limit.max > 0
            && (limit.max - limit.remaining) as f64 >= self.policy.warn_at * limit.max as f64
    }

    /// Takes a read of `limits/`: logs a warning for each watched limit
    /// that crossed the threshold since the last read (once per crossing)
    /// and returns those crossings.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use sfstream_salesforce::limits_watch::{LimitsPolicy, LimitsWatch};
    /// use sfstream_salesforce::rest::Limit;
    ///
    /// let mut watch = LimitsWatch::new(LimitsPolicy { warn_at: 0.8, ..Default::default() });
    /// let read = |remaining| BTreeMap::from([("DailyApiRequests".to_string(), Limit { max: 100, remaining })]);
    /// assert!(watch.observe(&read(50)).is_empty());
    /// assert_eq!(watch.observe(&read(15)).len(), 1); // 85% used: warned
    /// assert!(watch.observe(&read(10)).is_empty()); // still over: not again
    /// assert!(watch.observe(&read(90)).is_empty()); // back under
    /// assert_eq!(watch.observe(&read(5)).len(), 1); // a new crossing
    /// ```
    pub fn observe(&mut self, limits: &BTreeMap<String, Limit>) -> Vec<Crossing> {
        let mut crossings = Vec::new();
        for (name, limit) in watched(limits) {
            if self.is_over(&limit) {
                if self.over.insert(name.clone()) {
                    let used = (limit.max - limit.remaining) as f64 / limit.max as f64 * 100.0;
                    tracing::warn!(
                        limit = %name,
                        remaining = limit.remaining,
                        max = limit.max,
                        used_percent = format!("{used:.0}"),
                        warn_at_percent = format!("{:.0}", self.policy.warn_at * 100.0),
                        "an org allocation is nearly spent: streaming stops when it runs out (it replenishes over a rolling 24 hours)"
                    );
                    crossings.push(Crossing { name, limit });
                }
            } else if self.over.remove(&name) {
                tracing::info!(limit = %name, remaining = limit.remaining, max = limit.max, "an org allocation is back under its warning threshold");
            }
        }
        crossings
    }

    /// Reads `limits/` once (bounded) and [observes](Self::observe) it;
    /// returns the watched limits and the crossings of this read.
    ///
    /// # Errors
    ///
    /// As [`SalesforceClient::limits`]; a read that takes over 30 s is a
    /// [`RestError::Transport`] error.
    pub async fn check(&mut self, client: &SalesforceClient) -> Result<Checked, RestError> {
        let limits = match tokio::time::timeout(READ_TIMEOUT, client.limits()).await {
            Ok(read) => read?,
            Err(_) => {
                return Err(RestError::Transport(
                    "limits/ was not answered within 30 s".into(),
                ));
            }
        };
        let crossings = self.observe(&limits);
        Ok(Checked {
            limits: watched(&limits),
            crossings,
        })
    }

    /// Reads `limits/` now and every [`LimitsPolicy::interval`] until
    /// `stop` completes, handing each read's watched limits to `on_read`
    /// (e.g. to set gauges). A failed read is logged (at debug after the
    /// first) and retried at the next tick.
    pub async fn run(
        mut self,
        client: SalesforceClient,
        on_read: impl Fn(&[(String, Limit)]) + Send,
        stop: impl Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(self.policy.interval.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed = false;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut stop => return,
            }
            let read = tokio::select! {
                read = self.check(&client) => read,
                () = &mut stop => return,
            };
            match read {
                Ok(checked) => {
                    failed = false;
                    on_read(&checked.limits);
                }
                Err(error) if !failed => {
                    failed = true;
                    tracing::warn!(%error, "reading the org's limits failed; retried at the next interval");
                }
                Err(error) => tracing::debug!(%error, "reading the org's limits failed again"),
            }
        }
    }
}

/// The watched entries of a `limits/` read, in [`WATCHED_LIMITS`] order.
pub fn watched(limits: &BTreeMap<String, Limit>) -> Vec<(String, Limit)> {
    WATCHED_LIMITS
        .iter()
        .filter_map(|name| limits.get(*name).map(|l| (name.to_string(), *l)))
        .collect()
}
