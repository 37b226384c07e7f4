//! The REST API under `/services/data/vXX.X/`: records, describes, SOQL
//! queries with paging, SOSL search, sObject collections and composite
//! batch, limits, platform event publishing and generic streaming pushes.
//! Every response carries `Sforce-Limit-Info`.

mod composite;
mod describe;
mod query;
mod records;
mod search;

pub use query::QueryCursors;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::auth::Session;
use crate::config::{LATEST_API_VERSION, OLDEST_API_VERSION};
use crate::error::ApiError;
use crate::org::Org;

/// A request made with a valid access token, for a served API version.
#[derive(Debug, Clone)]
pub struct Authed {
    /// Who is calling.
    pub session: Session,
    /// The API version of the URL, e.g. `62.0`.
    pub version: String,
}

impl FromRequestParts<Arc<Org>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        org: &Arc<Org>,
    ) -> Result<Self, Self::Rejection> {
        let version = parts
            .uri
            .path()
            .strip_prefix("/services/data/v")
            .and_then(|rest| rest.split('/').next())
            .filter(|v| version_served(v))
            .ok_or_else(ApiError::no_resource)?
            .to_string();
        let session = org
            .tokens
            .authenticate(&parts.headers)
            .ok_or_else(ApiError::invalid_session)?;
        Ok(Authed { session, version })
    }
}

/// Whether the REST API serves a version such as `62.0`.
pub fn version_served(version: &str) -> bool {
    let latest: f64 = LATEST_API_VERSION.parse().unwrap_or(0.0);
    version.contains('.')
        && version
            .parse::<f64>()
            .is_ok_and(|v| (OLDEST_API_VERSION..=latest).contains(&v))
}

/// Routes of the REST API.
pub fn routes(org: &Arc<Org>) -> Router<Arc<Org>> {
    api_resources()
        .merge(composite::routes())
        .layer(middleware::from_fn_with_state(org.clone(), limit_info))
}

/// Every resource except `composite/`: what a composite batch may call.
fn api_resources() -> Router<Arc<Org>> {
    Router::new()
        .route("/services/data", get(versions))
        .route("/services/data/{version}", get(resources))
        .route("/services/data/{version}/limits", get(limits))
        .merge(describe::routes())
        .merge(records::routes())
        .merge(query::routes())
        .merge(search::routes())
}

/// Adds `Sforce-Limit-Info` to every REST response and counts the request.
async fn limit_info(State(org): State<Arc<Org>>, request: Request, next: Next) -> Response {
    let counts = request.uri().path().starts_with("/services/data/v");
    let used = if counts {
        org.count_api_request()
    } else {
        org.api_requests()
    };
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&format!(
        "api-usage={used}/{}",
        org.config.daily_api_requests
    )) {
        response.headers_mut().insert("sforce-limit-info", value);
    }
    response
}

async fn versions() -> Response {
    let latest: f64 = LATEST_API_VERSION.parse().unwrap_or(62.0);
    let mut list = Vec::new();
    let mut v = OLDEST_API_VERSION;
    while v <= latest {
        list.push(json!({
            "label": format!("v{v:.1}"),
            "url": format!("/services/data/v{v:.1}"),
            "version": format!("{v:.1}"),
        }));
        v += 1.0;
    }
    axum::Json(Value::Array(list)).into_response()
}

async fn resources(authed: Authed, Path(_version): Path<String>) -> Response {
    let base = format!("/services/data/v{}", authed.version);
    axum::Json(json!({
        "sobjects": format!("{base}/sobjects"),
        "query": format!("{base}/query"),
        "queryAll": format!("{base}/queryAll"),
        "limits": format!("{base}/limits"),
    }))
    .into_response()
}

async fn limits(State(org): State<Arc<Org>>, _authed: Authed) -> Response {
    let max = org.config.daily_api_requests;
    let used = org.api_requests();
    let raised = org
        .streaming
        .stats()
        .events_raised
        .load(std::sync::atomic::Ordering::Relaxed);
    let delivered = org
        .streaming
        .stats()
        .events_delivered
        .load(std::sync::atomic::Ordering::Relaxed);
    let limit = |max: u64, used: u64| json!({"Max": max, "Remaining": max.saturating_sub(used)});
    axum::Json(json!({
        "DailyApiRequests": limit(max, used),
        "DailyStreamingApiEvents": limit(org.daily_streaming_events_limit(), delivered),
        "DailyDurableStreamingApiEvents": limit(org.daily_streaming_events_limit(), delivered),
        "DailyGenericStreamingApiEvents": limit(10_000, 0),
        "DailyDeliveredPlatformEvents": limit(50_000, delivered),
        "HourlyPublishedPlatformEvents": limit(250_000, raised),
        "DataStorageMB": limit(5, 0),
        "FileStorageMB": limit(20, 0),
    }))
    .into_response()
}

/// An empty 204 response.
fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
