//! [`PubSubMessage`] and [`PubSubMessages`]: the decoded events of every
//! subscription, in order per topic, with `ack()`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures::Stream;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::commit::Commit;
use super::error::PubSubError;
use super::payload::Payload;
use crate::replay::{Gap, OpaqueMarker};
use crate::streaming::Delivery;

/// What a subscription shares with the stream and its messages.
#[derive(Debug, Default)]
pub(crate) struct TopicShared {
    /// Items handed to the consumer (flow control tops up from this).
    pub(crate) taken: AtomicU64,
    /// Messages handed out and not yet acknowledged (Acknowledged mode).
    pub(crate) unacked: AtomicU64,
    /// Wakes the subscription when the consumer takes or acknowledges.
    pub(crate) notify: Notify,
    /// The topic's local sequence: the order its events arrived in.
    pub(crate) seq: AtomicU64,
    /// When the newest delivered event was created, if known (the start
    /// of a gap, should its replay id expire).
    pub(crate) last_created: parking_lot::Mutex<Option<DateTime<Utc>>>,
}

impl TopicShared {
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// Where an acknowledgement goes.
#[derive(Debug, Clone)]
pub(crate) enum AckTo {
    /// The replay store, through the commit loop.
    Store(mpsc::UnboundedSender<Commit>),
    /// The managed subscription's stream (CommitReplayRequest).
    Managed(mpsc::UnboundedSender<(u64, Vec<u8>)>),
}

/// An item of a subscription, and its topic's shared state.
pub(crate) type Item = (Arc<TopicShared>, Result<PubSubMessage, PubSubError>);

/// One event.
#[derive(Debug)]
pub struct PubSubMessage {
    /// The topic (or, for a managed subscription, its topic name).
    pub topic: String,
    /// The schema id of the payload.
    pub schema_id: String,
    /// The event's id (`ProducerEvent.id`).
    pub event_id: String,
    /// The payload decoded to JSON; Change Data Capture bitmaps
    /// (`changedFields`, `nulledFields`, `diffFields`) are field names.
    /// JSON text, with the [`Value`] built when first used ([`Payload`]
    /// derefs to it).
    pub payload: Payload,
    /// The replay id, as Salesforce sent it.
    pub replay_id: Vec<u8>,
    /// When the event was created: a change event's
    /// `ChangeEventHeader.commitTimestamp`, else a platform event's
    /// `CreatedDate` (both epoch milliseconds). Stored with its marker, so
    /// the marker's age against retention is known.
    pub created: Option<DateTime<Utc>>,
    /// Set when this item is not an event but a [`Gap`]: a stored replay
    /// id was refused and the topic fell back, so the events of this
    /// window may be missed. The other fields are then empty,
    /// [`line_data`](Self::line_data) is the gap as JSON (`{"gap": {…}}`)
    /// and [`ack`](Self::ack) does nothing.
    pub gap: Option<Gap>,
    /// Set when this item was not streamed but read from the REST API to
    /// fill a [`Gap`] (the builder's
    /// [`backfill`](super::PubSubClientBuilder::backfill)): `payload` is
    /// the record as a change event (see
    /// [`Recovery::backfill`](crate::recovery::Recovery::backfill)), the
    /// line data carries `"backfilled": true`, there is no replay id and
    /// [`ack`](Self::ack) does nothing.
    pub backfilled: bool,
    pub(crate) key: Arc<str>,
    pub(crate) seq: u64,
    pub(crate) ack_to: Option<AckTo>,
    pub(crate) shared: Option<Arc<TopicShared>>,
    pub(crate) acked: AtomicBool,
}

impl PubSubMessage {
    /// The stream item of a gap of `key`.
    pub(crate) fn of_gap(key: Arc<str>, gap: Gap) -> Self {
        PubSubMessage {
            topic: gap.channel.clone(),
            schema_id: String::new(),
            event_id: String::new(),
            payload: Payload::default(),
            replay_id: Vec::new(),
            created: None,
            gap: Some(gap),
            backfilled: false,
            key,
            seq: 0,
            ack_to: None,
            shared: None,
            acked: AtomicBool::new(true),
        }
    }

    /// A backfilled record of topic `key`, as a change event `payload`.
    pub(crate) fn of_backfill(key: Arc<str>, payload: Value) -> Self {
        PubSubMessage {
            topic: key.to_string(),
            schema_id: String::new(),
            event_id: String::new(),
            payload: Payload::from(payload),
            replay_id: Vec::new(),
            created: None,
            gap: None,
            backfilled: true,
            key,
            seq: 0,
            ack_to: None,
            shared: None,
            acked: AtomicBool::new(true),
        }
    }

    /// The replay id as text (base64).
    pub fn replay_id_text(&self) -> String {
        sfstream_pubsub::replay_id::to_text(&self.replay_id)
    }

    /// The line the CLI prints for this event:
    /// `{"schema": <schema id>, "payload": {…}, "event": {"replayId": "<base64>"}}`.
    ///
    /// For a [gap](Self::gap): `{"gap": {…}}` ([`Gap::to_json`]); a
    /// [backfilled](Self::backfilled) record adds `"backfilled": true`.
    pub fn line_data(&self) -> Value {
        if let Some(gap) = &self.gap {
            return gap.to_json();
        }
        let mut line = json!({
            "schema": self.schema_id,
            "payload": self.payload.value(),
            "event": {"replayId": self.replay_id_text()},
        });
        if self.backfilled {
            line["backfilled"] = json!(true);
        }
        line
    }

    /// [`PubSubMessage::line_data`] as JSON text, written from the
    /// payload's text (no value is built).
    pub fn line_json(&self) -> Result<Box<RawValue>, serde_json::Error> {
        let mut line = Vec::with_capacity(self.payload.json().len() + 96);
        self.write_line_data(&mut line)?;
        // The text is valid JSON; RawValue checks it again.
        RawValue::from_string(String::from_utf8(line).map_err(serde::ser::Error::custom)?)
    }

    /// Appends [`PubSubMessage::line_data`] as compact JSON text to `out`
    /// (byte for byte `line_data().to_string()`), without building a value
    /// or an intermediate string.
    pub fn write_line_data(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        if let Some(gap) = &self.gap {
            return serde_json::to_writer(out, &gap.to_json());
        }
        out.extend_from_slice(b"{\"schema\":");
        serde_json::to_writer(&mut *out, &self.schema_id)?;
        out.extend_from_slice(b",\"payload\":");
        out.extend_from_slice(self.payload.json().as_bytes());
        out.extend_from_slice(b",\"event\":{\"replayId\":\"");
        sfstream_pubsub::replay_id::write_text(&self.replay_id, out);
        out.extend_from_slice(b"\"}");
        if self.backfilled {
            out.extend_from_slice(b",\"backfilled\":true");
        }
        out.push(b'}');
        Ok(())
    }

    /// Commits this event's replay id (in [`Delivery::Acknowledged`] mode;
    /// a no-op otherwise, and after the first call): to the replay store,
    /// or to the server for a managed subscription. Markers are kept in
    /// stream order: acknowledging out of order never moves the stored
    /// marker backwards.
    pub fn ack(&self) {
        if self.acked.swap(true, Ordering::AcqRel) {
            return;
        }
        self.commit();
        if let Some(shared) = &self.shared {
            shared.unacked.fetch_sub(1, Ordering::AcqRel);
            shared.notify.notify_one();
        }
    }

    fn commit(&self) {
        match &self.ack_to {
            Some(AckTo::Store(commits)) => {
                let _ = commits.send(Commit::Mark {
                    topic: self.key.clone(),
                    seq: self.seq,
                    marker: Some(OpaqueMarker::new(self.replay_id.clone(), self.created)),
                });
            }
            Some(AckTo::Managed(commits)) => {
                let _ = commits.send((self.seq, self.replay_id.clone()));
            }
            None => {}
        }
    }
}

/// The events of every subscription of a client, in order per topic. A
/// subscription that fails for good yields its error and ends; the others
/// go on. An event that cannot be decoded (or whose schema is unknown)
/// yields [`PubSubError::Codec`] (or the schema's error) in its place, and
/// its subscription goes on. Memory is bounded: each subscription asks the server for no
/// more than `max_pending` events minus those waiting here.
#[derive(Debug)]
pub struct PubSubMessages {
    pub(crate) rx: mpsc::UnboundedReceiver<Item>,
    pub(crate) delivery: Delivery,
}

impl PubSubMessages {
    /// Items received and not yet taken (all subscriptions).
    pub fn pending_count(&self) -> usize {
        self.rx.len()
    }

    fn hand_out(&self, shared: Arc<TopicShared>, item: &mut Result<PubSubMessage, PubSubError>) {
        if matches!(item, Ok(message) if message.gap.is_some() || message.backfilled) {
            // Not an event the server sent: flow control does not count it.
            return;
        }
        shared.taken.fetch_add(1, Ordering::AcqRel);
        if let Ok(message) = item {
            match self.delivery {
                Delivery::Automatic => {
                    message.acked.store(true, Ordering::Release);
                    message.commit();
                }
                Delivery::Acknowledged => {
                    shared.unacked.fetch_add(1, Ordering::AcqRel);
                    message.shared = Some(shared.clone());
                }
            }
        }
        shared.notify.notify_one();
    }
}

impl Stream for PubSubMessages {
    type Item = Result<PubSubMessage, PubSubError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some((shared, mut item))) => {
                self.hand_out(shared, &mut item);
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_json_is_line_data_as_text() {
        let message = PubSubMessage {
            topic: "/data/ContactChangeEvent".into(),
            schema_id: "abc".into(),
            event_id: "e1".into(),
            payload: Payload::from(
                json!({"Name": "Ada \"A\"", "ChangeEventHeader": {"changedFields": ["Name"]}, "Age": null}),
            ),
            replay_id: vec![0, 0, 0, 0, 0, 0, 0, 7, 0, 0],
            created: None,
            gap: None,
            backfilled: false,
            key: Arc::from("k"),
            seq: 1,
            ack_to: None,
            shared: None,
            acked: AtomicBool::new(false),
        };
        let text = message.line_json().expect("serialises");
        assert_eq!(text.get(), message.line_data().to_string());
        assert!(
            text.get()
                .starts_with(r#"{"schema":"abc","payload":{"Name":"#)
        );
        // A backfilled record's line says so, on the text path too.
        let backfilled = PubSubMessage::of_backfill(Arc::from("k"), json!({"Name": "Grace"}));
        let text = backfilled.line_json().expect("serialises");
        assert_eq!(text.get(), backfilled.line_data().to_string());
        assert!(
            text.get().ends_with(r#","backfilled":true}"#),
            "{}",
            text.get()
        );
    }
}
