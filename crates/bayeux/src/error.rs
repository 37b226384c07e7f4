//! Errors: the `code:args:message` error field of Bayeux replies, and the
//! errors of the client.

use std::fmt;
use std::time::Duration;

/// A parsed Bayeux `error` field: `code:args:message`, e.g.
/// `403::Unknown client` or `400::The replayId {12} you provided was invalid. …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorField {
    /// The numeric code (an HTTP-like status), when present.
    pub code: Option<u16>,
    /// Comma-separated arguments between the first two colons.
    pub args: Vec<String>,
    /// The human-readable message (may itself contain colons).
    pub message: String,
}

impl ErrorField {
    /// Parses an error field; text that is not `code:args:message` becomes
    /// a message with no code.
    pub fn parse(text: &str) -> Self {
        let mut parts = text.splitn(3, ':');
        let (Some(code), Some(args), Some(message)) = (parts.next(), parts.next(), parts.next())
        else {
            return Self {
                code: None,
                args: Vec::new(),
                message: text.to_string(),
            };
        };
        match code.trim().parse::<u16>() {
            Ok(code) => Self {
                code: Some(code),
                args: args
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect(),
                message: message.to_string(),
            },
            Err(_) => Self {
                code: None,
                args: Vec::new(),
                message: text.to_string(),
            },
        }
    }
}

impl fmt::Display for ErrorField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{code}:{}:{}", self.args.join(","), self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why a request to the server did not get a usable answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection failed, was dropped, or timed out.
    #[error("network error: {0}")]
    Network(String),
    /// The server answered with an HTTP error status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// The server answered with something that is not Bayeux JSON.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The response exceeded the size limit.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

impl TransportError {
    /// Whether the server refused our credentials at the HTTP level.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, TransportError::Status { status: 401, .. })
    }
}

/// Errors of the Bayeux client.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request could not be completed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server refused a meta request.
    #[error("{channel} refused: {error}")]
    Refused {
        /// The meta channel (or the channel published to).
        channel: String,
        /// The server's error.
        error: ErrorField,
    },
    /// A subscription failed and was dropped; the stream goes on for other channels.
    #[error("subscription to {channel} failed: {error}")]
    SubscriptionFailed {
        /// The channel.
        channel: String,
        /// The server's error.
        error: ErrorField,
    },
    /// The server refused authentication and it could not be renewed.
    #[error("authentication refused: {0}")]
    Unauthorized(String),
    /// No connection could be re-established within the connection timeout.
    #[error("no connection to the server could be re-established within {0:?}")]
    ConnectionTimeout(Duration),
    /// The server advised not to reconnect (`reconnect: none`).
    #[error("the server advised not to reconnect: {0}")]
    ReconnectForbidden(String),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// A subscribe or unsubscribe did not complete within its deadline
    /// (see [`crate::ClientBuilder::subscribe_timeout`]).
    #[error("{0} did not complete in time")]
    Timeout(String),
    /// A later subscribe or unsubscribe of the same channel superseded this one.
    #[error("a later subscribe or unsubscribe of {0} superseded this one")]
    Superseded(String),
    /// An argument was invalid (e.g. a channel name).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_code_args_message() {
        let e = ErrorField::parse("403::Unknown client");
        assert_eq!(
            e,
            ErrorField {
                code: Some(403),
                args: vec![],
                message: "Unknown client".into()
            }
        );
        let e = ErrorField::parse(
            "400::The replayId {12} you provided was invalid.  Please provide a valid ID: -2 or -1.",
        );
        assert_eq!(e.code, Some(400));
        assert_eq!(
            e.message,
            "The replayId {12} you provided was invalid.  Please provide a valid ID: -2 or -1."
        );
        let e = ErrorField::parse("402:a, b:Unknown client");
        assert_eq!(e.args, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(e.to_string(), "402:a,b:Unknown client");
        let e = ErrorField::parse("something broke");
        assert_eq!((e.code, e.message.as_str()), (None, "something broke"));
        let e = ErrorField::parse("abc:def:ghi");
        assert_eq!(e.code, None);
        assert_eq!(e.message, "abc:def:ghi");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::ErrorField;

    proptest! {
        #[test]
        fn any_text_parses_without_panicking(text in ".*") {
            let parsed = ErrorField::parse(&text);
            if parsed.code.is_none() {
                prop_assert_eq!(parsed.message, text);
            }
        }

        #[test]
        fn code_args_message_round_trips(
            code in 100u16..600,
            args in proptest::collection::vec("[a-z0-9_]{1,8}", 0..4),
            message in "[^\\x00]*",
        ) {
            let text = format!("{code}:{}:{message}", args.join(","));
            let parsed = ErrorField::parse(&text);
            prop_assert_eq!(parsed.code, Some(code));
            prop_assert_eq!(&parsed.args, &args);
            prop_assert_eq!(&parsed.message, &message);
            prop_assert_eq!(parsed.to_string(), text);
        }
    }
}
