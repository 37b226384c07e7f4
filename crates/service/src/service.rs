//! The service: name, configuration, shared dependencies, handlers bound to
//! entrypoints; started, run until a termination signal, stopped
//! gracefully.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use std::future::Future;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use sfstream_nameko::{HandlerType, RpcError, Signature};
use sfstream_salesforce::Authenticator;
use sfstream_salesforce::replay::ReplayStore;
use sfstream_salesforce::rest::SalesforceClient;
use tokio::task::JoinHandle;

use crate::config::{Config, SalesforceConfig};
use crate::entrypoints::Entrypoint;
use crate::error::ServiceError;
use crate::handler::{Handler, IntoHandlerResult, boxed, function_name};
use crate::metrics::{ServiceMetrics, serve};
use crate::nameko::{NamekoEntrypoints, NamekoEvent, NamekoShared, RpcCall};
use crate::shutdown::{Shutdown, ShutdownSignal, termination_signal};
use crate::streaming::{Route, StreamingEntrypoints};

/// A running group of entrypoints: resolves after it stopped (gracefully,
/// once the shutdown signal fired), with an error when it failed.
pub type RunningEntrypoints = BoxFuture<'static, Result<(), ServiceError>>;

/// A kind of entrypoints the runtime runs: the Salesforce streaming
/// entrypoints are one (built from [`Service::handler`]); AMQP RPC and
/// event handlers plug in the same way.
///
/// [`start`](Entrypoints::start) is given the service's shared context
/// and its shutdown signal. It does what must succeed before the service
/// counts as started (declare, connect, subscribe) and returns the running
/// part, which takes work until the signal fires, then stops gracefully:
/// stops taking work, finishes in-flight work within
/// [`Config::shutdown_timeout`], commits, disconnects. An error from
/// either part stops the whole service.
pub trait Entrypoints: Send + 'static {
    /// What these are, for logs and errors (`"Salesforce streaming"`).
    fn describe(&self) -> String;

    /// Starts them.
    fn start(
        self: Box<Self>,
        context: ServiceContext,
        shutdown: ShutdownSignal,
    ) -> BoxFuture<'static, Result<RunningEntrypoints, ServiceError>>;
}

type Dependencies = HashMap<TypeId, Arc<dyn Any + Send + Sync>>;

/// What every entrypoint and handler of a running service shares: its
/// name, configuration, dependencies, Salesforce REST client, metrics and
/// shutdown trigger. Cheap to clone.
#[derive(Clone)]
pub struct ServiceContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    name: String,
    config: Arc<Config>,
    dependencies: Dependencies,
    salesforce: Option<SalesforceClient>,
    metrics: Arc<ServiceMetrics>,
    shutdown: Shutdown,
    nameko: Option<NamekoShared>,
}

impl fmt::Debug for ServiceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceContext")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl ServiceContext {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }

    /// The dependency of type `T`, if one was given.
    pub fn dependency<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.inner
            .dependencies
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|d| d.downcast::<T>().ok())
    }

    /// The Salesforce REST client, when the config has a `SALESFORCE:` section.
    pub fn salesforce(&self) -> Option<&SalesforceClient> {
        self.inner.salesforce.as_ref()
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &Arc<ServiceMetrics> {
        &self.inner.metrics
    }

    /// The service's shutdown trigger (an entrypoint that fails for good
    /// triggers it).
    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }

    /// The service's Nameko event dispatcher, when it has an AMQP
    /// connection (Nameko entrypoints or
    /// [`Service::event_dispatcher`]). Its events carry no worker context,
    /// like Nameko's standalone `event_dispatcher`; inside a handler,
    /// dispatch through [`RpcCall`], [`NamekoEvent`] or
    /// [`Dispatcher`](crate::nameko::Dispatcher) instead.
    pub fn dispatcher(&self) -> Option<&Arc<sfstream_nameko::EventDispatcher>> {
        self.inner.nameko.as_ref().map(|n| &n.dispatcher)
    }

    pub(crate) fn nameko_shared(&self) -> Option<&NamekoShared> {
        self.inner.nameko.as_ref()
    }
}

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
    dependencies: Dependencies,
    routes: Vec<Route>,
    entrypoints: Vec<Box<dyn Entrypoints>>,
    replay_store: Option<Arc<dyn ReplayStore>>,
    nameko: NamekoEntrypoints,
    dispatcher: bool,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("routes", &self.routes.len())
            .field("entrypoints", &self.entrypoints.len())
            .field("nameko_entrypoints", &self.nameko.len())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service named `name` with the default configuration.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            config: Config::default(),
            dependencies: HashMap::new(),
            routes: Vec::new(),
            entrypoints: Vec::new(),
            replay_store: None,
            nameko: NamekoEntrypoints::default(),
            dispatcher: false,
        }
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
        self.replay_store = Some(store);
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
        self.dependencies.insert(TypeId::of::<T>(), dependency);
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
        let name = std::any::type_name::<H>().to_string();
        let function = function_name::<H>();
        let boxed = boxed(handler);
        for entrypoint in entrypoints {
            let entrypoint: Entrypoint = entrypoint.into();
            let method_name = function.unwrap_or(entrypoint.kind()).to_owned();
            self.routes.push(Route {
                entrypoint,
                handler: boxed.clone(),
                handler_name: name.clone(),
                method_name,
            });
        }
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
        self.nameko.add_rpc(name.into(), Some(signature), handler);
        self
    }

    /// Adds a Nameko RPC method accepting any arguments (`*args, **kwargs`).
    #[must_use]
    pub fn rpc_method<F, Fut>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(RpcCall, Vec<Value>, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        self.nameko.add_rpc(name.into(), None, handler);
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
        self.nameko.add_event_handler(
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
        self.dispatcher = true;
        self
    }

    /// Adds another kind of entrypoints (AMQP RPC, events, …).
    #[must_use]
    pub fn entrypoints(mut self, entrypoints: impl Entrypoints) -> Self {
        self.entrypoints.push(Box::new(entrypoints));
        self
    }

    /// Starts the service: logs in (REST and streaming share one session),
    /// declares every PushTopic, opens the replay store, connects,
    /// subscribes every channel once, starts the metrics server; returns
    /// once everything is running.
    ///
    /// # Errors
    ///
    /// The first step that failed, naming the entrypoint for a failed
    /// declaration; nothing is left running.
    pub async fn start(self) -> Result<RunningService, ServiceError> {
        let Service {
            name,
            config,
            dependencies,
            routes,
            mut entrypoints,
            replay_store,
            nameko,
            dispatcher,
        } = self;
        let config = Arc::new(config);
        let metrics = Arc::new(ServiceMetrics::new(&name));
        let shutdown = Shutdown::new();

        if !routes.is_empty() && config.salesforce.is_none() {
            return Err(ServiceError::NoSalesforceConfig);
        }
        let salesforce = match &config.salesforce {
            Some(section) => {
                let authenticator = authenticator(section);
                authenticator.login().await.map_err(ServiceError::Login)?;
                tracing::info!(service = %name, flow = authenticator.credentials().flow(), "logged in to Salesforce");
                Some(SalesforceClient::new(authenticator))
            }
            None => None,
        };

        let metrics_addr = match config.metrics_port {
            Some(port) => Some(
                serve(metrics.clone(), port, shutdown.signal())
                    .await
                    .map_err(|source| ServiceError::Metrics { port, source })?,
            ),
            None => None,
        };
        if let Some(addr) = metrics_addr {
            tracing::info!(%addr, "serving /metrics and /health");
        }

        let nameko_shared = if dispatcher || !nameko.is_empty() {
            match NamekoShared::connect(&name, config.amqp_uri.as_deref()).await {
                Ok(shared) => Some(shared),
                Err(error) => {
                    shutdown.trigger();
                    return Err(error);
                }
            }
        } else {
            None
        };
        let context = ServiceContext {
            inner: Arc::new(ContextInner {
                name: name.clone(),
                config: config.clone(),
                dependencies,
                salesforce,
                metrics,
                shutdown: shutdown.clone(),
                nameko: nameko_shared.clone(),
            }),
        };

        if !routes.is_empty() {
            entrypoints.insert(0, Box::new(StreamingEntrypoints::new(routes, replay_store)));
        }
        if !nameko.is_empty() {
            entrypoints.push(Box::new(nameko));
        }
        let mut running: Vec<(String, RunningEntrypoints)> = Vec::new();
        for group in entrypoints {
            let describe = group.describe();
            match group.start(context.clone(), shutdown.signal()).await {
                Ok(run) => running.push((describe, run)),
                Err(error) => {
                    tracing::error!(service = %name, entrypoints = %describe, %error, "start-up failed");
                    shutdown.trigger();
                    for (_, run) in running {
                        let _ = run.await;
                    }
                    if let Some(shared) = &nameko_shared {
                        shared.connection.close().await;
                    }
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
            if let Some(shared) = &nameko_shared {
                shared.dispatcher.close().await;
                shared.connection.close().await;
            }
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

fn authenticator(section: &SalesforceConfig) -> Authenticator {
    Authenticator::new(section.credentials.clone())
        .with_login_url(section.login_url.clone())
        .with_api_version(section.api_version.clone())
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
