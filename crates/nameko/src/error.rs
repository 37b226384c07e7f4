//! Error types: transport errors, errors returned by RPC handlers (serialised
//! like `nameko.exceptions.serialize`), and errors seen by RPC callers.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Errors of the AMQP transport and of the setup of consumers and publishers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The AMQP URI could not be parsed (the password is redacted).
    #[error("invalid AMQP URI: {0}")]
    InvalidUri(String),
    /// An error reported by the AMQP client or the broker.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker negatively acknowledged a published message.
    #[error("the broker refused (nacked) a published message")]
    Nacked,
    /// A publish did not complete within its time limit.
    #[error("publishing timed out")]
    PublishTimeout,
    /// The [`Connection`](crate::Connection) was closed.
    #[error("the connection was closed")]
    Closed,
    /// A handler's configuration is not valid (e.g. a reliable broadcast
    /// handler without an explicit broadcast identifier).
    #[error("configuration error: {0}")]
    Configuration(String),
    /// A message body could not be encoded as JSON.
    #[error("could not encode a message as JSON: {0}")]
    Encode(#[from] serde_json::Error),
}

/// An exception as Nameko serialises it into RPC replies (the `error` member
/// of `{"result":…,"error":…}`), and the error type RPC handlers return.
///
/// A Python caller receives, per `nameko.exceptions.deserialize`, an instance
/// of the exception registered for `exc_path` (Nameko registers
/// `nameko.exceptions.MethodNotFound`, `IncorrectSignature` and
/// `MalformedRequest`, built from `exc_args`), otherwise
/// `RemoteError(exc_type, value)`.
///
/// ```
/// use sfstream_nameko::RpcError;
///
/// let e = RpcError::new("no such contact");
/// assert_eq!(e.exc_type, "Exception");
/// assert_eq!(e.exc_path, "builtins.Exception");
/// let json = serde_json::to_value(&e).unwrap();
/// assert_eq!(json["exc_args"], serde_json::json!(["no such contact"]));
/// assert_eq!(json["value"], "no such contact");
///
/// let e = RpcError::typed("ValueError", "builtins.ValueError", "bad email");
/// assert_eq!(e.to_string(), "ValueError bad email");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{exc_type} {value}")]
pub struct RpcError {
    /// The exception class name, e.g. `ValueError`.
    pub exc_type: String,
    /// The dotted path of the exception class, e.g. `builtins.ValueError`.
    pub exc_path: String,
    /// The exception's `args`.
    #[serde(default)]
    pub exc_args: Vec<Value>,
    /// `str(exception)`.
    #[serde(default)]
    pub value: String,
}

impl RpcError {
    /// A plain `Exception` (`builtins.Exception`) with one argument, `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self::typed("Exception", "builtins.Exception", message)
    }

    /// An exception of the given class name and dotted path, with one
    /// argument, `message`, which is also its `value`.
    pub fn typed(
        exc_type: impl Into<String>,
        exc_path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        Self {
            exc_type: exc_type.into(),
            exc_path: exc_path.into(),
            exc_args: vec![Value::String(message.clone())],
            value: message,
        }
    }

    /// Replaces `exc_args` (by default `[value]`).
    pub fn with_args(mut self, exc_args: Vec<Value>) -> Self {
        self.exc_args = exc_args;
        self
    }

    /// `nameko.exceptions.MethodNotFound(method_name)`, as a Nameko server
    /// answers a call to a method it does not expose.
    pub fn method_not_found(method_name: &str) -> Self {
        Self::typed(
            "MethodNotFound",
            "nameko.exceptions.MethodNotFound",
            method_name,
        )
    }

    /// `nameko.exceptions.IncorrectSignature(message)`.
    pub fn incorrect_signature(message: impl Into<String>) -> Self {
        Self::typed(
            "IncorrectSignature",
            "nameko.exceptions.IncorrectSignature",
            message,
        )
    }

    /// `nameko.exceptions.MalformedRequest(message)`; Nameko's message is
    /// ``Message missing `args` or `kwargs` ``.
    pub fn malformed_request(message: impl Into<String>) -> Self {
        Self::typed(
            "MalformedRequest",
            "nameko.exceptions.MalformedRequest",
            message,
        )
    }

    /// Serialises to the JSON object Nameko puts in a reply's `error` member.
    pub fn to_json(&self) -> Value {
        json!({
            "exc_type": self.exc_type,
            "exc_path": self.exc_path,
            "exc_args": self.exc_args,
            "value": self.value,
        })
    }

    /// Reads an `error` member of a reply, tolerating missing members (as
    /// `nameko.exceptions.deserialize` does).
    pub fn from_json(value: &Value) -> Self {
        let s = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let value_str = match value.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        Self {
            exc_type: s("exc_type"),
            exc_path: s("exc_path"),
            exc_args: value
                .get("exc_args")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            value: value_str,
        }
    }
}

/// Errors of an RPC call made with [`RpcProxy`](crate::RpcProxy).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcCallError {
    /// No queue is bound for the service (the broker returned the mandatory
    /// request with NO_ROUTE); Nameko raises `UnknownService`.
    #[error("Unknown service `{0}`")]
    UnknownService(String),
    /// No reply arrived within the timeout; Nameko raises `RpcTimeout`.
    #[error("RPC call timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The remote method raised; the fields are those of the reply's `error`.
    #[error("{exc_type} {value}")]
    Remote {
        /// Exception class name, e.g. `ValueError`.
        exc_type: String,
        /// Dotted class path, e.g. `builtins.ValueError`.
        exc_path: String,
        /// `str(exception)`.
        value: String,
        /// The exception's `args`.
        exc_args: Vec<Value>,
    },
    /// The reply was not a `{"result":…,"error":…}` JSON object.
    #[error("malformed RPC reply: {0}")]
    MalformedReply(String),
    /// A transport error.
    #[error(transparent)]
    Transport(#[from] Error),
}

impl From<RpcError> for RpcCallError {
    fn from(e: RpcError) -> Self {
        RpcCallError::Remote {
            exc_type: e.exc_type,
            exc_path: e.exc_path,
            value: e.value,
            exc_args: e.exc_args,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_not_found_matches_nameko_serialize() {
        // nameko.exceptions.serialize(MethodNotFound("nope"))
        assert_eq!(
            RpcError::method_not_found("nope").to_json(),
            json!({"exc_type": "MethodNotFound", "exc_path": "nameko.exceptions.MethodNotFound",
                   "exc_args": ["nope"], "value": "nope"})
        );
    }

    #[test]
    fn error_roundtrip_and_tolerance() {
        let e = RpcError::typed("ValueError", "builtins.ValueError", "x").with_args(vec![json!(1)]);
        assert_eq!(RpcError::from_json(&e.to_json()), e);
        let partial = RpcError::from_json(&json!({"exc_type": "KeyError", "value": 3}));
        assert_eq!(partial.exc_type, "KeyError");
        assert_eq!(partial.value, "3");
        assert!(partial.exc_args.is_empty());
        let call: RpcCallError = e.into();
        assert_eq!(call.to_string(), "ValueError x");
    }
}
