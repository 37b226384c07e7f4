//! What both cores ([`Core`](crate::client::Core) and
//! [`PubSubCore`](crate::pubsub::PubSubCore)) keep of an open client, and
//! the Python calls that only need that: the client, its [`Feed`], the
//! session's instance URL; `wait`, `flush` and `close`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use sfstream_salesforce::StreamingClient;
use sfstream_salesforce::pubsub::PubSubClient;

use crate::errors;
use crate::feed::{Feed, Source};

/// A Rust client a core drives: what `flush` and `close` call.
pub trait Client: Clone + Send + Sync + 'static {
    /// Waits up to `timeout` until every committed marker is stored.
    fn flush_markers(self, timeout: Duration) -> impl Future<Output = Result<(), String>> + Send;
    /// Disconnects and releases the store.
    fn shut(self) -> impl Future<Output = ()> + Send;
}

impl Client for StreamingClient {
    async fn flush_markers(self, timeout: Duration) -> Result<(), String> {
        self.flush_within(timeout).await.map_err(|e| e.to_string())
    }
    async fn shut(self) {
        self.close().await;
    }
}

impl Client for PubSubClient {
    async fn flush_markers(self, timeout: Duration) -> Result<(), String> {
        self.flush_within(timeout).await.map_err(|e| e.to_string())
    }
    async fn shut(self) {
        self.close().await;
    }
}

/// The open client, its messages, and the session's instance URL.
pub struct Session<C, S: Source> {
    /// Set by `open`, taken by `close`.
    pub client: parking_lot::Mutex<Option<C>>,
    /// The client's messages, handed to asyncio.
    pub feed: Feed<S>,
    /// The instance URL of the current session, once logged in.
    pub instance_url: parking_lot::Mutex<Option<String>>,
}

impl<C, S: Source> Default for Session<C, S> {
    fn default() -> Self {
        Self {
            client: parking_lot::Mutex::new(None),
            feed: Feed::default(),
            instance_url: parking_lot::Mutex::new(None),
        }
    }
}

impl<C: Client, S: Source> Session<C, S>
where
    S::Item: Send,
{
    /// The open client, or `ClientInvalidOperation`.
    pub fn client(&self) -> PyResult<C> {
        self.client.lock().clone().ok_or_else(|| {
            errors::exception(
                "ClientInvalidOperation",
                "The client is not open.".into(),
                None,
            )
        })
    }

    /// Awaitable: until a message (or the end of the stream) is ready for
    /// `take`; cancelling it loses nothing.
    pub fn wait<'py>(self: &Arc<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let session = self.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            session.feed.wait().await;
            Ok(())
        })
    }

    /// Awaitable: until every committed marker is stored, at most
    /// `timeout` seconds; raises `ReplayError` naming what is not.
    pub fn flush<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        let timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            client
                .flush_markers(timeout)
                .await
                .map_err(|e| errors::exception("ReplayError", e, None))
        })
    }

    /// Awaitable: disconnects, stores pending markers (bounded by the
    /// client's close timeout) and releases the store.
    pub fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.lock().take();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            if let Some(client) = client {
                client.shut().await;
            }
            Ok(())
        })
    }
}
