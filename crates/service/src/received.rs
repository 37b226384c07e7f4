//! [`Received`]: an event from either transport, as the dispatcher and the
//! handlers see it. Handlers read the same `data` shape from both: CometD's
//! `{"schema", "payload", "event": {"replayId": N}}` of change and platform
//! events, and the Pub/Sub API's `{"schema", "payload", "event":
//! {"replayId": "<base64>"}}`.

use serde_json::value::RawValue;
use sfstream_salesforce::StreamMessage;
use sfstream_salesforce::pubsub::PubSubMessage;

/// One event taken from a streaming client.
#[derive(Debug)]
pub(crate) enum Received {
    /// From the CometD client.
    CometD(StreamMessage),
    /// From the Pub/Sub client, with its line data.
    PubSub {
        message: PubSubMessage,
        data: Box<RawValue>,
    },
    /// From a work queue (cluster mode): an event another replica (or this
    /// one) streamed. RabbitMQ holds it until the handler is done; the
    /// marker moved when RabbitMQ confirmed it.
    Queued(Queued),
}

/// An event as it crossed a work queue.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) channel: String,
    pub(crate) subscription: String,
    pub(crate) data: Box<RawValue>,
    /// The replay id as text, and whether it is a CometD number.
    pub(crate) replay: Option<String>,
    pub(crate) cometd: bool,
    pub(crate) created: Option<chrono::DateTime<chrono::Utc>>,
}

impl Received {
    /// A Pub/Sub event, with its data as handlers read it.
    pub(crate) fn pubsub(message: PubSubMessage) -> serde_json::Result<Self> {
        // Written from the payload's JSON text: no value is built.
        let data = message.line_json()?;
        Ok(Received::PubSub { message, data })
    }

    /// The channel (topic) it arrived on.
    pub(crate) fn channel(&self) -> &str {
        match self {
            Received::CometD(message) => &message.channel,
            Received::PubSub { message, .. } => &message.topic,
            Received::Queued(queued) => &queued.channel,
        }
    }

    /// The subscription it belongs to (a topic's filter included, on CometD).
    pub(crate) fn subscription(&self) -> &str {
        match self {
            Received::CometD(message) => &message.subscription,
            Received::PubSub { message, .. } => &message.topic,
            Received::Queued(queued) => &queued.subscription,
        }
    }

    /// Its data.
    pub(crate) fn data(&self) -> &RawValue {
        match self {
            Received::CometD(message) => &message.data,
            Received::PubSub { data, .. } => data,
            Received::Queued(queued) => &queued.data,
        }
    }

    /// Its data as a typed payload.
    pub(crate) fn data_as<'a, T: serde::Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        serde_json::from_str(self.data().get())
    }

    /// A CometD replay id.
    pub(crate) fn replay_id(&self) -> Option<i64> {
        match self {
            Received::CometD(message) => message.replay_id(),
            Received::PubSub { .. } => None,
            Received::Queued(queued) if queued.cometd => {
                queued.replay.as_deref().and_then(|r| r.parse().ok())
            }
            Received::Queued(_) => None,
        }
    }

    /// The replay id as text: the number on CometD, base64 on Pub/Sub.
    pub(crate) fn replay_text(&self) -> Option<String> {
        match self {
            Received::CometD(message) => message.replay_id().map(|id| id.to_string()),
            Received::PubSub { message, .. } => Some(message.replay_id_text()),
            Received::Queued(queued) => queued.replay.clone(),
        }
    }

    /// The gap this item reports instead of an event, if it is one.
    pub(crate) fn gap(&self) -> Option<&sfstream_salesforce::replay::Gap> {
        match self {
            Received::CometD(message) => message.gap.as_ref(),
            Received::PubSub { message, .. } => message.gap.as_ref(),
            Received::Queued(_) => None,
        }
    }

    /// When the event was created, if known.
    pub(crate) fn created(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Received::CometD(message) => message.marker.and_then(|m| m.created),
            Received::PubSub { message, .. } => message.created,
            Received::Queued(queued) => queued.created,
        }
    }

    /// Whether it came over CometD (its replay id is a number).
    pub(crate) fn is_cometd(&self) -> bool {
        match self {
            Received::CometD(_) => true,
            Received::PubSub { .. } => false,
            Received::Queued(queued) => queued.cometd,
        }
    }

    /// Commits its marker (acknowledged delivery).
    pub(crate) fn ack(&self) {
        match self {
            Received::CometD(message) => message.ack(),
            Received::PubSub { message, .. } => message.ack(),
            // The work consumer acks it to RabbitMQ.
            Received::Queued(_) => {}
        }
    }
}
