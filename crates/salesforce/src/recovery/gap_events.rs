//! Change Data Capture gap events: Salesforce sends them instead of a
//! change event when it cannot build one (`GAP_CREATE`, `GAP_UPDATE`,
//! `GAP_DELETE`, `GAP_UNDELETE`: the header names the records, no field
//! values), and `GAP_OVERFLOW` for the changes of a transaction past
//! 100,000 (the header names the entity and the commit time, no record).
//! [`Recovery::fetch_gap`] reads the records they stand for.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{IDS_PER_QUERY, OVERFLOW_LOOKBACK, Recovery, window_condition};
use crate::rest::quote;

/// The `changeType`s of gap and overflow events.
pub const GAP_CHANGE_TYPES: [&str; 5] = [
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
];

/// Whether a change event payload (`{"ChangeEventHeader": {…}, …}`) is a
/// gap or overflow event.
///
/// ```
/// use sfstream_salesforce::recovery::is_gap_event;
///
/// let gap = serde_json::json!({"ChangeEventHeader": {"changeType": "GAP_UPDATE", "recordIds": ["003x"]}});
/// assert!(is_gap_event(&gap));
/// assert!(!is_gap_event(&serde_json::json!({"ChangeEventHeader": {"changeType": "UPDATE"}})));
/// ```
pub fn is_gap_event(payload: &Value) -> bool {
    payload
        .get("ChangeEventHeader")
        .and_then(|h| h.get("changeType"))
        .and_then(Value::as_str)
        .is_some_and(|t| GAP_CHANGE_TYPES.contains(&t))
}

impl Recovery {
    /// Fills a gap event's `payload` with the records it stands for, read
    /// now through `queryAll` (so a deleted record is there, `IsDeleted`
    /// true): `"fetched": true` and `"fetchedRecords": [{field: value, …}]`
    /// are added, the header is kept. For `GAP_OVERFLOW`, the records of
    /// the entity whose `SystemModstamp` lies in the
    /// [`OVERFLOW_LOOKBACK`] before the commit (at most the bound; past it
    /// `"fetchedTruncated": true`). A payload that is not a gap event is
    /// left alone; when the read fails, the payload is left as it came and
    /// a warning says why (the event is delivered either way).
    pub async fn fetch_gap(&self, payload: &mut Value) {
        if !is_gap_event(payload) {
            return;
        }
        let header = &payload["ChangeEventHeader"];
        let entity = header["entityName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let change_type = header["changeType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ids: Vec<String> = header["recordIds"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let commit = header["commitTimestamp"]
            .as_i64()
            .and_then(DateTime::from_timestamp_millis);
        let read = if change_type == "GAP_OVERFLOW" {
            self.overflow_records(&entity, commit.unwrap_or_else(Utc::now))
                .await
        } else {
            self.records_by_id(&entity, &ids).await
        };
        match read {
            Ok(fetched) => {
                tracing::info!(%entity, %change_type, records = fetched.records.len(), "fetched the records of a gap event");
                if let Some(map) = payload.as_object_mut() {
                    map.insert("fetched".into(), json!(true));
                    map.insert("fetchedRecords".into(), json!(fetched.records));
                    if fetched.truncated {
                        map.insert("fetchedTruncated".into(), json!(true));
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%entity, %change_type, %error, "could not fetch the records of a gap event; delivered without them");
            }
        }
    }

    async fn records_by_id(
        &self,
        entity: &str,
        ids: &[String],
    ) -> Result<super::Fetched, crate::rest::RestError> {
        let fields = self.field_names(entity).await?.join(", ");
        let mut all = super::Fetched::default();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list: Vec<String> = chunk.iter().map(|id| quote(id)).collect();
            let soql = format!(
                "SELECT {fields} FROM {entity} WHERE Id IN ({})",
                list.join(", ")
            );
            all.records
                .extend(self.query_all(soql, IDS_PER_QUERY).await?.records);
        }
        Ok(all)
    }

    async fn overflow_records(
        &self,
        entity: &str,
        commit: DateTime<Utc>,
    ) -> Result<super::Fetched, crate::rest::RestError> {
        let fields = self.field_names(entity).await?.join(", ");
        let from = commit - chrono::Duration::from_std(OVERFLOW_LOOKBACK).unwrap_or_default();
        let soql = format!(
            "SELECT {fields} FROM {entity} WHERE {} ORDER BY SystemModstamp",
            window_condition(from, commit)
        );
        let fetched = self.query_all(soql, self.options.max_records).await?;
        if fetched.truncated {
            tracing::warn!(%entity, max = self.options.max_records, "an overflow event's records were cut at the bound");
        }
        Ok(fetched)
    }
}
