//! Nameko entrypoints and dependencies: RPC methods (`@rpc`), event
//! handlers (`@event_handler`) and the event dispatcher
//! (`EventDispatcher()`), interoperable with Python Nameko 2.14 services
//! on the same RabbitMQ.
//!
//! Register them on the [`Service`](crate::Service) builder:
//! [`Service::rpc`](crate::Service::rpc),
//! [`Service::event_handler`](crate::Service::event_handler) and
//! [`Service::event_dispatcher`](crate::Service::event_dispatcher). The
//! service connects to the config's `AMQP_URI` when it starts (before
//! any entrypoint), uses its `rpc_exchange` (default `nameko-rpc`),
//! `max_workers` and `parent_calls_tracked`, and on shutdown stops the
//! consumers, lets in-flight calls finish within `SHUTDOWN_TIMEOUT`, then
//! disconnects.
//!
//! ```no_run
//! use serde_json::{Map, Value, json};
//! use sfstream_service::config::Config;
//! use sfstream_service::nameko::{RpcCall, RpcError, Signature};
//! use sfstream_service::Service;
//!
//! async fn hello(call: RpcCall, args: Vec<Value>, kwargs: Map<String, Value>) -> Result<Value, RpcError> {
//!     let name = call.arg(&args, &kwargs, 0, "name")?;
//!     call.dispatch("greeted", &json!({"name": name})).await?;
//!     Ok(json!(format!("Hello, {name}!")))
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! Service::new("greeter")
//!     .config(Config::from_yaml("AMQP_URI: 'pyamqp://guest:guest@localhost'")?)
//!     .rpc("hello", Signature::new().param("name"), hello)
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use sfstream_nameko::{Connection, ConsumerHandle, EventHandler, RpcServer};
use sfstream_salesforce::rest::SalesforceClient;

pub use sfstream_nameko::{
    EventDispatcher, HandlerType, RpcError, Signature, WorkerContext, WorkerDispatcher, redact_uri,
};

use crate::error::ServiceError;
use crate::handler::{EventContext, ExtractError, FromEvent, IntoHandlerResult, function_name};
use crate::runtime::{ContextBuilder, Entrypoints, RunningEntrypoints, ServiceContext};
use crate::shutdown::ShutdownSignal;
use crate::worker::parent_calls_tracked;

/// The AMQP connection of a service with Nameko entrypoints or an event
/// dispatcher, and its event dispatcher: an
/// [extension](ServiceContext::extension) of its context, connected
/// before any entrypoint starts and closed once every one stopped.
///
/// ```no_run
/// # async fn f(running: sfstream_service::RunningService) -> Result<(), sfstream_nameko::Error> {
/// use serde_json::json;
/// use sfstream_service::nameko::Amqp;
///
/// let amqp = running.context().extension::<Amqp>().expect("an AMQP connection");
/// amqp.dispatcher().dispatch("greeted", &json!({"name": "Bob"})).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Amqp {
    connection: Connection,
    dispatcher: Arc<EventDispatcher>,
}

impl fmt::Debug for Amqp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Amqp")
            .field("uri", &self.connection.uri().to_string())
            .finish_non_exhaustive()
    }
}

impl Amqp {
    /// The service's event dispatcher, on `<service>.events`. Its events
    /// carry no worker context, like Nameko's standalone
    /// `event_dispatcher`; inside a handler, dispatch through [`RpcCall`],
    /// [`NamekoEvent`] or [`Dispatcher`] instead.
    pub fn dispatcher(&self) -> &Arc<EventDispatcher> {
        &self.dispatcher
    }

    /// Connects to the config's `AMQP_URI`.
    async fn connect(context_name: &str, uri: Option<&str>) -> Result<Self, ServiceError> {
        let uri = uri.ok_or_else(|| ServiceError::Entrypoints {
            entrypoints: "Nameko".into(),
            message: "the service has Nameko entrypoints or an event dispatcher but the config has no AMQP_URI".into(),
        })?;
        let connection = Connection::connect(uri)
            .await
            .map_err(|e| ServiceError::Entrypoints {
                entrypoints: "Nameko".into(),
                message: format!("cannot connect to {}: {e}", redact_uri(uri)),
            })?;
        tracing::info!(service = %context_name, amqp = %redact_uri(uri), "connected to the AMQP broker");
        let dispatcher = Arc::new(EventDispatcher::new(&connection, context_name));
        Ok(Self {
            connection,
            dispatcher,
        })
    }
}

/// An RPC call as a method sees it: the Nameko worker context (call id
/// stack, context data) and the service's dependencies.
#[derive(Debug, Clone)]
pub struct RpcCall {
    worker: WorkerContext,
    service: ServiceContext,
}

impl RpcCall {
    /// The Nameko worker context of the call.
    pub fn worker(&self) -> &WorkerContext {
        &self.worker
    }

    /// The service.
    pub fn service(&self) -> &ServiceContext {
        &self.service
    }

    /// The dependency of type `T` given to
    /// [`Service::dependency`](crate::Service::dependency).
    ///
    /// # Errors
    ///
    /// An `RpcError` (a Python `Exception` for the caller) when none was given.
    pub fn dependency<T: Send + Sync + 'static>(&self) -> Result<Arc<T>, RpcError> {
        self.service.dependency::<T>().ok_or_else(|| {
            RpcError::new(format!(
                "no dependency of type {} was given to Service::dependency",
                std::any::type_name::<T>()
            ))
        })
    }

    /// The Salesforce REST client (the extension's `SalesforceAPI`).
    ///
    /// # Errors
    ///
    /// When the config has no `SALESFORCE:` section.
    pub fn salesforce(&self) -> Result<&SalesforceClient, RpcError> {
        self.service
            .extension::<SalesforceClient>()
            .ok_or_else(|| RpcError::new("the service has no SALESFORCE configuration"))
    }

    /// The service's event dispatcher (on `<service>.events`) bound to
    /// this call: its events carry the call's context headers and call id
    /// stack, like a Nameko `EventDispatcher` dependency's.
    ///
    /// # Errors
    ///
    /// When the service has no AMQP connection.
    pub fn dispatcher(&self) -> Result<WorkerDispatcher, RpcError> {
        worker_dispatcher(&self.service, &self.worker)
            .ok_or_else(|| RpcError::new("the service has no AMQP connection"))
    }

    /// Dispatches `event_type` with `payload` on behalf of this call
    /// (through [`dispatcher`](Self::dispatcher)).
    ///
    /// # Errors
    ///
    /// When the broker did not confirm the event.
    pub async fn dispatch(&self, event_type: &str, payload: &Value) -> Result<(), RpcError> {
        self.dispatcher()?
            .dispatch(event_type, payload)
            .await
            .map_err(|e| RpcError::new(format!("dispatching {event_type} failed: {e}")))
    }

    /// The argument at `position`, or the keyword argument `name` (as
    /// Python binds them), `null` when absent.
    ///
    /// # Errors
    ///
    /// Never for declared parameters (the signature was checked); kept
    /// fallible for symmetry with typed accessors.
    pub fn arg(
        &self,
        args: &[Value],
        kwargs: &Map<String, Value>,
        position: usize,
        name: &str,
    ) -> Result<Value, RpcError> {
        Ok(args
            .get(position)
            .or_else(|| kwargs.get(name))
            .cloned()
            .unwrap_or(Value::Null))
    }
}

/// An event received by a Nameko event handler.
#[derive(Debug, Clone)]
pub struct NamekoEvent {
    worker: WorkerContext,
    service: ServiceContext,
}

impl NamekoEvent {
    /// The Nameko worker context (context headers of the dispatcher).
    pub fn worker(&self) -> &WorkerContext {
        &self.worker
    }

    /// The service (dependencies, Salesforce client, dispatcher).
    pub fn service(&self) -> &ServiceContext {
        &self.service
    }

    /// The service's event dispatcher bound to this handler call: its
    /// events carry the call's context headers and call id stack.
    ///
    /// # Errors
    ///
    /// When the service has no AMQP connection.
    pub fn dispatcher(&self) -> Result<WorkerDispatcher, String> {
        worker_dispatcher(&self.service, &self.worker)
            .ok_or_else(|| "the service has no AMQP connection".to_owned())
    }

    /// Dispatches an event on behalf of this handler (through
    /// [`dispatcher`](Self::dispatcher)).
    ///
    /// # Errors
    ///
    /// When the broker did not confirm the event.
    pub async fn dispatch(&self, event_type: &str, payload: &Value) -> Result<(), String> {
        self.dispatcher()?
            .dispatch(event_type, payload)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The service's Nameko event dispatcher, as a handler argument of
/// Salesforce entrypoints (the extension's `dispatch = EventDispatcher()`),
/// bound to the handler call's [worker](EventContext::worker): like
/// Nameko's, its events carry `nameko.call_id_stack`
/// (`["<service>.<handler>.<uuid>"]`). Requires
/// [`Service::event_dispatcher`](crate::Service::event_dispatcher)
/// (or any Nameko entrypoint) and `AMQP_URI`.
///
/// ```
/// use sfstream_service::nameko::Dispatcher;
/// use sfstream_service::{Notification, Service, SobjectType, handle_sobject_notification};
///
/// async fn proxy(
///     SobjectType(t): SobjectType,
///     Notification(n): Notification,
///     Dispatcher(dispatch): Dispatcher,
/// ) -> Result<(), sfstream_nameko::Error> {
///     let event = format!("salesforce_{}_{}", t.to_lowercase(), n["event"]["type"].as_str().unwrap_or("unknown"));
///     dispatch.dispatch(&event, &n["sobject"]).await
/// }
///
/// let service = Service::new("s")
///     .event_dispatcher()
///     .handler(proxy, [handle_sobject_notification("Lead")]);
/// ```
#[derive(Debug, Clone)]
pub struct Dispatcher(pub WorkerDispatcher);

impl Deref for Dispatcher {
    type Target = WorkerDispatcher;
    fn deref(&self) -> &WorkerDispatcher {
        &self.0
    }
}

impl Dispatcher {
    /// The dispatcher of a service bound to `worker` (for other entrypoint
    /// kinds).
    ///
    /// # Errors
    ///
    /// When the service has no AMQP connection.
    pub fn from_context(
        service: &ServiceContext,
        worker: &WorkerContext,
    ) -> Result<Self, ExtractError> {
        worker_dispatcher(service, worker).map(Dispatcher).ok_or_else(|| {
            ExtractError::new(
                "the service has no event dispatcher: call Service::event_dispatcher() and set AMQP_URI",
            )
        })
    }
}

impl FromEvent for Dispatcher {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        Dispatcher::from_context(event.service(), event.worker())
    }
}

/// The service's dispatcher bound to `worker`, when it has one.
fn worker_dispatcher(service: &ServiceContext, worker: &WorkerContext) -> Option<WorkerDispatcher> {
    service
        .extension::<Amqp>()
        .map(|amqp| WorkerDispatcher::new(amqp.dispatcher.clone(), worker))
}

type RpcFn = Arc<
    dyn Fn(RpcCall, Vec<Value>, Map<String, Value>) -> BoxFuture<'static, Result<Value, RpcError>>
        + Send
        + Sync,
>;
type EventFn =
    Arc<dyn Fn(NamekoEvent, Value) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

struct RpcMethod {
    name: String,
    signature: Option<Signature>,
    function: RpcFn,
}

struct EventRoute {
    source_service: String,
    event_type: String,
    handler_type: HandlerType,
    method_name: String,
    function: EventFn,
}

/// The Nameko entrypoints of a service: its RPC methods and event
/// handlers, and the [`Amqp`] connection they and the event dispatcher
/// share. Built by [`Service::rpc`](crate::Service::rpc),
/// [`Service::event_handler`](crate::Service::event_handler) and
/// [`Service::event_dispatcher`](crate::Service::event_dispatcher).
#[derive(Default)]
pub(crate) struct NamekoEntrypoints {
    methods: Vec<RpcMethod>,
    events: Vec<EventRoute>,
}

impl NamekoEntrypoints {
    pub(crate) fn add_rpc<F, Fut>(&mut self, name: String, signature: Option<Signature>, handler: F)
    where
        F: Fn(RpcCall, Vec<Value>, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let function: RpcFn =
            Arc::new(move |call, args, kwargs| Box::pin(handler(call, args, kwargs)));
        self.methods.retain(|m| m.name != name);
        self.methods.push(RpcMethod {
            name,
            signature,
            function,
        });
    }

    pub(crate) fn add_event_handler<F, Fut, R>(
        &mut self,
        source_service: String,
        event_type: String,
        handler_type: HandlerType,
        handler: F,
    ) where
        F: Fn(NamekoEvent, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoHandlerResult + 'static,
    {
        let handler = Arc::new(handler);
        let function: EventFn = Arc::new(move |event, payload| {
            let fut = handler(event, payload);
            Box::pin(async move { fut.await.into_handler_result() })
        });
        let method_name = handler_method_name::<F>(&source_service, &event_type);
        self.events.push(EventRoute {
            source_service,
            event_type,
            handler_type,
            method_name,
            function,
        });
    }
}

/// The "method name" of a handler, part of its queue name
/// (`evt-<source>-<event>--<service>.<method>`): the function's name, or
/// `handle_<source>_<event>` for closures.
fn handler_method_name<F>(source_service: &str, event_type: &str) -> String {
    match function_name::<F>() {
        Some(name) => name.to_owned(),
        None => format!("handle_{source_service}_{event_type}").replace(['.', '-'], "_"),
    }
}

fn raw_str(ctx: &ServiceContext, key: &str) -> Option<String> {
    ctx.config()
        .raw
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

impl Entrypoints for NamekoEntrypoints {
    fn describe(&self) -> String {
        "Nameko".into()
    }

    fn provide<'a>(
        &'a mut self,
        context: &'a mut ContextBuilder,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        Box::pin(async move {
            let amqp = Amqp::connect(context.name(), context.config().amqp_uri.as_deref()).await?;
            let closing = amqp.clone();
            context.on_stop(move || async move {
                closing.dispatcher.close().await;
                closing.connection.close().await;
            });
            context.insert_extension(amqp);
            Ok(())
        })
    }

    fn start(
        self: Box<Self>,
        context: ServiceContext,
        shutdown: ShutdownSignal,
    ) -> BoxFuture<'static, Result<RunningEntrypoints, ServiceError>> {
        Box::pin(async move {
            let failed = |message: String| ServiceError::Entrypoints {
                entrypoints: "Nameko".into(),
                message,
            };
            let amqp = context
                .extension::<Amqp>()
                .cloned()
                .ok_or_else(|| failed("no AMQP connection".into()))?;
            let max_workers = u16::try_from(context.config().max_workers).unwrap_or(u16::MAX);
            let mut handles: Vec<ConsumerHandle> = Vec::new();
            let NamekoEntrypoints { methods, events } = *self;

            if !methods.is_empty() {
                let mut server = RpcServer::new(context.name()).max_workers(max_workers);
                if let Some(exchange) = raw_str(&context, "rpc_exchange") {
                    server = server.rpc_exchange(exchange);
                }
                server = server.parent_calls_tracked(parent_calls_tracked(&context));
                for method in methods {
                    let ctx = context.clone();
                    let function = method.function.clone();
                    let f = move |worker: WorkerContext, args, kwargs| {
                        let call = RpcCall {
                            worker,
                            service: ctx.clone(),
                        };
                        function(call, args, kwargs)
                    };
                    server = match method.signature {
                        Some(sig) => server.method_with_signature(method.name, sig, f),
                        None => server.method(method.name, f),
                    };
                }
                let handle = server
                    .start(&amqp.connection)
                    .await
                    .map_err(|e| failed(format!("starting the RPC server failed: {e}")))?;
                tracing::info!(service = %context.name(), queue = %handle.queue_name(), "serving RPC");
                handles.push(handle);
            }
            for route in events {
                let ctx = context.clone();
                let function = route.function.clone();
                let started = EventHandler::new(
                    context.name(),
                    &route.method_name,
                    &route.source_service,
                    &route.event_type,
                )
                .handler_type(route.handler_type)
                .max_workers(max_workers)
                .parent_calls_tracked(parent_calls_tracked(&context))
                .start(&amqp.connection, move |worker, payload| {
                    let event = NamekoEvent {
                        worker,
                        service: ctx.clone(),
                    };
                    let fut = function(event, payload);
                    async move { fut.await.map_err(sfstream_nameko::HandlerError) }
                })
                .await;
                match started {
                    Ok(handle) => {
                        tracing::info!(service = %context.name(), queue = %handle.queue_name(), "handling events");
                        handles.push(handle);
                    }
                    Err(e) => {
                        stop_all(handles, Duration::ZERO).await;
                        return Err(failed(format!(
                            "starting the handler of {}.{} failed: {e}",
                            route.source_service, route.event_type
                        )));
                    }
                }
            }
            let timeout = context.config().shutdown_timeout;
            let running: RunningEntrypoints = Box::pin(async move {
                shutdown.wait().await;
                if !stop_all(handles, timeout).await {
                    tracing::warn!(service = %context.name(), ?timeout, "some RPC calls or event handlers did not finish within the shutdown timeout");
                }
                Ok(())
            });
            Ok(running)
        })
    }
}

async fn stop_all(handles: Vec<ConsumerHandle>, timeout: Duration) -> bool {
    futures::future::join_all(handles.into_iter().map(|h| h.shutdown(timeout)))
        .await
        .into_iter()
        .all(|ok| ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn my_handler(_e: NamekoEvent, _p: Value) {}

    #[test]
    fn method_names() {
        fn name_of<F>(_: &F) -> String {
            handler_method_name::<F>("src-svc", "evt")
        }
        assert_eq!(name_of(&my_handler), "my_handler");
        let closure = |_e: NamekoEvent, _p: Value| async {};
        assert_eq!(name_of(&closure), "handle_src_svc_evt");
    }
}
