//! Publish and PublishStream: JSON events encoded with the topic's schema,
//! results in request order, errors per event.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::Value;
use sfstream_pubsub::proto::{ProducerEvent, PublishRequest, PublishResponse};
use tokio::sync::{mpsc, oneshot};

use super::connect::Connection;
use super::error::PubSubError;
use super::schema::{Schemas, get_topic};

/// Salesforce's limit of events per publish request.
const MAX_EVENTS_PER_REQUEST: usize = 200;

/// The outcome of publishing one event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Published {
    /// Published, with the replay id it got.
    Ok {
        /// The replay id.
        replay_id: Vec<u8>,
    },
    /// Refused (by the codec before sending, or by Salesforce).
    Failed {
        /// Why.
        error: String,
    },
}

/// Encodes `events` with the topic's current schema: per event, its
/// `ProducerEvent` or why it cannot be encoded.
pub(crate) async fn encode_events(
    connection: &Connection,
    schemas: &Schemas,
    topic: &str,
    events: &[Value],
) -> Result<(String, Vec<Result<ProducerEvent, String>>), PubSubError> {
    let info = get_topic(connection, topic).await?;
    if !info.can_publish {
        return Err(PubSubError::NotPermitted {
            topic: topic.to_string(),
            what: "published to",
        });
    }
    let schema = schemas.get(connection, topic, &info.schema_id).await?;
    let encoded = events
        .iter()
        .map(|event| {
            sfstream_pubsub::avro::encode(&schema, event)
                .map(|payload| ProducerEvent {
                    id: uuid::Uuid::new_v4().to_string(),
                    schema_id: info.schema_id.clone(),
                    payload,
                    headers: Vec::new(),
                })
                .map_err(|e| e.to_string())
        })
        .collect();
    Ok((info.schema_id, encoded))
}

/// Matches a response's results to the sent events (by correlation key,
/// which is the event id), in request order.
pub(crate) fn collect(
    encoded: Vec<Result<ProducerEvent, String>>,
    responses: &[PublishResponse],
) -> Vec<Published> {
    let mut by_key = std::collections::HashMap::new();
    for result in responses.iter().flat_map(|r| &r.results) {
        let outcome = match &result.error {
            Some(error) => Published::Failed {
                error: format!("{:?}: {}", error.code(), error.msg),
            },
            None => Published::Ok {
                replay_id: result.replay_id.clone(),
            },
        };
        by_key.insert(result.correlation_key.clone(), outcome);
    }
    encoded
        .into_iter()
        .map(|event| match event {
            Ok(event) => by_key.remove(&event.id).unwrap_or(Published::Failed {
                error: "Salesforce returned no result for this event".into(),
            }),
            Err(error) => Published::Failed { error },
        })
        .collect()
}

/// Publishes `events` to `topic` with unary Publish calls of at most 200.
pub(crate) async fn publish(
    connection: &Connection,
    schemas: &Schemas,
    topic: &str,
    events: &[Value],
) -> Result<Vec<Published>, PubSubError> {
    let (_, encoded) = encode_events(connection, schemas, topic, events).await?;
    let ready: Vec<ProducerEvent> = encoded
        .iter()
        .filter_map(|e| e.as_ref().ok())
        .cloned()
        .collect();
    let mut responses = Vec::new();
    for chunk in ready.chunks(MAX_EVENTS_PER_REQUEST) {
        let request = PublishRequest {
            topic_name: topic.to_string(),
            events: chunk.to_vec(),
            ..Default::default()
        };
        let response = connection
            .unary(
                &format!("Publish {topic}"),
                request,
                |mut c, r| async move { c.publish(r).await },
            )
            .await?;
        responses.push(response);
    }
    Ok(collect(encoded, &responses))
}

type Waiting = oneshot::Sender<Result<PublishResponse, PubSubError>>;

/// A PublishStream to one topic: batches sent on one open stream, each
/// answered in order.
#[derive(Debug, Clone)]
pub struct Publisher {
    pub(crate) topic: String,
    pub(crate) connection: Arc<Connection>,
    pub(crate) schemas: Arc<Schemas>,
    pub(crate) requests: mpsc::Sender<(PublishRequest, Waiting)>,
}

impl Publisher {
    /// Opens the stream.
    pub(crate) async fn open(
        connection: Arc<Connection>,
        schemas: Arc<Schemas>,
        topic: &str,
    ) -> Result<Self, PubSubError> {
        let auth = connection.auth().await?;
        let (requests, mut request_rx) = mpsc::channel::<(PublishRequest, Waiting)>(16);
        let (out_tx, out_rx) = mpsc::channel::<PublishRequest>(16);
        let outbound =
            futures::stream::unfold(
                out_rx,
                |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
            );
        let mut client = connection.client();
        let call = client.publish_stream(auth.request(outbound));
        let name = format!("PublishStream {topic}");
        let mut inbound = match tokio::time::timeout(connection.rpc_timeout, call).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => return Err(PubSubError::rpc(name, &status)),
            Err(_) => {
                return Err(PubSubError::Timeout {
                    what: name,
                    timeout: connection.rpc_timeout,
                });
            }
        };
        tokio::spawn(async move {
            let mut waiting: VecDeque<Waiting> = VecDeque::new();
            loop {
                tokio::select! {
                    next = request_rx.recv(), if waiting.len() < 16 => match next {
                        Some((request, reply)) => {
                            if out_tx.send(request).await.is_err() {
                                let _ = reply.send(Err(PubSubError::Closed));
                                break;
                            }
                            waiting.push_back(reply);
                        }
                        None => break,
                    },
                    response = inbound.message(), if !waiting.is_empty() => {
                        let answer = match response {
                            Ok(Some(response)) => Ok(response),
                            Ok(None) => Err(PubSubError::Closed),
                            Err(status) => Err(PubSubError::rpc(&name, &status)),
                        };
                        let failed = answer.is_err();
                        if let Some(reply) = waiting.pop_front() {
                            let _ = reply.send(answer.clone());
                        }
                        if failed {
                            for reply in waiting.drain(..) {
                                let _ = reply.send(answer.clone());
                            }
                            break;
                        }
                    }
                }
            }
        });
        Ok(Self {
            topic: topic.to_string(),
            connection,
            schemas,
            requests,
        })
    }

    /// Publishes `events` (at most 200) on the stream; results in order.
    pub async fn publish(&self, events: &[Value]) -> Result<Vec<Published>, PubSubError> {
        let (_, encoded) =
            encode_events(&self.connection, &self.schemas, &self.topic, events).await?;
        let ready: Vec<ProducerEvent> = encoded
            .iter()
            .filter_map(|e| e.as_ref().ok())
            .cloned()
            .collect();
        let mut responses = Vec::new();
        for chunk in ready.chunks(MAX_EVENTS_PER_REQUEST) {
            let (reply, answer) = oneshot::channel();
            let request = PublishRequest {
                topic_name: self.topic.clone(),
                events: chunk.to_vec(),
                ..Default::default()
            };
            let timeout = self.connection.rpc_timeout;
            let sent = tokio::time::timeout(timeout, self.requests.send((request, reply))).await;
            if !matches!(sent, Ok(Ok(()))) {
                return Err(PubSubError::Closed);
            }
            let response = tokio::time::timeout(timeout, answer)
                .await
                .map_err(|_| PubSubError::Timeout {
                    what: format!("PublishStream {}", self.topic),
                    timeout,
                })?
                .map_err(|_| PubSubError::Closed)??;
            responses.push(response);
        }
        Ok(collect(encoded, &responses))
    }
}
