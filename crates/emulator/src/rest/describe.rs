//! Describe: `sobjects` (global), `sobjects/<Type>` and `sobjects/<Type>/describe`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::Authed;
use crate::error::ApiError;
use crate::org::Org;

pub(super) fn routes() -> Router<Arc<Org>> {
    Router::new().route(
        "/services/data/{version}/sobjects/{sobject}/describe",
        get(describe),
    )
}

pub(super) async fn global(State(org): State<Arc<Org>>, authed: Authed) -> Response {
    let store = org.store.lock();
    let sobjects: Vec<_> = store
        .schemas()
        .iter()
        .map(|s| s.summary(&authed.version))
        .collect();
    axum::Json(json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects}))
        .into_response()
}

pub(super) async fn basic_info(
    State(org): State<Arc<Org>>,
    authed: Authed,
    sobject: &str,
) -> Response {
    let store = org.store.lock();
    match store.table(sobject) {
        Some(table) => axum::Json(json!({
            "objectDescribe": table.schema.summary(&authed.version),
            "recentItems": [],
        }))
        .into_response(),
        None => ApiError::unknown_type_in_url(sobject).into_response(),
    }
}

async fn describe(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Path((_v, sobject)): Path<(String, String)>,
) -> Response {
    let store = org.store.lock();
    match store.table(&sobject) {
        Some(table) => axum::Json(table.schema.describe(&authed.version)).into_response(),
        None => ApiError::unknown_type_in_url(&sobject).into_response(),
    }
}
