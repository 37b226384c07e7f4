//! Login: the OAuth 2.0 token endpoint (password, refresh token, JWT
//! bearer, client credentials), SOAP `login`, the identity URL, and the
//! tokens they issue.
//!
//! Routes:
//!
//! - `POST /services/oauth2/token`: the OAuth 2.0 token endpoint.
//! - `POST /services/oauth2/revoke` (and `GET`): revokes an access token.
//! - `GET|POST /id/{orgId}/{userId}`: the identity URL.
//! - `POST /services/Soap/u/{version}`: SOAP `login` (partner API).
//! - `POST /services/Soap/c/{version}`: SOAP `login` (enterprise API).
//!
//! Nothing here logs or echoes a password, security token, secret, access
//! token, refresh token or assertion.

mod jwt;
mod oauth;
mod soap;
mod tokens;

pub use jwt::{AssertionRejection, JWT_CLOCK_SKEW_SECS, verify_assertion};
pub use oauth::{OAuthError, token_response};
pub use tokens::{Session, Tokens, bearer_token};

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::org::Org;

/// Routes of the login endpoints.
pub fn routes() -> Router<Arc<Org>> {
    Router::new()
        .route("/services/oauth2/token", post(oauth::token))
        .route(
            "/services/oauth2/revoke",
            post(oauth::revoke).get(oauth::revoke),
        )
        .route(
            "/id/{org_id}/{user_id}",
            get(oauth::identity).post(oauth::identity),
        )
        .route("/services/Soap/u/{version}", post(soap::login_partner))
        .route("/services/Soap/c/{version}", post(soap::login_enterprise))
}

/// The answer of a login endpoint while a login fault is armed (see
/// [`Faults::fail_logins`](crate::faults::Faults::fail_logins)): HTTP 503
/// with an HTML page, as Salesforce's front end answers during maintenance.
pub(crate) fn login_unavailable(org: &Org) -> Option<axum::response::Response> {
    use axum::response::IntoResponse;
    if !org.faults.take_login_failure() {
        return None;
    }
    tracing::info!("login refused with 503: a login fault is armed");
    Some(
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::CONTENT_TYPE, "text/html;charset=UTF-8")],
            "<html><body>Service Unavailable: down for maintenance</body></html>",
        )
            .into_response(),
    )
}

/// Compares two secrets in time that depends only on their lengths, so a
/// caller cannot find a password one character at a time by timing.
pub(crate) fn secret_eq(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The password a password login must present: the password with the
/// security token appended (just the password when the org has no token).
pub(crate) fn expected_login_password(org: &Org) -> String {
    let credentials = &org.config.credentials;
    format!("{}{}", credentials.password, credentials.security_token)
}

/// Whether `username` and `password` (password + security token) are the
/// org's login user's. Usernames compare case-insensitively, as in Salesforce.
pub(crate) fn password_login_ok(org: &Org, username: &str, password: &str) -> bool {
    let name_ok = username
        .trim()
        .eq_ignore_ascii_case(&org.config.credentials.username);
    // Compare the password even when the name is wrong, to keep timing flat.
    let password_ok = secret_eq(password, &expected_login_password(org));
    name_ok && password_ok
}

/// Facts about the login user, read from the `User` record.
#[derive(Debug, Clone)]
pub(crate) struct LoginUser {
    pub user_id: String,
    pub org_id: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub active: bool,
}

impl LoginUser {
    /// The login user as the store has it now.
    pub(crate) fn of(org: &Org) -> Self {
        let store = org.store.lock();
        let user_id = store.user_id.clone();
        let org_id = store.org_id.clone();
        let record = store.get("User", &user_id, false);
        let text = |field: &str| {
            record
                .and_then(|r| r.get(field))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let username = text("Username").unwrap_or_else(|| org.config.credentials.username.clone());
        Self {
            email: text("Email").unwrap_or_else(|| username.clone()),
            first_name: text("FirstName").unwrap_or_default(),
            last_name: text("LastName").unwrap_or_default(),
            active: record
                .and_then(|r| r.get("IsActive"))
                .and_then(|v| v.as_bool())
                .unwrap_or(true),
            username,
            user_id,
            org_id,
        }
    }

    /// First and last name, as Salesforce shows a full name.
    pub(crate) fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_eq_compares_exactly() {
        assert!(secret_eq("passwordtoken", "passwordtoken"));
        assert!(!secret_eq("passwordtoke", "passwordtoken"));
        assert!(!secret_eq("passwordtokeN", "passwordtoken"));
        assert!(secret_eq("", ""));
    }
}
