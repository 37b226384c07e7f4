//! [`PubSubCore`]: a Pub/Sub API client
//! ([`sfstream_salesforce::pubsub::PubSubClient`]) driven from asyncio,
//! as [`Core`](crate::client::Core) drives the CometD client: awaitables
//! on the tokio runtime of `pyo3-async-runtimes`, messages through a
//! [`Feed`](crate::feed::Feed).
//!
//! Pub/Sub replay ids are opaque bytes: markers live in the core's stores
//! (in memory, `file:`, `redis://`), never in a Python storage.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use sfstream_salesforce::Delivery;
use sfstream_salesforce::pubsub::{
    PubSubClient, PubSubError, PubSubEvent, PubSubMessage, PubSubMessages, Published,
};
use sfstream_salesforce::replay::{MemoryStore, ReplayFrom, ReplayStore, open_store};

use crate::client::closed;
use crate::errors;
use crate::feed::Taken;
use crate::login::Login;
use crate::session::Session;

struct Settings {
    /// A native store URI, or `None` (in memory).
    store: Option<String>,
    url: Option<String>,
    default_replay: ReplayFrom,
    fallback: Option<ReplayFrom>,
    delivery: Delivery,
    max_pending: usize,
    connection_timeout: Option<Duration>,
}

type State = Session<PubSubClient, PubSubMessages>;

/// The Pub/Sub client behind `sfstream.PubSubClient`
/// (`sfstream._sfstream.PubSubCore`).
#[pyclass(frozen, module = "sfstream._sfstream")]
pub struct PubSubCore {
    login: sfstream_salesforce::Authenticator,
    acknowledged: bool,
    settings: parking_lot::Mutex<Option<Settings>>,
    state: Arc<State>,
}

/// A Pub/Sub event's acknowledgement (`sfstream._sfstream.PubSubHandle`),
/// handed out with each event when markers are stored on acknowledgement.
#[pyclass(frozen, module = "sfstream._sfstream")]
pub struct PubSubHandle {
    message: PubSubMessage,
}

#[pymethods]
impl PubSubHandle {
    /// Commits the event's replay id (the store never moves back).
    fn ack(&self) {
        self.message.ack();
    }

    /// The event's replay id, base64.
    #[getter]
    fn replay_id(&self) -> String {
        self.message.replay_id_text()
    }
}

/// `-1` is `New` (`LATEST`), `-2` is `All` (`EARLIEST`); Pub/Sub has no
/// other preset.
fn preset(value: i64) -> PyResult<ReplayFrom> {
    match value {
        -1 => Ok(ReplayFrom::New),
        -2 => Ok(ReplayFrom::All),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "replay option {other}: Pub/Sub starts from NEW_EVENTS (LATEST) or ALL_EVENTS (EARLIEST)"
        ))),
    }
}

impl PubSubCore {
    /// An event as `(topic, data_json, handle, is_gap)`: data is
    /// [`PubSubMessage::line_data`].
    fn convert<'py>(
        &self,
        py: Python<'py>,
        item: Result<PubSubMessage, PubSubError>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let message = item.map_err(|e| errors::pubsub(&e))?;
        let is_gap = message.gap.is_some();
        let data = message
            .line_json()
            .map_err(|e| errors::exception("ClientError", e.to_string(), None))?;
        let topic = message.topic.clone();
        let handle = if !self.acknowledged || is_gap || message.backfilled {
            None
        } else {
            Some(PubSubHandle { message })
        };
        (topic, data.get(), handle, is_gap).into_pyobject(py)
    }
}

#[pymethods]
impl PubSubCore {
    /// `PubSubCore(login, store, url, default_replay, fallback,
    /// acknowledged, max_pending, connection_timeout)`: `store` is `None`
    /// (memory) or a native store URI; `url` is the Pub/Sub endpoint
    /// (`None`: Salesforce's); replay options are `-1` (new events) or
    /// `-2` (all events).
    #[new]
    #[pyo3(signature = (login, store, url, default_replay, fallback, acknowledged, max_pending, connection_timeout))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        login: &Login,
        store: Option<String>,
        url: Option<String>,
        default_replay: i64,
        fallback: Option<i64>,
        acknowledged: bool,
        max_pending: usize,
        connection_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let connection_timeout = connection_timeout
            .map(Duration::try_from_secs_f64)
            .transpose()
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        Ok(Self {
            login: login.authenticator.clone(),
            acknowledged,
            settings: parking_lot::Mutex::new(Some(Settings {
                store,
                url,
                default_replay: preset(default_replay)?,
                fallback: fallback.map(preset).transpose()?,
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

    /// Logs in and sets up the channel (awaitable; once).
    fn open<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let settings = self.settings.lock().take().ok_or_else(|| {
            errors::exception(
                "ClientInvalidOperation",
                "Client is already open (a client opens once).".into(),
                None,
            )
        })?;
        let login = self.login.clone();
        let state = self.state.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let store: Arc<dyn ReplayStore> = match &settings.store {
                Some(uri) => open_store(uri).await.map_err(|e| errors::store(&e))?,
                None => Arc::new(MemoryStore::new()),
            };
            let instance = state.clone();
            let mut builder = PubSubClient::builder(login)
                .replay_store(store)
                .default_replay(settings.default_replay)
                .replay_fallback(settings.fallback)
                .delivery(settings.delivery)
                .max_pending(settings.max_pending)
                .connection_timeout(settings.connection_timeout)
                .on_event(move |event| {
                    if let PubSubEvent::LoggedIn { instance_url } = event {
                        *instance.instance_url.lock() = Some(instance_url.clone());
                    }
                });
            if let Some(url) = settings.url {
                builder = builder.url(url);
            }
            let (client, messages) = builder.connect().await.map_err(|e| errors::pubsub(&e))?;
            state.feed.set(messages).await;
            *state.client.lock() = Some(client);
            Ok(())
        })
    }

    /// Subscribes to `topic` (awaitable), after its stored replay id, else
    /// from the default replay option; returns once its stream is open.
    fn subscribe<'py>(&self, py: Python<'py>, topic: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.state.client()?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            client
                .subscribe(&topic)
                .await
                .map_err(|e| errors::pubsub(&e))
        })
    }

    /// Ends the subscription of `topic`; events already received are still
    /// delivered.
    fn unsubscribe(&self, topic: &str) -> PyResult<()> {
        self.state.client()?.unsubscribe(topic);
        Ok(())
    }

    /// Publishes the JSON event `data` (an object) to `topic`, encoded
    /// with its schema, `CreatedDate` (now) and `CreatedById` (the session's
    /// user) filled in when missing (awaitable); returns its replay id
    /// (base64), or raises `ServerError` with why it was refused.
    fn publish<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        data: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.state.client()?;
        let mut data: serde_json::Value = serde_json::from_str(&data)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        if !data.is_object() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "a platform event is a dict of field values",
            ));
        }
        let login = self.login.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            // Salesforce requires both; publishing clients fill them in
            // (as `sfstream publish --pubsub` does). The session is the
            // client's own (shared by the authenticator's clones).
            let session = login.session().await.map_err(|e| errors::login(&e))?;
            if let Some(fields) = data.as_object_mut() {
                fields
                    .entry("CreatedDate")
                    .or_insert_with(|| chrono::Utc::now().timestamp_millis().into());
                if let Some(user) = session.user_id {
                    fields.entry("CreatedById").or_insert(user.into());
                }
            }
            let outcome = client
                .publish(&topic, std::slice::from_ref(&data))
                .await
                .map_err(|e| errors::pubsub(&e))?;
            match outcome.into_iter().next() {
                Some(Published::Ok { replay_id }) => {
                    Ok(sfstream_pubsub::replay_id::to_text(&replay_id))
                }
                Some(Published::Failed { error }) => Err(errors::exception(
                    "ServerError",
                    "Publish request failed.".into(),
                    Some(serde_json::json!({"topic": topic, "successful": false, "error": error})),
                )),
                _ => Err(errors::exception(
                    "ServerError",
                    "Publish request failed.".into(),
                    Some(
                        serde_json::json!({"topic": topic, "successful": false, "error": "no result"}),
                    ),
                )),
            }
        })
    }

    /// The next event if one is ready, as `(topic, data_json, handle,
    /// is_gap)`, else `None`; raises the stream's error, or
    /// `ClientInvalidOperation` once the stream has ended.
    fn take<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        match self.state.feed.take() {
            Taken::Item(item) => self.convert(py, item).map(Some),
            Taken::NotReady => Ok(None),
            Taken::Ended => Err(closed()),
        }
    }

    /// Waits until an event (or the end of the stream) is ready for
    /// `take()` (awaitable; cancelling it loses nothing).
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.state.wait(py)
    }

    /// Events received and not taken yet.
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

    /// Ends every subscription, stores pending markers (up to 10 s) and
    /// releases the store (awaitable).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.state.close(py)
    }
}
