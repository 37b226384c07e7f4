//! [`Gap`]: events that may have been missed, when a stored replay id had
//! expired and the subscription fell back to `NEW` or `ALL`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::ReplayFrom;

/// The replay id that was refused: a CometD replay id, or a Pub/Sub one
/// (opaque, as base64).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum ExpiredReplayId {
    /// A CometD replay id.
    Number(i64),
    /// A Pub/Sub replay id, base64.
    Opaque(String),
}

impl std::fmt::Display for ExpiredReplayId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpiredReplayId::Number(n) => n.fmt(f),
            ExpiredReplayId::Opaque(s) => s.fmt(f),
        }
    }
}

/// A window of time whose events may have been missed: the stored replay
/// id of `channel` had left retention, so the subscription started again
/// from `fallback`.
///
/// With `NEW`, every event of the channel from `from` (the expired
/// marker's event) to `to` (when the fallback subscription was sent) may
/// be missed. With `ALL`, only the events that aged out of retention
/// before `to` are missed; which those are is unknown (Salesforce does not
/// say when its oldest retained event was created), so the window is the
/// same, and reading it is the consumer's call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gap {
    /// The subscription, as subscribed (a CometD `?filter` included), or
    /// the Pub/Sub topic.
    pub channel: String,
    /// When the event of the expired marker was created, if known.
    pub from: Option<DateTime<Utc>>,
    /// When the fallback subscription was sent.
    pub to: DateTime<Utc>,
    /// `New` or `All`.
    pub fallback: ReplayFrom,
    /// The refused replay id.
    pub expired_replay_id: ExpiredReplayId,
}

impl Gap {
    /// The fallback as `"NEW"` or `"ALL"`.
    pub fn fallback_name(&self) -> &'static str {
        match self.fallback {
            ReplayFrom::All => "ALL",
            _ => "NEW",
        }
    }

    /// The gap as `listen` writes it (one line):
    /// `{"gap": {"channel", "from": RFC 3339 | null, "to", "fallback", "expired_replay_id"}}`.
    ///
    /// ```
    /// use chrono::DateTime;
    /// use sfstream_salesforce::replay::{ExpiredReplayId, Gap, ReplayFrom};
    ///
    /// let gap = Gap {
    ///     channel: "/topic/X".into(),
    ///     from: None,
    ///     to: DateTime::from_timestamp(1_700_000_000, 0).expect("valid"),
    ///     fallback: ReplayFrom::New,
    ///     expired_replay_id: ExpiredReplayId::Number(45),
    /// };
    /// assert_eq!(
    ///     gap.to_json(),
    ///     serde_json::json!({"gap": {"channel": "/topic/X", "from": null, "to": "2023-11-14T22:13:20.000Z",
    ///                                "fallback": "NEW", "expired_replay_id": 45}})
    /// );
    /// ```
    pub fn to_json(&self) -> Value {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        json!({"gap": {
            "channel": self.channel,
            "from": self.from.as_ref().map(time),
            "to": time(&self.to),
            "fallback": self.fallback_name(),
            "expired_replay_id": self.expired_replay_id,
        }})
    }

    /// Logs the gap (a warning: events may be missing).
    pub(crate) fn log(&self) {
        let from = self
            .from
            .map_or_else(|| "unknown".to_string(), |t| t.to_rfc3339());
        tracing::warn!(
            channel = %self.channel,
            %from,
            to = %self.to.to_rfc3339(),
            fallback = self.fallback_name(),
            expired_replay_id = %self.expired_replay_id,
            "GAP: the stored replay id had expired; events of this window may have been missed"
        );
    }
}
