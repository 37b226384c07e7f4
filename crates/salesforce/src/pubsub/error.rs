//! [`PubSubError`]: what the Pub/Sub client reports.

use std::sync::Arc;

use sfstream_pubsub::avro::CodecError;

use crate::auth::AuthError;
use crate::replay::StoreError;

/// Errors of the Pub/Sub client. Never carries an access token.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PubSubError {
    /// Logging in failed (or could not be retried in time).
    #[error("Pub/Sub login failed: {0}")]
    Login(Arc<AuthError>),
    /// The replay store failed.
    #[error("replay store: {0}")]
    Store(Arc<StoreError>),
    /// An RPC failed for good.
    #[error("Pub/Sub {rpc} failed: {code:?}: {message}{}{}", error_code.as_ref().map(|c| format!(" (error-code {c})")).unwrap_or_default(), rpc_id.as_ref().map(|c| format!(" (rpc-id {c})")).unwrap_or_default())]
    Rpc {
        /// The RPC and its topic, e.g. `Subscribe /event/Order__e`.
        rpc: String,
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
        /// Salesforce's `error-code` trailer.
        error_code: Option<String>,
        /// Salesforce's `rpc-id` trailer.
        rpc_id: Option<String>,
    },
    /// The replay id of a CUSTOM subscribe was refused (corrupt, or
    /// outside the retention window) and no fallback is configured.
    #[error(
        "the replay id {replay_id} of {topic} was refused (corrupt or outside the retention window); configure a replay fallback (LATEST or EARLIEST) or remove the stored marker"
    )]
    ReplayIdInvalid {
        /// The topic.
        topic: String,
        /// The refused replay id, base64.
        replay_id: String,
    },
    /// A payload or a schema could not be decoded or encoded.
    #[error("Avro of {topic} (schema {schema_id}): {error}")]
    Codec {
        /// The topic.
        topic: String,
        /// The schema id.
        schema_id: String,
        /// The codec's error.
        error: CodecError,
    },
    /// The connection could not be set up (bad URL, TLS policy, transport).
    #[error("Pub/Sub connection: {0}")]
    Connection(String),
    /// The session has no org id, which Pub/Sub needs (`tenantid`).
    #[error(
        "the Salesforce session has no org id, which the Pub/Sub API needs as `tenantid`, and the access token does not start with one; log in with a flow that returns it (OAuth, SOAP, JWT) or set it with PubSubClientBuilder::org_id"
    )]
    NoOrgId,
    /// A wait passed its bound.
    #[error("Pub/Sub {what} did not finish within {timeout:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The bound.
        timeout: std::time::Duration,
    },
    /// A stream kept failing for longer than the connection timeout.
    #[error(
        "Pub/Sub {topic}: no working stream within the connection timeout ({timeout:?}): {last_error}"
    )]
    GaveUp {
        /// The topic, or the managed subscription.
        topic: String,
        /// The connection timeout.
        timeout: std::time::Duration,
        /// The last failure.
        last_error: String,
    },
    /// The user may not do this with the topic (GetTopic's `can_publish`
    /// or `can_subscribe` is false).
    #[error("the topic {topic} cannot be {what} by this user")]
    NotPermitted {
        /// The topic.
        topic: String,
        /// `published to` or `subscribed to`.
        what: &'static str,
    },
    /// A replay option that has no Pub/Sub preset (only `NEW`, `ALL`).
    #[error(
        "replay option {0} has no Pub/Sub preset: use NEW (LATEST) or ALL (EARLIEST); a replay id is given with subscribe_from"
    )]
    NoPreset(String),
    /// The topic is subscribed already (one subscription per topic, so its
    /// markers have one order).
    #[error("{topic} is subscribed already; unsubscribe it first")]
    AlreadySubscribed {
        /// The topic, or `managed:<developer name>`.
        topic: String,
    },
    /// The client was closed.
    #[error("the Pub/Sub client is closed")]
    Closed,
}

impl PubSubError {
    pub(crate) fn rpc(rpc: impl Into<String>, status: &tonic::Status) -> Self {
        PubSubError::Rpc {
            rpc: rpc.into(),
            code: status.code(),
            message: status.message().to_string(),
            error_code: sfstream_pubsub::errors::error_code(status).map(str::to_string),
            rpc_id: sfstream_pubsub::errors::rpc_id(status).map(str::to_string),
        }
    }
}

impl From<AuthError> for PubSubError {
    fn from(error: AuthError) -> Self {
        PubSubError::Login(Arc::new(error))
    }
}

impl From<StoreError> for PubSubError {
    fn from(error: StoreError) -> Self {
        PubSubError::Store(Arc::new(error))
    }
}
