//! Rust errors as the exceptions of `sfstream.exceptions` (aiosfstream's
//! hierarchy): the class is chosen here, the message is the core's (which
//! never carries a secret), and a server's refusal keeps the server's own
//! `error` field in the exception's `response`.

use pyo3::prelude::*;
use serde_json::{Value, json};
use sfstream_bayeux::{Error as BayeuxError, ErrorField, TransportError};
use sfstream_salesforce::StreamingError;
use sfstream_salesforce::auth::AuthError;
use sfstream_salesforce::pubsub::PubSubError;
use sfstream_salesforce::replay::StoreError;

/// An exception of class `kind` of `sfstream.exceptions`, raised with
/// `(message,)`, or `(message, response)` when the server answered.
pub fn exception(kind: &str, message: String, response: Option<Value>) -> PyErr {
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let class = py.import("sfstream.exceptions")?.getattr(kind)?;
            let value = match response {
                Some(response) => {
                    let response = py
                        .import("json")?
                        .call_method1("loads", (response.to_string(),))?;
                    class.call1((message, response))?
                }
                None => class.call1((message,))?,
            };
            Ok(PyErr::from_value(value))
        };
        build().unwrap_or_else(|error| error)
    })
}

/// A refused Bayeux message, shaped as the server's reply.
fn refusal(channel: &str, subscription: Option<&str>, error: &ErrorField) -> Value {
    let mut reply = json!({"channel": channel, "successful": false, "error": error.to_string()});
    if let Some(subscription) = subscription {
        reply["subscription"] = json!(subscription);
    }
    reply
}

/// A streaming error as a Python exception.
pub fn streaming(error: &StreamingError) -> PyErr {
    match error {
        StreamingError::Login(auth) => login(auth),
        StreamingError::Bayeux(bayeux) => self::bayeux(bayeux),
        StreamingError::Store(store) => self::store(store),
        StreamingError::ReplayIdExpired { channel, error, .. } => exception(
            "ServerError",
            "Subscribe request failed.".into(),
            Some(refusal("/meta/subscribe", Some(channel), error)),
        ),
        StreamingError::FilterConflict { .. } => {
            exception("ClientInvalidOperation", error.to_string(), None)
        }
        other => exception("ClientError", other.to_string(), None),
    }
}

/// A Bayeux error as a Python exception.
pub fn bayeux(error: &BayeuxError) -> PyErr {
    let message = error.to_string();
    match error {
        BayeuxError::Transport(TransportError::Network(_)) => {
            exception("TransportConnectionClosed", message, None)
        }
        BayeuxError::Transport(_) => exception("TransportError", message, None),
        BayeuxError::Refused { channel, error } => {
            exception("ServerError", message, Some(refusal(channel, None, error)))
        }
        BayeuxError::SubscriptionFailed { channel, error } => exception(
            "ServerError",
            "Subscribe request failed.".into(),
            Some(refusal("/meta/subscribe", Some(channel), error)),
        ),
        BayeuxError::Unauthorized(_) => exception("AuthenticationError", message, None),
        BayeuxError::ConnectionTimeout(_) | BayeuxError::Timeout(_) => {
            exception("TransportTimeoutError", message, None)
        }
        BayeuxError::ReconnectForbidden(_) => exception(
            "ServerError",
            message,
            Some(
                json!({"channel": "/meta/connect", "successful": false, "advice": {"reconnect": "none"}}),
            ),
        ),
        BayeuxError::Closed => exception("ClientInvalidOperation", message, None),
        _ => exception("ClientError", message, None),
    }
}

/// A Pub/Sub error as a Python exception. A refusal by the server is a
/// `ServerError` whose `response` has the `error` text (and, for a
/// subscription that ended, its `subscription`; for an RPC, its gRPC
/// `code` and Salesforce's `error_code` and `rpc_id`).
pub fn pubsub(error: &PubSubError) -> PyErr {
    let message = error.to_string();
    match error {
        PubSubError::Login(auth) => login(auth),
        PubSubError::NoOrgId => exception("AuthenticationError", message, None),
        PubSubError::Store(store) => self::store(store),
        PubSubError::ReplayIdInvalid { topic, .. } => exception(
            "ServerError",
            "Subscribe request failed.".into(),
            Some(json!({"subscription": topic, "successful": false, "error": message})),
        ),
        PubSubError::Rpc {
            rpc,
            code,
            message: status,
            error_code,
            rpc_id,
        } => exception(
            "ServerError",
            format!("Pub/Sub {rpc} failed."),
            Some(json!({
                "rpc": rpc, "successful": false, "error": status,
                "code": format!("{code:?}"), "error_code": error_code, "rpc_id": rpc_id,
            })),
        ),
        PubSubError::NotPermitted { .. } => exception(
            "ServerError",
            message.clone(),
            Some(json!({"successful": false, "error": message})),
        ),
        PubSubError::Connection(_) => exception("TransportError", message, None),
        PubSubError::Timeout { .. } | PubSubError::GaveUp { .. } => {
            exception("TransportTimeoutError", message, None)
        }
        PubSubError::AlreadySubscribed { .. } | PubSubError::Closed | PubSubError::NoPreset(_) => {
            exception("ClientInvalidOperation", message, None)
        }
        _ => exception("ClientError", message, None),
    }
}

/// A login error as `AuthenticationError`.
pub fn login(error: &AuthError) -> PyErr {
    exception("AuthenticationError", error.to_string(), None)
}

/// A replay store error as `ReplayError`.
pub fn store(error: &StoreError) -> PyErr {
    exception("ReplayError", error.to_string(), None)
}
