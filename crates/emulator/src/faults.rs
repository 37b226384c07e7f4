//! Fault injection for reliability tests. PLACEHOLDER.

/// Faults armed for the next requests.
#[derive(Debug, Default)]
pub struct Faults {}

use std::sync::Arc;

use axum::Router;

use crate::org::Org;

/// Routes of the fault control API (empty unless faults are enabled).
pub fn routes(_org: &Arc<Org>) -> Router<Arc<Org>> {
    Router::new()
}
