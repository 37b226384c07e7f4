//! Access tokens the org has issued, and their invalidation.

use std::collections::HashMap;

use axum::http::HeaderMap;
use parking_lot::Mutex;
use rand::Rng;
use rand::distr::Alphanumeric;

/// What a valid access token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user the token was issued to.
    pub user_id: String,
}

/// The issued access tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    sessions: Mutex<HashMap<String, Session>>,
}

impl Tokens {
    /// Issues a new access token for `user_id` in the org `org_id`, shaped
    /// like Salesforce's (`<org id>!<opaque>`).
    pub fn issue(&self, org_id: &str, user_id: &str) -> String {
        let opaque: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(96)
            .map(char::from)
            .collect();
        let token = format!("{}!AQ{opaque}", &org_id[..15.min(org_id.len())]);
        self.sessions.lock().insert(
            token.clone(),
            Session {
                user_id: user_id.to_string(),
            },
        );
        token
    }

    /// The session a token stands for, if it is still valid.
    pub fn lookup(&self, token: &str) -> Option<Session> {
        self.sessions.lock().get(token).cloned()
    }

    /// Invalidates one token (what `/services/oauth2/revoke` does); returns
    /// whether it was valid.
    pub fn revoke(&self, token: &str) -> bool {
        self.sessions.lock().remove(token).is_some()
    }

    /// Invalidates every token (what a password reset or an admin's
    /// "revoke sessions" does).
    pub fn invalidate_all(&self) {
        self.sessions.lock().clear();
    }

    /// Checks the `Authorization` header of a request (`Bearer` or the
    /// older `OAuth` scheme).
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Session> {
        bearer_token(headers).and_then(|t| self.lookup(t))
    }
}

/// The token of an `Authorization: Bearer <token>` or `OAuth <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn issue_lookup_invalidate() {
        let tokens = Tokens::default();
        let t = tokens.issue("00D5g0000000001AAA", "0055g0000000001AAA");
        assert!(t.starts_with("00D5g0000000001!"));
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("OAuth {t}")).expect("header"),
        );
        assert!(tokens.authenticate(&headers).is_some());
        tokens.invalidate_all();
        assert!(tokens.authenticate(&headers).is_none());
    }
}
