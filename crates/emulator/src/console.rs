//! The console: a page at `/` showing what flows through the org
//! (records by type, PushTopics, streaming clients and their
//! subscriptions, events live as they are raised, the fault buttons and
//! counters), and the JSON it reads, under `/_emulator/console/` (loopback
//! peers only, as the control API: it changes records without a login).
//!
//! - `GET /_emulator/console/state`: org, counters, types, PushTopics,
//!   channels, CometD clients, Pub/Sub subscriptions.
//! - `GET /_emulator/console/records/{sobject}`: the form fields and the
//!   newest records; `POST` creates one (JSON fields).
//! - `PATCH` / `DELETE /_emulator/console/records/{sobject}/{id}`.
//! - `GET /_emulator/console/events`: Server-Sent Events, one `raised`
//!   event per streaming event (the last [`RECENT`](crate::streaming::RECENT)
//!   first).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::org::Org;
use crate::schema::{FieldType, ObjectKind, SObjectSchema};
use crate::store::Record;

/// The page, with its styles and script inline (no external links).
pub const PAGE: &str = include_str!("../assets/console.html");

/// Most records a listing returns.
const MAX_RECORDS: usize = 200;
/// Most fields in a type's form.
const MAX_FORM_FIELDS: usize = 8;

/// The page and its JSON routes.
pub fn routes() -> Router<Arc<Org>> {
    let api = Router::new()
        .route("/_emulator/console/state", get(state))
        .route(
            "/_emulator/console/records/{sobject}",
            get(records).post(create),
        )
        .route(
            "/_emulator/console/records/{sobject}/{id}",
            axum::routing::patch(update).delete(delete),
        )
        .route("/_emulator/console/events", get(events))
        .layer(middleware::from_fn(crate::faults::loopback_only));
    Router::new().route("/", get(page)).merge(api)
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

async fn state(State(org): State<Arc<Org>>) -> Response {
    axum::Json(state_json(&org)).into_response()
}

/// Everything the console shows but the records and the events.
pub fn state_json(org: &Org) -> Value {
    let (types, pushtopics, username) = {
        let store = org.store.lock();
        let types: Vec<Value> = store
            .schemas()
            .into_iter()
            .map(|schema| {
                json!({
                    "name": schema.name,
                    "label": schema.label,
                    "platform_event": schema.kind == ObjectKind::PlatformEvent,
                    "cdc": schema.cdc_enabled,
                    "count": store.rows(&schema.name, false).count(),
                })
            })
            .collect();
        let pushtopics: Vec<Value> = store
            .rows("PushTopic", false)
            .map(|topic| {
                let pick = |field: &str| topic.get(field).cloned().unwrap_or(Value::Null);
                json!({
                    "id": pick("Id"),
                    "name": pick("Name"),
                    "query": pick("Query"),
                    "active": pick("IsActive"),
                    "api_version": pick("ApiVersion"),
                    "notify_for_fields": pick("NotifyForFields"),
                })
            })
            .collect();
        let username = store
            .get("User", &store.user_id, false)
            .and_then(|u| u.get("Username").cloned())
            .unwrap_or(Value::Null);
        (types, pushtopics, username)
    };
    json!({
        "org": {
            "url": org.base_url(),
            "org_id": org.org_id(),
            "username": username,
        },
        "faults_enabled": org.config.faults_enabled,
        "faults": crate::faults::FAULTS,
        "stats": crate::faults::stats_json(org),
        "types": types,
        "pushtopics": pushtopics,
        "channels": org.streaming.channel_summaries(),
        "clients": org.streaming.client_summaries(),
        "pubsub_subscriptions": org.pubsub.listing.summaries(),
    })
}

#[derive(Debug, Deserialize)]
struct Listing {
    limit: Option<usize>,
}

async fn records(
    State(org): State<Arc<Org>>,
    Path(sobject): Path<String>,
    Query(listing): Query<Listing>,
) -> Response {
    let limit = listing.limit.unwrap_or(MAX_RECORDS).min(MAX_RECORDS);
    let store = org.store.lock();
    let schema = match store.schema(&sobject) {
        Ok(schema) => schema,
        Err(e) => return e.into_response(),
    };
    let all: Vec<&Record> = store.rows(&schema.name, false).collect();
    let newest: Vec<&Record> = all.iter().rev().take(limit).copied().collect();
    axum::Json(json!({
        "type": schema.name,
        "platform_event": schema.kind == ObjectKind::PlatformEvent,
        "fields": form_fields(schema),
        "total": all.len(),
        "records": newest,
    }))
    .into_response()
}

/// The fields a form offers for a type: required ones, then the usual
/// ones of people and things, then custom ones; writable only.
pub fn form_fields(schema: &SObjectSchema) -> Vec<Value> {
    const USUAL: [&str; 10] = [
        "Name",
        "FirstName",
        "LastName",
        "Email",
        "Phone",
        "Title",
        "Company",
        "Status",
        "Subject",
        "Description",
    ];
    let writable = |f: &&crate::schema::FieldDef| {
        !f.read_only && f.kind != FieldType::Id && f.kind != FieldType::AutoNumber
    };
    let rank = |f: &crate::schema::FieldDef| {
        if f.required {
            0
        } else if let Some(i) = USUAL.iter().position(|u| *u == f.name) {
            1 + i
        } else if f.name.ends_with("__c") {
            USUAL.len() + 1
        } else {
            usize::MAX
        }
    };
    let mut fields: Vec<&crate::schema::FieldDef> = schema
        .fields
        .iter()
        .filter(writable)
        .filter(|f| rank(f) != usize::MAX)
        .collect();
    fields.sort_by_key(|f| rank(f));
    fields.truncate(MAX_FORM_FIELDS);
    fields
        .into_iter()
        .map(|f| json!({"name": f.name, "type": f.kind.describe_name(), "required": f.required}))
        .collect()
}

async fn create(
    State(org): State<Arc<Org>>,
    Path(sobject): Path<String>,
    axum::Json(fields): axum::Json<Record>,
) -> Response {
    match org.create_record(&sobject, fields, &org.user_id()) {
        Ok(change) => (
            StatusCode::CREATED,
            axum::Json(json!({"id": change.record.get("Id")})),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn update(
    State(org): State<Arc<Org>>,
    Path((sobject, id)): Path<(String, String)>,
    axum::Json(fields): axum::Json<Record>,
) -> Response {
    match org.update_record(&sobject, &id, fields, &org.user_id()) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn delete(
    State(org): State<Arc<Org>>,
    Path((sobject, id)): Path<(String, String)>,
) -> Response {
    match org.delete_record(&sobject, &id, &org.user_id()) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn events(State(org): State<Arc<Org>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (recent, receiver) = org.streaming.live().subscribe();
    let state = (recent.into_iter(), receiver);
    let stream = futures::stream::unfold(state, |(mut recent, mut receiver)| async move {
        if let Some(event) = recent.next() {
            let sse = Event::default().event("raised").data(event.to_json());
            return Some((Ok(sse), (recent, receiver)));
        }
        let sse = match receiver.recv().await {
            Ok(event) => Event::default().event("raised").data(event.to_json()),
            // A reader too slow for the org is told how many it missed.
            Err(RecvError::Lagged(missed)) => {
                Event::default().event("missed").data(missed.to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(sse), (recent, receiver)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmulatorConfig;

    #[test]
    fn contact_form_starts_with_its_required_last_name() {
        let org = Org::new(EmulatorConfig::default());
        let store = org.store.lock();
        let fields = form_fields(store.schema("Contact").expect("Contact"));
        assert_eq!(fields[0]["name"], "LastName");
        assert_eq!(fields[0]["required"], true);
        assert!(fields.len() <= MAX_FORM_FIELDS);
        assert!(
            fields
                .iter()
                .all(|f| f["name"] != "Id" && f["name"] != "CreatedDate")
        );
    }

    #[test]
    fn state_lists_types_topics_and_counters() {
        let org = Org::new(EmulatorConfig::default());
        let user = org.user_id();
        let topic = json!({"Name": "Contacts", "Query": "SELECT Id, LastName FROM Contact", "ApiVersion": 62.0});
        let fields = |v: Value| v.as_object().cloned().unwrap_or_default();
        org.create_record("PushTopic", fields(topic), &user)
            .expect("topic");
        org.create_record("Contact", fields(json!({"LastName": "Doe"})), &user)
            .expect("contact");
        let state = state_json(&org);
        let contact = state["types"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == "Contact"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(contact["count"], 1);
        assert_eq!(state["pushtopics"][0]["name"], "Contacts");
        assert_eq!(state["faults_enabled"], false);
        assert!(state["stats"]["events_raised"].as_u64() >= Some(2));
        let channels = state["channels"].as_array().cloned().unwrap_or_default();
        assert!(channels.iter().any(|c| c["channel"] == "/topic/Contacts"));
        let (recent, _) = org.streaming.live().subscribe();
        assert!(recent.iter().any(|e| e.channel == "/topic/Contacts"));
    }
}
