//! Salesforce for sfstream: every login flow, replay markers and their
//! stores, the Streaming API client, and the REST API client with
//! PushTopic declarations.

pub mod auth;
pub mod defaults;
mod http_error;
pub mod replay;
pub mod rest;
mod secret;
pub mod streaming;

pub use auth::{AuthError, Authenticator, Credentials, LoginUrl, Session};
pub use defaults::{DEFAULT_API_VERSION, DEFAULT_MAX_PENDING};
pub use rest::{RestError, SalesforceClient};
pub use secret::Secret;
pub use streaming::{
    Delivery, FlushError, StreamEvent, StreamMessage, StreamMessages, StreamingClient,
    StreamingClientBuilder, StreamingError,
};
