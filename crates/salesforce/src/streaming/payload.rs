//! Typed views of the four kinds of Streaming API payloads.

use serde::Deserialize;
use serde_json::{Map, Value};

/// `event` of a PushTopic or generic event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventInfo {
    /// When the event was created (ISO 8601).
    pub created_date: Option<String>,
    /// The replay id.
    pub replay_id: i64,
    /// `created`, `updated`, `deleted` or `undeleted` (PushTopic only).
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A PushTopic notification on `/topic/<Name>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PushTopicEvent {
    /// Replay id, time and change type.
    pub event: EventInfo,
    /// The fields the topic's query selects.
    pub sobject: Map<String, Value>,
}

/// A generic streaming event on `/u/<name>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GenericEvent {
    /// Replay id and time.
    pub event: EventInfo,
    /// The pushed text.
    pub payload: String,
}

/// A replay id as an event carries it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ReplayId {
    /// On CometD: a number.
    Number(i64),
    /// On the Pub/Sub API: the base64 text of opaque bytes.
    Opaque(String),
}

impl ReplayId {
    /// The number of a CometD replay id.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ReplayId::Number(n) => Some(*n),
            ReplayId::Opaque(_) => None,
        }
    }
}

/// `event` of a platform event or change event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReplayInfo {
    /// The replay id: a number on CometD, base64 on the Pub/Sub API.
    #[serde(rename = "replayId")]
    pub replay_id: ReplayId,
    /// The event's UUID (platform events).
    #[serde(rename = "EventUuid", default)]
    pub event_uuid: Option<String>,
}

/// A platform event on `/event/<Name>__e`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PlatformEvent {
    /// The schema id.
    #[serde(default)]
    pub schema: Option<String>,
    /// The event's fields, with `CreatedDate` and `CreatedById`.
    pub payload: Map<String, Value>,
    /// Replay id and UUID.
    pub event: ReplayInfo,
}

/// The header of a Change Data Capture event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEventHeader {
    /// The sobject type, e.g. `Account`.
    pub entity_name: String,
    /// Ids of the changed records.
    pub record_ids: Vec<String>,
    /// `CREATE`, `UPDATE`, `DELETE`, `UNDELETE`, or a `GAP_…` type.
    pub change_type: String,
    /// Where the change came from.
    #[serde(default)]
    pub change_origin: Option<String>,
    /// The transaction.
    #[serde(default)]
    pub transaction_key: Option<String>,
    /// Order within the transaction.
    #[serde(default)]
    pub sequence_number: Option<i64>,
    /// Commit time, epoch milliseconds.
    pub commit_timestamp: i64,
    /// Commit number.
    #[serde(default)]
    pub commit_number: Option<i64>,
    /// Who committed.
    #[serde(default)]
    pub commit_user: Option<String>,
    /// Fields changed by an update.
    #[serde(default)]
    pub changed_fields: Vec<String>,
}

/// The payload of a change event: the header and the changed fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChangePayload {
    /// The header.
    #[serde(rename = "ChangeEventHeader")]
    pub header: ChangeEventHeader,
    /// The record's fields carried by the event.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// A Change Data Capture event on `/data/...ChangeEvent(s)`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChangeEvent {
    /// The schema id.
    #[serde(default)]
    pub schema: Option<String>,
    /// Header and fields.
    pub payload: ChangePayload,
    /// Replay id.
    pub event: ReplayInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_payloads() {
        let push: PushTopicEvent = serde_json::from_str(
            r#"{"event":{"createdDate":"2016-03-29T16:40:08.208Z","replayId":13,"type":"created"},"sobject":{"Id":"a00D0000008o6y8IAA","Name":"INV-0001"}}"#,
        )
        .expect("pushtopic");
        assert_eq!(
            (push.event.replay_id, push.event.kind.as_deref()),
            (13, Some("created"))
        );
        let generic: GenericEvent =
            serde_json::from_str(r#"{"event":{"createdDate":"2016-03-29T16:40:08.208Z","replayId":55},"payload":"This is a message."}"#)
                .expect("generic");
        assert_eq!(generic.payload, "This is a message.");
        let platform: PlatformEvent = serde_json::from_str(
            r#"{"schema":"dffQ2","payload":{"CreatedDate":"2024-01-01T00:00:00Z","Printer_Model__c":"XZO-5"},"event":{"EventUuid":"2ec0","replayId":2112}}"#,
        )
        .expect("platform");
        assert_eq!(platform.event.replay_id.as_i64(), Some(2112));
        let change: ChangeEvent = serde_json::from_str(
            r#"{"schema":"x","payload":{"ChangeEventHeader":{"entityName":"Account","recordIds":["001"],"changeType":"CREATE","commitTimestamp":1712694387000,"changedFields":[]},"Name":"Acme"},"event":{"replayId":37904280}}"#,
        )
        .expect("cdc");
        assert_eq!(change.payload.header.entity_name, "Account");
        assert_eq!(change.payload.fields["Name"], "Acme");
        // The Pub/Sub API's line: the same shape, an opaque replay id.
        let change: ChangeEvent = serde_json::from_str(
            r#"{"schema":"x","payload":{"ChangeEventHeader":{"entityName":"Account","recordIds":["001"],"changeType":"CREATE","commitTimestamp":1712694387000,"changedFields":[]}},"event":{"replayId":"AAAAAAAAAAEAAA=="}}"#,
        )
        .expect("cdc over pubsub");
        assert_eq!(
            change.event.replay_id,
            ReplayId::Opaque("AAAAAAAAAAEAAA==".into())
        );
        assert_eq!(change.event.replay_id.as_i64(), None);
    }
}
