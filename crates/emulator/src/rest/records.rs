//! Records: create, get, update, delete, upsert and get/delete by external
//! id; platform event publishing (create on `X__e`); generic streaming push.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Authed, describe, no_content};
use crate::error::ApiError;
use crate::ids;
use crate::org::Org;
use crate::store::{Record, loosely_equal};

pub(super) fn routes() -> Router<Arc<Org>> {
    Router::new()
        .route("/services/data/{version}/sobjects", get(describe::global))
        .route(
            "/services/data/{version}/sobjects/{sobject}",
            get(info).post(create),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{key}",
            get(get_by_id).patch(update_by_id).delete(delete_by_id),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{key}/{value}",
            get(get_by_external)
                .patch(upsert)
                .delete(delete_by_external),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{key}/push",
            post(push),
        )
}

fn parse_body(body: &Bytes) -> Result<Record, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of SObject from a value that is not an object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "JSON_PARSER_ERROR",
            format!(
                "Unexpected character in JSON at [line:{},column:{}]",
                e.line(),
                e.column()
            ),
        )),
    }
}

fn record_url(version: &str, sobject: &str, id: &str) -> String {
    format!("/services/data/v{version}/sobjects/{sobject}/{id}")
}

/// A record as the REST API returns it: `attributes` first, then fields.
pub(super) fn with_attributes(version: &str, sobject: &str, record: &Record) -> Record {
    let id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
    let mut out = Record::new();
    out.insert(
        "attributes".into(),
        json!({"type": sobject, "url": record_url(version, sobject, id)}),
    );
    for (k, v) in record {
        out.insert(k.clone(), v.clone());
    }
    out
}

fn created(id: &str) -> Response {
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "success": true, "errors": []})),
    )
        .into_response()
}

async fn info(
    state: State<Arc<Org>>,
    authed: Authed,
    Path((_v, sobject)): Path<(String, String)>,
) -> Response {
    describe::basic_info(state, authed, &sobject).await
}

async fn create(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Path((_v, sobject)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fields = parse_body(&body)?;
    let change = org.create_record(&sobject, fields, &authed.session.user_id)?;
    let id = change
        .record
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(created(id))
}

#[derive(Debug, Deserialize)]
struct FieldsParam {
    fields: Option<String>,
}

/// Keeps only the requested fields (plus `Id`), checking they exist.
fn select_fields(
    org: &Org,
    sobject: &str,
    record: &Record,
    fields: Option<&str>,
) -> Result<Record, ApiError> {
    let Some(list) = fields else {
        return Ok(record.clone());
    };
    let store = org.store.lock();
    let schema = store.schema(sobject)?;
    let mut out = Record::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let field = schema.field(name).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_FIELD",
                format!("No such column '{name}' on sobject of type {}", schema.name),
            )
        })?;
        out.insert(
            field.name.clone(),
            record.get(&field.name).cloned().unwrap_or(Value::Null),
        );
    }
    out.insert(
        "Id".into(),
        record.get("Id").cloned().unwrap_or(Value::Null),
    );
    Ok(out)
}

async fn get_by_id(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Path((_v, sobject, key)): Path<(String, String, String)>,
    Query(params): Query<FieldsParam>,
) -> Result<Response, ApiError> {
    let (name, record) = {
        let store = org.store.lock();
        let schema = store
            .table(&sobject)
            .ok_or_else(|| ApiError::unknown_type_in_url(&sobject))?;
        let name = schema.schema.name.clone();
        let record = store.get(&sobject, &key, false).cloned().ok_or_else(|| {
            if ids::normalize(&key).is_some() {
                ApiError::not_found("The requested resource does not exist")
            } else {
                ApiError::not_found(format!(
                    "Provided external ID field does not exist or is not accessible: {key}"
                ))
            }
        })?;
        (name, record)
    };
    let record = select_fields(&org, &name, &record, params.fields.as_deref())?;
    Ok(axum::Json(with_attributes(&authed.version, &name, &record)).into_response())
}

async fn update_by_id(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Path((_v, sobject, key)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fields = parse_body(&body)?;
    org.update_record(&sobject, &key, fields, &authed.session.user_id)?;
    Ok(no_content())
}

async fn delete_by_id(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Path((_v, sobject, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    org.delete_record(&sobject, &key, &authed.session.user_id)?;
    Ok(no_content())
}

/// Ids of live records whose external id field `field` equals `value`.
fn external_matches(
    org: &Org,
    sobject: &str,
    field: &str,
    value: &str,
) -> Result<(String, String, Vec<String>), ApiError> {
    let mut store = org.store.lock();
    if store.table(sobject).is_none() {
        return Err(ApiError::unknown_type_in_url(sobject));
    }
    // Custom external id fields exist once named (the org is permissive).
    if let Ok(table) = store.table_mut(sobject) {
        table
            .schema
            .ensure_custom_field(field, &Value::String(String::new()));
    }
    let schema = store
        .table(sobject)
        .ok_or_else(|| ApiError::unknown_type_in_url(sobject))?;
    let name = schema.schema.name.clone();
    let def = schema
        .schema
        .field(field)
        .filter(|f| f.external_id || f.name == "Id")
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Provided external ID field does not exist or is not accessible: {field}"
            ))
        })?;
    let canonical = def.name.clone();
    let matches = if canonical == "Id" {
        store
            .get(&name, value, false)
            .and_then(|r| r.get("Id").and_then(Value::as_str).map(str::to_string))
            .into_iter()
            .collect()
    } else {
        store.find_by_field(&name, &canonical, &Value::String(value.to_string()))
    };
    Ok((name, canonical, matches))
}

fn multiple_choices(version: &str, sobject: &str, ids: &[String]) -> ApiError {
    let urls: Vec<String> = ids
        .iter()
        .map(|id| record_url(version, sobject, id))
        .collect();
    ApiError::new(
        StatusCode::MULTIPLE_CHOICES,
        "MULTIPLE_CHOICES",
        urls.join(", "),
    )
}

async fn get_by_external(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Path((_v, sobject, field, value)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let (name, _, ids) = external_matches(&org, &sobject, &field, &value)?;
    match ids.as_slice() {
        [] => Err(ApiError::not_found("The requested resource does not exist")),
        [id] => {
            let record = org
                .store
                .lock()
                .get(&name, id, false)
                .cloned()
                .unwrap_or_default();
            Ok(axum::Json(with_attributes(&authed.version, &name, &record)).into_response())
        }
        many => Err(multiple_choices(&authed.version, &name, many)),
    }
}

async fn upsert(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Path((_v, sobject, field, value)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut fields = parse_body(&body)?;
    let (name, canonical, ids) = external_matches(&org, &sobject, &field, &value)?;
    if let Some((given, v)) = fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&canonical))
        && !loosely_equal(v, &Value::String(value.clone()))
    {
        return Err(ApiError::bad_request(
            "INVALID_FIELD",
            format!(
                "Field {given} is an external ID field and cannot be set in the body of an upsert with a different value"
            ),
        ));
    }
    let user = authed.session.user_id.clone();
    match ids.as_slice() {
        [] if canonical == "Id" => {
            Err(ApiError::not_found("The requested resource does not exist"))
        }
        [] => {
            fields.insert(canonical, Value::String(value));
            let change = org.create_record(&name, fields, &user)?;
            let id = change
                .record
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Ok((
                StatusCode::CREATED,
                axum::Json(json!({"id": id, "success": true, "errors": [], "created": true})),
            )
                .into_response())
        }
        [id] => {
            fields.retain(|k, _| !k.eq_ignore_ascii_case(&canonical));
            org.update_record(&name, id, fields, &user)?;
            Ok(
                axum::Json(json!({"id": id, "success": true, "errors": [], "created": false}))
                    .into_response(),
            )
        }
        many => Err(multiple_choices(&authed.version, &name, many)),
    }
}

async fn delete_by_external(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Path((_v, sobject, field, value)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let (name, _, ids) = external_matches(&org, &sobject, &field, &value)?;
    match ids.as_slice() {
        [] => Err(ApiError::not_found("The requested resource does not exist")),
        [id] => {
            org.delete_record(&name, id, &authed.session.user_id)?;
            Ok(no_content())
        }
        many => Err(multiple_choices(&authed.version, &name, many)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushBody {
    push_events: Vec<PushEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushEvent {
    payload: String,
    #[serde(default)]
    user_ids: Vec<String>,
}

/// `POST sobjects/StreamingChannel/<id>/push`: publishes generic events.
async fn push(
    State(org): State<Arc<Org>>,
    _authed: Authed,
    Path((_v, sobject, key)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !sobject.eq_ignore_ascii_case("StreamingChannel") {
        return Err(ApiError::no_resource());
    }
    let channel = org
        .store
        .lock()
        .get("StreamingChannel", &key, false)
        .and_then(|r| r.get("Name").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| ApiError::not_found("The requested resource does not exist"))?;
    let body: PushBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("JSON_PARSER_ERROR", format!("Invalid push request: {e}"))
    })?;
    let mut fanout = 0i64;
    for event in &body.push_events {
        let _ = &event.user_ids;
        org.streaming.publish_generic(&channel, &event.payload);
        fanout += org.streaming.subscriber_count(&channel) as i64;
    }
    Ok(axum::Json(json!({"fanoutCount": fanout, "userOnlineStatus": {}})).into_response())
}
