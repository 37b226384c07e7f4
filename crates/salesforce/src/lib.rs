//! Salesforce for sfstream: every login flow, replay markers and their
//! stores, and the Streaming API client.

pub mod auth;
pub mod replay;
mod secret;

pub use secret::Secret;

/// The API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "62.0";
