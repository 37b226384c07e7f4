//! The `data` of each kind of event, shaped as Salesforce sends it.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::ChangeShape;
use crate::store::{ChangeKind, Record, RecordChange, event_datetime};

/// A PushTopic notification: `{"event":{createdDate, replayId, type}, "sobject":{…}}`.
pub fn pushtopic(replay_id: i64, at: DateTime<Utc>, kind: ChangeKind, sobject: Record) -> Value {
    json!({
        "event": {
            "createdDate": event_datetime(at),
            "replayId": replay_id,
            "type": kind.pushtopic_type(),
        },
        "sobject": sobject,
    })
}

/// A generic streaming event: `{"event":{createdDate, replayId}, "payload": "…"}`.
pub fn generic(replay_id: i64, at: DateTime<Utc>, payload: &str) -> Value {
    json!({
        "event": { "createdDate": event_datetime(at), "replayId": replay_id },
        "payload": payload,
    })
}

/// A platform event: `{"schema", "payload":{CreatedDate, CreatedById, …}, "event":{EventUuid, replayId}}`.
pub fn platform(replay_id: i64, change: &RecordChange, schema_id: &str) -> Value {
    let mut payload = Record::new();
    payload.insert("CreatedDate".into(), json!(event_datetime(change.at)));
    payload.insert("CreatedById".into(), json!(change.user_id));
    for (k, v) in &change.record {
        if !matches!(
            k.as_str(),
            "Id" | "IsDeleted"
                | "CreatedDate"
                | "CreatedById"
                | "LastModifiedDate"
                | "LastModifiedById"
                | "SystemModstamp"
                | "ReplayId"
                | "EventUuid"
        ) {
            payload.insert(k.clone(), v.clone());
        }
    }
    json!({
        "schema": schema_id,
        "payload": payload,
        "event": { "EventUuid": uuid::Uuid::new_v4().to_string(), "replayId": replay_id },
    })
}

/// A Change Data Capture event with a full `ChangeEventHeader`; as a gap
/// (or overflow) event, the header alone: Salesforce's gap events carry
/// the change type (`GAP_UPDATE`, …) and record ids, overflow events
/// (`GAP_OVERFLOW`) the entity and no record id, and neither has field
/// values (its `sequenceNumber` is always 1).
pub(crate) fn change_event(
    replay_id: i64,
    change: &RecordChange,
    commit_number: i64,
    schema_id: &str,
    shape: ChangeShape,
) -> Value {
    let id = change.record.get("Id").cloned().unwrap_or(Value::Null);
    if shape != ChangeShape::Normal {
        let (change_type, record_ids) = match shape {
            ChangeShape::Overflow => ("GAP_OVERFLOW".to_string(), json!([])),
            _ => (format!("GAP_{}", change.kind.cdc_type()), json!([id])),
        };
        let header = json!({
            "entityName": change.sobject,
            "recordIds": record_ids,
            "changeType": change_type,
            "changeOrigin": "",
            "transactionKey": uuid::Uuid::new_v4().to_string(),
            "sequenceNumber": 1,
            "commitTimestamp": change.at.timestamp_millis(),
            "commitNumber": commit_number,
            "commitUser": change.user_id,
            "changedFields": [],
            "diffFields": [],
            "nulledFields": [],
        });
        return json!({ "schema": schema_id, "payload": {"ChangeEventHeader": header}, "event": { "replayId": replay_id } });
    }
    // Salesforce lists changed fields on updates only, "including the
    // LastModifiedDate system field".
    let changed_fields: Vec<&str> = if change.kind == ChangeKind::Updated {
        let mut fields: Vec<&str> = change.changed_fields.iter().map(String::as_str).collect();
        if !fields.contains(&"LastModifiedDate") {
            fields.push("LastModifiedDate");
        }
        fields
    } else {
        Vec::new()
    };
    let nulled_fields: Vec<&&str> = changed_fields
        .iter()
        .filter(|k| change.record.get(**k).is_none_or(Value::is_null))
        .collect();
    let header = json!({
        "entityName": change.sobject,
        "recordIds": [id],
        "changeType": change.kind.cdc_type(),
        "changeOrigin": "com/salesforce/api/rest/62.0",
        "transactionKey": uuid::Uuid::new_v4().to_string(),
        "sequenceNumber": 1,
        "commitTimestamp": change.at.timestamp_millis(),
        "commitNumber": commit_number,
        "commitUser": change.user_id,
        "changedFields": changed_fields,
        "diffFields": [],
        "nulledFields": nulled_fields,
    });
    let mut payload = Record::new();
    payload.insert("ChangeEventHeader".into(), header);
    let skip = |k: &str| matches!(k, "Id" | "IsDeleted" | "SystemModstamp");
    match change.kind {
        ChangeKind::Created | ChangeKind::Undeleted => {
            for (k, v) in &change.record {
                if !skip(k) && !v.is_null() {
                    payload.insert(k.clone(), v.clone());
                }
            }
        }
        ChangeKind::Updated => {
            for k in &change.changed_fields {
                payload.insert(
                    k.clone(),
                    change.record.get(k).cloned().unwrap_or(Value::Null),
                );
            }
            if let Some(v) = change.record.get("LastModifiedDate") {
                payload.insert("LastModifiedDate".into(), v.clone());
            }
        }
        ChangeKind::Deleted => {}
    }
    json!({ "schema": schema_id, "payload": payload, "event": { "replayId": replay_id } })
}
