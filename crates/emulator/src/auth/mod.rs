//! Login: the OAuth 2.0 token endpoint (password, refresh token, JWT
//! bearer, client credentials), SOAP `login`, and the tokens they issue.

mod tokens;

pub use tokens::{Session, Tokens, bearer_token};

use std::sync::Arc;

use axum::Router;

use crate::org::Org;

/// Routes of the login endpoints.
pub fn routes() -> Router<Arc<Org>> {
    Router::new()
}
