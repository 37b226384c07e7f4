//! What a login yields.

use std::fmt;

use chrono::{DateTime, Utc};
use reqwest::Url;

use crate::Secret;

/// A logged-in session: the access token and the instance it is valid on.
///
/// `Debug` and `Display` never show the access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The access (session) token, sent as `Authorization: Bearer …`.
    pub access_token: Secret,
    /// The instance URL, `scheme://host[:port]` without a trailing `/`,
    /// e.g. `https://acme.my.salesforce.com`.
    pub instance_url: String,
    /// The user's id, from the OAuth identity URL or SOAP `userId`.
    pub user_id: Option<String>,
    /// The org's id, from the OAuth identity URL or SOAP `organizationId`.
    pub org_id: Option<String>,
    /// When the token was issued: OAuth `issued_at`, or the time of a SOAP
    /// login. `None` for an access token given as is.
    pub issued_at: Option<DateTime<Utc>>,
}

impl Session {
    /// A session of `access_token` on `instance_url`, with no ids or
    /// issue time.
    pub fn new(access_token: impl Into<Secret>, instance_url: impl Into<String>) -> Self {
        Self {
            access_token: access_token.into(),
            instance_url: instance_url.into(),
            user_id: None,
            org_id: None,
            issued_at: None,
        }
    }
}

impl fmt::Display for Session {
    /// The instance and, when known, the user; never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session on {}", self.instance_url)?;
        if let Some(user) = &self.user_id {
            write!(f, " as user {user}")?;
        }
        if let Some(org) = &self.org_id {
            write!(f, " of org {org}")?;
        }
        Ok(())
    }
}

/// The org and user ids of an OAuth identity URL
/// (`https://login.salesforce.com/id/<org id>/<user id>`).
pub(crate) fn ids_from_identity_url(id: &str) -> Option<(String, String)> {
    let url = Url::parse(id).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let at = segments.iter().rposition(|s| *s == "id")?;
    match segments.get(at + 1..) {
        Some([org, user]) => Some((org.to_string(), user.to_string())),
        _ => None,
    }
}

/// OAuth's `issued_at`: epoch milliseconds, as a string (or a number).
pub(crate) fn parse_issued_at(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    let millis = match value {
        serde_json::Value::String(text) => text.trim().parse::<i64>().ok()?,
        serde_json::Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_urls() {
        assert_eq!(
            ids_from_identity_url(
                "https://login.salesforce.com/id/00D5g000000AAAAEAA/0055g000000BBBBAAA"
            ),
            Some(("00D5g000000AAAAEAA".into(), "0055g000000BBBBAAA".into()))
        );
        assert_eq!(
            ids_from_identity_url("http://127.0.0.1:1/id/00D/005/"),
            Some(("00D".into(), "005".into()))
        );
        assert_eq!(ids_from_identity_url("https://x/id/00D"), None);
        assert_eq!(ids_from_identity_url("https://x/other/a/b"), None);
        assert_eq!(ids_from_identity_url("garbage"), None);
    }

    #[test]
    fn issued_at() {
        let t = parse_issued_at(&serde_json::json!("1700000000123")).expect("parses");
        assert_eq!(t.timestamp_millis(), 1_700_000_000_123);
        assert!(parse_issued_at(&serde_json::json!(1_700_000_000_123_i64)).is_some());
        assert!(parse_issued_at(&serde_json::json!("soon")).is_none());
        assert!(parse_issued_at(&serde_json::json!(null)).is_none());
    }

    #[test]
    fn never_shows_the_token() {
        let mut session = Session::new("00D!secret-token", "https://x.my.salesforce.com");
        session.user_id = Some("005".into());
        let shown = format!("{session} {session:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("https://x.my.salesforce.com"));
    }
}
