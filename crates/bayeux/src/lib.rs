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
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
//! use sfstream_bayeux::{Client, Extension};
//! # let org = sfstream_emulator::Emulator::start(Default::default()).await?;
//! # let (url, user) = (org.url(), org.org().user_id());
//! # let token = org.org().tokens.issue(&org.org().org_id(), &user);
//! # let channel = serde_json::json!({"Name": "/u/chat"});
//! # org.org().create_record("StreamingChannel", channel.as_object().cloned().unwrap_or_default(), &user)?;
//!
//! /// Sends a bearer token with every request.
//! struct Bearer(HeaderValue);
//! impl Extension for Bearer {
//!     fn request_headers(&self, headers: &mut HeaderMap) {
//!         headers.insert(AUTHORIZATION, self.0.clone());
//!     }
//! }
//!
//! let (client, mut messages) = Client::builder(format!("{url}/cometd/62.0"))
//!     .extension(Arc::new(Bearer(HeaderValue::from_str(&format!("Bearer {token}"))?)))
//!     .connect()
//!     .await?;
//! client.subscribe("/u/chat").await?;
//! # org.org().streaming.publish_generic("/u/chat", "hello");
//! let message = messages.next().await.expect("a message")?;
//! println!("{}: {}", message.channel, message.data_json());
//! client.disconnect().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod advice;
mod client;
mod error;
mod extension;
mod message;
mod session;
mod subscriptions;
mod transport;

pub use advice::{Advice, CurrentAdvice, Reconnect};
pub use client::{
    AuthFailureCheck, Client, ClientBuilder, ClientEvent, DEFAULT_MAX_PENDING,
    DEFAULT_SUBSCRIBE_TIMEOUT, HandshakeReason, Messages, Reauthenticate, SlowRetryCheck,
};
pub use error::{Error, ErrorField, TransportError};
pub use extension::{Extension, SubscriptionFailure};
pub use message::{
    Attachment, CONNECT, DISCONNECT, HANDSHAKE, Message, SUBSCRIBE, UNSUBSCRIBE, parse_messages,
};
pub use sfstream_common::Backoff;
pub use transport::{DEFAULT_MAX_RESPONSE_BYTES, Transport};
