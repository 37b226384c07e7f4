//! Verification of OAuth 2.0 JWT bearer assertions
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`).
//!
//! The assertion is an RS256 JWT: `iss` is the connected app's consumer
//! key, `sub` the username, `aud` the login URL and `exp` its expiry in
//! seconds. The signature is checked against the PEM the org was given (an
//! X.509 certificate, as uploaded to a connected app, or an RSA public key
//! in SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY` form).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::config::Credentials;

/// How far past its `exp` an assertion is still accepted, for clock skew.
pub const JWT_CLOCK_SKEW_SECS: i64 = 60;

/// Login URLs every org accepts as an assertion's audience, besides its own.
const STANDARD_AUDIENCES: [&str; 2] = [
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];

/// Why an assertion was refused. Each maps to the error Salesforce answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionRejection {
    /// Malformed, wrongly signed, not RS256, missing claims, unknown
    /// subject, or the JWT flow is not configured: `invalid assertion`.
    Invalid,
    /// `iss` is not the consumer key: `client identifier invalid`.
    UnknownIssuer,
    /// `aud` is not a login URL of this org: `audience is invalid`.
    BadAudience,
    /// `exp` has passed: `expired authorization code`.
    Expired,
}

/// Checks a JWT bearer assertion against the org's credentials.
///
/// `own_audiences` are the URLs by which this server is reached (its base
/// URL, and the URL the request's `Host` header names); they are accepted
/// as `aud` along with `https://login.salesforce.com` and
/// `https://test.salesforce.com`. `now` is the current time in seconds.
pub fn verify_assertion(
    assertion: &str,
    credentials: &Credentials,
    own_audiences: &[String],
    now: i64,
) -> Result<(), AssertionRejection> {
    let mut parts = assertion.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AssertionRejection::Invalid);
    };
    let header: Value = decode_segment(header)?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(AssertionRejection::Invalid);
    }
    let claims: Value = decode_segment(payload)?;

    // The issuer names the connected app, whose certificate verifies the rest.
    let issuer = claims.get("iss").and_then(Value::as_str);
    if issuer != Some(credentials.consumer_key.as_str()) {
        return Err(AssertionRejection::UnknownIssuer);
    }

    let pem = credentials
        .jwt_public_key_pem
        .as_deref()
        .ok_or(AssertionRejection::Invalid)?;
    let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| {
        tracing::warn!("the configured JWT public key PEM could not be read");
        AssertionRejection::Invalid
    })?;
    let signed = &assertion.trim()[..header_and_payload_len(assertion.trim())];
    match jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &key, Algorithm::RS256) {
        Ok(true) => {}
        _ => return Err(AssertionRejection::Invalid),
    }

    if !audience_ok(claims.get("aud"), own_audiences) {
        return Err(AssertionRejection::BadAudience);
    }

    let exp = claims
        .get("exp")
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .ok_or(AssertionRejection::Invalid)?;
    if now > exp.saturating_add(JWT_CLOCK_SKEW_SECS) {
        return Err(AssertionRejection::Expired);
    }

    let subject_ok = claims
        .get("sub")
        .and_then(Value::as_str)
        .is_some_and(|sub| sub.trim().eq_ignore_ascii_case(&credentials.username));
    if !subject_ok {
        return Err(AssertionRejection::Invalid);
    }
    Ok(())
}

/// Decodes one base64url JSON segment of a JWT.
fn decode_segment(segment: &str) -> Result<Value, AssertionRejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| AssertionRejection::Invalid)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| AssertionRejection::Invalid)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(AssertionRejection::Invalid)
    }
}

/// Length of `header.payload`, the signed part of a compact JWT.
fn header_and_payload_len(jwt: &str) -> usize {
    jwt.rfind('.').unwrap_or(jwt.len())
}

/// Whether `aud` (a string or an array of strings) names an accepted URL.
fn audience_ok(aud: Option<&Value>, own_audiences: &[String]) -> bool {
    let matches = |candidate: &str| {
        let candidate = candidate.trim().trim_end_matches('/');
        STANDARD_AUDIENCES
            .iter()
            .copied()
            .chain(own_audiences.iter().map(String::as_str))
            .any(|accepted| {
                accepted
                    .trim_end_matches('/')
                    .eq_ignore_ascii_case(candidate)
            })
    };
    match aud {
        Some(Value::String(one)) => matches(one),
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).any(matches),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned(claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{header}.{payload}.c2lnbmF0dXJl")
    }

    #[test]
    fn malformed_assertions_are_invalid() {
        let credentials = Credentials::default();
        for bad in ["", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.e30"] {
            assert_eq!(
                verify_assertion(bad, &credentials, &[], 0),
                Err(AssertionRejection::Invalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_issuer_is_reported_before_the_signature() {
        let credentials = Credentials::default();
        let jwt =
            unsigned(&serde_json::json!({"iss": "someone-else", "sub": "x", "aud": "y", "exp": 1}));
        assert_eq!(
            verify_assertion(&jwt, &credentials, &[], 0),
            Err(AssertionRejection::UnknownIssuer)
        );
    }

    #[test]
    fn without_a_configured_key_the_flow_is_refused() {
        let credentials = Credentials::default();
        let jwt = unsigned(
            &serde_json::json!({"iss": credentials.consumer_key, "sub": "x", "aud": "y", "exp": 1}),
        );
        assert_eq!(
            verify_assertion(&jwt, &credentials, &[], 0),
            Err(AssertionRejection::Invalid)
        );
    }

    #[test]
    fn audiences_match_loosely() {
        let own = vec!["http://127.0.0.1:9".to_string()];
        assert!(audience_ok(
            Some(&Value::from("https://login.salesforce.com/")),
            &own
        ));
        assert!(audience_ok(
            Some(&Value::from("HTTPS://TEST.salesforce.com")),
            &own
        ));
        assert!(audience_ok(Some(&Value::from("http://127.0.0.1:9")), &own));
        assert!(audience_ok(
            Some(&serde_json::json!(["x", "http://127.0.0.1:9/"])),
            &own
        ));
        assert!(!audience_ok(
            Some(&Value::from("https://example.com")),
            &own
        ));
        assert!(!audience_ok(None, &own));
    }
}
