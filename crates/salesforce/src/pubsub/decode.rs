//! An event's payload to JSON: its schema (cached by id), Avro decoding
//! straight to JSON text, and Change Data Capture bitmaps expanded to field
//! names.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use sfstream_pubsub::avro::CodecError;
use sfstream_pubsub::proto::ConsumerEvent;

use super::connect::Connection;
use super::error::PubSubError;
use super::payload::Payload;
use super::schema::Schemas;

pub(crate) struct Decoded {
    pub(crate) schema_id: String,
    pub(crate) event_id: String,
    pub(crate) payload: Payload,
    /// See [`PubSubMessage::created`](super::PubSubMessage::created).
    pub(crate) created: Option<DateTime<Utc>>,
}

/// `json_len`: the JSON length of the topic's previous event, to size the
/// next one's text at once (updated here).
pub(crate) async fn decode_event(
    connection: &Connection,
    schemas: &Schemas,
    topic: &str,
    event: ConsumerEvent,
    json_len: &AtomicUsize,
) -> Result<Decoded, PubSubError> {
    let producer = event.event.unwrap_or_default();
    let schema = schemas.get(connection, topic, &producer.schema_id).await?;
    let codec = |error| PubSubError::Codec {
        topic: topic.to_string(),
        schema_id: producer.schema_id.clone(),
        error,
    };
    let hint = json_len.load(Ordering::Relaxed);
    let mut json = Vec::with_capacity(hint.max(producer.payload.len() * 4) + 64);
    let created = sfstream_pubsub::avro::decode_event_json(&schema, &producer.payload, &mut json)
        .map_err(codec)?;
    json_len.store(json.len(), Ordering::Relaxed);
    // The decoder writes UTF-8 only: this does not fail.
    let json = String::from_utf8(json).map_err(|e| {
        codec(CodecError::Decode {
            path: String::new(),
            offset: 0,
            reason: e.to_string(),
        })
    })?;
    Ok(Decoded {
        schema_id: producer.schema_id,
        event_id: producer.id,
        payload: Payload::decoded(json, schema, producer.payload),
        created: created.and_then(DateTime::from_timestamp_millis),
    })
}
