//! Salesforce's Pub/Sub error codes: an RPC that fails ends with a gRPC
//! status plus the trailers `error-code` and `rpc-id`; what each code asks
//! the client to do is decided here, once, for the client and the emulated
//! org alike.

/// The trailer naming Salesforce's error code.
pub const ERROR_CODE_TRAILER: &str = "error-code";
/// The trailer naming the failed RPC in Salesforce's logs.
pub const RPC_ID_TRAILER: &str = "rpc-id";

/// The access token was refused or has expired (`UNAUTHENTICATED`).
pub const AUTH_ERROR: &str = "sfdc.platform.eventbus.grpc.service.auth.error";
/// The replay id of a CUSTOM subscribe is not (or no longer) valid
/// (`INVALID_ARGUMENT`).
pub const REPLAY_ID_CORRUPTED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
/// A replay id that failed validation (reported by users, unconfirmed).
pub const REPLAY_ID_VALIDATION_FAILED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed";
/// A transient failure of the service (`INTERNAL`).
pub const SERVICE_UNAVAILABLE: &str = "sfdc.platform.eventbus.grpc.service.unavailable";
/// The org has too many Pub/Sub clients connected.
pub const CONCURRENT_CLIENT_LIMIT: &str =
    "sfdc.platform.eventbus.grpc.service.concurrent.client.limit.exceeded";
/// The message of [`SERVICE_UNAVAILABLE`].
pub const SERVICE_UNAVAILABLE_MESSAGE: &str = "The service is unavailable. Try again later.";

/// What a failed RPC asks of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// Log in again, then retry.
    LogInAgain,
    /// The stored replay id cannot be used: fall back (EARLIEST or LATEST)
    /// or give up, but never retry it.
    ReplayIdInvalid,
    /// Transient: back off and retry from the last processed replay id.
    Retry,
    /// Permanent for this request (an unknown topic, no permission, a bad
    /// argument): report it.
    Fail,
}

/// Salesforce's error code of a status, from its `error-code` trailer.
pub fn error_code(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(ERROR_CODE_TRAILER)
        .and_then(|v| v.to_str().ok())
}

/// The `rpc-id` trailer of a status.
pub fn rpc_id(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(RPC_ID_TRAILER)
        .and_then(|v| v.to_str().ok())
}

/// What a client should do about a failed RPC or a stream that ended with
/// `status`.
pub fn remedy(status: &tonic::Status) -> Remedy {
    use tonic::Code;
    match error_code(status) {
        Some(AUTH_ERROR) => return Remedy::LogInAgain,
        Some(REPLAY_ID_CORRUPTED | REPLAY_ID_VALIDATION_FAILED) => {
            return Remedy::ReplayIdInvalid;
        }
        Some(SERVICE_UNAVAILABLE | CONCURRENT_CLIENT_LIMIT) => return Remedy::Retry,
        _ => {}
    }
    match status.code() {
        Code::Unauthenticated => Remedy::LogInAgain,
        // RST_STREAM, a dropped connection, a server going away, a deadline:
        // all transient.
        Code::Internal
        | Code::Unavailable
        | Code::Unknown
        | Code::Aborted
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::ResourceExhausted => Remedy::Retry,
        _ => Remedy::Fail,
    }
}

/// A status as Salesforce sends it: a code, a message, and the
/// `error-code` and `rpc-id` trailers.
pub fn status(code: tonic::Code, message: &str, error_code: &str, rpc_id: &str) -> tonic::Status {
    let mut status = tonic::Status::new(code, message);
    let metadata = status.metadata_mut();
    if let Ok(v) = error_code.parse() {
        metadata.insert(ERROR_CODE_TRAILER, v);
    }
    if let Ok(v) = rpc_id.parse() {
        metadata.insert(RPC_ID_TRAILER, v);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn salesforce_codes_decide_before_grpc_codes() {
        let s = status(Code::InvalidArgument, "bad id", REPLAY_ID_CORRUPTED, "r1");
        assert_eq!(remedy(&s), Remedy::ReplayIdInvalid);
        assert_eq!(error_code(&s), Some(REPLAY_ID_CORRUPTED));
        assert_eq!(rpc_id(&s), Some("r1"));
        let s = status(
            Code::Internal,
            SERVICE_UNAVAILABLE_MESSAGE,
            SERVICE_UNAVAILABLE,
            "r2",
        );
        assert_eq!(remedy(&s), Remedy::Retry);
        let s = status(Code::PermissionDenied, "no", AUTH_ERROR, "r3");
        assert_eq!(remedy(&s), Remedy::LogInAgain);
        // Too many clients: back off and retry, whatever the gRPC code.
        let s = status(
            Code::ResourceExhausted,
            "limit",
            CONCURRENT_CLIENT_LIMIT,
            "r4",
        );
        assert_eq!(remedy(&s), Remedy::Retry);
        let s = status(
            Code::FailedPrecondition,
            "limit",
            CONCURRENT_CLIENT_LIMIT,
            "r5",
        );
        assert_eq!(remedy(&s), Remedy::Retry);
    }

    #[test]
    fn plain_grpc_codes() {
        assert_eq!(
            remedy(&tonic::Status::unauthenticated("x")),
            Remedy::LogInAgain
        );
        assert_eq!(remedy(&tonic::Status::unavailable("x")), Remedy::Retry);
        assert_eq!(remedy(&tonic::Status::internal("x")), Remedy::Retry);
        assert_eq!(remedy(&tonic::Status::not_found("x")), Remedy::Fail);
        assert_eq!(remedy(&tonic::Status::invalid_argument("x")), Remedy::Fail);
    }
}
