//! Recovering what a stream could not deliver, from the REST API: the
//! records behind Change Data Capture gap events ([`Recovery::fetch_gap`])
//! and the records changed while a stored replay id had expired
//! ([`Recovery::backfill`]). One implementation for both transports: the
//! CometD and Pub/Sub clients call it when their builders'
//! `fetch_gap_records` or `backfill` options are on.
//!
//! Both read with `queryAll` (deleted records are seen, `IsDeleted`
//! true), by `Id` for gap events and by `SystemModstamp` for windows, and
//! both are bounded ([`DEFAULT_BACKFILL_MAX_RECORDS`]).

mod backfill;
mod gap_events;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::Value;

pub use gap_events::{GAP_CHANGE_TYPES, is_gap_event};

use crate::rest::{RestError, SalesforceClient};

/// Most records one backfill (or one overflow event's fetch) delivers;
/// past it the rest is left out and a warning says so.
pub const DEFAULT_BACKFILL_MAX_RECORDS: usize = 10_000;

/// How far before an overflow event's `commitTimestamp` its records are
/// looked for: the transaction that overflowed ran before it committed.
pub const OVERFLOW_LOOKBACK: Duration = Duration::from_secs(10 * 60);

/// Most ids in one `WHERE Id IN (…)` query.
const IDS_PER_QUERY: usize = 200;

/// What a client recovers from the REST API, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryOptions {
    /// Fetch the records of CDC gap events.
    pub fetch_gap_records: bool,
    /// Backfill the window of a [`Gap`](crate::replay::Gap).
    pub backfill: bool,
    /// Most records one backfill (or overflow fetch) delivers.
    pub max_records: usize,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        Self {
            fetch_gap_records: false,
            backfill: false,
            max_records: DEFAULT_BACKFILL_MAX_RECORDS,
        }
    }
}

impl RecoveryOptions {
    /// Whether anything is to be recovered.
    pub fn any(&self) -> bool {
        self.fetch_gap_records || self.backfill
    }
}

/// The REST reads of recovery, sharing the stream's login.
#[derive(Debug)]
pub struct Recovery {
    rest: SalesforceClient,
    options: RecoveryOptions,
    /// Field names by sobject, from its describe (read once).
    fields: Mutex<HashMap<String, Vec<String>>>,
}

/// Records read for a window, and whether the bound cut them short.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub records: Vec<serde_json::Map<String, Value>>,
    pub truncated: bool,
}

impl Recovery {
    /// Recovery through `rest` with `options`.
    pub fn new(rest: SalesforceClient, options: RecoveryOptions) -> Self {
        Self {
            rest,
            options,
            fields: Mutex::new(HashMap::new()),
        }
    }

    /// The options.
    pub fn options(&self) -> RecoveryOptions {
        self.options
    }

    /// The field names of `sobject` (its describe, cached).
    async fn field_names(&self, sobject: &str) -> Result<Vec<String>, RestError> {
        if let Some(fields) = self.fields.lock().get(sobject) {
            return Ok(fields.clone());
        }
        let fields = self.rest.field_names(sobject).await?;
        self.fields
            .lock()
            .insert(sobject.to_string(), fields.clone());
        Ok(fields)
    }

    /// Every record of `soql` (through `queryAll`), page by page, up to
    /// `max`.
    async fn query_all(&self, soql: String, max: usize) -> Result<Fetched, RestError> {
        let mut fetched = Fetched::default();
        let mut records = self.rest.query_all(soql);
        while let Some(record) = records.next().await {
            if fetched.records.len() >= max {
                fetched.truncated = true;
                break;
            }
            let mut record = record?;
            record.remove("attributes");
            fetched.records.push(record);
        }
        Ok(fetched)
    }
}

/// A SOQL datetime literal, whole seconds: `floor` rounds down, else up
/// (a window read in whole seconds never loses its edges).
pub(crate) fn soql_time(at: DateTime<Utc>, floor: bool) -> String {
    let whole = DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at);
    let at = if floor || whole == at {
        whole
    } else {
        whole + chrono::Duration::seconds(1)
    };
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The `SystemModstamp` condition of a window.
pub(crate) fn window_condition(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!(
        "SystemModstamp >= {} AND SystemModstamp <= {}",
        soql_time(from, true),
        soql_time(to, false)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_round_outwards() {
        let at = DateTime::parse_from_rfc3339("2026-11-30T10:00:00.250Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(soql_time(at, true), "2026-11-30T10:00:00Z");
        assert_eq!(soql_time(at, false), "2026-11-30T10:00:01Z");
        let whole = DateTime::from_timestamp(at.timestamp(), 0).expect("time");
        assert_eq!(soql_time(whole, false), "2026-11-30T10:00:00Z");
    }
}
