//! Third-party Salesforce clients against the emulator: simple-salesforce
//! and aiosfstream-ng (Python), jsforce (Node). Each test starts an org on a
//! free loopback port, runs a script from `tests/clients/` against it, and
//! asserts on the JSON summary the script prints, so a client that real
//! integrations use is shown to work against the emulator unmodified.
//!
//! The clients come from `scripts/test-deps.sh`: a virtualenv at
//! `<repo>/.venv` and `<repo>/tests/peers/node_modules`. `SFSTREAM_PYTHON` (a
//! Python interpreter) and `SFSTREAM_NODE_MODULES` (a `node_modules`
//! directory) point elsewhere. A missing client fails its tests.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sfstream_emulator::EmulatorConfig;
use sfstream_testkit::emulator::USERNAME;
use sfstream_testkit::peers::{SETUP_HINT, node_modules, python};

/// The longest a client script may run; it is killed after that.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Kills the client if the test ends (or panics) while it still runs.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Runs a client to completion (at most [`PEER_TIMEOUT`]) while the org
/// keeps serving on this runtime; returns the JSON of its last stdout line.
async fn run_client(mut command: Command) -> Value {
    let shown = format!("{command:?}");
    command
        .current_dir(clients_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Running(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}; {SETUP_HINT}")),
    );
    let stdout = drain(child.0.stdout.take());
    let stderr = drain(child.0.stderr.take());
    let started = Instant::now();
    let status = loop {
        match child.0.try_wait().expect("waiting for the client") {
            Some(status) => break Some(status),
            None if started.elapsed() > PEER_TIMEOUT => break None,
            None => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    };
    if status.is_none() {
        let _ = child.0.kill();
        let _ = child.0.wait();
    }
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "{shown} ran longer than {PEER_TIMEOUT:?} and was killed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    };
    assert!(
        status.success(),
        "{shown} failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let summary = last
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!("{shown} printed no JSON summary\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
        });
    eprintln!("{shown}:\n{summary:#}");
    summary
}

fn python_client(script: &str, args: &[&str]) -> Command {
    let mut command = Command::new(python());
    command
        .arg(clients_dir().join(script))
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

fn node_client(script: &str, args: &[&str]) -> Command {
    let modules = node_modules("jsforce");
    let mut command = Command::new("node");
    command
        .arg(clients_dir().join(script))
        .args(args)
        .env("NODE_PATH", modules);
    command
}

async fn simple_salesforce(org: &common::Org, section: &str) -> Value {
    let url = org.emulator.url();
    run_client(python_client(
        "simple_salesforce_check.py",
        &[url.as_str(), section],
    ))
    .await
}

async fn jsforce(org: &common::Org, args: &[&str]) -> Value {
    let url = org.emulator.url();
    let mut all = vec![url.as_str()];
    all.extend_from_slice(args);
    run_client(node_client("jsforce_check.js", &all)).await
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| str_of(v, "element"))
        .collect()
}

/// Whether `token` is a live access token of the org.
async fn token_works(org: &common::Org, token: &str) -> bool {
    org.http
        .get(org.data("limits"))
        .bearer_auth(token)
        .send()
        .await
        .expect("limits")
        .status()
        == 200
}

/// An org whose queries page after `batch` records.
async fn start_with_batch(batch: usize) -> common::Org {
    let mut config: EmulatorConfig = common::config();
    config.query_batch_size = batch;
    common::start_with(config).await
}

const LIMIT_KEYS: [&str; 8] = [
    "DailyApiRequests",
    "DailyDeliveredPlatformEvents",
    "DailyDurableStreamingApiEvents",
    "DailyGenericStreamingApiEvents",
    "DailyStreamingApiEvents",
    "DataStorageMB",
    "FileStorageMB",
    "HourlyPublishedPlatformEvents",
];

// ---------------------------------------------------------------- simple-salesforce

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_logs_in_with_soap_and_oauth() {
    let org = common::start().await;
    let host = org.emulator.addr().to_string();
    let out = simple_salesforce(&org, "login").await;

    // SalesforceLogin(scratch_url=...) then Salesforce(session_id, instance_url).
    let scratch = &out["scratch_url"];
    assert_eq!(scratch["sf_instance"], host.as_str());
    assert_eq!(scratch["auth_type"], "direct");
    assert_eq!(
        scratch["base_url"],
        format!("https://{host}/services/data/v62.0/")
    );
    assert_eq!(
        scratch["resources"]["sobjects"],
        "/services/data/v62.0/sobjects"
    );
    let session = str_of(&scratch["session_id"], "session id");
    assert!(session.starts_with("00D"), "{session}");
    assert!(token_works(&org, session).await);

    // Salesforce(username, password, security_token): SOAP login.
    let soap = &out["soap"];
    assert_eq!(soap["sf_instance"], host.as_str());
    assert_eq!(soap["auth_type"], "password");
    assert_eq!(
        strings(&soap["sent"]),
        [
            "POST /services/Soap/u/62.0",
            "GET /services/data/v62.0/limits/"
        ]
    );
    assert_eq!(strings(&soap["limits_keys"]), LIMIT_KEYS);
    assert!(token_works(&org, str_of(&soap["session_id"], "session id")).await);

    // Salesforce(username, password, consumer_key, consumer_secret): OAuth password flow.
    let oauth = &out["oauth"];
    assert_eq!(oauth["sf_instance"], host.as_str());
    assert_eq!(
        strings(&oauth["sent"]),
        [
            "POST /services/oauth2/token",
            "GET /services/data/v62.0/limits/"
        ]
    );
    assert_eq!(strings(&oauth["limits_keys"]), LIMIT_KEYS);
    assert!(token_works(&org, str_of(&oauth["session_id"], "session id")).await);

    // Refusals arrive as SalesforceAuthenticationFailed with the server's code.
    assert_eq!(out["soap_bad_password"]["code"], "INVALID_LOGIN");
    assert_eq!(out["oauth_bad_secret"]["code"], "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_record_crud_upsert_and_session_refresh() {
    let mut org = common::start().await;
    let out = simple_salesforce(&org, "crud").await;

    let id = str_of(&out["create"]["id"], "contact id");
    assert!(id.starts_with("003") && id.len() == 18, "{id}");
    assert_eq!(out["create"]["success"], true);
    assert_eq!(out["create"]["errors"], json!([]));
    let got = &out["get"];
    assert_eq!(got["Id"], id);
    assert_eq!(got["FirstName"], "Ada");
    assert_eq!(got["LastName"], "Lovelace");
    assert_eq!(got["Email"], "ada@example.com");
    assert_eq!(got["attributes"]["type"], "Contact");
    assert_eq!(
        got["attributes"]["url"],
        format!("/services/data/v62.0/sobjects/Contact/{id}")
    );

    assert_eq!(out["update_status"], 204);
    assert_eq!(
        out["after_update"],
        json!({"LastName": "King", "Title": "Countess", "FirstName": "Ada"})
    );

    // Upsert: 201 when it creates; 200 with a body when it updates (API 46.0+).
    assert_eq!(out["upsert_create_status"], 201);
    assert_eq!(out["upsert_update_status"], 200);
    let account = &out["account"];
    let account_id = str_of(&account["Id"], "account id");
    assert!(account_id.starts_with("001"), "{account_id}");
    assert_eq!(account["Name"], "Acme Corp");
    assert_eq!(account["External_Id__c"], "ACME-1");
    assert_eq!(out["upsert_raw"]["status"], 201);
    assert_eq!(out["upsert_raw"]["body"]["created"], true);
    assert_eq!(out["upsert_raw"]["body"]["success"], true);

    // After the org invalidated every token, the library logged in again by itself.
    assert_eq!(
        out["relogin"],
        json!({"session_changed": true, "LastName": "King"})
    );

    assert_eq!(out["delete_status"], 204);
    let gone = &out["get_deleted"];
    assert_eq!(gone["type"], "SalesforceResourceNotFound");
    assert_eq!(gone["status"], 404);
    // Salesforce answers ENTITY_IS_DELETED for a record in the recycle bin.
    assert!(
        ["ENTITY_IS_DELETED", "NOT_FOUND"].contains(&str_of(&gone["errorCode"], "errorCode")),
        "{gone}"
    );
    assert_eq!(out["delete_by_external_status"], 204);

    // What the client did is what the org holds. (The script had every token
    // invalidated, this test's own included.)
    let emulated = org.emulator.org().clone();
    org.token = emulated
        .tokens
        .issue(&emulated.org_id(), &emulated.user_id());
    let (status, stored) = org.get("sobjects/Account/External_Id__c/ACME-1").await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["Id"], account_id);
    assert_eq!(stored["Name"], "Acme Corp");
    let (status, _) = org.get("sobjects/Account/External_Id__c/ACME-2").await;
    assert_eq!(status, 404);
    let (status, _) = org.get(&format!("sobjects/Contact/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_describe_limits_and_errors() {
    let org = common::start().await;
    let out = simple_salesforce(&org, "describe").await;

    let global = &out["global"];
    let names = strings(&global["names"]);
    for name in [
        "Account",
        "Contact",
        "Lead",
        "PushTopic",
        "StreamingChannel",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(global["contact"]["keyPrefix"], "003");
    assert_eq!(global["contact"]["queryable"], true);
    assert_eq!(
        global["contact"]["urls"]["describe"],
        "/services/data/v62.0/sobjects/Contact/describe"
    );

    let contact = &out["contact"];
    assert_eq!(contact["name"], "Contact");
    assert_eq!(contact["keyPrefix"], "003");
    let fields = strings(&contact["field_names"]);
    for field in [
        "Id",
        "FirstName",
        "LastName",
        "Email",
        "AccountId",
        "IsDeleted",
    ] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
    assert_eq!(
        contact["LastName"],
        json!({"type": "string", "nillable": false, "createable": true})
    );
    assert_eq!(contact["Id"], json!({"type": "id", "createable": false}));
    assert_eq!(
        out["metadata"]["objectDescribe"],
        json!({"name": "Contact", "keyPrefix": "003"})
    );

    let limits = &out["limits"];
    assert_eq!(strings(&limits["keys"]), LIMIT_KEYS);
    assert_eq!(limits["DailyApiRequests"]["Max"], 100_000);
    let remaining = limits["DailyApiRequests"]["Remaining"]
        .as_u64()
        .expect("Remaining");
    assert!(remaining < 100_000 && remaining > 99_000, "{remaining}");
    assert_eq!(strings(&out["restful_limits_keys"]), LIMIT_KEYS);
    // simple-salesforce parsed Sforce-Limit-Info.
    assert_eq!(out["api_usage"]["total"], 100_000);
    assert!(out["api_usage"]["used"].as_u64().expect("used") >= 5);

    let bad_field = &out["bad_field"];
    assert_eq!(bad_field["type"], "SalesforceMalformedRequest");
    assert_eq!(bad_field["status"], 400);
    assert_eq!(bad_field["errorCode"], "INVALID_FIELD");
    assert_eq!(bad_field["fields"], json!(["NoSuchField"]));
    let missing = &out["missing_record"];
    assert_eq!(missing["type"], "SalesforceResourceNotFound");
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["errorCode"], "NOT_FOUND");
    let unknown = &out["unknown_sobject"];
    assert_eq!(unknown["type"], "SalesforceResourceNotFound");
    assert_eq!(unknown["status"], 404);
    assert_eq!(unknown["errorCode"], "NOT_FOUND");
    let malformed = &out["malformed_json"];
    assert_eq!(malformed["type"], "SalesforceMalformedRequest");
    assert_eq!(malformed["errorCode"], "JSON_PARSER_ERROR");
}

/// Needs the SOQL engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_query_paging_query_all_and_count() {
    let org = start_with_batch(2).await;
    let out = simple_salesforce(&org, "query").await;

    let first = &out["first_page"];
    assert_eq!(first["totalSize"], 5, "{first}");
    assert_eq!(first["done"], false);
    assert_eq!(first["count"], 2);
    assert_eq!(strings(&first["first_names"]), ["A", "B"]);
    assert_eq!(first["attributes"]["type"], "Contact");
    let next = str_of(&first["nextRecordsUrl"], "nextRecordsUrl");
    assert!(next.starts_with("/services/data/v62.0/query/"), "{next}");
    assert_eq!(strings(&out["second_page"]["first_names"]), ["C", "D"]);
    assert_eq!(out["second_page"]["done"], false);

    let all = &out["query_all"];
    assert_eq!(all["totalSize"], 5);
    assert_eq!(all["done"], true);
    assert_eq!(strings(&all["first_names"]), ["A", "B", "C", "D", "E"]);
    assert_eq!(strings(&out["query_all_iter"]), ["A", "B", "C", "D", "E"]);

    // "E" was deleted: gone from query, still in queryAll with IsDeleted.
    assert_eq!(out["after_delete"], 4);
    assert_eq!(out["include_deleted"]["totalSize"], 5);
    assert_eq!(strings(&out["include_deleted"]["deleted"]), ["E"]);
    assert_eq!(out["count"], json!({"totalSize": 4, "records": []}));

    assert_eq!(out["bad_field"]["type"], "SalesforceMalformedRequest");
    assert_eq!(out["bad_field"]["errorCode"], "INVALID_FIELD");
    assert_eq!(out["bad_syntax"]["type"], "SalesforceMalformedRequest");
    assert_eq!(out["bad_syntax"]["errorCode"], "MALFORMED_QUERY");
}

// ---------------------------------------------------------------- streaming helpers

/// A generic streaming channel with one event already in it; returns its id.
async fn generic_channel_with_backlog(org: &common::Org, name: &str, payload: &str) -> String {
    let id = org.create("StreamingChannel", json!({"Name": name})).await;
    let (status, reply) = org
        .send(
            Method::POST,
            &format!("sobjects/StreamingChannel/{id}/push"),
            json!({"pushEvents": [{"payload": payload, "userIds": []}]}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    id
}

fn push_trigger(channel_id: &str, payload: &str) -> String {
    json!({
        "method": "POST",
        "path": format!("sobjects/StreamingChannel/{channel_id}/push"),
        "body": {"pushEvents": [{"payload": payload, "userIds": []}]},
    })
    .to_string()
}

/// A PushTopic on Contacts, created over REST as an integration would (needs SOQL).
async fn contact_topic(org: &common::Org, name: &str) -> String {
    let (status, reply) = org
        .send(
            Method::POST,
            "sobjects/PushTopic",
            json!({
                "Name": name,
                "Query": "SELECT Id, FirstName, LastName, Email FROM Contact",
                "ApiVersion": 62.0,
                "NotifyForOperationCreate": true,
                "NotifyForOperationUpdate": true,
                "NotifyForFields": "Referenced",
            }),
        )
        .await;
    assert_eq!(status, 201, "creating PushTopic {name}: {reply}");
    str_of(&reply["id"], "PushTopic id").to_string()
}

fn contact_trigger(last_name: &str) -> String {
    json!({
        "method": "POST",
        "path": "sobjects/Contact",
        "body": {"FirstName": "Streamed", "LastName": last_name, "Email": "streamed@example.com"},
    })
    .to_string()
}

fn replay_id(message_data: &Value) -> i64 {
    message_data["event"]["replayId"]
        .as_i64()
        .unwrap_or_else(|| panic!("no replayId in {message_data}"))
}

/// Checks a PushTopic `created` notification's data for a Contact.
fn assert_contact_created(data: &Value, id: &str, last_name: &str) {
    assert_eq!(data["event"]["type"], "created", "{data}");
    assert!(
        data["event"]["createdDate"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z')),
        "{data}"
    );
    let sobject = &data["sobject"];
    assert_eq!(sobject["Id"], id, "{data}");
    assert_eq!(sobject["LastName"], last_name, "{data}");
    assert_eq!(sobject["FirstName"], "Streamed", "{data}");
    assert_eq!(sobject["Email"], "streamed@example.com", "{data}");
}

// ---------------------------------------------------------------- aiosfstream-ng

async fn aiosfstream(org: &common::Org, channel: &str, expect: usize, trigger: &str) -> Value {
    let url = org.emulator.url();
    let expect = expect.to_string();
    run_client(python_client(
        "aiosfstream_check.py",
        &[url.as_str(), channel, "all", expect.as_str(), trigger],
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiosfstream_replays_and_receives_generic_channel_events() {
    let org = common::start().await;
    let channel_id = generic_channel_with_backlog(&org, "/u/notes", "before").await;
    let out = aiosfstream(&org, "/u/notes", 2, &push_trigger(&channel_id, "after")).await;

    assert_eq!(out["instance_url"], org.emulator.url());
    // aiosfstream-ng pins API 45.0 for CometD.
    assert_eq!(
        out["cometd_url"],
        format!("{}/cometd/45.0", org.emulator.url())
    );
    assert_eq!(strings(&out["subscriptions"]), ["/u/notes"]);
    assert_eq!(out["trigger"]["status"], 200);
    assert!(out.get("timed_out").is_none(), "{out}");
    let messages = out["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{out}");
    for message in messages {
        assert_eq!(message["channel"], "/u/notes");
    }
    // Replay -2 brought the retained event, then the live one arrived.
    assert_eq!(messages[0]["data"]["payload"], "before");
    assert_eq!(messages[1]["data"]["payload"], "after");
    assert!(replay_id(&messages[0]["data"]) < replay_id(&messages[1]["data"]));
}

/// Needs the SOQL engine (PushTopic queries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiosfstream_replays_and_receives_pushtopic_events() {
    let org = common::start().await;
    contact_topic(&org, "ContactChanges").await;
    let before = org
        .create(
            "Contact",
            json!({"FirstName": "Streamed", "LastName": "Before", "Email": "streamed@example.com"}),
        )
        .await;
    let out = aiosfstream(&org, "/topic/ContactChanges", 2, &contact_trigger("After")).await;

    assert_eq!(out["trigger"]["status"], 201, "{out}");
    let after = str_of(&out["trigger"]["body"]["id"], "created id");
    assert!(out.get("timed_out").is_none(), "{out}");
    let messages = out["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{out}");
    for message in messages {
        assert_eq!(message["channel"], "/topic/ContactChanges");
    }
    assert_contact_created(&messages[0]["data"], &before, "Before");
    assert_contact_created(&messages[1]["data"], after, "After");
    assert!(replay_id(&messages[0]["data"]) < replay_id(&messages[1]["data"]));
}

// ---------------------------------------------------------------- jsforce

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_logs_in_with_soap_and_oauth() {
    let org = common::start().await;
    let out = jsforce(&org, &["login"]).await;
    let url = org.emulator.url();

    for kind in ["soap", "oauth"] {
        let login = &out[kind];
        assert_eq!(login["instanceUrl"], url.as_str(), "{kind}");
        let user = &login["userInfo"];
        assert!(
            str_of(&user["id"], "user id").starts_with("005"),
            "{kind}: {user}"
        );
        assert!(
            str_of(&user["organizationId"], "org id").starts_with("00D"),
            "{kind}: {user}"
        );
        assert!(
            str_of(&user["url"], "identity url").starts_with(&format!("{url}/id/")),
            "{kind}: {user}"
        );
        assert!(token_works(&org, str_of(&login["accessToken"], "token")).await);
    }
    assert_eq!(out["soap"]["identity"]["username"], USERNAME);
    assert_eq!(strings(&out["oauth"]["limitsKeys"]), LIMIT_KEYS);
    assert!(
        str_of(&out["soapBadPassword"]["message"], "message").starts_with("INVALID_LOGIN"),
        "{out}"
    );
    assert_eq!(out["oauthBadSecret"]["name"], "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_record_crud_describe_and_limits() {
    let org = common::start().await;
    let out = jsforce(&org, &["crud"]).await;

    let id = str_of(&out["create"]["id"], "contact id");
    assert!(id.starts_with("003"), "{id}");
    assert_eq!(out["create"]["success"], true);
    assert_eq!(out["retrieve"]["FirstName"], "Grace");
    assert_eq!(out["retrieve"]["LastName"], "Hopper");
    assert_eq!(out["retrieve"]["attributes"]["type"], "Contact");
    assert_eq!(
        out["update"],
        json!({"id": id, "success": true, "errors": []})
    );
    assert_eq!(out["afterUpdate"], "Rear Admiral");
    assert_eq!(out["upsertCreate"]["created"], true);
    assert_eq!(out["upsertUpdate"]["created"], false);
    assert_eq!(out["upsertUpdate"]["id"], out["upsertCreate"]["id"]);
    assert_eq!(
        out["destroy"],
        json!({"id": id, "success": true, "errors": []})
    );
    assert!(
        ["ENTITY_IS_DELETED", "NOT_FOUND"]
            .contains(&str_of(&out["retrieveDeleted"]["errorCode"], "errorCode")),
        "{out}"
    );
    assert_eq!(out["badField"]["errorCode"], "INVALID_FIELD");
    assert_eq!(out["describe"]["name"], "Contact");
    assert_eq!(out["describe"]["keyPrefix"], "003");
    assert!(strings(&out["describe"]["fieldNames"]).contains(&"LastName"));
    assert!(strings(&out["describeGlobalNames"]).contains(&"Account"));
    assert_eq!(out["limits"]["Max"], 100_000);

    let (status, stored) = org.get("sobjects/Account/External_Id__c/INI-1").await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["Name"], "Initech 2");
}

/// Needs the SOQL engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_query_autofetch_and_find() {
    let org = start_with_batch(2).await;
    let out = jsforce(&org, &["query"]).await;

    assert_eq!(out["firstPage"]["totalSize"], 5, "{out}");
    assert_eq!(out["firstPage"]["done"], false);
    assert_eq!(out["firstPage"]["count"], 2);
    // jsforce keeps the locator and rebuilds an absolute URL from it.
    assert!(
        str_of(&out["firstPage"]["nextRecordsUrl"], "nextRecordsUrl")
            .contains("/services/data/v62.0/query/")
    );
    assert_eq!(out["autoFetch"]["totalSize"], 5);
    assert_eq!(
        strings(&out["autoFetch"]["firstNames"]),
        ["A", "B", "C", "D", "E"]
    );
    assert_eq!(strings(&out["find"]), ["A", "B", "C", "D", "E"]);
    assert_eq!(out["badQuery"]["errorCode"], "INVALID_FIELD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_streams_generic_channel_events() {
    let org = common::start().await;
    let channel_id = generic_channel_with_backlog(&org, "/u/notes", "before").await;
    let out = jsforce(
        &org,
        &[
            "streaming",
            "/u/notes",
            "1",
            &push_trigger(&channel_id, "live"),
        ],
    )
    .await;

    assert_eq!(out["subscribed"], true);
    assert_eq!(out["trigger"]["fanoutCount"], 1, "{out}");
    assert!(out.get("timedOut").is_none(), "{out}");
    let messages = out["messages"].as_array().expect("messages");
    // No replay extension: only the live event, not the retained one.
    assert_eq!(messages.len(), 1, "{out}");
    assert_eq!(messages[0]["payload"], "live");
    assert!(replay_id(&messages[0]) > 0);
}

/// Needs the SOQL engine (PushTopic queries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_streams_pushtopic_events() {
    let org = common::start().await;
    contact_topic(&org, "JsContacts").await;
    let out = jsforce(
        &org,
        &["streaming", "JsContacts", "1", &contact_trigger("Live")],
    )
    .await;

    assert_eq!(out["subscribed"], true);
    let id = str_of(&out["trigger"]["id"], "created id");
    assert!(out.get("timedOut").is_none(), "{out}");
    let messages = out["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{out}");
    assert_contact_created(&messages[0], id, "Live");
    assert!(replay_id(&messages[0]) > 0);
}

// ---------------------------------------------------------------- salesforce-pubsub-api-client

/// The npm `salesforce-pubsub-api-client` (5.5.2), over TLS as it insists:
/// logs in with its username-password flow, subscribes to a CDC topic from
/// the earliest event and decodes it (bitmaps to field names, compound
/// Name), then publishes a platform event that the org delivers on both
/// transports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_pubsub_api_client_subscribes_decodes_and_publishes() {
    let (cert_pem, key_pem) = sfstream_testkit::tls::self_signed();
    let mut config = common::config();
    config.pubsub_tls = Some(sfstream_emulator::PubSubTls { cert_pem, key_pem });
    // Salesforce's idle close (60 s), not the quick one of the other tests.
    config.pubsub_idle_timeout = Duration::from_secs(60);
    let org = common::start_with(config).await;
    org.emulator
        .org()
        .define_platform_event(
            "Order_Event__e",
            &[("Message__c", sfstream_emulator::schema::FieldType::String)],
        )
        .expect("platform event type");
    let contact = org
        .create(
            "Contact",
            json!({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}),
        )
        .await;
    org.update(
        "Contact",
        &contact,
        json!({"Title": "Analyst", "Email": null}),
    )
    .await;
    let endpoint = org.emulator.pubsub_addr().to_string();
    let summary = run_client({
        let mut command = node_client(
            "pubsub_check.js",
            &[
                &org.emulator.url(),
                &endpoint,
                "/data/ContactChangeEvent",
                "/event/Order_Event__e",
                "2",
            ],
        );
        command.env("NODE_PATH", node_modules("salesforce-pubsub-api-client"));
        command
    })
    .await;

    // The CDC events as the client decoded them: the creation (Salesforce
    // lists no changed fields on a create) and the update.
    let events = summary["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    let created = &events[0]["event"]["payload"];
    assert_eq!(events[0]["topic"], "/data/ContactChangeEvent");
    let header = &created["ChangeEventHeader"];
    assert_eq!(header["entityName"], "Contact", "{created:#}");
    assert_eq!(header["changeType"], "CREATE", "{created:#}");
    assert_eq!(header["recordIds"], json!([contact]), "{created:#}");
    assert_eq!(created["Name"]["FirstName"], "Ada", "{created:#}");
    assert_eq!(created["Name"]["LastName"], "Lovelace", "{created:#}");
    assert_eq!(created["Email"], "ada@example.com", "{created:#}");
    let updated = &events[1]["event"]["payload"];
    let header = &updated["ChangeEventHeader"];
    assert_eq!(header["changeType"], "UPDATE", "{updated:#}");
    let changed = strings(&header["changedFields"]);
    for field in ["Title", "Email", "LastModifiedDate"] {
        assert!(changed.contains(&field), "{field} not in {changed:?}");
    }
    assert_eq!(strings(&header["nulledFields"]), ["Email"], "{updated:#}");
    assert_eq!(updated["Title"], "Analyst", "{updated:#}");
    // Unchanged fields are null in a change event.
    assert_eq!(updated["Name"], Value::Null, "{updated:#}");

    // The platform event it published, delivered on CometD too.
    let replay_id = summary["publish"]["replayId"]
        .as_i64()
        .or_else(|| summary["publish"]["replayId"].as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("a replay id in {:#}", summary["publish"]));
    let mut bayeux = org.bayeux();
    bayeux.open("/event/Order_Event__e", Some(-2)).await;
    let events = bayeux.events(1, 3).await;
    let event = events
        .iter()
        .find(|m| m["channel"] == "/event/Order_Event__e")
        .unwrap_or_else(|| panic!("no platform event on CometD: {events:#?}"));
    assert_eq!(event["data"]["payload"]["Message__c"], "hello from node");
    assert_eq!(event["data"]["event"]["replayId"], replay_id);
}
