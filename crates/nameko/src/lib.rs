//! Nameko's AMQP protocol in Rust, interoperable on the wire with Python
//! [Nameko](https://nameko.readthedocs.io) 2.14 services.
//!
//! - [`Connection`]: a supervised AMQP connection (accepts Nameko's
//!   `pyamqp://` URIs) that reconnects with backoff; consumers redeclare their
//!   exchanges, queues and bindings after each reconnection.
//! - [`RpcServer`]: the `@rpc` entrypoint (queue `rpc-<service>` on the
//!   `nameko-rpc` topic exchange), with Nameko's `MethodNotFound`,
//!   `IncorrectSignature` and `MalformedRequest` answers.
//! - [`RpcProxy`]: the `ClusterRpcProxy` client, with `UnknownService`
//!   detection and timeouts.
//! - [`EventDispatcher`] and [`EventHandler`]: events on `<service>.events`
//!   with service-pool, singleton and broadcast handlers;
//!   [`WorkerDispatcher`]: the dispatcher of one worker, whose events carry
//!   its `nameko.call_id_stack` as Nameko's always do.
//! - [`WorkerContext`]: the `nameko.*` context headers and call id stacks.
//! - [`amqp`]: the generic layer all this is built on (supervised connection,
//!   declarations, supervised consumers), for the project's other AMQP users.
//!
//! ```no_run
//! use std::time::Duration;
//! use serde_json::json;
//! use sfstream_nameko::{Connection, RpcProxy, RpcServer};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = Connection::connect("pyamqp://guest:guest@localhost").await?;
//! let server = RpcServer::new("calculator")
//!     .method("add", |_ctx, args, _kwargs| async move {
//!         let sum: i64 = args.iter().filter_map(|v| v.as_i64()).sum();
//!         Ok(json!(sum))
//!     })
//!     .start(&conn)
//!     .await?;
//! let rpc = RpcProxy::start(&conn).await?;
//! let three = rpc.call("calculator", "add", vec![json!(1), json!(2)], Default::default(), Duration::from_secs(5)).await?;
//! assert_eq!(three, json!(3));
//! server.shutdown(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod amqp;
mod connection;
mod consumer;
mod context;
mod error;
mod events;
pub mod headers;
mod publisher;
mod rpc_client;
mod rpc_server;
mod signature;
pub mod topology;
mod uri;

pub use connection::{Connection, ConnectionOptions, RECONNECT_BACKOFF};
pub use consumer::ConsumerHandle;
pub use context::{
    CALL_ID_STACK_KEY, DEFAULT_PARENT_CALLS_TRACKED, EventContext, RpcContext, WorkerContext,
};
pub use error::{Error, RpcCallError, RpcError};
pub use events::{EventDispatcher, EventHandler, HandlerError, WorkerDispatcher};
pub use rpc_client::{ClusterRpc, RpcProxy, STANDALONE_PROXY_NAME};
pub use rpc_server::{DEFAULT_MAX_WORKERS, RpcFuture, RpcServer};
pub use sfstream_common::Backoff;
pub use signature::Signature;
pub use topology::HandlerType;
pub use uri::{AmqpUri, redact_uri};
