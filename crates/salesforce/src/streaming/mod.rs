//! The Streaming API client: PushTopics, Change Data Capture, platform
//! events and generic channels over CometD, with durable replay.

mod client;
mod commit;
mod extension;
pub mod payload;
mod recover;
mod relogin;

pub use client::{
    Delivery, StreamEvent, StreamMessage, StreamMessages, StreamingClient, StreamingClientBuilder,
    StreamingError,
};
pub use commit::FlushError;
pub use extension::{DEFAULT_LIMIT_RETRY, is_invalid_replay_id, limit_exceeded};
