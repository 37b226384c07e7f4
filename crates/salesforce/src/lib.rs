//! Salesforce for sfstream: every login flow, replay markers and their
//! stores, the Streaming API client, and the REST API client with
//! PushTopic declarations.
//!
//! - [`auth`]: an [`Authenticator`] logs in with [`Credentials`] (OAuth
//!   username-password, SOAP, refresh token, JWT bearer, client
//!   credentials, or a ready access token) and renews the [`Session`] when
//!   Salesforce refuses it; passwords, tokens and keys are [`Secret`]s.
//! - [`streaming`]: the [`StreamingClient`] subscribes to PushTopics,
//!   Change Data Capture, platform events and generic channels, resumes
//!   from stored replay markers, and recovers from lost sessions, refused
//!   tokens, dropped connections and busy servers on its own.
//! - [`replay`]: replay markers and where they are kept: in memory, in a
//!   crash-safe file, or in Redis in the Python Nameko extension's format.
//! - [`rest`]: the [`SalesforceClient`] for records, SOQL queries, composite
//!   calls, platform events and PushTopic declarations.
//!
//! The REST and streaming clients can share one [`Authenticator`], so they
//! log in once and renew the session together.
//!
//! # Example
//!
//! Against the emulated org of `sfstream-emulator`: declare a PushTopic,
//! subscribe to it, create a Contact, and receive the event it raises.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! use futures::StreamExt;
//! use serde_json::json;
//! use sfstream_emulator::{Emulator, EmulatorConfig};
//! use sfstream_salesforce::rest::PushTopicSpec;
//! use sfstream_salesforce::{
//!     Authenticator, Credentials, LoginUrl, SalesforceClient, Secret, StreamingClient,
//! };
//!
//! // An emulated org on a free loopback port, with its default login user.
//! let org = Emulator::start(EmulatorConfig::default()).await?;
//! let login = Authenticator::new(Credentials::password(
//!     "emulator@example.com", "password", Some(Secret::new("token")),
//!     "emulator-consumer-key", "emulator-consumer-secret",
//! ))
//! .with_login_url(LoginUrl::parse(&org.url())?);
//!
//! let rest = SalesforceClient::new(login.clone());
//! rest.declare_topic(&PushTopicSpec::new("NewContacts", "SELECT Id, Name FROM Contact"))
//!     .await?;
//!
//! let (client, mut events) = StreamingClient::builder(login).connect().await?;
//! client.subscribe("/topic/NewContacts").await?;
//! let id = rest.create("Contact", &json!({"LastName": "Lovelace"})).await?;
//!
//! let next = tokio::time::timeout(Duration::from_secs(30), events.next()).await?;
//! let event = next.expect("an event")?;
//! let data = event.data_value()?;
//! assert_eq!(data["event"]["type"], "created");
//! assert_eq!(data["sobject"]["Id"], id.as_str());
//! println!("{} #{:?}: {}", event.channel, event.replay_id(), event.data.get());
//! client.close().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod auth;
pub mod defaults;
mod http_error;
pub mod limits_watch;
pub mod pubsub;
pub mod recovery;
pub mod replay;
pub mod rest;
mod secret;
pub mod streaming;
mod transport;

pub use auth::{AuthError, Authenticator, Credentials, LoginUrl, Session};
pub use defaults::{DEFAULT_API_VERSION, DEFAULT_CONNECTION_TIMEOUT, DEFAULT_MAX_PENDING};
pub use rest::{RestError, SalesforceClient};
pub use secret::Secret;
pub use streaming::{
    Delivery, FlushError, StreamEvent, StreamMessage, StreamMessages, StreamingClient,
    StreamingClientBuilder, StreamingError,
};
pub use transport::{ParseTransportError, Transport};
