//! The errors of a service.

use sfstream_salesforce::pubsub::PubSubError;
use sfstream_salesforce::replay::StoreError;
use sfstream_salesforce::{AuthError, RestError, StreamingError, Transport};

use crate::config::ConfigError;

/// Why a service could not start, or stopped with a failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Salesforce entrypoints without a `SALESFORCE:` section.
    #[error(
        "the service has Salesforce entrypoints but the config has no SALESFORCE section (USERNAME, PASSWORD, SECURITY_TOKEN, SANDBOX)"
    )]
    NoSalesforceConfig,
    /// Logging in to Salesforce failed.
    #[error("Salesforce login failed: {0}")]
    Login(#[source] AuthError),
    /// Declaring an entrypoint's PushTopic failed; nothing was subscribed.
    #[error("declaring the PushTopic of {entrypoint} failed: {source}")]
    Declaration {
        /// The entrypoint, e.g. `handle_sobject_notification("Contact", record_type="Student")`.
        entrypoint: String,
        /// Why.
        #[source]
        source: RestError,
    },
    /// Two entrypoints declare one PushTopic differently.
    #[error("{first} and {second} both declare the PushTopic {topic}, differently")]
    ConflictingTopics {
        /// The topic.
        topic: String,
        /// One entrypoint.
        first: String,
        /// The other.
        second: String,
    },
    /// Two entrypoints subscribe to one topic with different filters: in
    /// one CometD session, Salesforce requires every subscription to a
    /// PushTopic to carry the same filter.
    #[error(
        "{first} subscribes to {first_subscription} and {second} to {second_subscription}: Salesforce allows one filter per topic in a session; give both entrypoints the same filter (each then gets every event), or filter in the handler"
    )]
    ConflictingFilters {
        /// The topic (the channel without filter).
        topic: String,
        /// One entrypoint.
        first: String,
        /// Its subscription, filter included.
        first_subscription: String,
        /// The other.
        second: String,
        /// Its subscription, filter included.
        second_subscription: String,
    },
    /// Two entrypoints of one channel ask for different transports.
    #[error(
        "{first} streams {channel} over {first_transport} and {second} over {second_transport}: a channel has one subscription; give both entrypoints the same transport"
    )]
    ConflictingTransports {
        /// The channel.
        channel: String,
        /// One entrypoint.
        first: String,
        /// Its transport.
        first_transport: Transport,
        /// The other.
        second: String,
        /// Its transport.
        second_transport: Transport,
    },
    /// The replay store could not be opened.
    #[error("opening the replay store failed: {0}")]
    ReplayStore(#[source] StoreError),
    /// Cluster mode could not start.
    #[error("cluster mode: {0}")]
    Cluster(String),
    /// Connecting the streaming client failed.
    #[error("connecting to the Streaming API failed: {0}")]
    Streaming(#[source] StreamingError),
    /// Subscribing to a channel failed.
    #[error("subscribing to {channel} failed: {source}")]
    Subscribe {
        /// The channel.
        channel: String,
        /// Why.
        #[source]
        source: StreamingError,
    },
    /// Connecting the Pub/Sub API client failed.
    #[error("connecting to the Pub/Sub API failed: {0}")]
    PubSub(#[source] Box<PubSubError>),
    /// Subscribing to a Pub/Sub topic failed.
    #[error("subscribing to {channel} (Pub/Sub) failed: {source}")]
    PubSubSubscribe {
        /// The topic.
        channel: String,
        /// Why.
        #[source]
        source: Box<PubSubError>,
    },
    /// The streaming session ended for good.
    #[error("the streaming session ended: {0}")]
    StreamEnded(String),
    /// A handler failed on an event after its retries, under `ON_FAILURE: stop`.
    #[error(
        "handler {handler} failed on {channel} replay id {replay_id:?} after {attempts} attempt(s): {error}; the service stopped (ON_FAILURE: stop) and the marker stays below this event"
    )]
    HandlerFailed {
        /// The handler function.
        handler: String,
        /// The channel.
        channel: String,
        /// The event's replay id.
        replay_id: Option<i64>,
        /// Calls made.
        attempts: u32,
        /// The last error.
        error: String,
    },
    /// The metrics server could not start.
    #[error("the metrics server could not listen on port {port}: {source}")]
    Metrics {
        /// The port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another kind of entrypoint failed.
    #[error("{entrypoints}: {message}")]
    Entrypoints {
        /// Which entrypoints.
        entrypoints: String,
        /// What happened.
        message: String,
    },
    /// The service's task panicked or was cancelled.
    #[error("the service task ended abnormally: {0}")]
    Task(String),
}
