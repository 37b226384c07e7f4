//! The Salesforce Pub/Sub API (gRPC, package `eventbus.v1`): the wire
//! contract sfstream's client and its emulated org share.
//!
//! - [`proto`]: the generated messages, the client
//!   ([`proto::pub_sub_client::PubSubClient`]) and the server trait
//!   ([`proto::pub_sub_server::PubSub`]).
//! - [`avro`]: event payloads between Avro binary and JSON, by schema.
//! - [`bitmap`]: Change Data Capture's field bitmaps (`changedFields`,
//!   `nulledFields`, `diffFields`) to and from field names.
//! - [`errors`]: Salesforce's error codes and trailers.
//! - [`replay_id`]: opaque replay ids as text.

#![warn(missing_docs)]

/// Generated from `proto/eventbus/v1/pubsub_api.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("eventbus.v1");
}

pub mod avro;
pub mod bitmap;
pub mod errors;
pub mod replay_id;

/// Salesforce's Pub/Sub endpoint.
pub const DEFAULT_URL: &str = "https://api.pubsub.salesforce.com:7443";

/// The most events a subscriber may have requested and not yet received
/// (Salesforce caps `num_requested` at this).
pub const MAX_REQUESTED: i32 = 100;
