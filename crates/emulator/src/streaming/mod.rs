//! Streaming: channels and their event history, PushTopic / CDC / platform
//! event / generic event production, and the CometD endpoint. PLACEHOLDER.

use std::sync::Arc;

use axum::Router;

use crate::config::EmulatorConfig;
use crate::error::ApiError;
use crate::org::Org;
use crate::store::{Record, RecordChange, Store};

/// Channels, clients and events of the org.
#[derive(Debug)]
pub struct Streaming {}

impl Streaming {
    /// Streaming state for an org with these settings.
    pub fn new(_config: &EmulatorConfig) -> Self {
        Self {}
    }

    /// Validates records that streaming owns (PushTopic, StreamingChannel).
    pub fn check_record(
        &self,
        _store: &Store,
        _sobject: &str,
        _fields: &Record,
        _id: Option<&str>,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// Raises the events a record change causes.
    pub fn record_changed(&self, _store: &Store, _change: &RecordChange) {}
}

/// Routes of the CometD endpoint.
pub fn routes() -> Router<Arc<Org>> {
    Router::new()
}

impl Streaming {
    /// Forgets every CometD client (a server restart).
    pub fn forget_clients(&self) {}
}
