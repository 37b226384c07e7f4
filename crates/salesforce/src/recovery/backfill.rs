//! Backfill: after a [`Gap`] (a stored replay id had expired), the records
//! of the channel changed in the gap's window, read from the REST API and
//! delivered as notifications marked `"backfilled": true`.
//!
//! - A PushTopic (`/topic/X`): its query's sobject, fields and `WHERE`,
//!   and `SystemModstamp` in the window; each record is a notification
//!   `{"event": {"type", "createdDate", "replayId": null}, "sobject": {…},
//!   "backfilled": true}` (`type`: `deleted` for a deleted record,
//!   `created` when it was created in the window (whole seconds), else
//!   `updated`).
//! - Change Data Capture (`/data/XChangeEvent`): the entity's records
//!   (every field), each a change event `{"schema": null, "payload":
//!   {"ChangeEventHeader": {entityName, recordIds: [Id], changeType:
//!   CREATE | UPDATE | DELETE, commitTimestamp: its SystemModstamp, …},
//!   field: value, …}, "event": {"replayId": null}, "backfilled": true}`.
//! - Anything else (platform events, generic channels, the all-objects
//!   `/data/ChangeEvents`) has no records to read: a warning says so.
//!
//! A window whose start is unknown starts a retention before its end.
//! At most [`RecoveryOptions::max_records`](super::RecoveryOptions) records
//! are delivered, oldest first; past it a warning names what was left out.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::{Recovery, window_condition};
use crate::replay::{Gap, channel_key, retention};
use crate::rest::RestError;

/// Fields a backfill query needs besides the topic's.
const SYSTEM_FIELDS: [&str; 4] = ["Id", "SystemModstamp", "CreatedDate", "IsDeleted"];

/// What a channel's records are.
enum Source {
    /// A PushTopic: its sobject, its selected fields, its `WHERE`.
    Topic {
        sobject: String,
        fields: Vec<String>,
        condition: Option<String>,
    },
    /// A change event channel's entity.
    Changes { entity: String },
}

impl Recovery {
    /// The notifications of the records `gap.channel` changed in the gap's
    /// window (see the module documentation for their shape), oldest
    /// first; empty (with a warning) when the channel has no records
    /// behind it or the read fails.
    pub async fn backfill(&self, gap: &Gap) -> Vec<Value> {
        match self.try_backfill(gap).await {
            Ok(data) => data,
            Err(error) => {
                tracing::warn!(channel = %gap.channel, %error, "backfill failed: the gap's events stay missing");
                Vec::new()
            }
        }
    }

    async fn try_backfill(&self, gap: &Gap) -> Result<Vec<Value>, RestError> {
        let Some(source) = self.source(&gap.channel).await? else {
            tracing::warn!(channel = %gap.channel, "cannot backfill this channel: no records behind it (PushTopics and /data/<Object>ChangeEvent only)");
            return Ok(Vec::new());
        };
        let to = gap.to;
        let from = gap.from.unwrap_or_else(|| {
            to - chrono::Duration::from_std(retention(&gap.channel)).unwrap_or_default()
        });
        let window = window_condition(from, to);
        let (soql, sobject) = match &source {
            Source::Topic {
                sobject,
                fields,
                condition,
            } => {
                let mut select = fields.clone();
                for field in SYSTEM_FIELDS {
                    if !select.iter().any(|f| f.eq_ignore_ascii_case(field)) {
                        select.push(field.to_string());
                    }
                }
                let condition = match condition {
                    Some(c) => format!("({c}) AND {window}"),
                    None => window,
                };
                (
                    format!(
                        "SELECT {} FROM {sobject} WHERE {condition} ORDER BY SystemModstamp",
                        select.join(", ")
                    ),
                    sobject.clone(),
                )
            }
            Source::Changes { entity } => {
                let fields = self.field_names(entity).await?.join(", ");
                (
                    format!("SELECT {fields} FROM {entity} WHERE {window} ORDER BY SystemModstamp"),
                    entity.clone(),
                )
            }
        };
        let fetched = self.query_all(soql, self.options.max_records).await?;
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        if fetched.truncated {
            let last = fetched
                .records
                .last()
                .and_then(|r| r.get("SystemModstamp"))
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            tracing::warn!(
                channel = %gap.channel,
                max = self.options.max_records,
                from = %time(from),
                to = %time(to),
                %last,
                "backfill cut at its bound: records changed after `last` in the window were not delivered"
            );
        }
        tracing::info!(channel = %gap.channel, records = fetched.records.len(), from = %time(from), to = %time(to), "backfilled the gap");
        // "Created in the window" in the window's own whole seconds.
        let from = DateTime::from_timestamp(from.timestamp(), 0).unwrap_or(from);
        Ok(fetched
            .records
            .into_iter()
            .map(|record| match &source {
                Source::Topic { fields, .. } => topic_notification(record, fields, from),
                Source::Changes { .. } => change_notification(record, &sobject, from),
            })
            .collect())
    }

    /// What records `channel` stands for, if any.
    async fn source(&self, channel: &str) -> Result<Option<Source>, RestError> {
        let key = channel_key(channel);
        if let Some(name) = key.strip_prefix("/topic/") {
            let Some(topic) = self.rest.get_topic(name).await? else {
                return Ok(None);
            };
            return Ok(parse_topic_query(&topic.query));
        }
        Ok(key
            .strip_prefix("/data/")
            .and_then(change_entity)
            .map(|entity| Source::Changes { entity }))
    }
}

/// The entity of a change event channel's name: `AccountChangeEvent` ->
/// `Account`, `Order__ChangeEvent` -> `Order__c`; `ChangeEvents` (every
/// entity) and anything else -> `None`.
fn change_entity(name: &str) -> Option<String> {
    if let Some(stem) = name.strip_suffix("__ChangeEvent") {
        return Some(format!("{stem}__c"));
    }
    name.strip_suffix("ChangeEvent")
        .filter(|stem| !stem.is_empty())
        .map(str::to_string)
}

/// `SELECT a, b FROM X [WHERE …]` read into its parts (PushTopic queries
/// have no subqueries, `ORDER BY` or `LIMIT`).
fn parse_topic_query(query: &str) -> Option<Source> {
    let upper = query.to_ascii_uppercase();
    let select = upper.find("SELECT ")?;
    let from = upper.find(" FROM ")?;
    let fields = query[select + 7..from]
        .split(',')
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    let rest = query[from + 6..].trim();
    let (sobject, condition) = match rest.to_ascii_uppercase().find(" WHERE ") {
        Some(at) => (
            rest[..at].trim().to_string(),
            Some(rest[at + 7..].trim().to_string()),
        ),
        None => (rest.to_string(), None),
    };
    Some(Source::Topic {
        sobject,
        fields,
        condition,
    })
}

fn text<'a>(record: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str)
}

fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    let text = text?;
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `deleted`, `created` (in the window) or `updated`.
fn kind(record: &Map<String, Value>, from: DateTime<Utc>) -> &'static str {
    if record.get("IsDeleted") == Some(&Value::Bool(true)) {
        "deleted"
    } else if parse_time(text(record, "CreatedDate")).is_some_and(|c| c >= from) {
        "created"
    } else {
        "updated"
    }
}

fn topic_notification(record: Map<String, Value>, fields: &[String], from: DateTime<Utc>) -> Value {
    let kind = kind(&record, from);
    let created = text(&record, "SystemModstamp").map(str::to_string);
    let sobject: Map<String, Value> = record
        .into_iter()
        .filter(|(k, _)| fields.iter().any(|f| f.eq_ignore_ascii_case(k)))
        .collect();
    json!({
        "event": {"type": kind, "createdDate": created, "replayId": null},
        "sobject": sobject,
        "backfilled": true,
    })
}

fn change_notification(record: Map<String, Value>, entity: &str, from: DateTime<Utc>) -> Value {
    let change_type = match kind(&record, from) {
        "deleted" => "DELETE",
        "created" => "CREATE",
        _ => "UPDATE",
    };
    let commit = parse_time(text(&record, "SystemModstamp")).map(|t| t.timestamp_millis());
    let header = json!({
        "entityName": entity,
        "recordIds": [record.get("Id").cloned().unwrap_or(Value::Null)],
        "changeType": change_type,
        "changeOrigin": "",
        "sequenceNumber": 1,
        "commitTimestamp": commit,
        "changedFields": [],
        "nulledFields": [],
        "diffFields": [],
    });
    let mut payload = Map::new();
    payload.insert("ChangeEventHeader".into(), header);
    payload.extend(record);
    json!({
        "schema": null,
        "payload": payload,
        "event": {"replayId": null},
        "backfilled": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_and_topic_queries() {
        assert_eq!(
            change_entity("AccountChangeEvent").as_deref(),
            Some("Account")
        );
        assert_eq!(
            change_entity("Order__ChangeEvent").as_deref(),
            Some("Order__c")
        );
        assert_eq!(change_entity("ChangeEvents"), None);
        assert_eq!(change_entity("ChangeEvent"), None);
        let Some(Source::Topic {
            sobject,
            fields,
            condition,
        }) = parse_topic_query("SELECT Id, Name from Contact WHERE Name LIKE 'A%'")
        else {
            panic!("a topic query")
        };
        assert_eq!(sobject, "Contact");
        assert_eq!(fields, ["Id", "Name"]);
        assert_eq!(condition.as_deref(), Some("Name LIKE 'A%'"));
    }
}
