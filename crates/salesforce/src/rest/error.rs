//! Why a REST call failed.

use serde_json::Value;

use crate::auth::AuthError;

/// How many characters of a non-JSON error body an error keeps.
const BODY_EXCERPT_CHARS: usize = 300;

/// Why a REST call failed.
///
/// Salesforce's error answers (`[{"message", "errorCode", "fields"}]`) are
/// parsed into the HTTP status, the `errorCode`, the message and the
/// fields. No variant ever carries an access token or a credential.
///
/// ```
/// use sfstream_salesforce::rest::RestError;
/// fn explain(error: &RestError) -> String {
///     match error {
///         RestError::NotFound { .. } => "no such record".into(),
///         RestError::MalformedRequest { code, fields, .. } => format!("{code} on {fields:?}"),
///         other => format!("HTTP {:?} {:?}: {other}", other.status(), other.code()),
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// HTTP 400: the request was refused as malformed (`MALFORMED_QUERY`,
    /// `INVALID_FIELD`, `MALFORMED_ID`, `REQUIRED_FIELD_MISSING`,
    /// `DUPLICATE_VALUE`, …).
    #[error("malformed request (HTTP {status}) {code}: {message}")]
    MalformedRequest {
        /// The HTTP status (400).
        status: u16,
        /// Salesforce's `errorCode`.
        code: String,
        /// Salesforce's message.
        message: String,
        /// The fields the error is about.
        fields: Vec<String>,
    },

    /// HTTP 401 `INVALID_SESSION_ID`, still, after logging in again and
    /// retrying once; or the session cannot be renewed (an access token
    /// given as is).
    #[error("session expired or invalid: {message}")]
    ExpiredSession {
        /// Salesforce's message, or why the session could not be renewed.
        message: String,
    },

    /// HTTP 403: refused (`REQUEST_LIMIT_EXCEEDED`,
    /// `INSUFFICIENT_ACCESS`, `API_DISABLED_FOR_ORG`, …).
    #[error("request refused (HTTP 403) {code}: {message}")]
    Refused {
        /// Salesforce's `errorCode`.
        code: String,
        /// Salesforce's message.
        message: String,
    },

    /// HTTP 404: no such record or resource (`NOT_FOUND`).
    #[error("not found {code}: {message}")]
    NotFound {
        /// Salesforce's `errorCode`.
        code: String,
        /// Salesforce's message.
        message: String,
    },

    /// HTTP 300: an external id matched more than one record.
    #[error("more than one record matches: {urls:?}")]
    MoreThanOneRecord {
        /// The URLs of the matching records.
        urls: Vec<String>,
    },

    /// Any other HTTP error status.
    #[error("HTTP {status} {code}: {message}")]
    Other {
        /// The HTTP status.
        status: u16,
        /// Salesforce's `errorCode` (empty when the body had none).
        code: String,
        /// Salesforce's message, or the start of the body.
        message: String,
        /// The fields the error is about.
        fields: Vec<String>,
    },

    /// Logging in failed.
    #[error("login failed: {0}")]
    Auth(#[from] AuthError),

    /// The server could not be reached, or did not answer in time.
    #[error("transport error: {0}")]
    Transport(String),

    /// The answer could not be understood.
    #[error("cannot decode the answer: {0}")]
    Decode(String),

    /// The call was refused before anything was sent (a bad name, value or
    /// query, too many records, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl RestError {
    /// Salesforce's `errorCode`, when the server answered with one
    /// (`INVALID_SESSION_ID` for [`RestError::ExpiredSession`],
    /// `MULTIPLE_CHOICES` for [`RestError::MoreThanOneRecord`]).
    pub fn code(&self) -> Option<&str> {
        match self {
            RestError::MalformedRequest { code, .. }
            | RestError::Refused { code, .. }
            | RestError::NotFound { code, .. }
            | RestError::Other { code, .. } => Some(code.as_str()).filter(|c| !c.is_empty()),
            RestError::ExpiredSession { .. } => Some("INVALID_SESSION_ID"),
            RestError::MoreThanOneRecord { .. } => Some("MULTIPLE_CHOICES"),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::MalformedRequest { status, .. } | RestError::Other { status, .. } => {
                Some(*status)
            }
            RestError::ExpiredSession { .. } => Some(401),
            RestError::Refused { .. } => Some(403),
            RestError::NotFound { .. } => Some(404),
            RestError::MoreThanOneRecord { .. } => Some(300),
            _ => None,
        }
    }

    /// The message Salesforce gave, when it answered with an error.
    pub fn message(&self) -> Option<&str> {
        match self {
            RestError::MalformedRequest { message, .. }
            | RestError::ExpiredSession { message }
            | RestError::Refused { message, .. }
            | RestError::NotFound { message, .. }
            | RestError::Other { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Whether trying the same call again later may succeed: transport
    /// trouble, server errors (5xx), 408/429, `REQUEST_LIMIT_EXCEEDED`,
    /// `UNABLE_TO_LOCK_ROW`, and retryable login failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            RestError::Transport(_) => true,
            RestError::Auth(e) => e.is_retryable(),
            RestError::Refused { code, .. } => code == "REQUEST_LIMIT_EXCEEDED",
            RestError::MalformedRequest { code, .. } => code == "UNABLE_TO_LOCK_ROW",
            RestError::Other { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        RestError::InvalidArgument(message.into())
    }

    pub(crate) fn decode(message: impl Into<String>) -> Self {
        RestError::Decode(message.into())
    }
}

/// The first error of a Salesforce error body.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
    /// For 300 answers: the record URLs.
    pub urls: Vec<String>,
}

/// Parses `[{"message","errorCode","fields"}]`, an object of the same
/// shape (or OAuth's `error`/`error_description`), a list of URLs (300),
/// or any other text.
pub(crate) fn parse_error_body(body: &[u8]) -> ErrorBody {
    let text = || {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let mut out: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
        if text.chars().count() > BODY_EXCERPT_CHARS {
            out.push('…');
        }
        out
    };
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return ErrorBody {
            message: text(),
            ..ErrorBody::default()
        };
    };
    let from_object = |object: &serde_json::Map<String, Value>| {
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| object.get(*n).and_then(Value::as_str))
                .unwrap_or_default()
                .to_string()
        };
        ErrorBody {
            code: field(&["errorCode", "statusCode", "error"]),
            message: field(&["message", "error_description"]),
            fields: object
                .get("fields")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            urls: Vec::new(),
        }
    };
    match &value {
        Value::Array(items) => {
            if let Some(Value::Object(first)) = items.first() {
                from_object(first)
            } else {
                let urls: Vec<String> = items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                ErrorBody {
                    message: urls.join(", "),
                    urls,
                    ..ErrorBody::default()
                }
            }
        }
        Value::Object(object) => from_object(object),
        _ => ErrorBody {
            message: text(),
            ..ErrorBody::default()
        },
    }
}

/// The error for an HTTP error answer (401 is handled by the caller).
pub(crate) fn from_status(status: u16, body: &[u8]) -> RestError {
    let ErrorBody {
        code,
        message,
        fields,
        urls,
    } = parse_error_body(body);
    match status {
        300 => {
            let urls = if urls.is_empty() {
                // The emulator (and some proxies) put the URLs in a message.
                message
                    .split([',', ' '])
                    .map(str::trim)
                    .filter(|s| s.starts_with('/') || s.starts_with("http"))
                    .map(str::to_string)
                    .collect()
            } else {
                urls
            };
            RestError::MoreThanOneRecord { urls }
        }
        400 => RestError::MalformedRequest {
            status,
            code,
            message,
            fields,
        },
        401 => RestError::ExpiredSession { message },
        403 => RestError::Refused { code, message },
        404 => RestError::NotFound { code, message },
        _ => RestError::Other {
            status,
            code,
            message,
            fields,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_salesforce_error_shapes() {
        let e = from_status(
            400,
            br#"[{"message":"No such column 'Nope'","errorCode":"INVALID_FIELD","fields":["Nope"]}]"#,
        );
        assert_eq!(
            e,
            RestError::MalformedRequest {
                status: 400,
                code: "INVALID_FIELD".into(),
                message: "No such column 'Nope'".into(),
                fields: vec!["Nope".into()],
            }
        );
        assert_eq!(e.code(), Some("INVALID_FIELD"));
        assert_eq!(e.status(), Some(400));

        let e = from_status(404, br#"{"errorCode":"NOT_FOUND","message":"gone"}"#);
        assert_eq!(e.code(), Some("NOT_FOUND"));
        assert_eq!(e.message(), Some("gone"));

        let e = from_status(503, b"<html>maintenance</html>");
        assert_eq!(e.status(), Some(503));
        assert_eq!(e.code(), None);
        assert_eq!(e.message(), Some("<html>maintenance</html>"));
        assert!(e.is_retryable());

        let e = from_status(
            300,
            br#"["/services/data/v62.0/sobjects/A/1","/services/data/v62.0/sobjects/A/2"]"#,
        );
        assert_eq!(
            e,
            RestError::MoreThanOneRecord {
                urls: vec![
                    "/services/data/v62.0/sobjects/A/1".into(),
                    "/services/data/v62.0/sobjects/A/2".into()
                ]
            }
        );
        let e = from_status(
            300,
            br#"[{"errorCode":"MULTIPLE_CHOICES","message":"/x/1, /x/2"}]"#,
        );
        assert_eq!(
            e,
            RestError::MoreThanOneRecord {
                urls: vec!["/x/1".into(), "/x/2".into()]
            }
        );
        let e = from_status(
            403,
            br#"[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"x"}]"#,
        );
        assert!(matches!(e, RestError::Refused { .. }));
        assert!(e.is_retryable());
        let long = "x".repeat(1000);
        let e = from_status(500, long.as_bytes());
        assert!(e.message().is_some_and(|m| m.chars().count() <= 301));
    }
}
