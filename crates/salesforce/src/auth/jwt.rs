//! Assertions of the OAuth 2.0 JWT bearer flow.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::error::AuthError;
use crate::Secret;

/// How long an assertion is valid: Salesforce accepts at most three minutes.
pub(super) const ASSERTION_LIFETIME_SECS: i64 = 180;

/// The claims Salesforce reads.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// Reads a PEM-encoded RSA private key (PKCS#8 or PKCS#1).
pub(super) fn signing_key(pem: &Secret) -> Result<EncodingKey, AuthError> {
    let text = pem.expose().trim();
    if !text.starts_with("-----BEGIN") {
        return Err(AuthError::InvalidKey(
            "the private key is not PEM-encoded (no -----BEGIN line)".into(),
        ));
    }
    // Errors name only their kind, never the key's content.
    let invalid = |e: jsonwebtoken::errors::Error| {
        AuthError::InvalidKey(format!(
            "the private key is not an RSA private key in PEM form \
             (PKCS#8 PRIVATE KEY or PKCS#1 RSA PRIVATE KEY): {:?}",
            e.kind()
        ))
    };
    let key = EncodingKey::from_rsa_pem(text.as_bytes()).map_err(invalid)?;
    // Reading the PEM does not check the key itself: sign once to find out.
    jsonwebtoken::crypto::sign(b"probe", &key, Algorithm::RS256).map_err(invalid)?;
    Ok(key)
}

/// A signed RS256 assertion: `iss` = `consumer_key`, `sub` = `username`,
/// `aud` = `audience`, `exp` = `now` + three minutes (seconds).
pub(super) fn assertion(
    key: &EncodingKey,
    consumer_key: &str,
    username: &str,
    audience: &str,
    now: i64,
) -> Result<Secret, AuthError> {
    let claims = Claims {
        iss: consumer_key,
        sub: username,
        aud: audience,
        exp: now + ASSERTION_LIFETIME_SECS,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
        .map(Secret::new)
        .map_err(|e| AuthError::InvalidKey(format!("signing the assertion failed: {:?}", e.kind())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const KEY: &str =
        include_str!("../../../emulator/tests/fixtures/test-only-jwt-private-key.pem");

    fn segment(jwt: &str, index: usize) -> serde_json::Value {
        let part = jwt.split('.').nth(index).expect("segment");
        let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[test]
    fn claims_and_header() {
        let key = signing_key(&Secret::new(KEY)).expect("key");
        let jwt = assertion(
            &key,
            "ck",
            "u@example.com",
            "https://test.salesforce.com",
            1000,
        )
        .expect("signed");
        let jwt = jwt.expose();
        assert_eq!(jwt.split('.').count(), 3);
        assert_eq!(segment(jwt, 0)["alg"], "RS256");
        assert_eq!(
            segment(jwt, 1),
            serde_json::json!({
                "iss": "ck",
                "sub": "u@example.com",
                "aud": "https://test.salesforce.com",
                "exp": 1180
            })
        );
    }

    #[test]
    fn bad_keys() {
        for bad in [
            "",
            "not a key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            include_str!("../../../emulator/tests/fixtures/test-only-jwt-public-key.pem"),
        ] {
            let err = signing_key(&Secret::new(bad)).err().expect("refused");
            assert!(matches!(err, AuthError::InvalidKey(_)), "{err:?}");
            assert!(err.is_auth_failure());
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad.trim()), "{err}");
            }
        }
    }
}
