//! The Pub/Sub API client (gRPC): Change Data Capture and platform events
//! behind the same subscription, replay-marker and handler API as the
//! CometD [`StreamingClient`](crate::StreamingClient), so that switching
//! transport is one option.
//!
//! - [`PubSubClient`]: subscribe (from the store's opaque marker, else
//!   `LATEST`/`EARLIEST`), managed subscriptions, publish, GetTopic,
//!   GetSchema, flush and close.
//! - [`PubSubMessages`]: the decoded events ([`PubSubMessage`], with
//!   `ack()` and the CLI's line data).
//!
//! Recovery: a refused token logs in again and resubscribes from the last
//! received replay id; a refused replay id falls back (or ends the
//! subscription with a clear error, never a retry loop); transient failures,
//! dropped streams and silent streams (HTTP/2 pings, idle watchdog) are
//! retried with backoff from the last received replay id, so events are
//! not delivered twice by a reconnect.

mod client;
mod commit;
mod connect;
mod decode;
mod error;
mod event;
mod flow;
mod message;
mod payload;
mod publish;
mod schema;
mod subscription;

pub use client::{DEFAULT_IDLE_TIMEOUT, PubSubClient, PubSubClientBuilder};
pub use commit::FlushError;
pub use error::PubSubError;
pub use event::PubSubEvent;
pub use message::{PubSubMessage, PubSubMessages};
pub use payload::Payload;
pub use publish::{Published, Publisher};
pub use sfstream_pubsub::DEFAULT_URL;
pub use sfstream_pubsub::proto::TopicInfo;
