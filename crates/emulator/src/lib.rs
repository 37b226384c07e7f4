//! An emulated Salesforce org for tests, demos and benchmarks.
//!
//! It speaks the wire protocols of a real org closely enough that a client
//! which works against it works against Salesforce: OAuth 2.0 and SOAP
//! login, the REST API with a SOQL subset, and the Streaming API over
//! CometD with durable replay, PushTopics, Change Data Capture, platform
//! events and generic channels, and the Pub/Sub API (gRPC) over the same
//! events. A control API injects the faults real orgs
//! produce (lost sessions, invalidated tokens, dropped connections, busy
//! servers, server-side disconnects, expired replay ids). A console at `/`
//! shows records, clients and events live ([`console`]).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sfstream_emulator::{Emulator, EmulatorConfig};
//! let emulator = Emulator::start(EmulatorConfig::default()).await?;
//! println!("listening on {}", emulator.url());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod console;
pub mod error;
pub mod faults;
pub mod ids;
pub mod org;
pub mod pubsub;
pub mod rest;
pub mod schema;
pub mod server;
pub mod soql;
pub mod store;
pub mod streaming;

pub use config::{Credentials, EmulatorConfig, LATEST_API_VERSION, PubSubTls};
pub use server::Emulator;
