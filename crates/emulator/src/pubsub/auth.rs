//! Who is calling: every RPC carries the metadata `accesstoken` (a token
//! the org issued), `instanceurl` and `tenantid` (the org id); anything
//! else is `UNAUTHENTICATED` with Salesforce's auth error code.

use sfstream_pubsub::errors;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use crate::org::Org;

/// Topic names the org does not have (not confirmed against Salesforce,
/// which answers `NOT_FOUND` or `PERMISSION_DENIED`).
pub const TOPIC_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.topic.not.found";
/// A publish to a topic that cannot be published to.
pub const PUBLISH_NOT_ALLOWED: &str = "sfdc.platform.eventbus.grpc.publish.not.allowed";
/// A request the server cannot act on.
pub const INVALID_REQUEST: &str = "sfdc.platform.eventbus.grpc.service.invalid.request";

/// A caller the org accepted.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user the token was issued to.
    pub user_id: String,
    /// The id of this RPC, sent back as the `rpc-id` trailer.
    pub rpc_id: String,
    token: String,
}

impl Caller {
    /// Whether the caller's token is still valid; adopts `refreshed` (a
    /// request's `auth_refresh`) when it is a valid token.
    pub fn still_valid(&mut self, org: &Org, refreshed: &str) -> bool {
        if !refreshed.is_empty() && org.tokens.lookup(refreshed).is_some() {
            self.token = refreshed.to_string();
        }
        org.tokens.lookup(&self.token).is_some()
    }
}

/// A new RPC id.
pub fn rpc_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A status with Salesforce's trailers.
pub fn status(code: Code, message: &str, error_code: &str, rpc_id: &str) -> Status {
    errors::status(code, message, error_code, rpc_id)
}

/// The status of a refused or expired token.
pub fn unauthenticated(rpc_id: &str) -> Status {
    status(
        Code::Unauthenticated,
        "Authentication failed: the access token is invalid or has expired.",
        errors::AUTH_ERROR,
        rpc_id,
    )
}

/// Checks the metadata of a call.
pub fn authenticate(org: &Org, metadata: &MetadataMap) -> Result<Caller, Status> {
    let rpc_id = rpc_id();
    let get = |key: &str| {
        metadata
            .get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let (Some(token), Some(_instance), Some(tenant)) =
        (get("accesstoken"), get("instanceurl"), get("tenantid"))
    else {
        return Err(unauthenticated(&rpc_id));
    };
    let org_id = org.org_id();
    // Clients send the 18-character org id; accept the 15-character form too.
    let tenant_ok = tenant.len() >= 15 && org_id.starts_with(tenant);
    match org.tokens.lookup(token) {
        Some(session) if tenant_ok => Ok(Caller {
            user_id: session.user_id,
            rpc_id,
            token: token.to_string(),
        }),
        _ => Err(unauthenticated(&rpc_id)),
    }
}

/// The status of a subscribe or stream refused by the `busy` fault.
pub fn unavailable(rpc_id: &str) -> Status {
    status(
        Code::Internal,
        errors::SERVICE_UNAVAILABLE_MESSAGE,
        errors::SERVICE_UNAVAILABLE,
        rpc_id,
    )
}

/// The status of an unknown topic.
pub fn topic_not_found(topic: &str, rpc_id: &str) -> Status {
    status(
        Code::NotFound,
        &format!("Topic {topic} not found or not accessible."),
        TOPIC_NOT_FOUND,
        rpc_id,
    )
}

/// The status of a replay id that is not (or no longer) valid.
pub fn replay_id_corrupted(rpc_id: &str) -> Status {
    status(
        Code::InvalidArgument,
        "The Replay ID validation failed. Ensure that the Replay ID is valid.",
        errors::REPLAY_ID_CORRUPTED,
        rpc_id,
    )
}

/// The status of a request the server cannot act on.
pub fn invalid(message: &str, rpc_id: &str) -> Status {
    status(Code::InvalidArgument, message, INVALID_REQUEST, rpc_id)
}
