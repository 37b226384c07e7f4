//! Every login flow against the in-process emulator on 127.0.0.1, and the
//! failures: refused credentials, unreachable servers, insecure URLs, and
//! secrets that must never show.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::Secret;
use sfstream_salesforce::auth::{AuthError, Authenticator, Credentials, LoginUrl, Session};
use sfstream_testkit::emulator::{
    CONSUMER_KEY, CONSUMER_SECRET, PASSWORD, REFRESH_TOKEN, SECURITY_TOKEN, USERNAME,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A test-only key file of the emulator's fixtures.
fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../emulator/tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

async fn start_default() -> Emulator {
    start(EmulatorConfig::default()).await
}

async fn start_with_jwt() -> Emulator {
    let mut config = EmulatorConfig::default();
    config.credentials.jwt_public_key_pem = Some(fixture("test-only-jwt-public-key.pem"));
    start(config).await
}

fn login_url(emulator: &Emulator) -> LoginUrl {
    LoginUrl::parse(&emulator.url()).expect("emulator URL")
}

fn authenticator(emulator: &Emulator, credentials: Credentials) -> Authenticator {
    Authenticator::new(credentials).with_login_url(login_url(emulator))
}

fn password_credentials(password: &str) -> Credentials {
    Credentials::password(
        USERNAME,
        password,
        Some(Secret::new(SECURITY_TOKEN)),
        CONSUMER_KEY,
        CONSUMER_SECRET,
    )
}

fn soap_credentials(password: &str) -> Credentials {
    Credentials::soap(USERNAME, password, Some(Secret::new(SECURITY_TOKEN)))
}

/// Checks that the session is the emulator's and its token valid there.
fn assert_valid(emulator: &Emulator, session: &Session) {
    let org = emulator.org();
    assert!(
        org.tokens.lookup(session.access_token.expose()).is_some(),
        "the token is not valid on the emulator"
    );
    assert_eq!(session.instance_url, emulator.url());
    assert_eq!(session.user_id.as_deref(), Some(org.user_id().as_str()));
    assert_eq!(session.org_id.as_deref(), Some(org.org_id().as_str()));
    let issued = session.issued_at.expect("issued_at");
    let age = chrono::Utc::now() - issued;
    assert!(age.num_seconds().abs() < 60, "issued at {issued}");
}

fn assert_rejected(error: &AuthError, expected_error: &str) {
    match error {
        AuthError::Rejected { error, .. } => assert_eq!(error, expected_error),
        other => panic!("expected Rejected {{ {expected_error} }}, got {other:?}"),
    }
    assert!(error.is_auth_failure());
    assert!(!error.is_retryable());
}

/// A local port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

// ---------------------------------------------------------------- flows

#[tokio::test]
async fn password_flow() {
    let emulator = start_default().await;
    let session = authenticator(&emulator, password_credentials(PASSWORD))
        .login()
        .await
        .expect("login");
    assert_valid(&emulator, &session);
}

#[tokio::test]
async fn password_flow_wrong_password_is_invalid_grant() {
    let emulator = start_default().await;
    let error = authenticator(&emulator, password_credentials("wrong"))
        .login()
        .await
        .expect_err("refused");
    assert_rejected(&error, "invalid_grant");
    assert_eq!(
        error,
        AuthError::Rejected {
            error: "invalid_grant".into(),
            description: "authentication failure".into(),
        }
    );
    // Without the security token the password alone is wrong too.
    let no_token = Credentials::password(USERNAME, PASSWORD, None, CONSUMER_KEY, CONSUMER_SECRET);
    let error = authenticator(&emulator, no_token)
        .login()
        .await
        .expect_err("refused");
    assert_rejected(&error, "invalid_grant");
}

#[tokio::test]
async fn password_flow_wrong_client() {
    let emulator = start_default().await;
    let wrong_secret = Credentials::password(
        USERNAME,
        PASSWORD,
        Some(SECURITY_TOKEN.into()),
        CONSUMER_KEY,
        "x",
    );
    let error = authenticator(&emulator, wrong_secret)
        .login()
        .await
        .expect_err("refused");
    assert_rejected(&error, "invalid_client");
    let wrong_key = Credentials::password(
        USERNAME,
        PASSWORD,
        Some(SECURITY_TOKEN.into()),
        "x",
        CONSUMER_SECRET,
    );
    let error = authenticator(&emulator, wrong_key)
        .login()
        .await
        .expect_err("refused");
    assert_rejected(&error, "invalid_client_id");
}

#[tokio::test]
async fn soap_flow() {
    let emulator = start_default().await;
    let session = authenticator(&emulator, soap_credentials(PASSWORD))
        .login()
        .await
        .expect("login");
    assert_valid(&emulator, &session);
}

#[tokio::test]
async fn soap_flow_wrong_password_is_invalid_login() {
    let emulator = start_default().await;
    let error = authenticator(&emulator, soap_credentials("wrong"))
        .login()
        .await
        .expect_err("refused");
    match &error {
        AuthError::SoapFault { code, message } => {
            assert_eq!(code, "INVALID_LOGIN");
            assert!(message.contains("Invalid username, password"), "{message}");
        }
        other => panic!("expected a SOAP fault, got {other:?}"),
    }
    assert!(error.is_auth_failure());
}

#[tokio::test]
async fn soap_flow_unsupported_api_version_is_a_fault() {
    let emulator = start_default().await;
    let error = authenticator(&emulator, soap_credentials(PASSWORD))
        .with_api_version("19.0")
        .login()
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, AuthError::SoapFault { code, .. } if code == "UNSUPPORTED_API_VERSION"),
        "{error:?}"
    );
    let error = authenticator(&emulator, soap_credentials(PASSWORD))
        .with_api_version("../../x")
        .login()
        .await
        .expect_err("refused before sending");
    assert!(
        matches!(error, AuthError::InvalidApiVersion(_)),
        "{error:?}"
    );
}

/// SOAP `login()` is gone from API 65.0 on: a client configured for a
/// newer API still logs in (at 64.0), and its REST calls keep their version.
#[tokio::test]
async fn soap_logins_go_to_an_api_version_that_has_login() {
    let emulator = start_default().await;
    for version in ["64.0", "65.0", "66.0"] {
        let authenticator =
            authenticator(&emulator, soap_credentials(PASSWORD)).with_api_version(version);
        let session = authenticator
            .login()
            .await
            .unwrap_or_else(|e| panic!("SOAP login configured for {version}: {e}"));
        assert_valid(&emulator, &session);
        assert_eq!(authenticator.api_version(), version);
    }
}

#[tokio::test]
async fn markup_in_credentials_is_escaped_and_encoded() {
    let mut config = EmulatorConfig::default();
    config.credentials.username = "o'brien&co<x>@example.com".into();
    config.credentials.password = "p&ss<w>rd\"' +%=".into();
    config.credentials.security_token = "t&k]]>".into();
    let emulator = start(config).await;
    let soap = Credentials::soap(
        "o'brien&co<x>@example.com",
        "p&ss<w>rd\"' +%=",
        Some("t&k]]>".into()),
    );
    let session = authenticator(&emulator, soap).login().await.expect("SOAP");
    assert_valid(&emulator, &session);
    let oauth = Credentials::password(
        "o'brien&co<x>@example.com",
        "p&ss<w>rd\"' +%=",
        Some("t&k]]>".into()),
        CONSUMER_KEY,
        CONSUMER_SECRET,
    );
    let session = authenticator(&emulator, oauth)
        .login()
        .await
        .expect("OAuth");
    assert_valid(&emulator, &session);
}

#[tokio::test]
async fn refresh_token_flow() {
    let emulator = start_default().await;
    for secret in [Some(Secret::new(CONSUMER_SECRET)), None] {
        let credentials = Credentials::refresh_token(CONSUMER_KEY, secret, REFRESH_TOKEN);
        let session = authenticator(&emulator, credentials)
            .login()
            .await
            .expect("login");
        assert_valid(&emulator, &session);
    }
}

#[tokio::test]
async fn refresh_token_flow_bad_token() {
    let emulator = start_default().await;
    let credentials =
        Credentials::refresh_token(CONSUMER_KEY, Some(CONSUMER_SECRET.into()), "revoked");
    let error = authenticator(&emulator, credentials)
        .login()
        .await
        .expect_err("refused");
    assert_rejected(&error, "invalid_grant");
}

#[tokio::test]
async fn jwt_bearer_flow() {
    let emulator = start_with_jwt().await;
    let credentials = Credentials::jwt_bearer(
        USERNAME,
        CONSUMER_KEY,
        fixture("test-only-jwt-private-key.pem"),
    );
    let session = authenticator(&emulator, credentials)
        .login()
        .await
        .expect("login");
    assert_valid(&emulator, &session);
}

#[tokio::test]
async fn jwt_bearer_flow_refusals() {
    let emulator = start_with_jwt().await;
    let other_key = Credentials::jwt_bearer(
        USERNAME,
        CONSUMER_KEY,
        fixture("test-only-other-private-key.pem"),
    );
    let error = authenticator(&emulator, other_key)
        .login()
        .await
        .expect_err("wrong key refused");
    assert_rejected(&error, "invalid_grant");

    let wrong_user = Credentials::jwt_bearer(
        "someone@example.com",
        CONSUMER_KEY,
        fixture("test-only-jwt-private-key.pem"),
    );
    let error = authenticator(&emulator, wrong_user)
        .login()
        .await
        .expect_err("wrong user refused");
    assert_rejected(&error, "invalid_grant");

    let good = Credentials::jwt_bearer(
        USERNAME,
        CONSUMER_KEY,
        fixture("test-only-jwt-private-key.pem"),
    );
    let error = authenticator(&emulator, good)
        .with_jwt_audience("https://elsewhere.example.com")
        .login()
        .await
        .expect_err("wrong audience refused");
    assert_eq!(
        error,
        AuthError::Rejected {
            error: "invalid_grant".into(),
            description: "audience is invalid".into()
        }
    );

    let not_a_key = Credentials::jwt_bearer(USERNAME, CONSUMER_KEY, "not a key");
    let auth = authenticator(&emulator, not_a_key);
    assert!(matches!(auth.check(), Err(AuthError::InvalidKey(_))));
    let error = auth.login().await.expect_err("bad PEM");
    assert!(matches!(error, AuthError::InvalidKey(_)), "{error:?}");
    assert!(error.is_auth_failure());
}

#[tokio::test]
async fn client_credentials_flow() {
    let emulator = start_default().await;
    let session = authenticator(
        &emulator,
        Credentials::client_credentials(CONSUMER_KEY, CONSUMER_SECRET),
    )
    .login()
    .await
    .expect("login");
    assert_valid(&emulator, &session);

    let error = authenticator(
        &emulator,
        Credentials::client_credentials(CONSUMER_KEY, "wrong-secret"),
    )
    .login()
    .await
    .expect_err("wrong secret refused");
    assert_rejected(&error, "invalid_client");
}

/// Reads one HTTP/1.1 request: its head (request line and headers) and body.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        request.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&request);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                let head = text[..end].to_string();
                return Some((head, request[end + 4..end + 4 + length].to_vec()));
            }
        }
    }
}

/// A token endpoint that follows Salesforce's documentation for the client
/// credentials flow and nothing more: `client_id` and `client_secret` must
/// be form fields; an `Authorization: Basic` header alone is refused with
/// HTTP 400 `invalid_client_id`, as such a server answers.
async fn documented_client_credentials_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let instance = url.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let instance = instance.clone();
            tokio::spawn(async move {
                let Some((head, body)) = read_request(&mut socket).await else {
                    return;
                };
                let form: std::collections::HashMap<String, String> =
                    url_form(&String::from_utf8_lossy(&body));
                let field = |name: &str| form.get(name).map(String::as_str);
                let (status, answer) = if !head.starts_with("POST /services/oauth2/token ") {
                    (404, r#"{"error":"not_found"}"#.to_string())
                } else if field("grant_type") != Some("client_credentials") {
                    (400, r#"{"error":"unsupported_grant_type","error_description":"grant type not supported"}"#.to_string())
                } else if field("client_id") != Some(CONSUMER_KEY) {
                    (400, r#"{"error":"invalid_client_id","error_description":"client identifier invalid"}"#.to_string())
                } else if field("client_secret") != Some(CONSUMER_SECRET) {
                    (400, r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#.to_string())
                } else {
                    (
                        200,
                        format!(
                            r#"{{"access_token":"00Dx!documented","instance_url":"{instance}","id":"{instance}/id/00D000000000001AAA/005000000000001AAA","token_type":"Bearer","issued_at":"1700000000000","signature":"x","scope":"api"}}"#
                        ),
                    )
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, server)
}

/// Decodes an `application/x-www-form-urlencoded` body (enough for tests:
/// `+` and `%XX`).
fn url_form(body: &str) -> std::collections::HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && let Some(hex) = bytes.get(i + 1..i + 3)
                && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(hex), 16)
            {
                out.push(b);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

#[tokio::test]
async fn client_credentials_are_sent_as_documented_form_fields() {
    let (url, server) = documented_client_credentials_server().await;
    let session = Authenticator::new(Credentials::client_credentials(
        CONSUMER_KEY,
        CONSUMER_SECRET,
    ))
    .with_login_url(LoginUrl::parse(&url).expect("url"))
    .login()
    .await
    .expect("a server that follows the documentation accepts the login");
    assert_eq!(session.access_token.expose(), "00Dx!documented");
    assert_eq!(session.instance_url, url);
    server.abort();
}

#[tokio::test]
async fn access_token_is_used_as_is_and_cannot_be_renewed() {
    let auth = Authenticator::new(Credentials::access_token(
        "00Dxx!given-token",
        "https://acme.my.salesforce.com/",
    ));
    assert!(!auth.credentials().can_renew());
    let session = auth.login().await.expect("no login needed");
    assert_eq!(session.access_token.expose(), "00Dxx!given-token");
    assert_eq!(session.instance_url, "https://acme.my.salesforce.com");
    assert_eq!(session.user_id, None);
    assert_eq!(auth.session().await.expect("cached"), session);

    let error = auth.renew(&session).await.expect_err("cannot renew");
    assert_eq!(error, AuthError::CannotRenew);
    assert!(error.is_auth_failure());
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("expired"), "{error}");
    // A clone shares the verdict.
    let clone = auth.clone();
    assert_eq!(clone.session().await, Err(AuthError::CannotRenew));
}

#[tokio::test]
async fn renew_logs_in_once_for_concurrent_callers() {
    let emulator = start_default().await;
    let auth = authenticator(&emulator, password_credentials(PASSWORD));
    let first = auth.session().await.expect("login");
    assert_eq!(auth.session().await.expect("cached"), first);

    emulator.org().tokens.invalidate_all();
    assert!(
        emulator
            .org()
            .tokens
            .lookup(first.access_token.expose())
            .is_none()
    );

    let (a, b) = (auth.clone(), auth.clone());
    let (ra, rb) = tokio::join!(a.renew(&first), b.renew(&first));
    let (ra, rb) = (ra.expect("renewed"), rb.expect("renewed"));
    assert_ne!(ra.access_token, first.access_token);
    assert_eq!(ra.access_token, rb.access_token, "one login for both");
    assert_valid(&emulator, &ra);
    assert_eq!(auth.session().await.expect("cached"), ra);
}

#[tokio::test]
async fn concurrent_logins_from_clones() {
    let emulator = start_default().await;
    let auth = authenticator(&emulator, soap_credentials(PASSWORD));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.login().await })
        })
        .collect();
    for task in tasks {
        let session = task.await.expect("task").expect("login");
        assert_valid(&emulator, &session);
    }
}

// ------------------------------------------------------- URLs and TLS

#[tokio::test]
async fn plain_http_needs_the_opt_in() {
    let url = LoginUrl::parse("http://example.com").expect("parses");
    let auth = Authenticator::new(password_credentials(PASSWORD)).with_login_url(url.clone());
    let error = auth.login().await.expect_err("refused without network");
    match &error {
        AuthError::InvalidLoginUrl(message) => {
            assert!(message.contains("http://example.com"), "{message}");
            assert!(message.contains("allow_insecure_http"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(error.is_auth_failure());
    assert!(auth.check().is_err());

    let opted_in = auth.clone().allow_insecure_http(true);
    assert!(opted_in.insecure_http_allowed());
    assert!(opted_in.check().is_ok());

    // An access token for a plain-http instance: same policy, no network.
    let token = Credentials::access_token("t", "http://example.com");
    let refused = Authenticator::new(token.clone()).login().await;
    assert!(
        matches!(refused, Err(AuthError::InvalidLoginUrl(_))),
        "{refused:?}"
    );
    let session = Authenticator::new(token)
        .allow_insecure_http(true)
        .login()
        .await
        .expect("accepted with the opt-in");
    assert_eq!(session.instance_url, "http://example.com");
}

#[tokio::test]
async fn login_urls() {
    let sandbox =
        Authenticator::new(soap_credentials(PASSWORD)).with_login_url(LoginUrl::sandbox());
    assert_eq!(sandbox.login_url().as_str(), "https://test.salesforce.com");
    assert!(sandbox.check().is_ok());
    assert_eq!(
        Authenticator::new(soap_credentials(PASSWORD))
            .login_url()
            .as_str(),
        "https://login.salesforce.com"
    );
    let my_domain: LoginUrl = "https://acme.my.salesforce.com/"
        .parse()
        .expect("My Domain");
    assert_eq!(my_domain.to_string(), "https://acme.my.salesforce.com");
    for garbage in ["", "acme", "ftp://x", "https://", "https://x/?q=1"] {
        assert!(
            matches!(LoginUrl::parse(garbage), Err(AuthError::InvalidLoginUrl(_))),
            "{garbage}"
        );
    }
}

// ------------------------------------------------------------- network

#[tokio::test]
async fn unreachable_login_host_is_a_quick_transport_error() {
    let port = closed_port().await;
    let url = LoginUrl::parse(&format!("http://127.0.0.1:{port}")).expect("url");
    for credentials in [
        password_credentials(PASSWORD),
        soap_credentials(PASSWORD),
        Credentials::client_credentials(CONSUMER_KEY, CONSUMER_SECRET),
    ] {
        let started = Instant::now();
        let error = Authenticator::new(credentials)
            .with_login_url(url.clone())
            .login()
            .await
            .expect_err("unreachable");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        match &error {
            AuthError::Transport(message) => {
                assert!(message.contains(&port.to_string()), "{message}")
            }
            other => panic!("expected Transport, got {other:?}"),
        }
        assert!(error.is_retryable());
        assert!(!error.is_auth_failure());
    }
}

#[tokio::test]
async fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accept, never answer
        }
    });
    let started = Instant::now();
    let error = Authenticator::new(password_credentials(PASSWORD))
        .with_login_url(LoginUrl::parse(&format!("http://{addr}")).expect("url"))
        .with_timeout(Duration::from_millis(300))
        .login()
        .await
        .expect_err("timed out");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&error, AuthError::Transport(m) if m.contains("within")),
        "{error:?}"
    );
    assert!(error.is_retryable());
    server.abort();
}

#[tokio::test]
async fn non_login_answers_are_http_errors() {
    let emulator = start_default().await;
    // A login URL with a path the emulator does not serve: HTTP 404.
    let url = LoginUrl::parse(&format!("{}/nowhere", emulator.url())).expect("url");
    let error = Authenticator::new(password_credentials(PASSWORD))
        .with_login_url(url)
        .login()
        .await
        .expect_err("404");
    assert!(
        matches!(error, AuthError::Http { status: 404, .. }),
        "{error:?}"
    );
}

// ------------------------------------------------------------- secrets

/// Serves one canned answer to every request: HTTP `status` whose body is
/// the request's own body (as a misbehaving proxy might), to prove that
/// errors never carry what was sent.
async fn echo_server(status: u16) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            let body = request[end + 4..].to_vec();
                            let head = format!(
                                "HTTP/1.1 {status} Echo\r\ncontent-type: text/plain\r\n\
                                 content-length: {}\r\nconnection: close\r\n\r\n",
                                body.len()
                            );
                            let _ = socket.write_all(head.as_bytes()).await;
                            let _ = socket.write_all(&body).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, server)
}

#[tokio::test]
async fn secrets_never_show_in_credentials_or_errors() {
    const PASSWORD_SECRET: &str = "Pw-LEAK-1&<x> y";
    const TOKEN_SECRET: &str = "Tk-LEAK-2";
    const CLIENT_SECRET: &str = "Cs-LEAK-3";
    const REFRESH_SECRET: &str = "Rt-LEAK-4";
    const ACCESS_SECRET: &str = "At-LEAK-5";
    let private_key = fixture("test-only-jwt-private-key.pem");
    let key_line = private_key
        .lines()
        .nth(1)
        .expect("a base64 line of the key")
        .to_string();
    let forbidden = [
        "Pw-LEAK-1",
        "LEAK-1",
        TOKEN_SECRET,
        CLIENT_SECRET,
        REFRESH_SECRET,
        ACCESS_SECRET,
        key_line.as_str(),
    ];

    let all_credentials = [
        Credentials::password(
            USERNAME,
            PASSWORD_SECRET,
            Some(TOKEN_SECRET.into()),
            CONSUMER_KEY,
            CLIENT_SECRET,
        ),
        Credentials::soap(USERNAME, PASSWORD_SECRET, Some(TOKEN_SECRET.into())),
        Credentials::refresh_token(CONSUMER_KEY, Some(CLIENT_SECRET.into()), REFRESH_SECRET),
        Credentials::jwt_bearer(USERNAME, CONSUMER_KEY, private_key.clone()),
        Credentials::jwt_bearer(USERNAME, CONSUMER_KEY, format!("garbage {key_line}")),
        Credentials::client_credentials(CONSUMER_KEY, CLIENT_SECRET),
        Credentials::access_token(ACCESS_SECRET, "http://example.com"),
    ];

    let emulator = start_with_jwt().await;
    let (echo_500, echo_server_500) = echo_server(500).await;
    let (echo_200, echo_server_200) = echo_server(200).await;
    let closed = format!("http://127.0.0.1:{}", closed_port().await);

    let mut shown = Vec::new();
    let mut failures = 0;
    for credentials in &all_credentials {
        shown.push(format!("{credentials:?}"));
        shown.push(format!("{credentials}"));
        shown.push(format!("{credentials:#?}"));
        for target in [
            emulator.url(),
            echo_500.clone(),
            echo_200.clone(),
            closed.clone(),
        ] {
            let auth = Authenticator::new(credentials.clone())
                .with_login_url(LoginUrl::parse(&target).expect("url"))
                .with_timeout(Duration::from_secs(5));
            shown.push(format!("{auth:?}"));
            let outcome = auth.login().await;
            let renewal = auth.renew(&Session::new("stale", "https://x")).await;
            for result in [outcome, renewal] {
                match result {
                    Ok(session) => shown.push(format!("{session} {session:?}")),
                    Err(error) => {
                        failures += 1;
                        shown.push(format!("{error}"));
                        shown.push(format!("{error:?}"));
                        shown.push(format!("{error:#?}"));
                    }
                }
            }
        }
    }
    // The JWT login to the emulator succeeds; the rest fail in every way.
    assert!(failures > 40, "only {failures} failures");
    for text in &shown {
        for secret in forbidden {
            assert!(!text.contains(secret), "{secret:?} leaked in: {text}");
        }
    }
    // The echoing server's bodies did come through, scrubbed.
    assert!(
        shown
            .iter()
            .any(|t| t.contains("HTTP 500") && t.contains("<redacted>")),
        "{shown:#?}"
    );
    echo_server_500.abort();
    echo_server_200.abort();
}
