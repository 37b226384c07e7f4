//! The CometD stream's side of [`recovery`](crate::recovery): the REST
//! reads it runs between two items (a gap event's records, a backfill).

use std::sync::Arc;

use super::client::StreamMessage;
use crate::recovery::{Recovery, is_gap_event};
use crate::replay::Gap;

/// The backfill of `gap`, as stream items.
pub(super) async fn backfill(recovery: Arc<Recovery>, gap: Gap) -> Vec<StreamMessage> {
    let data = recovery.backfill(&gap).await;
    data.iter()
        .map(|d| StreamMessage::of_backfill(&gap, d))
        .collect()
}

/// The data of a change event that is a gap event, parsed.
pub(super) fn gap_event_data(message: &StreamMessage) -> Option<serde_json::Value> {
    if !message.channel.starts_with("/data/") || !message.data.get().contains("\"GAP_") {
        return None;
    }
    let data: serde_json::Value = serde_json::from_str(message.data.get()).ok()?;
    is_gap_event(&data["payload"]).then_some(data)
}

/// The gap event `message` with its records fetched into its payload.
pub(super) async fn fetch_gap(
    recovery: Arc<Recovery>,
    mut message: StreamMessage,
    mut data: serde_json::Value,
) -> Vec<StreamMessage> {
    recovery.fetch_gap(&mut data["payload"]).await;
    if let Ok(raw) = serde_json::value::to_raw_value(&data) {
        message.data = raw;
    }
    vec![message]
}
