//! Logging in to an emulated org with its default credentials: as a
//! library client, as the CLI (environment variables) and as a service
//! (the `SALESFORCE:` block of a Nameko-style config); and making records
//! in it directly, as its login user.

use serde_json::{Value, json};
use sfstream_emulator::Emulator;
use sfstream_emulator::store::RecordChange;
use sfstream_salesforce::{Authenticator, Credentials, LoginUrl, Secret};

pub use sfstream_emulator::config::defaults::{
    CONSUMER_KEY, CONSUMER_SECRET, PASSWORD, REFRESH_TOKEN, SECURITY_TOKEN, USERNAME,
};

/// The OAuth username-password flow with the emulator's default credentials.
pub fn password_credentials() -> Credentials {
    Credentials::password(
        USERNAME,
        PASSWORD,
        Some(Secret::new(SECURITY_TOKEN)),
        CONSUMER_KEY,
        CONSUMER_SECRET,
    )
}

/// The SOAP login with the emulator's default credentials.
pub fn soap_credentials() -> Credentials {
    Credentials::soap(USERNAME, PASSWORD, Some(Secret::new(SECURITY_TOKEN)))
}

/// Logs in to the emulator at `url` with the OAuth username-password flow.
pub fn authenticator(url: &str) -> Authenticator {
    with_login_url(password_credentials(), url)
}

/// Logs in to the emulator at `url` with SOAP (as the Python extension does).
pub fn soap_authenticator(url: &str) -> Authenticator {
    with_login_url(soap_credentials(), url)
}

fn with_login_url(credentials: Credentials, url: &str) -> Authenticator {
    Authenticator::new(credentials)
        .with_login_url(LoginUrl::parse(url).expect("the emulator's URL is a login URL"))
}

/// The `SALESFORCE_*` variables that make the `sfstream` CLI log in to the
/// emulator at `url` with SOAP.
pub fn cli_soap_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SALESFORCE_LOGIN_URL", url.to_owned()),
        ("SALESFORCE_USERNAME", USERNAME.to_owned()),
        ("SALESFORCE_PASSWORD", PASSWORD.to_owned()),
        ("SALESFORCE_SECURITY_TOKEN", SECURITY_TOKEN.to_owned()),
    ]
}

/// The `SALESFORCE_*` variables that make the `sfstream` CLI log in to the
/// emulator at `url` with the OAuth username-password flow.
pub fn cli_password_env(url: &str) -> Vec<(&'static str, String)> {
    let mut env = cli_soap_env(url);
    env.push(("SALESFORCE_CONSUMER_KEY", CONSUMER_KEY.to_owned()));
    env.push(("SALESFORCE_CONSUMER_SECRET", CONSUMER_SECRET.to_owned()));
    env
}

/// The entries of a service config's `SALESFORCE:` section (indented by
/// two spaces, one per line) that log in to the emulator at `url` with
/// SOAP, as the Python extension's settings do.
pub fn service_settings(url: &str) -> String {
    format!(
        "  USERNAME: {USERNAME}\n  PASSWORD: {PASSWORD}\n  SECURITY_TOKEN: {SECURITY_TOKEN}\n  SANDBOX: False\n  LOGIN_URL: {url}\n"
    )
}

/// Creates a `sobject` record with `fields` (a JSON object) as the login
/// user, raising its streaming events; returns the change (its `record`
/// holds the new `Id`).
pub fn create(emulator: &Emulator, sobject: &str, fields: Value) -> RecordChange {
    let org = emulator.org();
    org.create_record(
        sobject,
        fields.as_object().cloned().unwrap_or_default(),
        &org.user_id(),
    )
    .unwrap_or_else(|e| panic!("creating a {sobject}: {e:?}"))
}

/// Declares the PushTopic `name` selecting `query` with API version
/// `api_version`; its channel is `/topic/<name>`.
pub fn push_topic(emulator: &Emulator, name: &str, query: &str, api_version: f64) {
    create(
        emulator,
        "PushTopic",
        json!({"Name": name, "Query": query, "ApiVersion": api_version}),
    );
}
