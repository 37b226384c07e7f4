//! Composite resources: sObject collections (`composite/sobjects`: create,
//! update and delete up to 200 records in one call) and composite batch
//! (`composite/batch`: up to 25 independent subrequests).
//!
//! `allOrNone` is honoured with a real rollback: the affected tables are
//! snapshotted under the store lock, every record is applied, and on the
//! first failure the snapshots are put back; events (PushTopic, Change Data
//! Capture) are raised only once every record succeeded. Without
//! `allOrNone` each record is saved on its own, as Salesforce does. (Record
//! ids handed out to rolled-back records are not reused.)
//!
//! Batch subrequests are dispatched through the same router as top-level
//! requests, with the caller's `Authorization` header; they are not counted
//! as separate API requests.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::Authed;
use crate::error::ApiError;
use crate::org::Org;
use crate::store::{Record, RecordChange, Store, Table};

/// Most records (or ids) in one sObject collection call.
pub const MAX_COLLECTION_RECORDS: usize = 200;

/// Most subrequests in one composite batch.
pub const MAX_BATCH_REQUESTS: usize = 25;

pub(super) fn routes() -> Router<Arc<Org>> {
    Router::new()
        .route(
            "/services/data/{version}/composite/sobjects",
            post(create).patch(update).delete(delete),
        )
        .route("/services/data/{version}/composite/batch", post(batch))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CollectionBody {
    #[serde(default)]
    all_or_none: bool,
    records: Vec<Value>,
}

fn parse_collection(body: &Bytes) -> Result<CollectionBody, ApiError> {
    let body: CollectionBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "JSON_PARSER_ERROR",
            format!("Cannot deserialize the sObject collection request: {e}"),
        )
    })?;
    if body.records.len() > MAX_COLLECTION_RECORDS {
        return Err(exceeded_limit());
    }
    Ok(body)
}

fn exceeded_limit() -> ApiError {
    ApiError::bad_request(
        "EXCEEDED_ID_LIMIT",
        format!(
            "record limit reached. cannot submit more than {MAX_COLLECTION_RECORDS} records into this call"
        ),
    )
}

/// One operation of a collection call.
enum Op {
    Create {
        sobject: String,
        fields: Record,
    },
    Update {
        sobject: String,
        id: String,
        fields: Record,
    },
    Delete {
        sobject: String,
        id: String,
    },
}

/// A record that cannot even be attempted, with its id when known.
struct Failed {
    id: Option<String>,
    error: ApiError,
}

impl From<ApiError> for Failed {
    fn from(error: ApiError) -> Self {
        Self { id: None, error }
    }
}

/// The per-record answer.
fn success(id: &str) -> Value {
    json!({"id": id, "success": true, "errors": []})
}

fn failure(id: Option<&str>, error: &ApiError) -> Value {
    json!({
        "id": id,
        "success": false,
        "errors": [{"statusCode": error.code, "message": error.message, "fields": error.fields}],
    })
}

fn rolled_back(id: Option<&str>) -> Value {
    failure(
        id,
        &ApiError::bad_request(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
        ),
    )
}

/// A collection record split into its `attributes.type` and its fields.
fn typed_record(value: Value) -> Result<(String, Record), ApiError> {
    let Value::Object(mut fields) = value else {
        return Err(ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "each record must be a JSON object",
        ));
    };
    let sobject = record_type(&fields)?;
    fields.remove("attributes");
    Ok((sobject, fields))
}

/// The `attributes.type` of a collection record.
fn record_type(record: &Record) -> Result<String, ApiError> {
    record
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_TYPE",
                "Must send a concrete entity type (attributes.type).",
            )
        })
}

async fn create(
    State(org): State<Arc<Org>>,
    authed: Authed,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_collection(&body)?;
    let ops = body
        .records
        .into_iter()
        .map(|value| -> Result<Op, ApiError> {
            let (sobject, fields) = typed_record(value)?;
            if fields.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
                return Err(ApiError::bad_request(
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                )
                .with_fields(vec!["Id".into()]));
            }
            Ok(Op::Create { sobject, fields })
        })
        .map(|r| r.map_err(Failed::from))
        .collect();
    Ok(apply(&org, &authed, ops, body.all_or_none))
}

async fn update(
    State(org): State<Arc<Org>>,
    authed: Authed,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_collection(&body)?;
    let ops = body
        .records
        .into_iter()
        .map(|value| -> Result<Op, ApiError> {
            let (sobject, mut fields) = typed_record(value)?;
            let key = fields
                .keys()
                .find(|k| k.eq_ignore_ascii_case("Id"))
                .cloned();
            let id = key
                .and_then(|k| fields.remove(&k))
                .and_then(|v| v.as_str().map(str::to_string))
                .ok_or_else(|| {
                    ApiError::bad_request("MISSING_ARGUMENT", "Id not specified in an update call")
                        .with_fields(vec!["Id".into()])
                })?;
            Ok(Op::Update {
                sobject,
                id,
                fields,
            })
        })
        .map(|r| r.map_err(Failed::from))
        .collect();
    Ok(apply(&org, &authed, ops, body.all_or_none))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteParams {
    ids: Option<String>,
    all_or_none: Option<String>,
}

async fn delete(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Query(params): Query<DeleteParams>,
) -> Result<Response, ApiError> {
    let ids: Vec<String> = params
        .ids
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Err(ApiError::bad_request(
            "MISSING_ARGUMENT",
            "ids: the list of record ids to delete is required",
        ));
    }
    if ids.len() > MAX_COLLECTION_RECORDS {
        return Err(exceeded_limit());
    }
    let all_or_none = params
        .all_or_none
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let ops = {
        let store = org.store.lock();
        ids.into_iter()
            .map(|id| {
                let error = match store.find_by_id(&id) {
                    Some((_, record)) if record.get("IsDeleted") == Some(&Value::Bool(true)) => {
                        ApiError::bad_request("ENTITY_IS_DELETED", "entity is deleted")
                    }
                    Some((schema, _)) => {
                        return Ok(Op::Delete {
                            sobject: schema.name.clone(),
                            id,
                        });
                    }
                    None if crate::ids::normalize(&id).is_none() => {
                        ApiError::bad_request("MALFORMED_ID", format!("malformed id {id}"))
                    }
                    None => ApiError::bad_request(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                    ),
                };
                Err(Failed {
                    id: Some(id),
                    error,
                })
            })
            .collect::<Vec<_>>()
    };
    Ok(apply(&org, &authed, ops, all_or_none))
}

/// The id a delete or update is about, for the answer.
fn op_id(op: &Op) -> Option<&str> {
    match op {
        Op::Create { .. } => None,
        Op::Update { id, .. } | Op::Delete { id, .. } => Some(id),
    }
}

fn run_op(org: &Org, store: &mut Store, op: &Op, user: &str) -> Result<RecordChange, ApiError> {
    match op {
        Op::Create { sobject, fields } => {
            org.streaming.check_record(store, sobject, fields, None)?;
            store.create(sobject, fields.clone(), user)
        }
        Op::Update {
            sobject,
            id,
            fields,
        } => {
            org.streaming
                .check_record(store, sobject, fields, Some(id))?;
            store.update(sobject, id, fields.clone(), user)
        }
        Op::Delete { sobject, id } => store.delete(sobject, id, user),
    }
}

fn sobject_of(op: &Op) -> &str {
    match op {
        Op::Create { sobject, .. } | Op::Update { sobject, .. } | Op::Delete { sobject, .. } => {
            sobject
        }
    }
}

/// Applies the operations and answers with one result per record.
fn apply(org: &Org, authed: &Authed, ops: Vec<Result<Op, Failed>>, all_or_none: bool) -> Response {
    let user = authed.session.user_id.clone();
    let results: Vec<Value> = if all_or_none {
        apply_all_or_none(org, &ops, &user)
    } else {
        ops.iter()
            .map(|op| match op {
                Err(f) => failure(f.id.as_deref(), &f.error),
                Ok(op) => {
                    let mut store = org.store.lock();
                    match run_op(org, &mut store, op, &user) {
                        Ok(change) => {
                            org.streaming.record_changed(&store, &change);
                            success(change_id(&change))
                        }
                        Err(e) => failure(op_id(op), &e),
                    }
                }
            })
            .collect()
    };
    axum::Json(Value::Array(results)).into_response()
}

fn change_id(change: &RecordChange) -> &str {
    change
        .record
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn apply_all_or_none(org: &Org, ops: &[Result<Op, Failed>], user: &str) -> Vec<Value> {
    let failed_early = ops.iter().position(Result::is_err);
    if let Some(at) = failed_early {
        return ops
            .iter()
            .enumerate()
            .map(|(i, op)| match op {
                Err(f) if i == at => failure(f.id.as_deref(), &f.error),
                Err(f) => rolled_back(f.id.as_deref()),
                Ok(op) => rolled_back(op_id(op)),
            })
            .collect();
    }
    let ops: Vec<&Op> = ops.iter().filter_map(|op| op.as_ref().ok()).collect();
    let mut store = org.store.lock();
    // Snapshots of every table touched, to put back on failure.
    let mut snapshots: HashMap<String, Option<Table>> = HashMap::new();
    for op in &ops {
        let key = sobject_of(op).to_ascii_lowercase();
        snapshots
            .entry(key)
            .or_insert_with(|| store.table(sobject_of(op)).cloned());
    }
    let mut changes = Vec::with_capacity(ops.len());
    for (at, op) in ops.iter().enumerate() {
        match run_op(org, &mut store, op, user) {
            Ok(change) => changes.push(change),
            Err(error) => {
                for (key, snapshot) in snapshots {
                    if let (Some(snapshot), Ok(table)) = (snapshot, store.table_mut(&key)) {
                        *table = snapshot;
                    }
                }
                return ops
                    .iter()
                    .enumerate()
                    .map(|(i, op)| {
                        if i == at {
                            failure(op_id(op), &error)
                        } else {
                            rolled_back(op_id(op))
                        }
                    })
                    .collect();
            }
        }
    }
    for change in &changes {
        org.streaming.record_changed(&store, change);
    }
    changes.iter().map(|c| success(change_id(c))).collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchBody {
    batch_requests: Vec<SubRequest>,
    #[serde(default)]
    halt_on_error: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubRequest {
    method: String,
    url: String,
    rich_input: Option<Value>,
}

/// `POST composite/batch`: runs each subrequest through the REST router.
async fn batch(
    State(org): State<Arc<Org>>,
    _authed: Authed,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: BatchBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "JSON_PARSER_ERROR",
            format!("Cannot deserialize the batch request: {e}"),
        )
    })?;
    if body.batch_requests.is_empty() {
        return Err(ApiError::bad_request(
            "INVALID_BATCH_REQUEST",
            "A batch request must contain at least one subrequest",
        ));
    }
    if body.batch_requests.len() > MAX_BATCH_REQUESTS {
        return Err(ApiError::bad_request(
            "INVALID_BATCH_REQUEST",
            format!("Batch requests cannot contain more than {MAX_BATCH_REQUESTS} subrequests"),
        ));
    }
    let router = super::api_resources().with_state(org.clone());
    let mut results = Vec::with_capacity(body.batch_requests.len());
    let mut has_errors = false;
    for sub in &body.batch_requests {
        if has_errors && body.halt_on_error {
            results.push(json!({
                "statusCode": 412,
                "result": [{"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}],
            }));
            continue;
        }
        let (status, result) = match sub_request(&headers, sub) {
            Ok(request) => dispatch(&router, request).await,
            Err(e) => (
                e.status.as_u16(),
                json!([{"errorCode": e.code, "message": e.message}]),
            ),
        };
        has_errors |= status >= 400;
        results.push(json!({"statusCode": status, "result": result}));
    }
    Ok(axum::Json(json!({"hasErrors": has_errors, "results": results})).into_response())
}

/// Builds the HTTP request of one subrequest (`v62.0/sobjects/...` or
/// `/services/data/v62.0/...`).
fn sub_request(headers: &HeaderMap, sub: &SubRequest) -> Result<Request<Body>, ApiError> {
    let method = Method::from_bytes(sub.method.to_ascii_uppercase().as_bytes())
        .ok()
        .filter(|m| {
            [
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
                Method::PUT,
            ]
            .contains(m)
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_BATCH_REQUEST",
                format!("unsupported method {}", sub.method),
            )
        })?;
    let url = sub.url.trim();
    let path = if url.starts_with("/services/data/") {
        url.to_string()
    } else {
        format!("/services/data/{}", url.trim_start_matches('/'))
    };
    let (path_only, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (path, None),
    };
    let trimmed = path_only.trim_end_matches('/');
    if trimmed.contains("/composite") || !trimmed.starts_with("/services/data/v") {
        return Err(ApiError::bad_request(
            "INVALID_BATCH_REQUEST",
            format!("subrequest URL not supported in a batch: {}", sub.url),
        ));
    }
    let uri = match query {
        Some(q) => format!("{trimmed}?{q}"),
        None => trimmed.to_string(),
    };
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        builder = builder.header(header::AUTHORIZATION, auth.clone());
    }
    let body = match &sub.rich_input {
        Some(input) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(input.to_string())
        }
        None => Body::empty(),
    };
    builder.body(body).map_err(|e| {
        ApiError::bad_request(
            "INVALID_BATCH_REQUEST",
            format!("invalid subrequest URL {}: {e}", sub.url),
        )
    })
}

async fn dispatch(router: &Router, request: Request<Body>) -> (u16, Value) {
    let Ok(response) = router.clone().oneshot(request).await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let result = if bytes.is_empty() || status == StatusCode::NO_CONTENT {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status.as_u16(), result)
}
