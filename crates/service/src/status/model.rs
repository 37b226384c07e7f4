//! The JSON of `/status`: one [`StatusReport`], the same for services,
//! `sfstream run` and `sfstream listen`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::activity::ActivitySnapshot;
use crate::metrics::{ChannelState, ClusterRole};

/// What a stream or a service is doing, channel by channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The service's name (`sfstream listen` for the CLI).
    pub name: String,
    /// When the report was made (RFC 3339).
    pub generated_at: String,
    /// Seconds since the status board was made (about since the start).
    pub uptime_secs: u64,
    /// Connected, and no channel failed for good.
    pub healthy: bool,
    /// Whether the CometD session is connected (absent without CometD channels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// Reconnections of the streaming session(s) so far.
    pub reconnects: u64,
    /// This replica's id, in cluster mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Every channel, sorted.
    pub channels: Vec<ChannelStatus>,
}

/// One channel (subscription, `?filter` included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStatus {
    /// The subscription, as subscribed.
    pub channel: String,
    /// `cometd` or `pubsub`, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// `subscribed`, `retrying`, `failed`, `standby` (cluster mode: another
    /// replica streams it) or `starting` (not subscribed yet).
    pub state: String,
    /// Cluster mode: `leading` or `standby`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Cluster mode: the replica leading a standby channel, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Why it is retrying or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Consecutive failed attempts, while retrying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The stored replay marker, when there is one (and a store to ask).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<MarkerStatus>,
    /// Seconds from the creation of the last handled event to now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_secs: Option<f64>,
    /// Events handled per second over the last minute.
    pub events_per_sec: f64,
    /// Events handled per second in 10-second buckets over the last five
    /// minutes, oldest first.
    pub rate: Vec<f64>,
    /// Events handled.
    pub handled: u64,
    /// Events whose handler failed for good.
    pub failed: u64,
    /// The last handler error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Times it was subscribed again after its first subscription.
    pub reconnects: u64,
}

/// A stored replay marker and its age against the channel's retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkerStatus {
    /// The replay id: a number on CometD, base64 on Pub/Sub.
    pub replay_id: String,
    /// When its event was created (RFC 3339), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Its age in seconds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_secs: Option<f64>,
    /// How long Salesforce keeps the channel's events (24 or 72 hours).
    pub retention_secs: u64,
    /// Older than the retention: a restart cannot resume from it.
    pub expired: bool,
}

/// A handler error and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    /// The error.
    pub message: String,
    /// When (RFC 3339).
    pub at: String,
}

/// A stored marker as read: its id as text, and its creation time.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMarker {
    /// The replay id as text.
    pub replay_id: String,
    /// When its event was created, when known.
    pub created: Option<DateTime<Utc>>,
}

/// Everything known of one channel, before it becomes a [`ChannelStatus`].
#[derive(Debug, Clone)]
pub struct ChannelFacts {
    /// The subscription.
    pub channel: String,
    /// Its transport, when decided.
    pub transport: Option<sfstream_salesforce::Transport>,
    /// Its subscription state, once subscribed or tried.
    pub state: Option<ChannelState>,
    /// Cluster mode: its role here.
    pub role: Option<ClusterRole>,
    /// Its stored marker.
    pub marker: Option<StoredMarker>,
    /// What it handled.
    pub activity: ActivitySnapshot,
    /// Subscriptions so far (the first included).
    pub subscribes: u64,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn seconds_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    ((later - earlier).num_milliseconds().max(0)) as f64 / 1000.0
}

impl ChannelStatus {
    /// The status of a channel from what is known of it, as of `now`;
    /// `connected` is whether the CometD session is up (a subscribed CometD
    /// channel of a session that is down is retrying).
    pub fn from_facts(facts: ChannelFacts, connected: Option<bool>, now: DateTime<Utc>) -> Self {
        let transport = facts.transport.map(|t| t.to_string());
        let on_cometd = facts.transport != Some(sfstream_salesforce::Transport::PubSub);
        let (mut state, mut error, mut attempt) = match &facts.state {
            Some(ChannelState::Subscribed) if on_cometd && connected == Some(false) => (
                "retrying",
                Some("the streaming session is reconnecting".to_string()),
                None,
            ),
            Some(ChannelState::Subscribed) => ("subscribed", None, None),
            Some(ChannelState::Retrying { error, attempt }) => {
                ("retrying", Some(error.clone()), Some(*attempt))
            }
            Some(ChannelState::Failed { error }) => ("failed", Some(error.clone()), None),
            None => ("starting", None, None),
        };
        let (role, holder) = match &facts.role {
            Some(ClusterRole::Leading) => (Some("leading".to_string()), None),
            Some(ClusterRole::Standby { holder }) => {
                // Another replica streams it: its subscription state here is moot.
                state = "standby";
                error = None;
                attempt = None;
                (Some("standby".to_string()), holder.clone())
            }
            None => (None, None),
        };
        let retention = sfstream_salesforce::replay::retention(&facts.channel);
        let marker = facts.marker.map(|m| {
            let age_secs = m.created.map(|c| seconds_between(c, now));
            MarkerStatus {
                replay_id: m.replay_id,
                created: m.created.map(rfc3339),
                age_secs,
                retention_secs: retention.as_secs(),
                expired: age_secs.is_some_and(|age| age > retention.as_secs_f64()),
            }
        });
        let activity = facts.activity;
        Self {
            channel: facts.channel,
            transport,
            state: state.to_string(),
            role,
            holder,
            error,
            attempt,
            marker,
            lag_secs: activity.last_created.map(|c| seconds_between(c, now)),
            events_per_sec: activity.per_sec,
            rate: activity.rate,
            handled: activity.handled,
            failed: activity.failed,
            last_error: activity.last_error.map(|(message, at)| LastError {
                message,
                at: rfc3339(at),
            }),
            reconnects: facts.subscribes.saturating_sub(1),
        }
    }
}

impl StatusReport {
    /// A report of `channels` (sorted here), as of `now`.
    pub fn new(
        name: &str,
        started: DateTime<Utc>,
        connected: Option<bool>,
        reconnects: u64,
        replica: Option<String>,
        channels: Vec<ChannelFacts>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut channels: Vec<ChannelStatus> = channels
            .into_iter()
            .map(|facts| ChannelStatus::from_facts(facts, connected, now))
            .collect();
        channels.sort_by(|a, b| a.channel.cmp(&b.channel));
        let healthy = connected != Some(false) && !channels.iter().any(|c| c.state == "failed");
        Self {
            name: name.to_string(),
            generated_at: rfc3339(now),
            uptime_secs: (now - started).num_seconds().max(0) as u64,
            healthy,
            connected,
            reconnects,
            replica,
            channels,
        }
    }
}

#[cfg(test)]
mod tests {
    use sfstream_salesforce::Transport;

    use super::super::activity::Activity;
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap_or_default()
    }

    fn facts(channel: &str, state: Option<ChannelState>) -> ChannelFacts {
        ChannelFacts {
            channel: channel.into(),
            transport: Some(Transport::CometD),
            state,
            role: None,
            marker: None,
            activity: Activity::default().snapshot(at(1_000_000)),
            subscribes: 1,
        }
    }

    #[test]
    fn a_subscribed_channel_with_its_marker_lag_and_rate() {
        let now = at(1_000_000);
        let activity = Activity::default();
        activity.handled(Some(now - chrono::Duration::seconds(3)), now);
        activity.failed("handler said no", now);
        let mut facts = facts("/topic/X", Some(ChannelState::Subscribed));
        facts.activity = activity.snapshot(now);
        facts.subscribes = 3;
        facts.marker = Some(StoredMarker {
            replay_id: "42".into(),
            created: Some(now - chrono::Duration::hours(25)),
        });
        let report = StatusReport::new("svc", at(999_000), Some(true), 2, None, vec![facts], now);
        assert!(report.healthy);
        assert_eq!(report.uptime_secs, 1_000);
        let channel = &report.channels[0];
        assert_eq!(channel.state, "subscribed");
        assert_eq!(channel.transport.as_deref(), Some("cometd"));
        assert_eq!(channel.lag_secs, Some(3.0));
        assert_eq!(channel.handled, 1);
        assert_eq!(channel.failed, 1);
        assert_eq!(channel.reconnects, 2);
        assert_eq!(
            channel.last_error.as_ref().map(|e| e.message.as_str()),
            Some("handler said no")
        );
        let marker = channel.marker.as_ref().expect("a marker");
        assert_eq!(marker.replay_id, "42");
        assert_eq!(marker.retention_secs, 24 * 3600);
        assert_eq!(marker.age_secs, Some(25.0 * 3600.0));
        // A PushTopic keeps 24 h: 25 h is too old to resume from.
        assert!(marker.expired);
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["channels"][0]["marker"]["expired"], true);
        assert_eq!(
            json["channels"][0]["rate"].as_array().map(Vec::len),
            Some(30)
        );
        // Fields without a value are left out.
        assert!(json.get("replica").is_none());
        assert!(json["channels"][0].get("role").is_none());
        let back: StatusReport = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, report);
    }

    #[test]
    fn a_lost_session_shows_its_cometd_channels_retrying() {
        let now = at(1_000_000);
        let mut pubsub = facts("/data/AccountChangeEvent", Some(ChannelState::Subscribed));
        pubsub.transport = Some(Transport::PubSub);
        let channels = vec![
            facts("/topic/B", Some(ChannelState::Subscribed)),
            facts("/topic/A", None),
            pubsub,
        ];
        let report = StatusReport::new("svc", now, Some(false), 0, None, channels, now);
        assert!(!report.healthy);
        let states: Vec<(&str, &str)> = report
            .channels
            .iter()
            .map(|c| (c.channel.as_str(), c.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("/data/AccountChangeEvent", "subscribed"),
                ("/topic/A", "starting"),
                ("/topic/B", "retrying"),
            ]
        );
        // A change event channel keeps 72 h.
        let mut marker = facts("/data/X", None);
        marker.marker = Some(StoredMarker {
            replay_id: "AAAA".into(),
            created: Some(now - chrono::Duration::hours(25)),
        });
        let status = ChannelStatus::from_facts(marker, Some(true), now);
        let marker = status.marker.expect("a marker");
        assert_eq!(marker.retention_secs, 72 * 3600);
        assert!(!marker.expired);
    }

    #[test]
    fn cluster_roles_and_failures() {
        let now = at(1_000_000);
        let mut standby = facts(
            "/topic/S",
            Some(ChannelState::Retrying {
                error: "old".into(),
                attempt: 2,
            }),
        );
        standby.role = Some(ClusterRole::Standby {
            holder: Some("replica-b".into()),
        });
        let mut leading = facts("/topic/L", Some(ChannelState::Subscribed));
        leading.role = Some(ClusterRole::Leading);
        let failed = facts(
            "/topic/F",
            Some(ChannelState::Failed {
                error: "400::no such channel".into(),
            }),
        );
        let report = StatusReport::new(
            "svc",
            now,
            Some(true),
            0,
            Some("replica-a".into()),
            vec![standby, leading, failed],
            now,
        );
        assert!(!report.healthy, "a failed channel makes it unhealthy");
        let by_name = |name: &str| report.channels.iter().find(|c| c.channel == name).cloned();
        let standby = by_name("/topic/S").expect("standby");
        assert_eq!(standby.state, "standby");
        assert_eq!(standby.role.as_deref(), Some("standby"));
        assert_eq!(standby.holder.as_deref(), Some("replica-b"));
        assert_eq!(standby.error, None);
        let leading = by_name("/topic/L").expect("leading");
        assert_eq!(
            (leading.state.as_str(), leading.role.as_deref()),
            ("subscribed", Some("leading"))
        );
        let failed = by_name("/topic/F").expect("failed");
        assert_eq!(failed.state, "failed");
        assert_eq!(failed.error.as_deref(), Some("400::no such channel"));
    }
}
