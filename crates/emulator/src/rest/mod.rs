//! The REST API under `/services/data/vXX.X/`. PLACEHOLDER.

use std::sync::Arc;

use axum::Router;

use crate::org::Org;

/// Routes of the REST API.
pub fn routes() -> Router<Arc<Org>> {
    Router::new()
}
