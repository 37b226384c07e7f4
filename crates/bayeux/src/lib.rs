//! A Bayeux 1.0 (CometD) long-polling client that works with any CometD
//! server: Salesforce, Faye, CometD's own servers.
//!
//! One background task owns the session: it handshakes, keeps one
//! long-poll connect outstanding, subscribes and unsubscribes (batched),
//! publishes, follows the server's advice (milliseconds, as the
//! specification says), re-handshakes and resubscribes when the server
//! loses the session, backs off with jitter when requests fail, and asks a
//! [`Reauthenticate`] hook for new credentials when the server refuses
//! them. [`Extension`]s see every message and request.
//!
//! ```no_run
//! use futures::StreamExt;
//! use sfstream_bayeux::Client;
//!
//! # async fn demo() -> Result<(), sfstream_bayeux::Error> {
//! let (client, mut messages) = Client::builder("http://127.0.0.1:8000/bayeux").connect().await?;
//! client.subscribe("/chat/room").await?;
//! client.publish("/chat/room", &serde_json::json!({"text": "hello"})).await?;
//! while let Some(message) = messages.next().await {
//!     let message = message?;
//!     println!("{}: {}", message.channel, message.data_json());
//! }
//! # Ok(()) }
//! ```

mod advice;
mod backoff;
mod client;
mod error;
mod extension;
mod message;
mod transport;

pub use advice::{Advice, CurrentAdvice, Reconnect};
pub use backoff::Backoff;
pub use client::{
    AuthFailureCheck, Client, ClientBuilder, ClientEvent, DEFAULT_MAX_PENDING, HandshakeReason,
    Messages, Reauthenticate,
};
pub use error::{Error, ErrorField, TransportError};
pub use extension::{Extension, SubscriptionFailure};
pub use message::{
    CONNECT, DISCONNECT, HANDSHAKE, Message, SUBSCRIBE, UNSUBSCRIBE, parse_messages,
};
pub use transport::{DEFAULT_MAX_RESPONSE_BYTES, Transport};
