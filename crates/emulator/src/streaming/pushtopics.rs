//! PushTopic records: Salesforce's checks when one is saved, and the
//! notification rules (NotifyForFields, NotifyForOperation*) when a record
//! of the queried type changes.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::ApiError;
use crate::soql::{self, Query};
use crate::store::{ChangeKind, Record, RecordChange, Store};

/// Longest PushTopic name.
pub const MAX_NAME_LEN: usize = 25;

/// Fields every update changes, which count as changed for `Referenced` and
/// `Select` topics that select them.
const AUDIT_FIELDS: [&str; 3] = ["LastModifiedDate", "LastModifiedById", "SystemModstamp"];

/// Checks a PushTopic about to be created (`id` None) or updated.
pub fn check(store: &Store, fields: &Record, id: Option<&str>) -> Result<(), ApiError> {
    let existing = id.and_then(|id| store.get("PushTopic", id, false));
    let get = |name: &str| -> Option<&Value> {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .or_else(|| existing.and_then(|r| r.get(name)))
    };
    if let Some(name) = get("Name").and_then(Value::as_str) {
        if name.chars().count() > MAX_NAME_LEN {
            return Err(ApiError::bad_request(
                "STRING_TOO_LONG",
                format!("Topic Name: data value too large: {name} (max length={MAX_NAME_LEN})"),
            )
            .with_fields(vec!["Name".into()]));
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!("Topic Name: only letters, digits and underscores are allowed: {name}"),
            )
            .with_fields(vec!["Name".into()]));
        }
        let own_id = existing.and_then(|r| r.get("Id")).and_then(Value::as_str);
        let duplicate = store.rows("PushTopic", false).find(|r| {
            r.get("Name").and_then(Value::as_str) == Some(name)
                && r.get("Id").and_then(Value::as_str) != own_id
        });
        if let Some(other) = duplicate {
            let other_id = other.get("Id").and_then(Value::as_str).unwrap_or_default();
            return Err(ApiError::bad_request(
                "DUPLICATE_VALUE",
                format!(
                    "duplicate value found: Name duplicates value on record with id: {other_id}"
                ),
            )
            .with_fields(vec!["Name".into()]));
        }
    }
    if let Some(text) = get("Query").and_then(Value::as_str) {
        compile(store, text).map_err(|e| {
            ApiError::bad_request(e.code, e.message).with_fields(vec!["Query".into()])
        })?;
    }
    if let Some(value) = get("NotifyForFields").and_then(Value::as_str)
        && !["All", "Referenced", "Select", "Where"].contains(&value)
    {
        return Err(ApiError::bad_request(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            format!("Notify For Fields: bad value for restricted picklist field: {value}"),
        )
        .with_fields(vec!["NotifyForFields".into()]));
    }
    Ok(())
}

/// Parses a topic query, applies PushTopic rules and resolves it against the schema.
pub fn compile(store: &Store, text: &str) -> Result<Query, soql::SoqlError> {
    let mut query = soql::validate_pushtopic_query(text)?;
    let schema = store.schema(&query.from).map_err(|e| soql::SoqlError {
        code: "INVALID_TYPE",
        message: e.message,
    })?;
    query.resolve(schema)?;
    Ok(query)
}

/// Compiled topic queries, re-parsed only when a topic's query text changes.
#[derive(Debug, Default)]
pub struct TopicCache {
    compiled: HashMap<String, (String, Arc<Query>)>,
}

/// A topic that a change notifies, with the `sobject` it carries.
#[derive(Debug)]
pub struct Notification {
    /// `/topic/<Name>`.
    pub channel: String,
    /// The selected fields of the record.
    pub sobject: Record,
}

impl TopicCache {
    /// The notifications `change` raises on active topics.
    pub fn notifications(&mut self, store: &Store, change: &RecordChange) -> Vec<Notification> {
        let mut out = Vec::new();
        for topic in store.rows("PushTopic", false) {
            if topic.get("IsActive") != Some(&Value::Bool(true))
                || !operation_enabled(topic, change.kind)
            {
                continue;
            }
            let (Some(id), Some(name), Some(text)) = (
                topic.get("Id").and_then(Value::as_str),
                topic.get("Name").and_then(Value::as_str),
                topic.get("Query").and_then(Value::as_str),
            ) else {
                continue;
            };
            let Some(query) = self.query(store, id, text) else {
                continue;
            };
            if !query.from.eq_ignore_ascii_case(&change.sobject) || !query.matches(&change.record) {
                continue;
            }
            if change.kind == ChangeKind::Updated && !fields_rule_met(topic, &query, change) {
                continue;
            }
            let sobject = if change.kind == ChangeKind::Deleted {
                // Delete notifications carry only the record id.
                let mut only_id = Record::new();
                only_id.insert(
                    "Id".into(),
                    change.record.get("Id").cloned().unwrap_or(Value::Null),
                );
                only_id
            } else {
                project(&query, &change.record)
            };
            out.push(Notification {
                channel: format!("/topic/{name}"),
                sobject,
            });
        }
        out
    }

    fn query(&mut self, store: &Store, id: &str, text: &str) -> Option<Arc<Query>> {
        if let Some((cached_text, query)) = self.compiled.get(id)
            && cached_text == text
        {
            return Some(query.clone());
        }
        let query = Arc::new(compile(store, text).ok()?);
        self.compiled
            .insert(id.to_string(), (text.to_string(), query.clone()));
        Some(query)
    }
}

fn operation_enabled(topic: &Record, kind: ChangeKind) -> bool {
    let field = match kind {
        ChangeKind::Created => "NotifyForOperationCreate",
        ChangeKind::Updated => "NotifyForOperationUpdate",
        ChangeKind::Deleted => "NotifyForOperationDelete",
        ChangeKind::Undeleted => "NotifyForOperationUndelete",
    };
    topic.get(field) != Some(&Value::Bool(false))
}

/// NotifyForFields for an update: All, Referenced (SELECT or WHERE fields),
/// Select, or Where.
fn fields_rule_met(topic: &Record, query: &Query, change: &RecordChange) -> bool {
    let mode = topic
        .get("NotifyForFields")
        .and_then(Value::as_str)
        .unwrap_or("Referenced");
    let changed = |field: &String| {
        change
            .changed_fields
            .iter()
            .any(|c| c.eq_ignore_ascii_case(field))
            || AUDIT_FIELDS.iter().any(|a| a.eq_ignore_ascii_case(field))
    };
    let in_select = || query.fields.iter().any(changed);
    let in_where = || query.where_fields().iter().any(changed);
    match mode {
        "All" => true,
        "Select" => in_select(),
        "Where" => in_where(),
        _ => in_select() || in_where(),
    }
}

fn project(query: &Query, record: &Record) -> Record {
    query
        .fields
        .iter()
        .map(|f| (f.clone(), record.get(f).cloned().unwrap_or(Value::Null)))
        .collect()
}
