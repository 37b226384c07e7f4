//! REST errors in Salesforce's shape: `[{"message", "errorCode", "fields"}]`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered by the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Salesforce `errorCode`, e.g. `MALFORMED_QUERY`.
    pub code: String,
    /// Human-readable message, as Salesforce words it.
    pub message: String,
    /// Fields the error is about.
    pub fields: Vec<String>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// A 400 error.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Adds the fields the error concerns.
    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
        self
    }

    /// 401 `INVALID_SESSION_ID`.
    pub fn invalid_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 404 for a URL no resource answers.
    pub fn no_resource() -> Self {
        Self::not_found("The requested resource does not exist")
    }

    /// 400 `NOT_FOUND` for an unknown sobject type in a URL.
    pub fn unknown_type_in_url(sobject: &str) -> Self {
        Self::not_found(format!("The requested resource does not exist: {sobject}"))
    }

    /// 400 `INVALID_TYPE` for an unknown sobject in a query.
    pub fn invalid_type(sobject: &str) -> Self {
        Self::bad_request(
            "INVALID_TYPE",
            format!(
                "sObject type '{sobject}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
            ),
        )
    }

    /// 400 `MALFORMED_ID`.
    pub fn malformed_id(sobject: &str, id: &str) -> Self {
        Self::bad_request(
            "MALFORMED_ID",
            format!("{sobject} ID: id value of incorrect type: {id}"),
        )
        .with_fields(vec!["Id".into()])
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.status == StatusCode::UNAUTHORIZED {
            json!([{ "message": self.message, "errorCode": self.code }])
        } else {
            json!([{ "message": self.message, "errorCode": self.code, "fields": self.fields }])
        };
        (self.status, axum::Json(body)).into_response()
    }
}
