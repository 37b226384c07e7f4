//! The generic AMQP layer under the Nameko protocol, public so that the other
//! crates of the project build on the same supervised connection instead of
//! writing another (one AMQP layer for the project):
//!
//! - [`Connection`]: the supervised connection (reconnects with backoff);
//!   [`Connection::channel`] opens a channel on the live connection.
//! - [`ExchangeDeclaration`] and [`QueueDeclaration`]: exchanges, queues
//!   (with arguments such as `x-dead-letter-exchange`) and their binding,
//!   declared again on every new channel.
//! - [`spawn_consumer`]: a consumer that redeclares its queue and consumes
//!   again after each reconnection, with a prefetch, running one task per
//!   delivery; [`ConsumerHandle`] stops it.
//!
//! Nameko's own names and declarations are in [`topology`](crate::topology).
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sfstream_nameko::amqp::{
//!     Connection, DeliveryFn, ExchangeDeclaration, QueueDeclaration, spawn_consumer,
//! };
//! use sfstream_nameko::amqp::lapin::{ExchangeKind, options::BasicAckOptions};
//!
//! # async fn demo() -> Result<(), sfstream_nameko::Error> {
//! let conn = Connection::connect("amqp://guest:guest@127.0.0.1").await?;
//! let queue = QueueDeclaration::new("jobs", ExchangeDeclaration::new("jobs", ExchangeKind::Direct), "jobs");
//! let handler: DeliveryFn = Arc::new(|delivery| {
//!     Box::pin(async move {
//!         let _ = delivery.acker.ack(BasicAckOptions::default()).await;
//!     })
//! });
//! let consumer = spawn_consumer(conn.clone(), queue, 10, handler).await?;
//! consumer.shutdown(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::Error;

pub use crate::connection::{Connection, ConnectionOptions, RECONNECT_BACKOFF};
pub use crate::consumer::{ConsumerHandle, DeliveryFn, DeliveryFuture, spawn_consumer};
/// The AMQP client this layer is built on, re-exported so that users name
/// the same version of its types (`Delivery`, `BasicProperties`, …).
pub use lapin;

/// An exchange declaration. Nameko's RPC and event exchanges are both
/// `type=topic, durable=True, auto_delete=False`, without arguments
/// ([`topic`](Self::topic)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeDeclaration {
    /// Exchange name.
    pub name: String,
    /// Exchange type.
    pub kind: ExchangeKind,
    /// `durable` flag.
    pub durable: bool,
    /// `auto_delete` flag.
    pub auto_delete: bool,
}

impl ExchangeDeclaration {
    /// A durable, non-auto-delete exchange of the given type.
    pub fn new(name: impl Into<String>, kind: ExchangeKind) -> Self {
        Self {
            name: name.into(),
            kind,
            durable: true,
            auto_delete: false,
        }
    }

    /// A durable, non-auto-delete topic exchange, as Nameko declares.
    pub fn topic(name: impl Into<String>) -> Self {
        Self::new(name, ExchangeKind::Topic)
    }

    /// Declares the exchange on `channel` (idempotent when the properties
    /// match; otherwise the broker closes the channel with
    /// `PRECONDITION_FAILED`).
    pub async fn declare(&self, channel: &Channel) -> Result<(), Error> {
        channel
            .exchange_declare(
                self.name.as_str().into(),
                self.kind.clone(),
                ExchangeDeclareOptions {
                    durable: self.durable,
                    auto_delete: self.auto_delete,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }
}

/// A queue declaration with its single binding.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDeclaration {
    /// Queue name.
    pub name: String,
    /// `durable` flag.
    pub durable: bool,
    /// `exclusive` flag.
    pub exclusive: bool,
    /// `auto_delete` flag.
    pub auto_delete: bool,
    /// `x-expires` argument, in milliseconds, if any.
    pub expires_ms: Option<i64>,
    /// Further queue arguments (`x-dead-letter-exchange`,
    /// `x-single-active-consumer`, …).
    pub arguments: FieldTable,
    /// The exchange the queue is bound to (declared first).
    pub exchange: ExchangeDeclaration,
    /// The binding's routing key.
    pub routing_key: String,
}

impl QueueDeclaration {
    /// A durable queue (not exclusive, not auto-delete, no arguments) bound
    /// to `exchange` with `routing_key`.
    pub fn new(
        name: impl Into<String>,
        exchange: ExchangeDeclaration,
        routing_key: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            durable: true,
            exclusive: false,
            auto_delete: false,
            expires_ms: None,
            arguments: FieldTable::default(),
            exchange,
            routing_key: routing_key.into(),
        }
    }

    /// Adds a queue argument.
    pub fn argument(mut self, key: &str, value: AMQPValue) -> Self {
        self.arguments.insert(key.into(), value);
        self
    }

    /// Declares the exchange, the queue and the binding on `channel`.
    pub async fn declare(&self, channel: &Channel) -> Result<(), Error> {
        self.exchange.declare(channel).await?;
        let mut args = self.arguments.clone();
        if let Some(ms) = self.expires_ms {
            args.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
        }
        channel
            .queue_declare(
                self.name.as_str().into(),
                QueueDeclareOptions {
                    durable: self.durable,
                    exclusive: self.exclusive,
                    auto_delete: self.auto_delete,
                    ..Default::default()
                },
                args,
            )
            .await?;
        channel
            .queue_bind(
                self.name.as_str().into(),
                self.exchange.name.as_str().into(),
                self.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }
}
