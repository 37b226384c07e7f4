//! Schemas by id: fetched with GetSchema once, kept for the client's life
//! (a topic's schema may change mid-stream: an event with a new id fetches
//! it then).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use sfstream_pubsub::avro::{Schema, parse_schema};
use sfstream_pubsub::proto::{SchemaRequest, TopicInfo, TopicRequest};

use super::connect::Connection;
use super::error::PubSubError;

/// Parsed schemas by schema id.
#[derive(Default)]
pub(crate) struct Schemas {
    by_id: Mutex<HashMap<String, Arc<Schema>>>,
    /// One fetch at a time, so a burst of events with a new id asks once.
    fetching: tokio::sync::Mutex<()>,
}

impl Schemas {
    /// The schema `schema_id`, fetched when not known yet.
    pub(crate) async fn get(
        &self,
        connection: &Connection,
        topic: &str,
        schema_id: &str,
    ) -> Result<Arc<Schema>, PubSubError> {
        if let Some(schema) = self.by_id.lock().get(schema_id) {
            return Ok(schema.clone());
        }
        let _one = self.fetching.lock().await;
        if let Some(schema) = self.by_id.lock().get(schema_id) {
            return Ok(schema.clone());
        }
        let info = get_schema(connection, schema_id).await?;
        let schema = parse_schema(&info).map_err(|error| PubSubError::Codec {
            topic: topic.to_string(),
            schema_id: schema_id.to_string(),
            error,
        })?;
        let schema = Arc::new(schema);
        self.by_id
            .lock()
            .insert(schema_id.to_string(), schema.clone());
        Ok(schema)
    }
}

/// GetSchema: the schema's JSON text.
pub(crate) async fn get_schema(
    connection: &Connection,
    schema_id: &str,
) -> Result<String, PubSubError> {
    let request = SchemaRequest {
        schema_id: schema_id.to_string(),
    };
    let info = connection
        .unary(
            &format!("GetSchema {schema_id}"),
            request,
            |mut c, r| async move { c.get_schema(r).await },
        )
        .await?;
    Ok(info.schema_json)
}

/// GetTopic.
pub(crate) async fn get_topic(
    connection: &Connection,
    topic: &str,
) -> Result<TopicInfo, PubSubError> {
    let request = TopicRequest {
        topic_name: topic.to_string(),
    };
    connection
        .unary(
            &format!("GetTopic {topic}"),
            request,
            |mut c, r| async move { c.get_topic(r).await },
        )
        .await
}
