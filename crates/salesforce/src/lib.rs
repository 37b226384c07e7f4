//! Salesforce for sfstream: every login flow, replay markers and their
//! stores, the Streaming API client, and the REST API client with
//! PushTopic declarations.

pub mod auth;
mod http_error;
pub mod replay;
pub mod rest;
mod secret;
pub mod streaming;

pub use auth::{AuthError, Authenticator, Credentials, LoginUrl, Session};
pub use rest::{RestError, SalesforceClient};
pub use secret::Secret;
pub use streaming::{
    Delivery, FlushError, StreamEvent, StreamMessage, StreamMessages, StreamingClient,
    StreamingClientBuilder, StreamingError,
};

/// The API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "62.0";
