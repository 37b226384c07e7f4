//! An event's payload to JSON: its schema (cached by id), Avro decoding,
//! and Change Data Capture bitmaps expanded to field names.

use serde_json::Value;
use sfstream_pubsub::proto::ConsumerEvent;

use super::connect::Connection;
use super::error::PubSubError;
use super::schema::Schemas;

pub(crate) struct Decoded {
    pub(crate) schema_id: String,
    pub(crate) event_id: String,
    pub(crate) payload: Value,
}

pub(crate) async fn decode_event(
    connection: &Connection,
    schemas: &Schemas,
    topic: &str,
    event: ConsumerEvent,
) -> Result<Decoded, PubSubError> {
    let producer = event.event.unwrap_or_default();
    let schema = schemas.get(connection, topic, &producer.schema_id).await?;
    let codec = |error| PubSubError::Codec {
        topic: topic.to_string(),
        schema_id: producer.schema_id.clone(),
        error,
    };
    let mut payload = sfstream_pubsub::avro::decode(&schema, &producer.payload).map_err(codec)?;
    // A no-op for events without a ChangeEventHeader.
    sfstream_pubsub::bitmap::expand_change_event(&schema, &mut payload).map_err(codec)?;
    Ok(Decoded {
        schema_id: producer.schema_id,
        event_id: producer.id,
        payload,
    })
}
