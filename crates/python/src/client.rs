//! [`Core`]: a streaming client driven from asyncio.
//!
//! Every awaitable it returns runs on the tokio runtime of
//! `pyo3-async-runtimes`, beside the event loop. Messages cross into
//! Python without blocking the loop through a [`Feed`](crate::feed::Feed): `Core.take()`
//! hands out a message the core already holds, and only when none is
//! ready does Python await `Core.wait()`. The core buffers at most `max_pending`
//! messages and pauses polling Salesforce while they wait, so a slow
//! consumer keeps memory bounded.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use sfstream_salesforce::replay::{MemoryStore, ReplayFrom, ReplayStore, open_store};
use sfstream_salesforce::{
    Delivery, StreamEvent, StreamMessage, StreamMessages, StreamingClient, StreamingError,
};

use crate::errors;
use crate::feed::Taken;
use crate::login::Login;
use crate::session::Session;
use crate::store::PyStorage;

/// Where markers are kept.
enum Store {
    /// In memory (aiosfstream's `replay=None` or a `ReplayOption`).
    Memory,
    /// A native store: `memory:`, `file:PATH`, `redis://…`.
    Uri(String),
    /// A Python `ReplayMarkerStorage`.
    Python(Py<PyAny>),
}

struct Settings {
    store: Store,
    default_replay: ReplayFrom,
    fallback: Option<ReplayFrom>,
    delivery: Delivery,
    max_pending: usize,
    connection_timeout: Option<Duration>,
}

type State = Session<StreamingClient, StreamMessages>;

/// The streaming client behind `sfstream.Client` (`sfstream._sfstream.Core`).
#[pyclass(frozen, module = "sfstream._sfstream")]
pub struct Core {
    login: sfstream_salesforce::Authenticator,
    acknowledged: bool,
    settings: parking_lot::Mutex<Option<Settings>>,
    state: Arc<State>,
}

/// A message's acknowledgement (`sfstream._sfstream.Handle`), handed out
/// with each message when markers are stored on acknowledgement.
#[pyclass(frozen, module = "sfstream._sfstream")]
pub struct Handle {
    message: StreamMessage,
}

#[pymethods]
impl Handle {
    /// Commits the message's replay marker (the store never moves back).
    fn ack(&self) {
        self.message.ack();
    }

    /// The message's replay id, if it has one.
    #[getter]
    fn replay_id(&self) -> Option<i64> {
        self.message.replay_id()
    }
}

fn replay_from(value: i64) -> ReplayFrom {
    match value {
        -1 => ReplayFrom::New,
        -2 => ReplayFrom::All,
        id => ReplayFrom::Id(id),
    }
}

/// Raised by `take` once the stream has ended.
pub(crate) fn closed() -> PyErr {
    errors::exception(
        "ClientInvalidOperation",
        "The client is closed and there are no pending messages.".into(),
        None,
    )
}

impl Core {
    /// A message as `(channel, data_json, handle, is_gap)`.
    fn convert<'py>(
        &self,
        py: Python<'py>,
        item: Result<StreamMessage, StreamingError>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut message = item.map_err(|e| errors::streaming(&e))?;
        let is_gap = message.gap.is_some();
        let data = std::mem::replace(&mut message.data, null());
        let channel = std::mem::take(&mut message.channel);
        let handle = if !self.acknowledged || is_gap || message.marker.is_none() {
            None
        } else {
            Some(Handle { message })
        };
        (channel, data.get(), handle, is_gap).into_pyobject(py)
    }
}

fn null() -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&serde_json::Value::Null).unwrap_or_default()
}

#[pymethods]
impl Core {
    /// `Core(login, store, default_replay, fallback, acknowledged,
    /// max_pending, connection_timeout)`: `store` is `None` (memory), a
    /// store URI, or a Python `ReplayMarkerStorage`; replay options are
    /// `-1` (new events), `-2` (all events) or a replay id.
    #[new]
    #[pyo3(signature = (login, store, default_replay, fallback, acknowledged, max_pending, connection_timeout))]
    fn new(
        login: &Login,
        store: Option<Bound<'_, PyAny>>,
        default_replay: i64,
        fallback: Option<i64>,
        acknowledged: bool,
        max_pending: usize,
        connection_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let store = match store {
            None => Store::Memory,
            Some(s) => match s.extract::<String>() {
                Ok(uri) => Store::Uri(uri),
                Err(_) => Store::Python(s.unbind()),
            },
        };
        let connection_timeout = connection_timeout
            .map(Duration::try_from_secs_f64)
            .transpose()
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        Ok(Self {
            login: login.authenticator.clone(),
            acknowledged,
            settings: parking_lot::Mutex::new(Some(Settings {
                store,
                default_replay: replay_from(default_replay),
                fallback: fallback.map(replay_from),
                delivery: if acknowledged {
                    Delivery::Acknowledged
                } else {
                    Delivery::Automatic
                },
                max_pending: max_pending.max(1),
                connection_timeout,
            })),
            state: Arc::new(State::default()),
        })
    }

    /// Logs in, handshakes and starts streaming (awaitable; once).
    fn open<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let settings = self.settings.lock().take().ok_or_else(|| {
            errors::exception(
                "ClientInvalidOperation",
                "Client is already open (a client opens once).".into(),
                None,
            )
        })?;
        let python_store: Option<Arc<dyn ReplayStore>> = match &settings.store {
            Store::Python(storage) => {
                let locals = pyo3_async_runtimes::tokio::get_current_locals(py)?;
                Some(Arc::new(PyStorage::new(py, storage.clone_ref(py), locals)))
            }
            _ => None,
        };
        let login = self.login.clone();
        let state = self.state.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let store: Arc<dyn ReplayStore> = match (python_store, &settings.store) {
                (Some(store), _) => store,
                (None, Store::Uri(uri)) => open_store(uri).await.map_err(|e| errors::store(&e))?,
                _ => Arc::new(MemoryStore::new()),
            };
            let instance = state.clone();
            let (client, messages) = StreamingClient::builder(login)
                .replay_store(store)
                .default_replay(settings.default_replay)
                .replay_fallback(settings.fallback)
                .delivery(settings.delivery)
                .max_pending(settings.max_pending)
                .connection_timeout(settings.connection_timeout)
                .on_event(move |event| {
                    if let StreamEvent::LoggedIn { instance_url } = event {
                        *instance.instance_url.lock() = Some(instance_url.clone());
                    }
                })
                .connect()
                .await
                .map_err(|e| errors::streaming(&e))?;
            state.feed.set(messages).await;
            *state.client.lock() = Some(client);
            Ok(())
        })
    }

    /// Subscribes to `channel` (awaitable), from its stored marker, else
    /// from the default replay option.
    fn subscribe<'py>(&self, py: Python<'py>, channel: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.state.client()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            client
                .subscribe(&channel)
                .await
                .map_err(|e| errors::streaming(&e))
        })
    }

    /// Unsubscribes from `channel` (awaitable).
    fn unsubscribe<'py>(&self, py: Python<'py>, channel: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.state.client()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            client
                .unsubscribe(&channel)
                .await
                .map_err(|e| errors::streaming(&e))
        })
    }

    /// Publishes the JSON `data` on `channel` (awaitable).
    fn publish<'py>(
        &self,
        py: Python<'py>,
        channel: String,
        data: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.state.client()?;
        let data: serde_json::Value = serde_json::from_str(&data)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            client
                .publish(&channel, &data)
                .await
                .map_err(|e| errors::streaming(&e))
        })
    }

    /// The next message if one is ready, as `(channel, data_json, handle,
    /// is_gap)`, else `None`; raises the stream's error, or
    /// `ClientInvalidOperation` once the stream has ended.
    fn take<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match self.state.feed.take() {
            Taken::Item(item) => self.convert(py, item).map(Some),
            Taken::NotReady => Ok(None),
            Taken::Ended => Err(closed()),
        }
    }

    /// Waits until a message (or the end of the stream) is ready for
    /// `Core.take()` (awaitable; cancelling it loses nothing).
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.state.wait(py)
    }

    /// Messages received and not taken yet.
    #[getter]
    fn pending_count(&self) -> usize {
        self.state.feed.pending_count()
    }

    /// The instance URL of the current session, once logged in.
    #[getter]
    fn instance_url(&self) -> Option<String> {
        self.state.instance_url.lock().clone()
    }

    /// Waits up to `timeout` seconds until every committed marker is stored
    /// (awaitable); raises `ReplayError` naming what is not.
    fn flush<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        self.state.flush(py, timeout)
    }

    /// Disconnects, stores pending markers (up to 10 s) and releases the
    /// store (awaitable).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.state.close(py)
    }
}
