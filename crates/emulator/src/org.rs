//! The shared state of one emulated org, and the record operations that
//! keep the store and the event streams in step.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::auth::Tokens;
use crate::config::EmulatorConfig;
use crate::error::ApiError;
use crate::faults::Faults;
use crate::store::{Record, RecordChange, Store};
use crate::streaming::Streaming;

/// One emulated org: configuration, records, tokens, streaming, faults.
#[derive(Debug)]
pub struct Org {
    /// Its settings.
    pub config: EmulatorConfig,
    base_url: RwLock<String>,
    /// The records. Lock order: `store` before anything in `streaming`.
    pub store: Mutex<Store>,
    /// Issued access tokens.
    pub tokens: Tokens,
    /// Channels, clients and their events.
    pub streaming: Streaming,
    /// Injected faults.
    pub faults: Faults,
    /// Pub/Sub API state (schemas, managed subscriptions, counters).
    pub pubsub: std::sync::Arc<crate::pubsub::PubSubState>,
    /// Open query result cursors.
    pub query_cursors: crate::rest::QueryCursors,
    api_requests: AtomicU64,
}

impl Org {
    /// A freshly seeded org.
    pub fn new(config: EmulatorConfig) -> Self {
        let store = Store::seeded(&config.credentials.username);
        Self {
            streaming: Streaming::new(&config),
            base_url: RwLock::new(String::new()),
            store: Mutex::new(store),
            tokens: Tokens::default(),
            faults: Faults::default(),
            pubsub: std::sync::Arc::new(crate::pubsub::PubSubState::new(&config)),
            query_cursors: Default::default(),
            api_requests: AtomicU64::new(0),
            config,
        }
    }

    /// The instance URL, e.g. `http://127.0.0.1:8710`.
    pub fn base_url(&self) -> String {
        self.base_url.read().clone()
    }

    pub(crate) fn set_base_url(&self, url: String) {
        *self.base_url.write() = url;
    }

    /// The login user's id.
    pub fn user_id(&self) -> String {
        self.store.lock().user_id.clone()
    }

    /// The org id.
    pub fn org_id(&self) -> String {
        self.store.lock().org_id.clone()
    }

    /// Counts one API request; returns the count so far today.
    pub fn count_api_request(&self) -> u64 {
        self.api_requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// API requests counted so far.
    pub fn api_requests(&self) -> u64 {
        self.api_requests.load(Ordering::Relaxed)
    }

    /// The most CometD clients at once (set at run time, else the config's).
    pub fn concurrent_clients_limit(&self) -> usize {
        self.faults
            .streaming_limits()
            .concurrent_clients
            .unwrap_or(self.config.concurrent_clients)
    }

    /// The daily streaming event deliveries (set at run time, else the config's).
    pub fn daily_streaming_events_limit(&self) -> u64 {
        self.faults
            .streaming_limits()
            .daily_events
            .unwrap_or(self.config.daily_streaming_events)
    }

    /// Creates a record (or publishes a platform event) and raises its events.
    pub fn create_record(
        &self,
        sobject: &str,
        fields: Record,
        user_id: &str,
    ) -> Result<RecordChange, ApiError> {
        let mut store = self.store.lock();
        self.streaming
            .check_record(&store, sobject, &fields, None)?;
        let change = store.create(sobject, fields, user_id)?;
        self.streaming.record_changed(&store, &change);
        Ok(change)
    }

    /// Publishes a platform event (`X__e`); returns its replay id.
    pub fn publish_event(
        &self,
        sobject: &str,
        fields: Record,
        user_id: &str,
    ) -> Result<i64, ApiError> {
        let mut store = self.store.lock();
        let change = store.create(sobject, fields, user_id)?;
        self.streaming
            .record_changed(&store, &change)
            .ok_or_else(|| ApiError::invalid_type(sobject))
    }

    /// Defines a platform event type (`X__e`) with custom fields, or adds
    /// fields to it, so Pub/Sub clients can publish before anyone has.
    pub fn define_platform_event(
        &self,
        name: &str,
        fields: &[(&str, crate::schema::FieldType)],
    ) -> Result<(), ApiError> {
        if !name.ends_with("__e") {
            return Err(ApiError::invalid_type(name));
        }
        let mut store = self.store.lock();
        let table = store.table_mut(name)?;
        for (field, kind) in fields {
            table.schema.add_custom_field(field, *kind)?;
        }
        Ok(())
    }

    /// Updates a record and raises its events.
    pub fn update_record(
        &self,
        sobject: &str,
        id: &str,
        fields: Record,
        user_id: &str,
    ) -> Result<RecordChange, ApiError> {
        let mut store = self.store.lock();
        self.streaming
            .check_record(&store, sobject, &fields, Some(id))?;
        let change = store.update(sobject, id, fields, user_id)?;
        self.streaming.record_changed(&store, &change);
        Ok(change)
    }

    /// Deletes a record (to the recycle bin) and raises its events.
    pub fn delete_record(
        &self,
        sobject: &str,
        id: &str,
        user_id: &str,
    ) -> Result<RecordChange, ApiError> {
        let mut store = self.store.lock();
        let change = store.delete(sobject, id, user_id)?;
        self.streaming.record_changed(&store, &change);
        Ok(change)
    }

    /// Restores a deleted record and raises its events.
    pub fn undelete_record(
        &self,
        sobject: &str,
        id: &str,
        user_id: &str,
    ) -> Result<RecordChange, ApiError> {
        let mut store = self.store.lock();
        let change = store.undelete(sobject, id, user_id)?;
        self.streaming.record_changed(&store, &change);
        Ok(change)
    }
}
