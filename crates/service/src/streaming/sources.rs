//! The streaming clients a service runs (CometD, Pub/Sub, or both) and
//! their events as one stream.

use futures::stream::{BoxStream, StreamExt};
use sfstream_salesforce::pubsub::{PubSubClient, PubSubError, PubSubMessages};
use sfstream_salesforce::{StreamMessages, StreamingClient, StreamingError};

use crate::received::Received;

/// The clients, for flushing and closing at the end.
#[derive(Default, Clone)]
pub(super) struct Clients {
    pub(super) cometd: Option<StreamingClient>,
    pub(super) pubsub: Option<PubSubClient>,
}

impl Clients {
    /// Commits what was acknowledged (each client's flush is bounded).
    pub(super) async fn flush(&self) {
        if let Some(client) = &self.cometd {
            client.flush().await;
        }
        if let Some(client) = &self.pubsub {
            client.flush().await;
        }
    }

    /// Ends both sessions.
    pub(super) async fn close(&self) {
        if let Some(client) = &self.cometd {
            client.close().await;
        }
        if let Some(client) = &self.pubsub {
            client.close().await;
        }
    }
}

/// An error of either client's stream.
#[derive(Debug)]
pub(super) enum SourceError {
    CometD(StreamingError),
    PubSub(PubSubError),
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceError::CometD(e) => e.fmt(f),
            SourceError::PubSub(e) => e.fmt(f),
        }
    }
}

impl SourceError {
    /// Whether this is one subscription given up (its channel's state says
    /// so; the others keep running), and which channel.
    pub(super) fn failed_channel(&self) -> Option<Option<&str>> {
        match self {
            SourceError::CometD(
                StreamingError::ReplayIdExpired { .. }
                | StreamingError::Bayeux(sfstream_bayeux::Error::SubscriptionFailed { .. }),
            ) => Some(None),
            SourceError::PubSub(
                PubSubError::ReplayIdInvalid { topic, .. } | PubSubError::GaveUp { topic, .. },
            ) => Some(Some(topic)),
            _ => None,
        }
    }
}

/// One stream of both clients' events. It ends when either ends: a client
/// whose session is over ends the service, as with one client.
pub(super) fn merge(
    cometd: Option<StreamMessages>,
    pubsub: Option<PubSubMessages>,
) -> BoxStream<'static, Result<Received, SourceError>> {
    let cometd = cometd.map(|messages| {
        messages
            .map(|item| Some(item.map(Received::CometD).map_err(SourceError::CometD)))
            .chain(futures::stream::once(async { None }))
            .boxed()
    });
    let pubsub = pubsub.map(|messages| {
        messages
            .map(|item| {
                Some(match item {
                    Ok(message) => Received::pubsub(message).map_err(|e| {
                        SourceError::PubSub(PubSubError::Connection(format!(
                            "an event could not be written as JSON: {e}"
                        )))
                    }),
                    Err(error) => Err(SourceError::PubSub(error)),
                })
            })
            .chain(futures::stream::once(async { None }))
            .boxed()
    });
    let merged = match (cometd, pubsub) {
        (Some(a), Some(b)) => futures::stream::select(a, b).boxed(),
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => futures::stream::empty().boxed(),
    };
    merged
        .take_while(|item| std::future::ready(item.is_some()))
        .filter_map(std::future::ready)
        .boxed()
}
