//! The sfstream service runtime: what the Python Nameko Salesforce
//! extension gives Python users, for Rust, with its flaws fixed.
//!
//! A [`Service`] has a name, a [configuration](config::Config) (the Nameko
//! YAML format, a Python extension config file works unchanged), shared
//! dependencies, and handlers: plain async functions whose arguments are
//! extractors ([`Channel`], [`Name`], [`SobjectType`], [`RecordType`],
//! [`Notification`], [`Json`], [`Dep`], [`Salesforce`], …), bound to one
//! or more [entrypoints] ([`subscribe`],
//! [`handle_notification`], [`handle_sobject_notification`],
//! [`change_events`], [`platform_event`]).
//!
//! ```no_run
//! use sfstream_service::config::Config;
//! use sfstream_service::{Notification, RecordType, Service, SobjectType, handle_sobject_notification};
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("cannot handle this contact")]
//! struct MyError;
//!
//! async fn handle_contact(
//!     SobjectType(sobject_type): SobjectType,
//!     RecordType(record_type): RecordType,
//!     Notification(notification): Notification,
//! ) -> Result<(), MyError> {
//!     println!("{sobject_type} {record_type:?} {}", notification["event"]["type"]);
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     Service::new("some-service")
//!         .config(Config::load("config.yaml")?)
//!         .handler(handle_contact, [
//!             handle_sobject_notification("Contact").exclude_current_user(false),
//!             handle_sobject_notification("Lead"),
//!         ])
//!         .run()
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Delivery
//!
//! At-least-once: a channel's replay marker is committed only once the
//! handlers of an event succeeded, and with handlers running concurrently
//! (`max_workers` events at once) it advances to the newest event below
//! which every event succeeded: a contiguous [watermark](delivery), never
//! backwards. An event delivered to several handlers (several entrypoints
//! on one channel) is done when all of them succeeded. A failing handler is
//! retried `RETRIES` times with exponential backoff, then either stops the
//! service (`ON_FAILURE: stop`, the default: the marker stays below the
//! event, which a restart delivers again) or is logged with its channel
//! and replay id, counted, and passed (`ON_FAILURE: skip`).
//!
//! Slow handlers pause the taking of events, not the long poll: the
//! streaming client keeps polling into a buffer of `MAX_PENDING` events;
//! should the session still be dropped, it resumes after the last received
//! event, and across a crash the store holds only the watermark.
//!
//! Nothing waits or grows without bound. A handler call still running
//! after `HANDLER_TIMEOUT` (300 s by default) is cancelled and counts as a
//! retryable failure, under the same retries and `ON_FAILURE` policy as
//! any other (a handler that blocks its thread without awaiting cannot be
//! cancelled: use `spawn_blocking`). Behind an unfinished event, later
//! events finish but wait below the watermark; at most `MAX_IN_FLIGHT`
//! ([`config::DEFAULT_MAX_IN_FLIGHT`] by default) per channel. When a channel has that many, the taking
//! of events pauses (for every channel: they share one stream) until its
//! oldest finishes; the streaming client then stops polling once
//! `MAX_PENDING` events are buffered, and resumes where it stopped.
//!
//! Events are routed, and watermarks kept, by the subscription as
//! subscribed, `?filter` included. Salesforce allows one filter per topic
//! in a streaming session, so two entrypoints giving one topic different
//! filters (or one a filter and the other none) are refused at start
//! ([`ServiceError::ConflictingFilters`]); the same subscription twice is
//! subscribed once and each event goes to both handlers.
//!
//! # Start-up and shutdown
//!
//! [`Service::start`] logs in (the REST and streaming clients share one
//! session), declares every PushTopic (a failure stops start-up, naming the
//! entrypoint), opens the replay store, connects, and subscribes each
//! channel once. [`Service::run`] runs until SIGTERM or SIGINT, then stops
//! gracefully: no new events, in-flight handlers finish within
//! `SHUTDOWN_TIMEOUT`, markers are committed, the session disconnects.
//!
//! # Operations
//!
//! With `METRICS_PORT`, `/metrics` (Prometheus) and `/health` are served;
//! see [`metrics`]. `/health` reports each subscription's state
//! (subscribed, retrying with its last error, failed) and answers 503 when
//! the session is down or a subscription was given up for good. A
//! subscription given up while running (the topic was deleted, say) does
//! not stop the service: its other channels keep delivering, and the
//! health check (or an orchestrator watching it) decides on a restart.
//!
//! # Gaps
//!
//! When a stored replay id has left retention and `REPLAY_FALLBACK` is set,
//! the channel starts again from `NEW` or `ALL`, and the events between may
//! be missed. That is never silent: a warning names the channel and the
//! window, `sfstream_gaps_total` counts it, and [`Service::on_gap`]
//! handlers get the [`Gap`]. Stored markers nearing retention (18 h of
//! 24, 60 h of 72) are warned about at start and while running, and
//! `sfstream_marker_age_seconds` shows each channel's.
//!
//! # More entrypoint kinds
//!
//! The [runtime] runs groups of [`Entrypoints`], each providing what it
//! shares as an extension of the service's [`ServiceContext`], started
//! with it and a [`ShutdownSignal`](shutdown::ShutdownSignal), each
//! stopping gracefully; the Salesforce entrypoints are one such group,
//! the [Nameko](nameko) RPC methods and event handlers another
//! ([`Service::rpc`], [`Service::event_handler`],
//! [`Service::event_dispatcher`]). The [runtime] module shows how to add
//! one.

#![warn(missing_docs)]

pub mod config;
pub mod delivery;
pub mod entrypoints;
mod error;
pub mod handler;
mod limits;
pub mod metrics;
pub mod nameko;
mod received;
pub mod runtime;
mod service;
pub mod shutdown;
pub mod status;
mod streaming;
mod worker;

pub use config::{Config, ConfigError, OnFailure};
pub use entrypoints::{
    Binding, Entrypoint, change_events, change_events_all, handle_notification,
    handle_sobject_notification, platform_event, subscribe,
};
pub use error::ServiceError;
pub use handler::{
    Change, Channel, Dep, Event, EventContext, ExtractError, FromEvent, Handler, HandlerError,
    IntoHandlerResult, Json, Name, Notification, Platform, PushTopic, RecordType, Replay, ReplayId,
    Salesforce, SobjectType,
};
pub use runtime::{ContextBuilder, Entrypoints, RunningEntrypoints, ServiceContext};
pub use service::{RunningService, Service};
pub use sfstream_salesforce::replay::Gap;
