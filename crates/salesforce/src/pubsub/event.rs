//! [`PubSubEvent`]: what happens to the client's connections, for the
//! builder's event hook and the logs.

use std::sync::Arc;
use std::time::Duration;

/// Something that happened to a Pub/Sub subscription or the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PubSubEvent {
    /// Logged in (again) to this instance.
    LoggedIn {
        /// The instance URL of the session.
        instance_url: String,
    },
    /// A Subscribe (or ManagedSubscribe) stream was opened.
    Subscribed {
        /// The topic, or the managed subscription.
        topic: String,
        /// `LATEST`, `EARLIEST` or `CUSTOM`.
        replay: String,
    },
    /// A stream failed or went silent; it is opened again after `delay`.
    Reconnecting {
        /// The topic, or the managed subscription.
        topic: String,
        /// Why.
        reason: String,
        /// Retry number (1-based) since the last healthy stream.
        attempt: u32,
        /// The backoff delay.
        delay: Duration,
    },
    /// A stored replay id was refused (corrupt, or outside retention); the
    /// topic was subscribed again with the fallback and the stale marker
    /// removed.
    ReplayFallback {
        /// The topic.
        topic: String,
        /// The refused replay id, base64.
        refused_replay_id: String,
        /// `LATEST` or `EARLIEST`.
        fallback: String,
    },
    /// The events of this window may have been missed (a replay
    /// fallback): also an item of the message stream
    /// ([`PubSubMessage::gap`](super::PubSubMessage::gap)).
    Gap(crate::replay::Gap),
    /// A keepalive's latest replay id was committed as the topic's marker
    /// (nothing delivered was awaiting its commit).
    KeepaliveMarker {
        /// The topic.
        topic: String,
    },
    /// Writing markers to the store failed; it is retried.
    StoreFailed {
        /// The store's error.
        error: String,
    },
}

pub(crate) type EventHandler = Arc<dyn Fn(&PubSubEvent) + Send + Sync>;

/// Logs events and hands them to the hook.
#[derive(Clone, Default)]
pub(crate) struct Emitter(pub(crate) Option<EventHandler>);

impl Emitter {
    pub(crate) fn send(&self, event: PubSubEvent) {
        match &event {
            PubSubEvent::LoggedIn { instance_url } => {
                tracing::info!(%instance_url, "Pub/Sub: logged in")
            }
            PubSubEvent::Subscribed { topic, replay } => {
                tracing::debug!(%topic, %replay, "Pub/Sub: subscribed")
            }
            PubSubEvent::Reconnecting {
                topic,
                reason,
                attempt,
                delay,
            } => {
                tracing::warn!(%topic, %reason, attempt, ?delay, "Pub/Sub: stream lost; reconnecting")
            }
            PubSubEvent::ReplayFallback {
                topic,
                refused_replay_id,
                fallback,
            } => {
                tracing::info!(%topic, %refused_replay_id, %fallback, "Pub/Sub: replay id refused; resubscribed with the fallback")
            }
            PubSubEvent::Gap(gap) => gap.log(),
            PubSubEvent::KeepaliveMarker { topic } => {
                tracing::trace!(%topic, "Pub/Sub: keepalive marker committed")
            }
            PubSubEvent::StoreFailed { error } => {
                tracing::warn!(%error, "Pub/Sub: writing replay markers failed; retrying")
            }
        }
        if let Some(handler) = &self.0 {
            handler(&event);
        }
    }
}
