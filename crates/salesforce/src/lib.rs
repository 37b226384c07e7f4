//! Salesforce for sfstream: every login flow, replay markers and their
//! stores, and the Streaming API client.

pub mod auth;
pub mod replay;
mod secret;
pub mod streaming;

pub use auth::{AuthError, Authenticator, Credentials, LoginUrl, Session};
pub use secret::Secret;
pub use streaming::{
    Delivery, StreamEvent, StreamMessage, StreamMessages, StreamingClient, StreamingClientBuilder,
    StreamingError,
};

/// The API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "62.0";
