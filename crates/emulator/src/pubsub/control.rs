//! Control API routes of Pub/Sub (served with the fault routes, loopback
//! only): defining platform event types, and managed subscriptions.
//!
//! - `POST /_emulator/platform-events/{Name__e}` `{"fields":{"Amount__c":"double"}}`
//! - `POST /_emulator/managed-subscriptions` `{"developer_name","topic_name",
//!   "default_replay","error_recovery_replay","state"}` → the subscription
//! - `GET /_emulator/managed-subscriptions` → every one, with its commit
//! - `POST /_emulator/managed-subscriptions/{id}/state` `{"state":"STOP"}`

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use super::managed::{self, NewManaged};
use super::schema;
use crate::org::Org;
use crate::schema::FieldType;

/// The routes.
pub fn routes() -> Router<Arc<Org>> {
    Router::new()
        .route("/_emulator/platform-events/{name}", post(define))
        .route(
            "/_emulator/managed-subscriptions",
            post(create_managed).get(list_managed),
        )
        .route(
            "/_emulator/managed-subscriptions/{id}/state",
            post(set_state),
        )
}

#[derive(Debug, Deserialize, Default)]
struct Definition {
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

/// A field type by its describe name (`string`, `double`, `int`, …).
pub fn field_type(name: &str) -> Option<FieldType> {
    Some(match name.to_ascii_lowercase().as_str() {
        "string" | "text" | "textarea" | "picklist" | "email" | "phone" | "url" => {
            FieldType::String
        }
        "double" | "number" | "percent" => FieldType::Double,
        "currency" => FieldType::Currency,
        "int" | "integer" => FieldType::Int,
        "boolean" | "checkbox" => FieldType::Boolean,
        "date" => FieldType::Date,
        "datetime" => FieldType::DateTime,
        "reference" | "id" => FieldType::Reference,
        _ => return None,
    })
}

fn bad(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": message})),
    )
        .into_response()
}

async fn define(
    State(org): State<Arc<Org>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let definition: Definition = if body.is_empty() {
        Definition::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(d) => d,
            Err(e) => return bad(e.to_string()),
        }
    };
    let mut fields = Vec::new();
    for (field, kind) in &definition.fields {
        match field_type(kind) {
            Some(kind) => fields.push((field.as_str(), kind)),
            None => return bad(format!("unknown field type '{kind}' of {field}")),
        }
    }
    if let Err(e) = org.define_platform_event(&name, &fields) {
        return bad(e.to_string());
    }
    let store = org.store.lock();
    let schema = store.schema(&name).ok().map(schema::platform_event);
    axum::Json(json!({"topic": format!("/event/{name}"), "schema_id": schema.map(|s| s.id)}))
        .into_response()
}

async fn create_managed(
    State(org): State<Arc<Org>>,
    axum::Json(new): axum::Json<NewManaged>,
) -> Response {
    match create(&org, new) {
        Ok(m) => (StatusCode::CREATED, axum::Json(m)).into_response(),
        Err(e) => bad(e),
    }
}

/// Creates a managed subscription after checking its topic exists.
pub fn create(org: &Org, new: NewManaged) -> Result<managed::Managed, String> {
    if !schema::topic_exists(&org.store.lock(), &new.topic_name) {
        return Err(format!("no topic {}", new.topic_name));
    }
    org.pubsub.managed.create(new)
}

async fn list_managed(State(org): State<Arc<Org>>) -> Response {
    axum::Json(org.pubsub.managed.list()).into_response()
}

#[derive(Debug, Deserialize)]
struct SetState {
    state: managed::State,
}

async fn set_state(
    State(org): State<Arc<Org>>,
    Path(id): Path<String>,
    axum::Json(body): axum::Json<SetState>,
) -> Response {
    if org.pubsub.managed.set_state(&id, body.state) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no such managed subscription"})),
        )
            .into_response()
    }
}
