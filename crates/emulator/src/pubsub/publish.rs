//! Publishing platform events over Pub/Sub: each event's Avro payload is
//! decoded with the topic's schema and published as a REST insert of the
//! event would be, so CometD and Pub/Sub subscribers both receive it.

use std::sync::atomic::Ordering;

use sfstream_pubsub::proto::{Error, ErrorCode, PublishRequest, PublishResponse, PublishResult};
use tonic::{Code, Status};

use super::auth::{self, Caller};
use super::schema::{self, EventKind};
use super::{codec, payload, replay_bytes};
use crate::org::Org;

/// The most events in one publish request.
pub const MAX_EVENTS: usize = 200;
/// The largest event payload.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Publishes the events of one request; results in request order.
pub fn publish(
    org: &Org,
    caller: &Caller,
    request: PublishRequest,
) -> Result<PublishResponse, Status> {
    let rpc_id = &caller.rpc_id;
    let topic = request.topic_name.as_str();
    let sobject = {
        let store = org.store.lock();
        if !schema::topic_exists(&store, topic) {
            return Err(auth::topic_not_found(topic, rpc_id));
        }
        schema::sobject_of_topic(&store, topic).and_then(schema::of_sobject)
    };
    let Some(event_schema) = sobject.filter(|s| s.kind == EventKind::PlatformEvent) else {
        return Err(auth::status(
            Code::PermissionDenied,
            &format!(
                "Publishing to {topic} is not allowed: only platform event topics accept events."
            ),
            auth::PUBLISH_NOT_ALLOWED,
            rpc_id,
        ));
    };
    if request.events.len() > MAX_EVENTS {
        return Err(auth::invalid(
            &format!("A publish request holds at most {MAX_EVENTS} events."),
            rpc_id,
        ));
    }
    let registered = org
        .pubsub
        .register(event_schema)
        .map_err(|e| Status::internal(format!("schema: {e}")))?;
    let sobject_name = registered.schema.name.clone();
    let results = request
        .events
        .into_iter()
        .map(|event| {
            let failed = |msg: String| PublishResult {
                replay_id: Vec::new(),
                error: Some(Error {
                    code: ErrorCode::Publish as i32,
                    msg,
                }),
                correlation_key: event.id.clone(),
            };
            if event.payload.len() > MAX_EVENT_BYTES {
                return failed(format!("The event is larger than {MAX_EVENT_BYTES} bytes."));
            }
            if !event.schema_id.is_empty() && event.schema_id != registered.schema.id {
                return failed(format!(
                    "The schema id {} is not the topic's current schema {}.",
                    event.schema_id, registered.schema.id
                ));
            }
            let decoded = match codec::decode(&registered.parsed, &event.payload) {
                Ok(decoded) => decoded,
                Err(e) => return failed(format!("The payload does not match the schema: {e}")),
            };
            let fields = payload::platform_fields(&registered.schema, &decoded);
            match org.publish_event(&sobject_name, fields, &caller.user_id) {
                Ok(replay_id) => {
                    org.pubsub
                        .stats
                        .events_published
                        .fetch_add(1, Ordering::Relaxed);
                    PublishResult {
                        replay_id: replay_bytes(replay_id),
                        error: None,
                        correlation_key: event.id.clone(),
                    }
                }
                Err(e) => failed(e.to_string()),
            }
        })
        .collect();
    Ok(PublishResponse {
        results,
        schema_id: registered.schema.id.clone(),
        rpc_id: rpc_id.clone(),
    })
}
