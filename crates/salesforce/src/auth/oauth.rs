//! The OAuth 2.0 token endpoint (`/services/oauth2/token`).

use reqwest::header::{ACCEPT, HeaderValue};
use serde_json::Value;

use super::error::{AuthError, Redactor};
use super::login_url::instance_url;
use super::session::{Session, ids_from_identity_url, parse_issued_at};
use super::{Call, transport_error};
use crate::Secret;

/// The path of the token endpoint.
pub(super) const TOKEN_PATH: &str = "/services/oauth2/token";

/// The `grant_type` of the JWT bearer flow.
pub(super) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// POSTs `form` to the token endpoint at `url` and reads the session or
/// the error it answers. Every flow sends its client credentials as form
/// fields, as Salesforce documents them.
pub(super) async fn request_token(
    call: &Call<'_>,
    url: &str,
    form: &[(&str, &str)],
) -> Result<Session, AuthError> {
    let response = call
        .client
        .post(url)
        .timeout(call.timeout)
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .form(form)
        .send()
        .await
        .map_err(|e| transport_error(&e, call))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| transport_error(&e, call))?;
    parse_token_response(status, &body, call.redactor, call.allow_insecure_http)
}

/// Reads a token endpoint answer: a token (HTTP 200), an OAuth error
/// (`{"error", "error_description"}`, usually HTTP 400), or anything else.
pub(super) fn parse_token_response(
    status: u16,
    body: &str,
    redactor: &Redactor,
    allow_insecure_http: bool,
) -> Result<Session, AuthError> {
    let json: Option<Value> = serde_json::from_str(body).ok();
    if let Some(error) = json.as_ref().and_then(|j| j.get("error")) {
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        return Err(AuthError::Rejected {
            error: redactor.excerpt(&text(Some(error))),
            description: redactor.excerpt(&text(
                json.as_ref().and_then(|j| j.get("error_description")),
            )),
        });
    }
    if !(200..300).contains(&status) {
        return Err(AuthError::Http {
            status,
            body: redactor.excerpt(body),
        });
    }
    let Some(Value::Object(token)) = json else {
        return Err(AuthError::MalformedResponse(format!(
            "the token endpoint answered HTTP {status} without a JSON object: {}",
            redactor.excerpt(body)
        )));
    };
    let access_token = match token.get("access_token") {
        Some(Value::String(t)) if !t.trim().is_empty() => Secret::new(t.trim()),
        _ => {
            return Err(AuthError::MalformedResponse(
                "the token response has no access_token".into(),
            ));
        }
    };
    let instance = match token.get("instance_url") {
        Some(Value::String(url)) => instance_url(url, allow_insecure_http)?,
        _ => {
            return Err(AuthError::MalformedResponse(
                "the token response has no instance_url".into(),
            ));
        }
    };
    let ids = token
        .get("id")
        .and_then(Value::as_str)
        .and_then(ids_from_identity_url);
    let (org_id, user_id) = match ids {
        Some((org, user)) => (Some(org), Some(user)),
        None => (None, None),
    };
    Ok(Session {
        access_token,
        instance_url: instance,
        user_id,
        org_id,
        issued_at: token.get("issued_at").and_then(parse_issued_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> Result<Session, AuthError> {
        parse_token_response(
            status,
            body,
            &Redactor::new([&Secret::new("hunter2")]),
            false,
        )
    }

    #[test]
    fn reads_a_token() {
        let session = parse(
            200,
            r#"{"access_token":"00D!abc","instance_url":"https://acme.my.salesforce.com/",
                "id":"https://login.salesforce.com/id/00DORG/005USER","token_type":"Bearer",
                "issued_at":"1700000000000","signature":"x","scope":"api"}"#,
        )
        .expect("a session");
        assert_eq!(session.access_token.expose(), "00D!abc");
        assert_eq!(session.instance_url, "https://acme.my.salesforce.com");
        assert_eq!(session.org_id.as_deref(), Some("00DORG"));
        assert_eq!(session.user_id.as_deref(), Some("005USER"));
        assert_eq!(
            session.issued_at.map(|t| t.timestamp_millis()),
            Some(1_700_000_000_000)
        );
    }

    #[test]
    fn reads_oauth_errors() {
        let err = parse(
            400,
            r#"{"error":"invalid_grant","error_description":"authentication failure"}"#,
        )
        .expect_err("refused");
        assert_eq!(
            err,
            AuthError::Rejected {
                error: "invalid_grant".into(),
                description: "authentication failure".into()
            }
        );
        assert!(err.is_auth_failure());
    }

    #[test]
    fn other_answers() {
        let err = parse(503, "<html>Down for maintenance hunter2</html>").expect_err("503");
        match &err {
            AuthError::Http { status, body } => {
                assert_eq!(*status, 503);
                assert!(body.contains("maintenance"));
                assert!(!body.contains("hunter2"), "{body}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.is_retryable());
        let long = "x".repeat(10_000);
        match parse(502, &long) {
            Err(AuthError::Http { body, .. }) => assert!(body.chars().count() <= 201),
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"instance_url":"https://x.salesforce.com"}"#,
            r#"{"access_token":"","instance_url":"https://x.salesforce.com"}"#,
            r#"{"access_token":"t"}"#,
            r#"{"access_token":5,"instance_url":"https://x.salesforce.com"}"#,
        ] {
            let err = parse(200, bad).expect_err(bad);
            assert!(
                matches!(err, AuthError::MalformedResponse(_)),
                "{bad}: {err:?}"
            );
        }
        let err = parse(200, r#"{"access_token":"t","instance_url":"nonsense"}"#)
            .expect_err("bad instance");
        assert!(matches!(err, AuthError::InvalidLoginUrl(_)), "{err:?}");
    }

    #[test]
    fn plain_http_instances_need_the_opt_in() {
        let body = r#"{"access_token":"t","instance_url":"http://example.com"}"#;
        assert!(parse(200, body).is_err());
        let session = parse_token_response(200, body, &Redactor::default(), true).expect("opt-in");
        assert_eq!(session.instance_url, "http://example.com");
        assert_eq!(session.user_id, None);
    }
}
