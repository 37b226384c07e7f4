//! The login endpoints over HTTP: every OAuth grant, SOAP login, the
//! identity URL and revocation, against an emulator on a free local port.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_testkit::emulator::{
    CONSUMER_KEY, CONSUMER_SECRET, PASSWORD, REFRESH_TOKEN, USERNAME,
};

const PRIVATE_KEY: &str = include_str!("fixtures/test-only-jwt-private-key.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/test-only-jwt-public-key.pem");
const RSA_PUBLIC_KEY: &str = include_str!("fixtures/test-only-jwt-rsa-public-key.pem");
const CERTIFICATE: &str = include_str!("fixtures/test-only-jwt-cert.pem");
const OTHER_PRIVATE_KEY: &str = include_str!("fixtures/test-only-other-private-key.pem");

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

async fn start_default() -> Emulator {
    start(EmulatorConfig::default()).await
}

async fn start_with_jwt_key(pem: &str) -> Emulator {
    let mut config = EmulatorConfig::default();
    config.credentials.jwt_public_key_pem = Some(pem.to_string());
    start(config).await
}

/// POSTs a form to the token endpoint; returns status and JSON body.
async fn token_request(emulator: &Emulator, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", emulator.url()))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status();
    let body = response.json().await.expect("JSON body");
    (status, body)
}

fn password_form(password: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", CONSUMER_KEY),
        ("client_secret", CONSUMER_SECRET),
        ("username", USERNAME),
        ("password", password),
    ]
}

fn oauth_error(error: &str, description: &str) -> Value {
    json!({ "error": error, "error_description": description })
}

/// Checks a successful token response and that its token is valid.
fn assert_token_response(emulator: &Emulator, body: &Value) -> String {
    let org = emulator.org();
    let base = emulator.url();
    let id = format!("{base}/id/{}/{}", org.org_id(), org.user_id());
    assert_eq!(body["instance_url"], base.as_str());
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let issued_at = body["issued_at"].as_str().expect("issued_at is a string");
    let issued_ms: i64 = issued_at.parse().expect("issued_at is epoch ms");
    let now_ms = chrono::Utc::now().timestamp_millis();
    assert!((now_ms - issued_ms).abs() < 60_000, "issued_at {issued_at}");

    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, CONSUMER_SECRET.as_bytes());
    let expected = STANDARD.encode(ring::hmac::sign(
        &key,
        format!("{id}{issued_at}").as_bytes(),
    ));
    assert_eq!(body["signature"], expected.as_str());

    let token = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let session = org.tokens.lookup(&token).expect("issued token is valid");
    assert_eq!(session.user_id, org.user_id());
    token
}

// ---------------------------------------------------------------- password

#[tokio::test]
async fn password_grant_issues_a_working_token() {
    let emulator = start_default().await;
    let (status, body) = token_request(&emulator, &password_form("passwordtoken")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = assert_token_response(&emulator, &body);
    let (a, b) = (
        token.clone(),
        token_request(&emulator, &password_form("passwordtoken"))
            .await
            .1,
    );
    assert_ne!(
        Some(a.as_str()),
        b["access_token"].as_str(),
        "tokens are fresh"
    );
}

#[tokio::test]
async fn password_grant_accepts_any_case_of_username() {
    let emulator = start_default().await;
    let mut form = password_form("passwordtoken");
    form[3].1 = "Emulator@Example.COM";
    let (status, body) = token_request(&emulator, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn password_grant_without_a_security_token_takes_the_bare_password() {
    let mut config = EmulatorConfig::default();
    config.credentials.security_token = String::new();
    let emulator = start(config).await;
    let (status, body) = token_request(&emulator, &password_form(PASSWORD)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_token_response(&emulator, &body);
}

#[tokio::test]
async fn password_grant_refuses_bad_credentials() {
    let emulator = start_default().await;
    let failure = oauth_error("invalid_grant", "authentication failure");
    // Without the security token, a wrong password, a wrong user, nothing.
    for password in ["password", "wrongtoken", "passwordtoken2", ""] {
        let (status, body) = token_request(&emulator, &password_form(password)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, failure, "password {password:?}");
    }
    let mut form = password_form("passwordtoken");
    form[3].1 = "someone@example.com";
    assert_eq!(token_request(&emulator, &form).await.1, failure);
    form.remove(3);
    assert_eq!(token_request(&emulator, &form).await.1, failure);
}

#[tokio::test]
async fn password_grant_checks_the_client() {
    let emulator = start_default().await;
    let mut form = password_form("passwordtoken");
    form[1].1 = "unknown-client";
    let (status, body) = token_request(&emulator, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        oauth_error("invalid_client_id", "client identifier invalid")
    );

    let mut form = password_form("passwordtoken");
    form[2].1 = "wrong-secret";
    let (status, body) = token_request(&emulator, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        oauth_error("invalid_client", "invalid client credentials")
    );

    let mut form = password_form("passwordtoken");
    form.remove(2);
    assert_eq!(
        token_request(&emulator, &form).await.1,
        oauth_error("invalid_client", "invalid client credentials")
    );
    form.remove(1);
    assert_eq!(
        token_request(&emulator, &form).await.1,
        oauth_error("invalid_client_id", "client identifier invalid")
    );
}

#[tokio::test]
async fn unknown_or_missing_grant_types_are_unsupported() {
    let emulator = start_default().await;
    let unsupported = oauth_error("unsupported_grant_type", "grant type not supported");
    for form in [
        vec![("grant_type", "authorization_code"), ("code", "x")],
        vec![("grant_type", "")],
        vec![("client_id", CONSUMER_KEY)],
        vec![],
    ] {
        let (status, body) = token_request(&emulator, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, unsupported, "{form:?}");
    }
    // A body that is not a form at all is refused the same way, never a 500.
    let response = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", emulator.url()))
        .header("content-type", "application/json")
        .body(r#"{"grant_type": "password"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.expect("JSON"), unsupported);
}

#[tokio::test]
async fn errors_never_echo_secrets() {
    let emulator = start_default().await;
    let response = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", emulator.url()))
        .form(&password_form("SuperSecret-XYZ"))
        .send()
        .await
        .expect("request");
    let text = response.text().await.expect("body");
    assert!(!text.contains("SuperSecret-XYZ"), "{text}");
    assert!(!text.contains(CONSUMER_SECRET), "{text}");
}

// ----------------------------------------------------------- refresh token

fn refresh_form<'a>(refresh_token: &'a str, secret: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", CONSUMER_KEY),
        ("refresh_token", refresh_token),
    ];
    if let Some(secret) = secret {
        form.push(("client_secret", secret));
    }
    form
}

#[tokio::test]
async fn refresh_grant_issues_a_working_token() {
    let emulator = start_default().await;
    for secret in [Some(CONSUMER_SECRET), None] {
        let (status, body) = token_request(&emulator, &refresh_form(REFRESH_TOKEN, secret)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_token_response(&emulator, &body);
    }
}

#[tokio::test]
async fn refresh_grant_refuses_bad_tokens_and_clients() {
    let emulator = start_default().await;
    let (status, body) = token_request(
        &emulator,
        &refresh_form("not-the-token", Some(CONSUMER_SECRET)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        oauth_error("invalid_grant", "expired access/refresh token")
    );
    let mut missing = refresh_form("", None);
    missing.remove(2);
    assert_eq!(
        token_request(&emulator, &missing).await.1,
        oauth_error("invalid_grant", "expired access/refresh token")
    );
    assert_eq!(
        token_request(&emulator, &refresh_form(REFRESH_TOKEN, Some("wrong")))
            .await
            .1,
        oauth_error("invalid_client", "invalid client credentials")
    );
    let mut form = refresh_form(REFRESH_TOKEN, None);
    form[1].1 = "unknown";
    assert_eq!(
        token_request(&emulator, &form).await.1,
        oauth_error("invalid_client_id", "client identifier invalid")
    );
}

// -------------------------------------------------------------- JWT bearer

fn sign_assertion(private_key: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(private_key.as_bytes()).expect("test private key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).expect("signing")
}

fn claims(aud: &str, exp_from_now: i64) -> Value {
    json!({
        "iss": CONSUMER_KEY,
        "sub": USERNAME,
        "aud": aud,
        "exp": chrono::Utc::now().timestamp() + exp_from_now,
    })
}

async fn jwt_request(emulator: &Emulator, assertion: &str) -> (StatusCode, Value) {
    token_request(
        emulator,
        &[("grant_type", JWT_GRANT), ("assertion", assertion)],
    )
    .await
}

#[tokio::test]
async fn jwt_grant_accepts_a_public_key_pem() {
    let emulator = start_with_jwt_key(PUBLIC_KEY).await;
    for aud in [
        emulator.url(),
        format!("{}/", emulator.url()),
        "https://login.salesforce.com".to_string(),
        "https://test.salesforce.com".to_string(),
    ] {
        let assertion = sign_assertion(PRIVATE_KEY, &claims(&aud, 180));
        let (status, body) = jwt_request(&emulator, &assertion).await;
        assert_eq!(status, StatusCode::OK, "aud {aud}: {body}");
        assert_token_response(&emulator, &body);
    }
}

#[tokio::test]
async fn jwt_grant_accepts_a_pkcs1_public_key_and_a_certificate() {
    for pem in [RSA_PUBLIC_KEY, CERTIFICATE] {
        let emulator = start_with_jwt_key(pem).await;
        let assertion = sign_assertion(PRIVATE_KEY, &claims("https://login.salesforce.com", 180));
        let (status, body) = jwt_request(&emulator, &assertion).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_token_response(&emulator, &body);
    }
}

#[tokio::test]
async fn jwt_grant_tolerates_small_clock_skew() {
    let emulator = start_with_jwt_key(CERTIFICATE).await;
    let assertion = sign_assertion(PRIVATE_KEY, &claims("https://login.salesforce.com", -20));
    let (status, body) = jwt_request(&emulator, &assertion).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn jwt_grant_refuses_bad_assertions() {
    let emulator = start_with_jwt_key(CERTIFICATE).await;
    let login = "https://login.salesforce.com";
    let invalid = oauth_error("invalid_grant", "invalid assertion");

    let other_key = sign_assertion(OTHER_PRIVATE_KEY, &claims(login, 180));
    assert_eq!(
        jwt_request(&emulator, &other_key).await,
        (StatusCode::BAD_REQUEST, invalid.clone())
    );

    let expired = sign_assertion(PRIVATE_KEY, &claims(login, -600));
    assert_eq!(
        jwt_request(&emulator, &expired).await,
        (
            StatusCode::BAD_REQUEST,
            oauth_error("invalid_grant", "expired authorization code")
        )
    );

    let wrong_aud = sign_assertion(
        PRIVATE_KEY,
        &claims("https://example.my.salesforce.com", 180),
    );
    assert_eq!(
        jwt_request(&emulator, &wrong_aud).await,
        (
            StatusCode::BAD_REQUEST,
            oauth_error("invalid_grant", "audience is invalid")
        )
    );

    let mut wrong_sub = claims(login, 180);
    wrong_sub["sub"] = json!("someone.else@example.com");
    let wrong_sub = sign_assertion(PRIVATE_KEY, &wrong_sub);
    assert_eq!(
        jwt_request(&emulator, &wrong_sub).await,
        (StatusCode::BAD_REQUEST, invalid.clone())
    );

    let mut wrong_iss = claims(login, 180);
    wrong_iss["iss"] = json!("another-app");
    let wrong_iss = sign_assertion(PRIVATE_KEY, &wrong_iss);
    assert_eq!(
        jwt_request(&emulator, &wrong_iss).await,
        (
            StatusCode::BAD_REQUEST,
            oauth_error("invalid_client_id", "client identifier invalid")
        )
    );

    let mut no_exp = claims(login, 180);
    no_exp.as_object_mut().expect("object").remove("exp");
    let no_exp = sign_assertion(PRIVATE_KEY, &no_exp);
    assert_eq!(
        jwt_request(&emulator, &no_exp).await,
        (StatusCode::BAD_REQUEST, invalid.clone())
    );

    // A valid signature over a tampered payload.
    let good = sign_assertion(PRIVATE_KEY, &claims(login, 180));
    let parts: Vec<&str> = good.split('.').collect();
    let mut tampered_claims = claims(login, 180);
    tampered_claims["exp"] = json!(chrono::Utc::now().timestamp() + 86_400 * 365);
    let tampered_payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tampered_claims.to_string());
    let tampered = format!("{}.{}.{}", parts[0], tampered_payload, parts[2]);
    assert_eq!(
        jwt_request(&emulator, &tampered).await,
        (StatusCode::BAD_REQUEST, invalid.clone())
    );

    // HS256 with the consumer secret is not RS256.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(login, 180),
        &EncodingKey::from_secret(CONSUMER_SECRET.as_bytes()),
    )
    .expect("signing");
    assert_eq!(
        jwt_request(&emulator, &hs).await,
        (StatusCode::BAD_REQUEST, invalid.clone())
    );

    for garbage in ["", "not-a-jwt", "a.b.c"] {
        assert_eq!(
            jwt_request(&emulator, garbage).await,
            (StatusCode::BAD_REQUEST, invalid.clone()),
            "{garbage:?}"
        );
    }
    let (status, body) = token_request(&emulator, &[("grant_type", JWT_GRANT)]).await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, invalid));
}

#[tokio::test]
async fn jwt_grant_is_refused_when_no_key_is_configured() {
    let emulator = start_default().await;
    let assertion = sign_assertion(PRIVATE_KEY, &claims("https://login.salesforce.com", 180));
    assert_eq!(
        jwt_request(&emulator, &assertion).await,
        (
            StatusCode::BAD_REQUEST,
            oauth_error("invalid_grant", "invalid assertion")
        )
    );
}

// ------------------------------------------------------ client credentials

#[tokio::test]
async fn client_credentials_grant_takes_basic_auth_or_form_fields() {
    let emulator = start_default().await;
    let response = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", emulator.url()))
        .basic_auth(CONSUMER_KEY, Some(CONSUMER_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    assert_token_response(&emulator, &body);

    let (status, body) = token_request(
        &emulator,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CONSUMER_KEY),
            ("client_secret", CONSUMER_SECRET),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_token_response(&emulator, &body);
}

#[tokio::test]
async fn client_credentials_grant_refuses_bad_clients() {
    let emulator = start_default().await;
    let cases = [
        (
            CONSUMER_KEY,
            "wrong",
            oauth_error("invalid_client", "invalid client credentials"),
        ),
        (
            "unknown",
            CONSUMER_SECRET,
            oauth_error("invalid_client_id", "client identifier invalid"),
        ),
    ];
    for (id, secret, expected) in cases {
        let response = reqwest::Client::new()
            .post(format!("{}/services/oauth2/token", emulator.url()))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.json::<Value>().await.expect("JSON"), expected);
    }
    let (status, body) = token_request(&emulator, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        oauth_error("invalid_client_id", "client identifier invalid")
    );
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn invalidated_tokens_no_longer_work() {
    let emulator = start_default().await;
    let (_, body) = token_request(&emulator, &password_form("passwordtoken")).await;
    let first = assert_token_response(&emulator, &body);
    let (_, body) = token_request(&emulator, &refresh_form(REFRESH_TOKEN, None)).await;
    let second = assert_token_response(&emulator, &body);
    emulator.org().tokens.invalidate_all();
    assert!(emulator.org().tokens.lookup(&first).is_none());
    assert!(emulator.org().tokens.lookup(&second).is_none());
    // The identity URL refuses them too; a new login works again.
    let response = reqwest::Client::new()
        .get(body["id"].as_str().expect("id"))
        .bearer_auth(&second)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (status, body) = token_request(&emulator, &password_form("passwordtoken")).await;
    assert_eq!(status, StatusCode::OK);
    assert_token_response(&emulator, &body);
}

#[tokio::test]
async fn revoke_invalidates_one_token() {
    let emulator = start_default().await;
    let (_, body) = token_request(&emulator, &password_form("passwordtoken")).await;
    let revoked = assert_token_response(&emulator, &body);
    let (_, body) = token_request(&emulator, &password_form("passwordtoken")).await;
    let kept = assert_token_response(&emulator, &body);
    let revoke = |token: String| {
        let url = format!("{}/services/oauth2/revoke", emulator.url());
        async move {
            reqwest::Client::new()
                .post(url)
                .form(&[("token", token)])
                .send()
                .await
                .expect("request")
        }
    };
    assert_eq!(revoke(revoked.clone()).await.status(), StatusCode::OK);
    assert!(emulator.org().tokens.lookup(&revoked).is_none());
    assert!(emulator.org().tokens.lookup(&kept).is_some());
    let again = revoke(revoked).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json::<Value>().await.expect("JSON"),
        oauth_error("unsupported_token_type", "this token type is not supported")
    );
}

#[tokio::test]
async fn identity_url_describes_the_user() {
    let emulator = start_default().await;
    let (_, body) = token_request(&emulator, &password_form("passwordtoken")).await;
    let token = assert_token_response(&emulator, &body);
    let id_url = body["id"].as_str().expect("id").to_string();
    let client = reqwest::Client::new();

    let response = client
        .get(&id_url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let identity: Value = response.json().await.expect("JSON");
    let org = emulator.org();
    assert_eq!(identity["id"], id_url.as_str());
    assert_eq!(identity["user_id"], org.user_id().as_str());
    assert_eq!(identity["organization_id"], org.org_id().as_str());
    assert_eq!(identity["username"], USERNAME);
    assert_eq!(
        identity["urls"]["rest"],
        format!("{}/services/data/v{{version}}/", emulator.url()).as_str()
    );
    assert_eq!(
        identity["urls"]["sobjects"],
        format!("{}/services/data/v{{version}}/sobjects/", emulator.url()).as_str()
    );

    let response = client.get(&id_url).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.text().await.expect("text"), "Bad_OAuth_Token");
    let response = client
        .get(&id_url)
        .bearer_auth("00D000000000001!AQbogus")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.text().await.expect("text"), "Bad_OAuth_Token");
}

// ------------------------------------------------------------------- SOAP

fn soap_envelope(username: &str, password: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:urn="urn:partner.soap.sforce.com">
  <env:Header>
    <urn:CallOptions><urn:client>sfstream-tests</urn:client></urn:CallOptions>
  </env:Header>
  <env:Body>
    <urn:login>
      <urn:username>{username}</urn:username>
      <urn:password>{password}</urn:password>
    </urn:login>
  </env:Body>
</env:Envelope>"#
    )
}

async fn soap_request(emulator: &Emulator, path: &str, body: String) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", emulator.url()))
        .header("content-type", "text/xml; charset=UTF-8")
        .header("SOAPAction", "login")
        .body(body)
        .send()
        .await
        .expect("SOAP request");
    let status = response.status();
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/xml")),
        "SOAP responses are text/xml"
    );
    (status, response.text().await.expect("body"))
}

/// The text of the first element with local name `name` in `xml`.
fn element_text(xml: &str, name: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == name.as_bytes() => inside = true,
            Event::Text(t) if inside => text.push_str(&t.unescape().ok()?),
            Event::End(e) if inside && e.local_name().as_ref() == name.as_bytes() => {
                return Some(text);
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[tokio::test]
async fn soap_login_returns_a_working_session() {
    let emulator = start_default().await;
    let (status, xml) = soap_request(
        &emulator,
        "/services/Soap/u/62.0",
        soap_envelope(USERNAME, "passwordtoken"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    let org = emulator.org();
    let session_id = element_text(&xml, "sessionId").expect("sessionId");
    assert!(org.tokens.lookup(&session_id).is_some());
    assert_eq!(
        element_text(&xml, "serverUrl").expect("serverUrl"),
        format!("{}/services/Soap/u/62.0/{}", emulator.url(), org.org_id())
    );
    assert_eq!(
        element_text(&xml, "metadataServerUrl").expect("metadataServerUrl"),
        format!("{}/services/Soap/m/62.0/{}", emulator.url(), org.org_id())
    );
    assert_eq!(
        element_text(&xml, "userId").as_deref(),
        Some(org.user_id().as_str())
    );
    assert_eq!(
        element_text(&xml, "passwordExpired").as_deref(),
        Some("false")
    );
    assert_eq!(element_text(&xml, "sandbox").as_deref(), Some("false"));
    assert_eq!(
        element_text(&xml, "organizationId").as_deref(),
        Some(org.org_id().as_str())
    );
    assert_eq!(element_text(&xml, "userName").as_deref(), Some(USERNAME));
    assert_eq!(element_text(&xml, "userEmail").as_deref(), Some(USERNAME));
    assert!(xml.contains(r#"xmlns="urn:partner.soap.sforce.com""#));
    assert!(xml.contains("<loginResponse><result>"));

    emulator.org().tokens.invalidate_all();
    assert!(org.tokens.lookup(&session_id).is_none());
}

#[tokio::test]
async fn soap_login_works_on_the_enterprise_api_and_unprefixed_envelopes() {
    let emulator = start_default().await;
    let body = r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><login xmlns="urn:enterprise.soap.sforce.com"><username>emulator@example.com</username><password>passwordtoken</password></login></Body></Envelope>"#;
    let (status, xml) = soap_request(&emulator, "/services/Soap/c/58.0", body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_eq!(
        element_text(&xml, "serverUrl").expect("serverUrl"),
        format!(
            "{}/services/Soap/c/58.0/{}",
            emulator.url(),
            emulator.org().org_id()
        )
    );
    assert!(xml.contains(r#"xmlns="urn:enterprise.soap.sforce.com""#));
}

#[tokio::test]
async fn soap_login_refuses_bad_credentials_with_invalid_login() {
    let emulator = start_default().await;
    for (username, password) in [
        (USERNAME, PASSWORD),
        (USERNAME, "Secret-Guess-123"),
        ("nobody@example.com", "passwordtoken"),
        ("", ""),
    ] {
        let (status, xml) = soap_request(
            &emulator,
            "/services/Soap/u/62.0",
            soap_envelope(username, password),
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            element_text(&xml, "faultcode").as_deref(),
            Some("sf:INVALID_LOGIN")
        );
        assert_eq!(
            element_text(&xml, "faultstring").as_deref(),
            Some("INVALID_LOGIN: Invalid username, password, security token; or user locked out.")
        );
        assert!(xml.contains("<sf:LoginFault"), "{xml}");
        assert_eq!(
            element_text(&xml, "exceptionCode").as_deref(),
            Some("INVALID_LOGIN")
        );
        assert!(xml.contains(r#"xmlns:sf="urn:fault.partner.soap.sforce.com""#));
        assert!(!xml.contains("Secret-Guess-123"));
    }
}

#[tokio::test]
async fn soap_login_refuses_malformed_requests_with_client_faults() {
    let emulator = start_default().await;
    for body in [
        "this is not XML",
        "<env:Envelope xmlns:env=\"http://schemas.xmlsoap.org/soap/envelope/\"><env:Body><urn:login>",
        "<a><b></a></b>",
        "",
    ] {
        let (status, xml) =
            soap_request(&emulator, "/services/Soap/u/62.0", body.to_string()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body:?}");
        assert_eq!(
            element_text(&xml, "faultcode").as_deref(),
            Some("soapenv:Client"),
            "{xml}"
        );
    }
    // An operation other than login is named back, escaped.
    let body = r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><query/></e:Body></e:Envelope>"#;
    let (status, xml) = soap_request(&emulator, "/services/Soap/u/62.0", body.to_string()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        element_text(&xml, "faultstring").as_deref(),
        Some("No operation available for request {urn:partner.soap.sforce.com}query")
    );
}

#[tokio::test]
async fn soap_login_refuses_unsupported_versions() {
    let emulator = start_default().await;
    let (status, xml) = soap_request(
        &emulator,
        "/services/Soap/u/5.0",
        soap_envelope(USERNAME, "passwordtoken"),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        element_text(&xml, "faultcode").as_deref(),
        Some("sf:UNSUPPORTED_API_VERSION")
    );
}

#[tokio::test]
async fn soap_login_escapes_what_it_echoes() {
    let mut config = EmulatorConfig::default();
    config.credentials.username = "o'brien&<co>@example.com".to_string();
    config.credentials.password = "p<&>\"'".to_string();
    let emulator = start(config).await;
    let (status, xml) = soap_request(
        &emulator,
        "/services/Soap/u/62.0",
        soap_envelope(
            "o&apos;brien&amp;&lt;co&gt;@example.com",
            "p&lt;&amp;&gt;&quot;&apos;token",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_eq!(
        element_text(&xml, "userName").as_deref(),
        Some("o'brien&<co>@example.com")
    );
    assert!(!xml.contains("&<co>"), "raw special characters in {xml}");
}

#[tokio::test]
async fn inactive_users_cannot_log_in() {
    let emulator = start_default().await;
    let org = emulator.org();
    let user_id = org.user_id();
    let mut fields = serde_json::Map::new();
    fields.insert("IsActive".into(), json!(false));
    org.update_record("User", &user_id, fields, &user_id)
        .expect("deactivating the user");
    let (status, body) = token_request(&emulator, &password_form("passwordtoken")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, oauth_error("inactive_user", "user is inactive"));
    let (status, xml) = soap_request(
        &emulator,
        "/services/Soap/u/62.0",
        soap_envelope(USERNAME, "passwordtoken"),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        element_text(&xml, "faultcode").as_deref(),
        Some("sf:INVALID_LOGIN")
    );
}

#[tokio::test]
async fn login_faults_answer_503_then_logins_work_again() {
    let emulator = start(EmulatorConfig::for_tests()).await;
    let arm = |fault: &'static str, body: Value| {
        let url = format!("{}/_emulator/faults/{fault}", emulator.url());
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("arm");
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    let soap = || async {
        reqwest::Client::new()
            .post(format!("{}/services/Soap/u/62.0", emulator.url()))
            .header("Content-Type", "text/xml")
            .header("SOAPAction", "login")
            .body(
                r#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Body><urn:login><urn:username>emulator@example.com</urn:username><urn:password>passwordtoken</urn:password></urn:login></soapenv:Body></soapenv:Envelope>"#,
            )
            .send()
            .await
            .expect("soap")
            .status()
    };
    let oauth = || async {
        reqwest::Client::new()
            .post(format!("{}/services/oauth2/token", emulator.url()))
            .form(&password_form("passwordtoken"))
            .send()
            .await
            .expect("token")
            .status()
    };

    arm("fail-logins", json!({"count": 2})).await;
    assert_eq!(oauth().await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(soap().await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(oauth().await, StatusCode::OK);
    assert_eq!(soap().await, StatusCode::OK);

    arm("login-outage", json!({"ms": 400})).await;
    let started = std::time::Instant::now();
    assert_eq!(oauth().await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(oauth().await, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(std::time::Duration::from_millis(450).saturating_sub(started.elapsed()))
        .await;
    assert_eq!(oauth().await, StatusCode::OK);
    assert_eq!(soap().await, StatusCode::OK);
}

/// Salesforce removed SOAP `login()` from API 65.0 on, with this fault
/// (its text as Salesforce's Java client reports it).
#[tokio::test]
async fn soap_login_is_refused_from_api_65_on() {
    let emulator = start_default().await;
    for version in ["65.0", "66.0"] {
        let (status, xml) = soap_request(
            &emulator,
            &format!("/services/Soap/u/{version}"),
            soap_envelope(USERNAME, "passwordtoken"),
        )
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{xml}");
        assert_eq!(
            element_text(&xml, "exceptionCode").as_deref(),
            Some("INVALID_OPERATION"),
            "{xml}"
        );
        assert_eq!(
            element_text(&xml, "exceptionMessage"),
            Some(format!(
                "The SOAP Login operation is not available in the API version specified ({version}). Refer to the documentation for supported versions."
            ))
        );
    }
    let (status, xml) = soap_request(
        &emulator,
        "/services/Soap/u/64.0",
        soap_envelope(USERNAME, "passwordtoken"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{xml}");
}
