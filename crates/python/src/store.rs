//! [`PyStorage`]: a [`ReplayStore`] over a Python `ReplayMarkerStorage`
//! (aiosfstream's abstract class: `async get_replay_marker(subscription)`,
//! `async set_replay_marker(subscription, marker)`), a `MappingStorage`
//! over any `collections.abc.MutableMapping` included.
//!
//! The storage's methods run on the client's asyncio event loop, as
//! aiosfstream runs them: a mapping need not be thread-safe (a `shelve`
//! file on the `dbm.sqlite3` backend may only be used from the thread that
//! opened it), and a storage may use loop-bound resources (an aiohttp
//! session, an async database driver). The core calls them from its commit
//! task (markers batched, at most every 50 ms, one per subscription) and at
//! subscribe time; the loop is never blocked waiting for Rust, and each
//! call is bounded by [`CALL_TIMEOUT`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use sfstream_salesforce::replay::{OpaqueMarker, ReplayMarker, ReplayStore, StoreError};

/// The longest a storage method may take before the call fails (and the
/// core retries it, with backoff, as for any store that is down).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A Python replay marker storage, called on its event loop.
pub struct PyStorage {
    storage: Py<PyAny>,
    locals: TaskLocals,
    name: String,
}

impl std::fmt::Debug for PyStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyStorage")
            .field("storage", &self.name)
            .finish()
    }
}

impl PyStorage {
    /// A store over `storage`, whose coroutines run on the loop of `locals`.
    pub fn new(py: Python<'_>, storage: Py<PyAny>, locals: TaskLocals) -> Self {
        let name = storage
            .bind(py)
            .get_type()
            .name()
            .map(|n| format!("python:{n}"))
            .unwrap_or_else(|_| "python storage".into());
        Self {
            storage,
            locals,
            name,
        }
    }

    fn error(&self, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Task {
            store: self.name.clone(),
            detail: detail.to_string(),
        }
    }

    /// Calls `method` with the arguments `args` builds; awaits the result
    /// on the event loop when it is awaitable. `None` when the storage has
    /// no such method.
    async fn call<A>(&self, method: &str, args: A) -> Result<Option<Py<PyAny>>, StoreError>
    where
        A: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>>,
    {
        enum Step {
            Missing,
            Ready(Py<PyAny>),
            Pending(std::pin::Pin<Box<dyn Future<Output = PyResult<Py<PyAny>>> + Send>>),
        }
        let step = Python::attach(|py| -> PyResult<Step> {
            let storage = self.storage.bind(py);
            if !storage.hasattr(method)? {
                return Ok(Step::Missing);
            }
            let result = storage.call_method1(method, args(py)?)?;
            if result.hasattr("__await__")? {
                let future = pyo3_async_runtimes::into_future_with_locals(&self.locals, result)?;
                Ok(Step::Pending(Box::pin(future)))
            } else {
                Ok(Step::Ready(result.unbind()))
            }
        })
        .map_err(|e| self.error(format!("{method}: {e}")))?;
        match step {
            Step::Missing => Ok(None),
            Step::Ready(value) => Ok(Some(value)),
            Step::Pending(future) => match tokio::time::timeout(CALL_TIMEOUT, future).await {
                Ok(Ok(value)) => Ok(Some(value)),
                Ok(Err(e)) => Err(self.error(format!("{method}: {e}"))),
                Err(_) => {
                    Err(self.error(format!("{method} did not complete within {CALL_TIMEOUT:?}")))
                }
            },
        }
    }

    async fn set(&self, channel: &str, marker: ReplayMarker) -> Result<(), StoreError> {
        let date = date_text(channel, marker.created);
        self.call("set_replay_marker", |py| {
            let marker = py
                .import("sfstream.replay")?
                .getattr("ReplayMarker")?
                .call1((date, marker.replay_id))?;
            pyo3::types::PyTuple::new(py, [channel.into_pyobject(py)?.into_any(), marker])
        })
        .await?;
        Ok(())
    }
}

/// A marker's date as aiosfstream stores it: epoch milliseconds for change
/// events (`/data/…`, from `commitTimestamp`), ISO 8601 otherwise.
fn date_text(channel: &str, created: Option<DateTime<Utc>>) -> Option<String> {
    let created = created?;
    if channel.starts_with("/data/") {
        Some(created.timestamp_millis().to_string())
    } else {
        Some(created.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

/// A marker read back from Python: a `ReplayMarker` (or anything with
/// `replay_id` and `date`), a `(date, replay_id)` tuple, or a bare replay id.
fn marker_of(value: &Bound<'_, PyAny>) -> PyResult<Option<ReplayMarker>> {
    if value.is_none() {
        return Ok(None);
    }
    if let Ok(id) = value.extract::<i64>() {
        return Ok(Some(ReplayMarker::new(id, None)));
    }
    let (id, date): (i64, Option<String>) = if value.hasattr("replay_id")? {
        (
            value.getattr("replay_id")?.extract()?,
            value.getattr("date")?.extract().ok(),
        )
    } else {
        let (date, id): (Option<String>, i64) = value.extract()?;
        (id, date)
    };
    Ok(Some(ReplayMarker::new(
        id,
        date.as_deref().and_then(parse_date),
    )))
}

/// An ISO 8601 date or epoch milliseconds (aiosfstream stores
/// `str(commitTimestamp)` for change events).
fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().and_then(DateTime::from_timestamp_millis);
    }
    // The core's own parser of Salesforce dates, through an event shape.
    let event = serde_json::json!({"event": {"replayId": 0, "createdDate": text}});
    ReplayMarker::from_event(&event).and_then(|m| m.created)
}

#[async_trait]
impl ReplayStore for PyStorage {
    async fn get(&self, channel: &str) -> Result<Option<ReplayMarker>, StoreError> {
        let value = self
            .call("get_replay_marker", |py| {
                pyo3::types::PyTuple::new(py, [channel])
            })
            .await?;
        match value {
            None => Err(self.error("get_replay_marker is missing")),
            Some(value) => Python::attach(|py| marker_of(value.bind(py)))
                .map_err(|e| self.error(format!("get_replay_marker returned {e}"))),
        }
    }

    async fn advance(&self, channel: &str, marker: ReplayMarker) -> Result<bool, StoreError> {
        if let Some(stored) = self.get(channel).await?
            && !marker.is_newer_than(&stored)
        {
            return Ok(false);
        }
        self.set(channel, marker).await?;
        Ok(true)
    }

    async fn replace(&self, channel: &str, marker: ReplayMarker) -> Result<(), StoreError> {
        self.set(channel, marker).await
    }

    /// Calls the storage's `delete_replay_marker(subscription)` when it has
    /// one (`MappingStorage` does); aiosfstream's abstract class has none,
    /// so a storage without it keeps the expired marker (and falls back
    /// again on the next start).
    async fn remove(&self, channel: &str) -> Result<(), StoreError> {
        self.call("delete_replay_marker", |py| {
            pyo3::types::PyTuple::new(py, [channel])
        })
        .await?;
        Ok(())
    }

    /// The storage's `replay_markers()` (`MappingStorage` has it), else
    /// nothing.
    async fn list(&self) -> Result<Vec<(String, ReplayMarker)>, StoreError> {
        let Some(value) = self
            .call("replay_markers", |py| Ok(pyo3::types::PyTuple::empty(py)))
            .await?
        else {
            return Ok(Vec::new());
        };
        Python::attach(|py| -> PyResult<Vec<(String, ReplayMarker)>> {
            let mut out = Vec::new();
            for item in value.bind(py).try_iter()? {
                let (key, marker): (String, Bound<'_, PyAny>) = item?.extract()?;
                if let Some(marker) = marker_of(&marker)? {
                    out.push((key, marker));
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
        .map_err(|e| self.error(format!("replay_markers: {e}")))
    }

    async fn get_opaque(&self, _topic: &str) -> Result<Option<OpaqueMarker>, StoreError> {
        Ok(None)
    }

    async fn put_opaque(&self, _topic: &str, _marker: &OpaqueMarker) -> Result<(), StoreError> {
        Err(self.error("Pub/Sub replay ids need a native store (FileStorage, RedisStorage)"))
    }

    async fn put_opaque_many(&self, _markers: &[(String, OpaqueMarker)]) -> Result<(), StoreError> {
        Err(self.error("Pub/Sub replay ids need a native store (FileStorage, RedisStorage)"))
    }

    async fn remove_opaque(&self, _topic: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn list_opaque(&self) -> Result<Vec<(String, OpaqueMarker)>, StoreError> {
        Ok(Vec::new())
    }
}
