//! Events: Nameko's `EventDispatcher` and `@event_handler`.

use std::future::Future;
use std::sync::Arc;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use serde_json::{Map, Value};

use crate::consumer::{ConsumerHandle, DeliveryFn, spawn_consumer};
use crate::headers::{encode_context_headers, unpack_context_headers};
use crate::publisher::{Outgoing, Publisher, json_properties};
use crate::rpc_server::DEFAULT_MAX_WORKERS;
use crate::topology::{ExchangeDeclaration, HandlerType, QueueDeclaration, event_exchange_name};
use crate::{Connection, Error, EventContext, WorkerContext};

/// Dispatches a service's events to its `<service>.events` topic exchange
/// (declared durable, as Nameko does), with the event type as routing key,
/// persistent delivery and publisher confirms.
///
/// ```no_run
/// use serde_json::json;
/// use sfstream_nameko::{Connection, EventDispatcher};
///
/// # async fn demo() -> Result<(), sfstream_nameko::Error> {
/// let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
/// let events = EventDispatcher::new(&conn, "contacts");
/// events.dispatch("contact_created", &json!({"id": 42})).await?;
/// # Ok(()) }
/// ```
pub struct EventDispatcher {
    service_name: String,
    exchange: ExchangeDeclaration,
    publisher: Publisher,
}

impl std::fmt::Debug for EventDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDispatcher")
            .field("service_name", &self.service_name)
            .finish()
    }
}

impl EventDispatcher {
    /// A dispatcher of `service_name`'s events.
    pub fn new(conn: &Connection, service_name: impl Into<String>) -> Self {
        let service_name = service_name.into();
        Self {
            exchange: ExchangeDeclaration::topic(event_exchange_name(&service_name)),
            service_name,
            publisher: Publisher::new(conn.clone()),
        }
    }

    /// Limits how long one dispatch may take, reconnections included
    /// (default 30 s).
    pub fn with_publish_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.publisher = self.publisher.with_timeout(timeout);
        self
    }

    /// The service whose events this dispatches.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// Dispatches an event without context headers (like Nameko's standalone
    /// `event_dispatcher`). Returns once the broker confirmed it.
    pub async fn dispatch(&self, event_type: &str, payload: &Value) -> Result<(), Error> {
        self.dispatch_with_data(event_type, payload, &Map::new())
            .await
    }

    /// Dispatches on behalf of a worker: the event carries the worker's
    /// context data as `nameko.*` headers, including its extended
    /// `call_id_stack` (like an `EventDispatcher` dependency in Nameko).
    pub async fn dispatch_with_context(
        &self,
        ctx: &WorkerContext,
        event_type: &str,
        payload: &Value,
    ) -> Result<(), Error> {
        self.dispatch_with_data(event_type, payload, &ctx.context_data())
            .await
    }

    /// Dispatches with explicit context data.
    pub async fn dispatch_with_data(
        &self,
        event_type: &str,
        payload: &Value,
        context_data: &Map<String, Value>,
    ) -> Result<(), Error> {
        let body = serde_json::to_vec(payload)?;
        let props = json_properties().with_headers(encode_context_headers(context_data));
        self.publisher
            .publish(Outgoing {
                exchange: &self.exchange,
                routing_key: event_type,
                body: &body,
                properties: props,
                mandatory: false,
            })
            .await?;
        Ok(())
    }

    /// Closes the dispatcher's channel.
    pub async fn close(&self) {
        self.publisher.close().await;
    }
}

/// An [`EventDispatcher`] bound to one worker: what Nameko's
/// `EventDispatcher` dependency injects into a service for each worker
/// (`self.dispatch`). Every event it dispatches carries the worker's
/// context data as `nameko.*` headers, always including
/// `nameko.call_id_stack`: the incoming stack with the worker's call id
/// appended, keeping the last `parent_calls_tracked + 1` entries.
///
/// ```no_run
/// use std::sync::Arc;
/// use serde_json::{Map, json};
/// use sfstream_nameko::{Connection, EventDispatcher, WorkerContext, WorkerDispatcher};
///
/// # async fn demo() -> Result<(), sfstream_nameko::Error> {
/// let conn = Connection::connect("pyamqp://guest:guest@127.0.0.1:5672/").await?;
/// let events = Arc::new(EventDispatcher::new(&conn, "contacts"));
/// let worker = WorkerContext::new("contacts", "create", Map::new());
/// let dispatch = WorkerDispatcher::new(events, &worker);
/// // nameko.call_id_stack = ["contacts.create.<uuid>"]
/// dispatch.dispatch("contact_created", &json!({"id": 42})).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WorkerDispatcher {
    dispatcher: Arc<EventDispatcher>,
    /// Computed once, as Nameko computes a worker's headers once.
    context_data: Arc<Map<String, Value>>,
}

impl std::fmt::Debug for WorkerDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Context data may hold an auth token: only the call ids are shown.
        f.debug_struct("WorkerDispatcher")
            .field("service_name", &self.dispatcher.service_name)
            .field(
                "call_id_stack",
                &self.context_data.get(crate::CALL_ID_STACK_KEY),
            )
            .finish_non_exhaustive()
    }
}

impl WorkerDispatcher {
    /// `dispatcher` dispatching on behalf of `worker`.
    pub fn new(dispatcher: Arc<EventDispatcher>, worker: &WorkerContext) -> Self {
        Self {
            dispatcher,
            context_data: Arc::new(worker.context_data()),
        }
    }

    /// Dispatches `event_type` with `payload` and the worker's context
    /// headers. Returns once the broker confirmed it.
    pub async fn dispatch(&self, event_type: &str, payload: &Value) -> Result<(), Error> {
        self.dispatcher
            .dispatch_with_data(event_type, payload, &self.context_data)
            .await
    }

    /// The service whose events this dispatches.
    pub fn service_name(&self) -> &str {
        self.dispatcher.service_name()
    }

    /// The `call_id_stack` the events carry.
    pub fn call_id_stack(&self) -> Vec<String> {
        match self.context_data.get(crate::CALL_ID_STACK_KEY) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The error an event handler returns. The event is acked anyway (and the
/// error logged) unless the handler was built with
/// [`requeue_on_error`](EventHandler::requeue_on_error).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl From<String> for HandlerError {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for HandlerError {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// A handler of another service's events, like Nameko's
/// `@event_handler(source_service, event_type, handler_type=…,
/// reliable_delivery=True, requeue_on_error=False)` on method
/// `method_name` of service `service_name`.
///
/// ```no_run
/// use serde_json::Value;
/// use sfstream_nameko::{Connection, EventHandler, HandlerError, HandlerType};
///
/// # async fn demo() -> Result<(), sfstream_nameko::Error> {
/// let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
/// let running = EventHandler::new("mailer", "on_contact_created", "contacts", "contact_created")
///     .handler_type(HandlerType::ServicePool)
///     .start(&conn, |ctx, payload: Value| async move {
///         println!("{} got {payload}", ctx.call_id);
///         Ok::<(), HandlerError>(())
///     })
///     .await?;
/// // queue: evt-contacts-contact_created--mailer.on_contact_created
/// # drop(running);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EventHandler {
    service_name: String,
    method_name: String,
    source_service: String,
    event_type: String,
    handler_type: HandlerType,
    reliable_delivery: bool,
    requeue_on_error: bool,
    broadcast_identifier: Option<String>,
    max_workers: u16,
    parent_calls_tracked: usize,
}

impl EventHandler {
    /// A service-pool handler, reliable delivery, no requeue on error.
    pub fn new(
        service_name: impl Into<String>,
        method_name: impl Into<String>,
        source_service: impl Into<String>,
        event_type: impl Into<String>,
    ) -> Self {
        Self {
            service_name: service_name.into(),
            method_name: method_name.into(),
            source_service: source_service.into(),
            event_type: event_type.into(),
            handler_type: HandlerType::ServicePool,
            reliable_delivery: true,
            requeue_on_error: false,
            broadcast_identifier: None,
            max_workers: DEFAULT_MAX_WORKERS,
            parent_calls_tracked: crate::DEFAULT_PARENT_CALLS_TRACKED,
        }
    }

    /// Sets the handler type (default [`HandlerType::ServicePool`]).
    pub fn handler_type(mut self, handler_type: HandlerType) -> Self {
        self.handler_type = handler_type;
        self
    }

    /// Reliable delivery (default true): the queue survives the handler
    /// (not auto-delete, not exclusive).
    pub fn reliable_delivery(mut self, reliable: bool) -> Self {
        self.reliable_delivery = reliable;
        self
    }

    /// Requeue the event when the handler fails (default false: ack).
    pub fn requeue_on_error(mut self, requeue: bool) -> Self {
        self.requeue_on_error = requeue;
        self
    }

    /// The broadcast identifier of this instance. Nameko's default is a
    /// fresh uuid (hex), which it refuses with reliable delivery; so does this.
    pub fn broadcast_identifier(mut self, id: impl Into<String>) -> Self {
        self.broadcast_identifier = Some(id.into());
        self
    }

    /// Maximum concurrent handlers (prefetch); default 10.
    pub fn max_workers(mut self, max_workers: u16) -> Self {
        self.max_workers = max_workers.max(1);
        self
    }

    /// Nameko's `parent_calls_tracked` for the handler's workers; default 10.
    pub fn parent_calls_tracked(mut self, n: usize) -> Self {
        self.parent_calls_tracked = n;
        self
    }

    /// The queue declaration for this handler.
    pub fn queue_declaration(&self) -> Result<QueueDeclaration, Error> {
        let identifier = match (self.handler_type, &self.broadcast_identifier) {
            (HandlerType::Broadcast, Some(id)) => Some(id.clone()),
            (HandlerType::Broadcast, None) if self.reliable_delivery => {
                return Err(Error::Configuration(
                    "You are using the default broadcast identifier which is not compatible with reliable delivery."
                        .to_owned(),
                ));
            }
            (HandlerType::Broadcast, None) => Some(uuid::Uuid::new_v4().simple().to_string()),
            _ => None,
        };
        Ok(QueueDeclaration::event_handler(
            &self.source_service,
            &self.event_type,
            self.handler_type,
            &self.service_name,
            &self.method_name,
            identifier.as_deref(),
            self.reliable_delivery,
        ))
    }

    /// Declares the source's events exchange, the queue and its binding, and
    /// starts handling events. Each event is acked after `handler` returns
    /// (at-least-once delivery).
    pub async fn start<F, Fut>(self, conn: &Connection, handler: F) -> Result<ConsumerHandle, Error>
    where
        F: Fn(EventContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let queue = self.queue_declaration()?;
        let prefetch = self.max_workers;
        let me = Arc::new(self);
        let handler = Arc::new(handler);
        let f: DeliveryFn = Arc::new(move |delivery: Delivery| {
            let me = me.clone();
            let handler = handler.clone();
            Box::pin(async move { me.handle(delivery, handler.as_ref()).await })
        });
        spawn_consumer(conn.clone(), queue, prefetch, f).await
    }

    async fn handle<F, Fut>(&self, delivery: Delivery, handler: &F)
    where
        F: Fn(EventContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let data = unpack_context_headers(delivery.properties.headers().as_ref());
        let mut ctx = EventContext::new(&self.service_name, &self.method_name, data);
        ctx.parent_calls_tracked = self.parent_calls_tracked;
        let outcome = match serde_json::from_slice::<Value>(&delivery.data) {
            Ok(payload) => match tokio::spawn(handler(ctx, payload)).await {
                Ok(r) => r,
                Err(e) => Err(HandlerError(format!("handler failed: {e}"))),
            },
            Err(e) => Err(HandlerError(format!("undecodable event body: {e}"))),
        };
        let result = match outcome {
            Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
            Err(e) if self.requeue_on_error => {
                tracing::warn!(service = %self.service_name, method = %self.method_name, error = %e, "event handler failed; requeueing");
                delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: true })
                    .await
            }
            Err(e) => {
                tracing::error!(service = %self.service_name, method = %self.method_name, error = %e, "event handler failed");
                delivery.acker.ack(BasicAckOptions::default()).await
            }
        };
        if let Err(e) = result {
            tracing::warn!(service = %self.service_name, error = %e, "could not ack event");
        }
    }
}
