//! What the runtime is made of: groups of [`Entrypoints`] and the
//! [`ServiceContext`] they share. Nothing here knows a particular kind of
//! entrypoint: the Salesforce streaming entrypoints and the
//! [Nameko](crate::nameko) ones are groups like any other, and what a
//! group shares with the rest of the service (the Salesforce REST client,
//! the AMQP connection) is a typed [extension](ServiceContext::extension)
//! of the context, which the group puts there itself.
//!
//! A service runs its groups in three steps:
//!
//! 1. [`provide`](Entrypoints::provide): before any group starts, each,
//!    in the order added, puts what it shares into the [`ContextBuilder`]
//!    (and says how to close it once the service stopped). A group that
//!    needs what another provides takes it if it is there and provides it
//!    otherwise.
//! 2. [`start`](Entrypoints::start): each, in the same order, does what
//!    must succeed before the service counts as started and returns its
//!    running part.
//! 3. Run until the shutdown signal (or a failure), stop gracefully; once
//!    every group stopped, what they provided is closed.
//!
//! # Adding an entrypoint group
//!
//! Implement [`Entrypoints`] and add it with
//! [`Service::entrypoints`](crate::Service::entrypoints) (inside this
//! crate, the builder method that registers a handler adds it, as
//! [`Service::handler`](crate::Service::handler) does the streaming group).
//! A group that ticks, and counts its ticks in an extension every handler
//! can read:
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//!
//! use futures::future::BoxFuture;
//! use sfstream_service::shutdown::ShutdownSignal;
//! use sfstream_service::{
//!     ContextBuilder, Entrypoints, RunningEntrypoints, Service, ServiceContext, ServiceError,
//! };
//!
//! /// What the group shares: the ticks so far.
//! #[derive(Clone, Default)]
//! struct Ticks(Arc<AtomicU64>);
//!
//! struct Ticker {
//!     every: Duration,
//! }
//!
//! impl Entrypoints for Ticker {
//!     fn describe(&self) -> String {
//!         "ticker".into()
//!     }
//!
//!     fn provide<'a>(
//!         &'a mut self,
//!         context: &'a mut ContextBuilder,
//!     ) -> BoxFuture<'a, Result<(), ServiceError>> {
//!         context.insert_extension(Ticks::default());
//!         Box::pin(async { Ok(()) })
//!     }
//!
//!     fn start(
//!         self: Box<Self>,
//!         context: ServiceContext,
//!         shutdown: ShutdownSignal,
//!     ) -> BoxFuture<'static, Result<RunningEntrypoints, ServiceError>> {
//!         let ticks = context.extension::<Ticks>().cloned().unwrap_or_default();
//!         let running: RunningEntrypoints = Box::pin(async move {
//!             let mut interval = tokio::time::interval(self.every);
//!             loop {
//!                 tokio::select! {
//!                     _ = shutdown.wait() => return Ok(()),
//!                     _ = interval.tick() => ticks.0.fetch_add(1, Ordering::Relaxed),
//!                 };
//!             }
//!         });
//!         Box::pin(async { Ok(running) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ServiceError> {
//! let running = Service::new("ticking")
//!     .entrypoints(Ticker { every: Duration::from_millis(5) })
//!     .start()
//!     .await?;
//! let ticks = running.context().extension::<Ticks>().expect("provided").clone();
//! tokio::time::sleep(Duration::from_millis(50)).await;
//! running.stop().await?;
//! assert!(ticks.0.load(Ordering::Relaxed) > 0);
//! # Ok(())
//! # }
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::config::Config;
use crate::error::ServiceError;
use crate::metrics::ServiceMetrics;
use crate::shutdown::{Shutdown, ShutdownSignal};

/// A running group of entrypoints: resolves after it stopped (gracefully,
/// once the shutdown signal fired), with an error when it failed.
pub type RunningEntrypoints = BoxFuture<'static, Result<(), ServiceError>>;

/// A group of entrypoints the runtime runs: the Salesforce streaming
/// entrypoints are one (built by [`Service::handler`](crate::Service::handler)),
/// the [Nameko](crate::nameko) RPC methods and event handlers another.
/// See [the module](self) for an example.
///
/// [`provide`](Entrypoints::provide) runs before any group starts.
/// [`start`](Entrypoints::start) is given the service's shared context
/// and its shutdown signal. It does what must succeed before the service
/// counts as started (declare, connect, subscribe) and returns the running
/// part, which takes work until the signal fires, then stops gracefully:
/// stops taking work, finishes in-flight work within
/// [`Config::shutdown_timeout`], commits, disconnects. An error from any
/// step stops the whole service.
pub trait Entrypoints: Any + Send {
    /// What these are, for logs and errors (`"Salesforce streaming"`).
    fn describe(&self) -> String;

    /// Puts what this group shares with the rest of the service (a
    /// client, a connection) into `context` as an extension, before any
    /// group starts. Nothing by default.
    ///
    /// # Errors
    ///
    /// When it cannot (a login or connection failed): the service does
    /// not start, and what the groups before provided is closed.
    fn provide<'a>(
        &'a mut self,
        context: &'a mut ContextBuilder,
    ) -> BoxFuture<'a, Result<(), ServiceError>> {
        let _ = context;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Starts them.
    fn start(
        self: Box<Self>,
        context: ServiceContext,
        shutdown: ShutdownSignal,
    ) -> BoxFuture<'static, Result<RunningEntrypoints, ServiceError>>;
}

/// Values keyed by their type.
#[derive(Default)]
pub(crate) struct TypeMap(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl TypeMap {
    /// Keeps `value`, replacing the one of its type.
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The value of type `T`.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

type Closer = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// The [`ServiceContext`] of a service being started, to which each
/// group [provides](Entrypoints::provide) its extensions.
pub struct ContextBuilder {
    context: ContextInner,
    closers: Vec<Closer>,
}

impl fmt::Debug for ContextBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextBuilder")
            .field("name", &self.context.name)
            .field("extensions", &self.context.extensions.len())
            .finish_non_exhaustive()
    }
}

impl ContextBuilder {
    pub(crate) fn new(
        name: String,
        config: Arc<Config>,
        dependencies: TypeMap,
        metrics: Arc<ServiceMetrics>,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            context: ContextInner {
                name,
                config,
                dependencies,
                extensions: TypeMap::default(),
                metrics,
                shutdown,
            },
            closers: Vec::new(),
        }
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.context.name
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.context.config
    }

    /// The extension of type `T`, if a group provided one.
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.context.extensions.get()
    }

    /// Provides `value` to every group and handler, as
    /// [`ServiceContext::extension`]. One per type: give it a type of its
    /// own (a second replaces the first).
    pub fn insert_extension<T: Send + Sync + 'static>(&mut self, value: T) {
        self.context.extensions.insert(value);
    }

    /// Runs `close` once the service stopped (every group's running part
    /// ended) or failed to start: what a group provides is closed after
    /// the last handler that could use it. Closed in reverse order.
    pub fn on_stop<F, Fut>(&mut self, close: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.closers.push(Box::new(move || Box::pin(close())));
    }

    /// The context, and what closes what was provided.
    pub(crate) fn build(self) -> (ServiceContext, Closers) {
        let context = ServiceContext {
            inner: Arc::new(self.context),
        };
        (context, Closers(self.closers))
    }

    /// Closes what was provided (the service does not start).
    pub(crate) async fn close(self) {
        Closers(self.closers).close().await;
    }
}

/// What closes what the groups provided.
pub(crate) struct Closers(Vec<Closer>);

impl Closers {
    /// Closes, the last provided first.
    pub(crate) async fn close(self) {
        for close in self.0.into_iter().rev() {
            close().await;
        }
    }
}

/// What every entrypoint and handler of a running service shares: its
/// name, configuration, dependencies, metrics, shutdown trigger, and the
/// extensions its groups provided (the Salesforce REST client, the
/// Nameko [`Amqp`](crate::nameko::Amqp) connection). Cheap to clone.
#[derive(Clone)]
pub struct ServiceContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    name: String,
    config: Arc<Config>,
    dependencies: TypeMap,
    extensions: TypeMap,
    metrics: Arc<ServiceMetrics>,
    shutdown: Shutdown,
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

    /// The dependency of type `T`, if one was given to
    /// [`Service::dependency`](crate::Service::dependency).
    pub fn dependency<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.inner.dependencies.get::<Arc<T>>().cloned()
    }

    /// The extension of type `T`, if a group
    /// [provided](Entrypoints::provide) one: the
    /// [`SalesforceClient`](sfstream_salesforce::rest::SalesforceClient)
    /// when the config has a `SALESFORCE:` section, the Nameko
    /// [`Amqp`](crate::nameko::Amqp) connection when the service has
    /// Nameko entrypoints or an event dispatcher.
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.extensions.get()
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_keyed_by_type() {
        #[derive(Debug, PartialEq)]
        struct A(u8);
        #[derive(Debug, PartialEq)]
        struct B(u8);
        let mut map = TypeMap::default();
        map.insert(A(1));
        map.insert(B(2));
        map.insert(A(3));
        assert_eq!(map.get::<A>(), Some(&A(3)));
        assert_eq!(map.get::<B>(), Some(&B(2)));
        assert_eq!(map.get::<u8>(), None);
        assert_eq!(map.len(), 2);
    }
}
