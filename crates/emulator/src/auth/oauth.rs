//! The OAuth 2.0 token endpoint, token revocation and the identity URL.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::jwt::{AssertionRejection, verify_assertion};
use super::{LoginUser, bearer_token, password_login_ok, secret_eq};
use crate::org::Org;

/// The `grant_type` of the JWT bearer flow.
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// An error of the token endpoint, answered as HTTP 400
/// `{"error": …, "error_description": …}` in Salesforce's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OAuthError {
    /// The OAuth `error` code.
    pub error: &'static str,
    /// Salesforce's `error_description`.
    pub description: &'static str,
}

impl OAuthError {
    /// Wrong username or password (+ security token).
    pub const AUTHENTICATION_FAILURE: Self = Self::new("invalid_grant", "authentication failure");
    /// Unknown `client_id`.
    pub const INVALID_CLIENT_ID: Self = Self::new("invalid_client_id", "client identifier invalid");
    /// Wrong or missing `client_secret`.
    pub const INVALID_CLIENT: Self = Self::new("invalid_client", "invalid client credentials");
    /// Unknown or missing `grant_type`.
    pub const UNSUPPORTED_GRANT_TYPE: Self =
        Self::new("unsupported_grant_type", "grant type not supported");
    /// Unknown or revoked refresh token.
    pub const EXPIRED_TOKEN: Self = Self::new("invalid_grant", "expired access/refresh token");
    /// A JWT assertion that is malformed, wrongly signed or names another user.
    pub const INVALID_ASSERTION: Self = Self::new("invalid_grant", "invalid assertion");
    /// A JWT assertion whose `aud` is not a login URL of the org.
    pub const INVALID_AUDIENCE: Self = Self::new("invalid_grant", "audience is invalid");
    /// A JWT assertion past its `exp`.
    pub const EXPIRED_ASSERTION: Self = Self::new("invalid_grant", "expired authorization code");
    /// The user is deactivated.
    pub const INACTIVE_USER: Self = Self::new("inactive_user", "user is inactive");
    /// Revocation of a token the org does not know.
    pub const UNSUPPORTED_TOKEN_TYPE: Self =
        Self::new("unsupported_token_type", "this token type is not supported");

    const fn new(error: &'static str, description: &'static str) -> Self {
        Self { error, description }
    }
}

impl From<AssertionRejection> for OAuthError {
    fn from(rejection: AssertionRejection) -> Self {
        match rejection {
            AssertionRejection::Invalid => Self::INVALID_ASSERTION,
            AssertionRejection::UnknownIssuer => Self::INVALID_CLIENT_ID,
            AssertionRejection::BadAudience => Self::INVALID_AUDIENCE,
            AssertionRejection::Expired => Self::EXPIRED_ASSERTION,
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl std::error::Error for OAuthError {}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": self.error, "error_description": self.description }),
        )
    }
}

/// A JSON response with the headers Salesforce's OAuth endpoints send.
fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,must-revalidate,max-age=0,no-store,private"),
    );
    response
}

/// The form parameters of a request: the body's, then any the query string
/// adds (Salesforce reads both). The first occurrence of a name wins.
fn parameters(body: &[u8], query: Option<&str>) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let query = query.unwrap_or_default().as_bytes();
    for (name, value) in form_urlencoded::parse(body).chain(form_urlencoded::parse(query)) {
        params
            .entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    params
}

/// `client_id` and `client_secret` of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Checks the connected app: `client_id` must be the consumer key, and the
/// secret, when given (or when `secret_required`), the consumer secret.
fn check_client(
    org: &Org,
    client_id: Option<&str>,
    client_secret: Option<&str>,
    secret_required: bool,
) -> Result<(), OAuthError> {
    let credentials = &org.config.credentials;
    if client_id != Some(credentials.consumer_key.as_str()) {
        return Err(OAuthError::INVALID_CLIENT_ID);
    }
    match client_secret {
        Some(secret) if !secret_eq(secret, &credentials.consumer_secret) => {
            Err(OAuthError::INVALID_CLIENT)
        }
        None if secret_required => Err(OAuthError::INVALID_CLIENT),
        _ => Ok(()),
    }
}

/// A non-empty parameter.
fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// `POST /services/oauth2/token`.
pub(super) async fn token(
    State(org): State<Arc<Org>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(unavailable) = super::login_unavailable(&org) {
        return unavailable;
    }
    let params = parameters(&body, query.as_deref());
    let grant_type = param(&params, "grant_type").unwrap_or_default();
    let outcome = match grant_type {
        "password" => password_grant(&org, &params),
        "refresh_token" => refresh_grant(&org, &params),
        JWT_BEARER_GRANT => jwt_grant(&org, &params, &headers),
        "client_credentials" => client_credentials_grant(&org, &params, &headers),
        _ => Err(OAuthError::UNSUPPORTED_GRANT_TYPE),
    };
    let grant_name = match grant_type {
        "password" | "refresh_token" | JWT_BEARER_GRANT | "client_credentials" => grant_type,
        _ => "<unsupported>",
    };
    match outcome {
        Ok(()) => {
            let user = LoginUser::of(&org);
            if !user.active {
                tracing::info!(grant = grant_name, "OAuth login refused: inactive user");
                return OAuthError::INACTIVE_USER.into_response();
            }
            tracing::debug!(grant = grant_name, "OAuth login succeeded");
            json_response(StatusCode::OK, &token_response(&org))
        }
        Err(error) => {
            tracing::info!(grant = grant_name, error = %error, "OAuth login refused");
            error.into_response()
        }
    }
}

fn password_grant(org: &Org, params: &HashMap<String, String>) -> Result<(), OAuthError> {
    check_client(
        org,
        param(params, "client_id"),
        param(params, "client_secret"),
        true,
    )?;
    let (Some(username), Some(password)) = (param(params, "username"), param(params, "password"))
    else {
        return Err(OAuthError::AUTHENTICATION_FAILURE);
    };
    if password_login_ok(org, username, password) {
        Ok(())
    } else {
        Err(OAuthError::AUTHENTICATION_FAILURE)
    }
}

fn refresh_grant(org: &Org, params: &HashMap<String, String>) -> Result<(), OAuthError> {
    check_client(
        org,
        param(params, "client_id"),
        param(params, "client_secret"),
        false,
    )?;
    let refresh_token = param(params, "refresh_token").ok_or(OAuthError::EXPIRED_TOKEN)?;
    if secret_eq(refresh_token, &org.config.credentials.refresh_token) {
        Ok(())
    } else {
        Err(OAuthError::EXPIRED_TOKEN)
    }
}

fn jwt_grant(
    org: &Org,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(), OAuthError> {
    let assertion = param(params, "assertion").ok_or(OAuthError::INVALID_ASSERTION)?;
    let mut own = vec![org.base_url()];
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        own.push(format!("http://{host}"));
        own.push(format!("https://{host}"));
    }
    let now = chrono::Utc::now().timestamp();
    verify_assertion(assertion, &org.config.credentials, &own, now)?;
    Ok(())
}

fn client_credentials_grant(
    org: &Org,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(), OAuthError> {
    match basic_credentials(headers) {
        Some((id, secret)) => check_client(org, Some(&id), Some(&secret), true),
        None => check_client(
            org,
            param(params, "client_id"),
            param(params, "client_secret"),
            true,
        ),
    }
}

/// Issues an access token to the login user and builds the token
/// endpoint's success body: `access_token`, `instance_url`, `id`,
/// `token_type`, `issued_at` (epoch milliseconds, as a string), `signature`
/// (base64 HMAC-SHA256 of `id` + `issued_at` keyed with the consumer
/// secret) and `scope`.
pub fn token_response(org: &Org) -> Value {
    let org_id = org.org_id();
    let user_id = org.user_id();
    let access_token = org.tokens.issue(&org_id, &user_id);
    let base = org.base_url();
    let id = format!("{base}/id/{org_id}/{user_id}");
    let issued_at = chrono::Utc::now().timestamp_millis().to_string();
    let signature = sign(&org.config.credentials.consumer_secret, &id, &issued_at);
    json!({
        "access_token": access_token,
        "instance_url": base,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": signature,
        "scope": "api",
    })
}

/// Base64 HMAC-SHA256 of `id` + `issued_at`, keyed with the consumer secret.
fn sign(consumer_secret: &str, id: &str, issued_at: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, consumer_secret.as_bytes());
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(issued_at.as_bytes());
    STANDARD.encode(context.sign().as_ref())
}

/// `POST|GET /services/oauth2/revoke?token=…`: revokes an access token.
/// Revoking the org's refresh token is accepted but has no effect (the
/// org has one fixed refresh token).
pub(super) async fn revoke(
    State(org): State<Arc<Org>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = parameters(&body, query.as_deref());
    let Some(token) = param(&params, "token") else {
        return OAuthError::UNSUPPORTED_TOKEN_TYPE.into_response();
    };
    if org.tokens.revoke(token) || secret_eq(token, &org.config.credentials.refresh_token) {
        StatusCode::OK.into_response()
    } else {
        OAuthError::UNSUPPORTED_TOKEN_TYPE.into_response()
    }
}

/// A plain-text identity URL error, as Salesforce answers them.
fn identity_error(status: StatusCode, text: &'static str) -> Response {
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=UTF-8"),
    );
    response
}

/// Whether two Salesforce ids name the same record (15 or 18 characters).
fn same_id(a: &str, b: &str) -> bool {
    let a15 = a.get(..15).unwrap_or(a);
    let b15 = b.get(..15).unwrap_or(b);
    a15 == b15
}

/// `GET|POST /id/{orgId}/{userId}`: the identity URL. The access token
/// comes in `Authorization: Bearer` or the `oauth_token` parameter.
pub(super) async fn identity(
    State(org): State<Arc<Org>>,
    Path((org_id, user_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = parameters(&[], query.as_deref());
    let token = bearer_token(&headers).or_else(|| param(&params, "oauth_token"));
    let Some(session) = token.and_then(|t| org.tokens.lookup(t)) else {
        return identity_error(StatusCode::FORBIDDEN, "Bad_OAuth_Token");
    };
    let user = LoginUser::of(&org);
    if !same_id(&org_id, &user.org_id)
        || !same_id(&user_id, &user.user_id)
        || !same_id(&session.user_id, &user.user_id)
    {
        return identity_error(StatusCode::FORBIDDEN, "Bad_Id");
    }
    let base = org.base_url();
    let org15 = user.org_id.get(..15).unwrap_or(&user.org_id);
    let data = format!("{base}/services/data/v{{version}}");
    let body = json!({
        "id": format!("{base}/id/{}/{}", user.org_id, user.user_id),
        "asserted_user": true,
        "user_id": user.user_id,
        "organization_id": user.org_id,
        "username": user.username,
        "nick_name": user.username.split('@').next().unwrap_or_default(),
        "display_name": user.full_name(),
        "email": user.email,
        "email_verified": true,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "timezone": "America/Los_Angeles",
        "active": user.active,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": -28_800_000,
        "is_app_installed": true,
        "urls": {
            "enterprise": format!("{base}/services/Soap/c/{{version}}/{org15}"),
            "metadata": format!("{base}/services/Soap/m/{{version}}/{org15}"),
            "partner": format!("{base}/services/Soap/u/{{version}}/{org15}"),
            "rest": format!("{data}/"),
            "sobjects": format!("{data}/sobjects/"),
            "search": format!("{data}/search/"),
            "query": format!("{data}/query/"),
            "recent": format!("{data}/recent/"),
            "tooling_soap": format!("{base}/services/Soap/T/{{version}}/{org15}"),
            "tooling_rest": format!("{data}/tooling/"),
            "profile": format!("{base}/{}", user.user_id),
            "custom_domain": base,
        },
    });
    json_response(StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn body_parameters_win_over_the_query_string() {
        let params = parameters(
            b"grant_type=password&username=a%40b.c&password=p%2Bq",
            Some("grant_type=other&client_id=x"),
        );
        assert_eq!(params["grant_type"], "password");
        assert_eq!(params["username"], "a@b.c");
        assert_eq!(params["password"], "p+q");
        assert_eq!(params["client_id"], "x");
    }

    #[test]
    fn basic_credentials_are_read() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("id:se:cret");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("header"),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("id".to_string(), "se:cret".to_string()))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic %%%"));
        assert_eq!(basic_credentials(&headers), None);
    }

    #[test]
    fn signature_is_base64_hmac_sha256() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        let signature = sign("key", "The quick brown fox ", "jumps over the lazy dog");
        assert_eq!(signature, "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=");
    }

    #[test]
    fn ids_compare_on_fifteen_characters() {
        assert!(same_id("00D000000000001AAA", "00D000000000001"));
        assert!(!same_id("00D000000000001AAA", "00D000000000002AAA"));
    }
}
