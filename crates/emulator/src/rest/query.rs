//! `query` and `queryAll`: SOQL over the store, paged with `nextRecordsUrl`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Authed;
use super::records::with_attributes;
use crate::error::ApiError;
use crate::ids;
use crate::org::Org;
use crate::soql;
use crate::store::Record;

/// Most query cursors kept open; the oldest is dropped beyond this.
const MAX_OPEN_CURSORS: usize = 256;

/// The rest of query results not yet fetched, by locator.
#[derive(Debug, Default)]
pub struct QueryCursors {
    inner: Mutex<CursorsInner>,
}

#[derive(Debug, Default)]
struct CursorsInner {
    next: u64,
    open: HashMap<String, Cursor>,
    order: VecDeque<String>,
}

#[derive(Debug)]
struct Cursor {
    records: Vec<Record>,
    offset: usize,
    all_rows: bool,
}

pub(super) fn routes() -> Router<Arc<Org>> {
    Router::new()
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/queryAll", get(query_all))
        .route("/services/data/{version}/query/{locator}", get(more))
        .route("/services/data/{version}/queryAll/{locator}", get(more))
}

#[derive(Debug, Deserialize)]
struct Q {
    q: Option<String>,
}

async fn query(
    state: State<Arc<Org>>,
    authed: Authed,
    Query(q): Query<Q>,
) -> Result<Response, ApiError> {
    run(state, authed, q, false)
}

async fn query_all(
    state: State<Arc<Org>>,
    authed: Authed,
    Query(q): Query<Q>,
) -> Result<Response, ApiError> {
    run(state, authed, q, true)
}

fn soql_error(e: soql::SoqlError) -> ApiError {
    ApiError::bad_request(e.code, e.message)
}

fn run(
    State(org): State<Arc<Org>>,
    authed: Authed,
    q: Q,
    all_rows: bool,
) -> Result<Response, ApiError> {
    let text = q.q.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        ApiError::bad_request("MALFORMED_QUERY", "A query string has to be specified")
    })?;
    let mut parsed = soql::parse(&text).map_err(soql_error)?;
    let (name, rows) = {
        let store = org.store.lock();
        let schema = store.schema(&parsed.from)?;
        if schema.kind != crate::schema::ObjectKind::Record {
            return Err(ApiError::invalid_type(&parsed.from));
        }
        parsed.resolve(schema).map_err(soql_error)?;
        let rows = parsed
            .run(store.rows(&schema.name, all_rows))
            .map_err(soql_error)?;
        (schema.name.clone(), rows)
    };
    if parsed.is_count() {
        return Ok(
            axum::Json(json!({"totalSize": rows.len(), "done": true, "records": []}))
                .into_response(),
        );
    }
    let records: Vec<Record> = rows
        .iter()
        .map(|r| with_attributes(&authed.version, &name, r))
        .collect();
    Ok(page(
        &org,
        &authed.version,
        Cursor {
            records,
            offset: 0,
            all_rows,
        },
    ))
}

fn page(org: &Org, version: &str, mut cursor: Cursor) -> Response {
    let batch = org.config.query_batch_size.max(1);
    let total = cursor.records.len();
    let end = (cursor.offset + batch).min(total);
    let records: Vec<Value> = cursor.records[cursor.offset..end]
        .iter()
        .cloned()
        .map(Value::Object)
        .collect();
    let mut body = json!({"totalSize": total, "done": end >= total, "records": records});
    if end < total {
        cursor.offset = end;
        let resource = if cursor.all_rows { "queryAll" } else { "query" };
        let mut cursors = org.query_cursors.inner.lock();
        cursors.next += 1;
        let locator = format!("{}-{end}", ids::make_id("01g", cursors.next));
        body["nextRecordsUrl"] = json!(format!("/services/data/v{version}/{resource}/{locator}"));
        cursors.open.insert(locator.clone(), cursor);
        cursors.order.push_back(locator);
        while cursors.order.len() > MAX_OPEN_CURSORS {
            if let Some(old) = cursors.order.pop_front() {
                cursors.open.remove(&old);
            }
        }
    }
    axum::Json(body).into_response()
}

async fn more(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Path((_v, locator)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let cursor = {
        let mut cursors = org.query_cursors.inner.lock();
        cursors.order.retain(|l| l != &locator);
        cursors.open.remove(&locator)
    };
    let cursor = cursor
        .ok_or_else(|| ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator"))?;
    Ok(page(&org, &authed.version, cursor))
}
