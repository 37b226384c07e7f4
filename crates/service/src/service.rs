//! The service: name, configuration, shared dependencies, handlers bound to
//! entrypoints; started, run until a termination signal, stopped
//! gracefully.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Map, Value};
use sfstream_nameko::{HandlerType, RpcError, Signature};
use sfstream_salesforce::replay::ReplayStore;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::entrypoints::Entrypoint;
use crate::error::ServiceError;
use crate::handler::{Handler, IntoHandlerResult};
use crate::metrics::{ServiceMetrics, serve};
use crate::nameko::{NamekoEntrypoints, NamekoEvent, RpcCall};
use crate::runtime::{ContextBuilder, Entrypoints, RunningEntrypoints, ServiceContext, TypeMap};
use crate::shutdown::{Shutdown, termination_signal};
use crate::streaming::StreamingEntrypoints;

/// A service: a name, a configuration, shared dependencies and handlers
/// bound to entrypoints.
///
/// ```no_run
/// use sfstream_service::config::Config;
/// use sfstream_service::{Notification, RecordType, Service, SobjectType, handle_sobject_notification};
///
/// async fn handle_salesforce_updates(
///     SobjectType(sobject_type): SobjectType,
///     RecordType(_record_type): RecordType,
///     Notification(notification): Notification,
/// ) {
///     println!("salesforce_{}_{}", sobject_type.to_lowercase(), notification["event"]["type"]);
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// Service::new("some-service")
///     .config(Config::load("config.yaml")?)
///     .handler(
///         handle_salesforce_updates,
///         [handle_sobject_notification("Lead"), handle_sobject_notification("Opportunity")],
///     )
///     .run() // until SIGTERM or SIGINT
///     .await?;
/// # Ok(()) }
/// ```
pub struct Service {
    name: String,
    config: Config,
    dependencies: TypeMap,
    /// The entrypoint groups, in the order they provide and start.
    groups: Vec<Box<dyn Entrypoints>>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self.groups.iter().map(|g| g.describe()).collect();
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("entrypoints", &groups)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service named `name` with the default configuration.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            config: Config::default(),
            dependencies: TypeMap::default(),
            groups: Vec::new(),
        }
    }

    /// The group of type `G`, added (last) when the service has none yet.
    fn group<G: Entrypoints + Default>(&mut self) -> &mut G {
        let found = self
            .groups
            .iter()
            .position(|group| (&**group as &dyn Any).is::<G>());
        let index = found.unwrap_or_else(|| {
            self.groups.push(Box::new(G::default()));
            self.groups.len() - 1
        });
        let group: &mut dyn Any = &mut *self.groups[index];
        group.downcast_mut().expect("the group at `index` is a G")
    }

    /// Keeps replay markers in `store` instead of the one the
    /// configuration names (a custom store, or one a test inspects).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sfstream_salesforce::replay::MemoryStore;
    /// use sfstream_service::Service;
    ///
    /// let markers = Arc::new(MemoryStore::new());
    /// let service = Service::new("s").replay_store(markers.clone());
    /// ```
    #[must_use]
    pub fn replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.group::<StreamingEntrypoints>().replay_store(store);
        self
    }

    /// Sets the configuration.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds a shared dependency, which handlers take with
    /// [`Dep<T>`](crate::Dep) (one per type; a second replaces the first).
    #[must_use]
    pub fn dependency<T: Send + Sync + 'static>(self, dependency: T) -> Self {
        self.dependency_arc(Arc::new(dependency))
    }

    /// Adds a shared dependency already in an `Arc`.
    #[must_use]
    pub fn dependency_arc<T: Send + Sync + 'static>(mut self, dependency: Arc<T>) -> Self {
        self.dependencies.insert(dependency);
        self
    }

    /// Binds `handler` to one or more entrypoints (several: *stacking*).
    ///
    /// ```
    /// use sfstream_service::{Channel, Notification, Service, subscribe};
    ///
    /// async fn log(Channel(channel): Channel, Notification(event): Notification) {
    ///     println!("{channel}: {event}");
    /// }
    ///
    /// let service = Service::new("s").handler(log, [subscribe("/topic/A"), subscribe("/topic/B")]);
    /// ```
    #[must_use]
    pub fn handler<H, Args, E>(
        mut self,
        handler: H,
        entrypoints: impl IntoIterator<Item = E>,
    ) -> Self
    where
        H: Handler<Args>,
        E: Into<Entrypoint>,
    {
        self.group::<StreamingEntrypoints>()
            .add(handler, entrypoints.into_iter().map(Into::into));
        self
    }

    /// Calls `handler` with every [`Gap`](sfstream_salesforce::replay::Gap)
    /// of the service's channels: a stored replay id had expired and the
    /// channel fell back to `REPLAY_FALLBACK` (`NEW` or `ALL`), so the
    /// events of the gap's window may have been missed (with `NEW`, all of
    /// them; with `ALL`, those that aged out). A gap is not an event: no
    /// entrypoint handler sees it, and it moves no marker. Gap handlers run
    /// one after another, each bounded by `HANDLER_TIMEOUT`; without one,
    /// gaps are logged (always) and counted (`sfstream_gaps_total`).
    ///
    /// ```
    /// use sfstream_service::{Gap, Service};
    ///
    /// let service = Service::new("s").on_gap(|gap: Gap| async move {
    ///     eprintln!("{} may have missed events from {:?} to {}", gap.channel, gap.from, gap.to);
    /// });
    /// ```
    #[must_use]
    pub fn on_gap<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(sfstream_salesforce::replay::Gap) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: crate::streaming::GapHandler = Arc::new(move |gap| Box::pin(handler(gap)));
        self.group::<StreamingEntrypoints>().on_gap(handler);
        self
    }

    /// Adds a Nameko RPC method (`@rpc`) named `name` with the Python
    /// `signature` its callers must bind to: calls that do not get
    /// Nameko's `IncorrectSignature`, unknown methods `MethodNotFound`.
    /// The service serves `rpc-<service>` on the config's `AMQP_URI`.
    ///
    /// ```
    /// use serde_json::{Map, Value, json};
    /// use sfstream_service::Service;
    /// use sfstream_service::nameko::{RpcCall, RpcError, Signature};
    ///
    /// async fn add(_call: RpcCall, args: Vec<Value>, _kwargs: Map<String, Value>) -> Result<Value, RpcError> {
    ///     Ok(json!(args.iter().filter_map(Value::as_i64).sum::<i64>()))
    /// }
    ///
    /// let service = Service::new("calculator").rpc("add", Signature::new().param("a").param("b"), add);
    /// ```
    #[must_use]
    pub fn rpc<F, Fut>(mut self, name: impl Into<String>, signature: Signature, handler: F) -> Self
    where
        F: Fn(RpcCall, Vec<Value>, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        self.group::<NamekoEntrypoints>()
            .add_rpc(name.into(), Some(signature), handler);
        self
    }

    /// Adds a Nameko RPC method accepting any arguments (`*args, **kwargs`).
    #[must_use]
    pub fn rpc_method<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(RpcCall, Vec<Value>, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        self.group::<NamekoEntrypoints>()
            .add_rpc(name.into(), None, handler);
        self
    }

    /// Adds a Nameko event handler (`@event_handler(source_service,
    /// event_type, handler_type=…)`): `handler` gets each event's payload
    /// and returns `()` or `Result<(), E: Display>` (an error is logged and
    /// the event acked, as Nameko does). Its queue is
    /// `evt-<source>-<event>--<service>.<function name>`.
    ///
    /// ```
    /// use serde_json::Value;
    /// use sfstream_service::Service;
    /// use sfstream_service::nameko::{HandlerType, NamekoEvent};
    ///
    /// async fn on_contact(_event: NamekoEvent, payload: Value) {
    ///     println!("new contact {payload}");
    /// }
    ///
    /// let service = Service::new("mailer")
    ///     .event_handler("some-service", "salesforce_contact_created", HandlerType::ServicePool, on_contact);
    /// ```
    #[must_use]
    pub fn event_handler<F, Fut, R>(
        mut self,
        source_service: impl Into<String>,
        event_type: impl Into<String>,
        handler_type: HandlerType,
        handler: F,
    ) -> Self
    where
        F: Fn(NamekoEvent, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoHandlerResult + 'static,
    {
        self.group::<NamekoEntrypoints>().add_event_handler(
            source_service.into(),
            event_type.into(),
            handler_type,
            handler,
        );
        self
    }

    /// Gives the service a Nameko event dispatcher on `<service>.events`
    /// (connected to `AMQP_URI` at start), which Salesforce handlers take
    /// with [`Dispatcher`](crate::nameko::Dispatcher). Services with RPC
    /// methods or event handlers have one anyway.
    #[must_use]
    pub fn event_dispatcher(mut self) -> Self {
        // The Nameko group connects and provides the dispatcher, with or
        // without entrypoints.
        self.group::<NamekoEntrypoints>();
        self
    }

    /// Adds a group of entrypoints of another kind (see
    /// [`runtime`](crate::runtime) for an example).
    #[must_use]
    pub fn entrypoints(mut self, entrypoints: impl Entrypoints) -> Self {
        self.groups.push(Box::new(entrypoints));
        self
    }

    /// Starts the service: each entrypoint group, in the order added,
    /// provides what it shares (the Salesforce session: logs in, REST and
    /// streaming share it; Nameko: connects to `AMQP_URI`); the metrics
    /// server starts; then each group starts (Salesforce streaming:
    /// declares every PushTopic, opens the replay store, connects,
    /// subscribes every channel once). Returns once everything is running.
    ///
    /// # Errors
    ///
    /// The first step that failed, naming the entrypoint for a failed
    /// declaration; nothing is left running.
    pub async fn start(mut self) -> Result<RunningService, ServiceError> {
        if self.config.salesforce.is_some() {
            // A SALESFORCE section gives every service the REST client
            // (RPC methods take it too): the streaming group logs in,
            // handlers or not.
            self.group::<StreamingEntrypoints>();
        }
        let Service {
            name,
            config,
            dependencies,
            mut groups,
        } = self;
        let config = Arc::new(config);
        let metrics = Arc::new(ServiceMetrics::new(&name));
        let shutdown = Shutdown::new();

        let mut builder = ContextBuilder::new(
            name.clone(),
            config.clone(),
            dependencies,
            metrics.clone(),
            shutdown.clone(),
        );
        for group in &mut groups {
            if let Err(error) = group.provide(&mut builder).await {
                builder.close().await;
                return Err(error);
            }
        }

        let metrics_addr = match config.metrics_port {
            Some(port) => match serve(metrics, port, shutdown.signal()).await {
                Ok(addr) => Some(addr),
                Err(source) => {
                    builder.close().await;
                    return Err(ServiceError::Metrics { port, source });
                }
            },
            None => None,
        };
        if let Some(addr) = metrics_addr {
            tracing::info!(%addr, "serving /metrics and /health");
        }
        let (context, provided) = builder.build();

        let mut running: Vec<(String, RunningEntrypoints)> = Vec::new();
        for group in groups {
            let describe = group.describe();
            match group.start(context.clone(), shutdown.signal()).await {
                Ok(run) => running.push((describe, run)),
                Err(error) => {
                    tracing::error!(service = %name, entrypoints = %describe, %error, "start-up failed");
                    shutdown.trigger();
                    for (_, run) in running {
                        let _ = run.await;
                    }
                    provided.close().await;
                    return Err(error);
                }
            }
        }
        tracing::info!(service = %name, "service started");

        let supervisor_shutdown = shutdown.clone();
        let service_name = name.clone();
        let task = tokio::spawn(async move {
            let mut first_error = None;
            let mut pending: futures::stream::FuturesUnordered<_> = running
                .into_iter()
                .map(|(describe, run)| async move { (describe, run.await) })
                .collect();
            use futures::StreamExt;
            while let Some((describe, result)) = pending.next().await {
                if let Err(error) = result {
                    tracing::error!(service = %service_name, entrypoints = %describe, %error, "stopping the service");
                    supervisor_shutdown.trigger();
                    first_error.get_or_insert(error);
                }
            }
            provided.close().await;
            tracing::info!(service = %service_name, "service stopped");
            match first_error {
                Some(error) => Err(error),
                None => Ok(()),
            }
        });
        Ok(RunningService {
            name,
            shutdown,
            task,
            metrics_addr,
            context,
        })
    }

    /// Starts the service and runs it until SIGTERM or SIGINT (then stops
    /// gracefully) or until it fails.
    ///
    /// # Errors
    ///
    /// Why it could not start, or why it stopped (e.g. a handler failed
    /// under `ON_FAILURE: stop`): exit non-zero.
    pub async fn run(self) -> Result<(), ServiceError> {
        let running = self.start().await?;
        let shutdown = running.shutdown_handle();
        let stopped = shutdown.signal();
        tokio::select! {
            signal = termination_signal() => match signal {
                Ok(signal) => tracing::info!(%signal, "stopping gracefully"),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for termination signals");
                    stopped.wait().await;
                }
            },
            _ = stopped.wait() => {}
        }
        shutdown.trigger();
        running.stopped().await
    }
}

/// A started service.
#[derive(Debug)]
pub struct RunningService {
    name: String,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), ServiceError>>,
    metrics_addr: Option<SocketAddr>,
    context: ServiceContext,
}

impl RunningService {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where `/metrics` and `/health` are served, when `METRICS_PORT` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The shared context (metrics, Salesforce client, dependencies).
    pub fn context(&self) -> &ServiceContext {
        &self.context
    }

    /// A handle that stops the service when triggered.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Stops gracefully: stops taking events, lets in-flight handlers
    /// finish (up to `SHUTDOWN_TIMEOUT`), commits the markers, disconnects.
    ///
    /// # Errors
    ///
    /// Why the service failed, if it did before or while stopping.
    pub async fn stop(self) -> Result<(), ServiceError> {
        self.shutdown.trigger();
        self.stopped().await
    }

    /// Waits until the service stopped (by [`stop`](Self::stop), a
    /// shutdown handle, or a failure).
    ///
    /// # Errors
    ///
    /// Why the service stopped, when it failed.
    pub async fn stopped(self) -> Result<(), ServiceError> {
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(ServiceError::Task(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::entrypoints::subscribe;

    async fn nothing() {}

    #[test]
    fn each_kind_of_entrypoint_is_one_group_in_the_order_first_added() {
        let service = Service::new("s")
            .event_dispatcher()
            .handler(nothing, [subscribe("/topic/A")])
            .rpc_method("m", |_call, _args, _kwargs| async { Ok(Value::Null) })
            .replay_store(Arc::new(sfstream_salesforce::replay::MemoryStore::new()))
            .handler(nothing, [subscribe("/topic/B")]);
        let groups: Vec<String> = service.groups.iter().map(|g| g.describe()).collect();
        assert_eq!(groups, ["Nameko", "Salesforce streaming"]);
    }
}
