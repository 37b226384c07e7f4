//! The REST client against the emulator: every call, the error mapping,
//! re-login on 401, paging, the concurrency bound, SOQL escaping,
//! composite calls, search, limits, raw requests and events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::rest::{
    BatchRequest, Like, Method, RestError, SalesforceClient, escape_sosl, format_soql, quote,
};
use sfstream_salesforce::{Authenticator, Credentials, Secret};

async fn emulator_with(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator")
}

async fn emulator() -> Emulator {
    emulator_with(EmulatorConfig::for_tests()).await
}

fn login(emulator: &Emulator) -> Authenticator {
    sfstream_testkit::emulator::authenticator(&emulator.url())
}

fn client(emulator: &Emulator) -> SalesforceClient {
    SalesforceClient::new(login(emulator))
}

#[tokio::test]
async fn records_create_get_update_upsert_delete() {
    let org = emulator().await;
    let client = client(&org);
    let id = client
        .create(
            "Contact",
            &json!({"FirstName": "Ada", "LastName": "Lovelace"}),
        )
        .await
        .expect("create");
    assert!(id.starts_with("003"));

    let record = client.get("Contact", &id, None).await.expect("get");
    assert_eq!(record["Name"], "Ada Lovelace");
    assert_eq!(record["attributes"]["type"], "Contact");
    let some = client
        .get("Contact", &id, Some(&["LastName"]))
        .await
        .expect("get fields");
    assert_eq!(some["LastName"], "Lovelace");
    assert!(some.get("FirstName").is_none());

    client
        .update("Contact", &id, &json!({"Email": "ada@example.com"}))
        .await
        .expect("update");
    assert_eq!(
        client.get("Contact", &id, None).await.expect("get")["Email"],
        "ada@example.com"
    );

    // Upsert by external id: created, then updated; values with URL
    // specials are encoded.
    let ext = "A/1 ?#%";
    let first = client
        .upsert("Account", "Ext_Id__c", ext, &json!({"Name": "Acme"}))
        .await
        .expect("upsert creates");
    assert!(first.created);
    let second = client
        .upsert("Account", "Ext_Id__c", ext, &json!({"Name": "Acme 2"}))
        .await
        .expect("upsert updates");
    assert!(!second.created);
    assert_eq!(first.id, second.id);
    let by_ext = client
        .get_by_external_id("Account", "Ext_Id__c", ext)
        .await
        .expect("by external id");
    assert_eq!(by_ext["Name"], "Acme 2");

    client.delete("Contact", &id).await.expect("delete");
    let gone = client.get("Contact", &id, None).await.unwrap_err();
    assert!(matches!(gone, RestError::NotFound { .. }), "{gone:?}");
    assert_eq!(gone.status(), Some(404));
    assert_eq!(gone.code(), Some("NOT_FOUND"));

    // Deleted rows show in query_all only.
    let soql = format_soql("SELECT Id FROM Contact WHERE Id = {}", &[&id]).expect("soql");
    assert_eq!(client.query_collect(&soql).await.expect("query").len(), 0);
    let all: Vec<_> = client
        .query_all(soql)
        .try_collect()
        .await
        .expect("queryAll");
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn describe_and_global_describe() {
    let org = emulator().await;
    let client = client(&org);
    let describe = client.describe("Task").await.expect("describe");
    assert_eq!(describe["name"], "Task");
    let fields = client.field_names("Task").await.expect("fields");
    assert!(fields.iter().any(|f| f == "Subject"));
    assert!(!fields.iter().any(|f| f == "Name"));
    let global = client.describe_global().await.expect("global");
    assert!(
        global["sobjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|o| o["name"] == "PushTopic"))
    );
    let missing = client.describe("Nope__c").await.unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing:?}");
}

#[tokio::test]
async fn error_mapping_400_404_300_and_invalid_arguments() {
    let org = emulator().await;
    let client = client(&org);
    let error = client
        .query_collect("SELECT Bogus FROM Contact")
        .await
        .unwrap_err();
    match &error {
        RestError::MalformedRequest { status, code, .. } => {
            assert_eq!(*status, 400);
            assert_eq!(code, "INVALID_FIELD");
        }
        other => panic!("{other:?}"),
    }
    let error = client
        .create("Contact", &json!({"FirstName": "x"}))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("REQUIRED_FIELD_MISSING"));
    assert!(
        matches!(&error, RestError::MalformedRequest { fields, .. } if fields == &["LastName"]),
        "{error:?}"
    );
    let error = client
        .query_collect("SELEC Id FROM Contact")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("MALFORMED_QUERY"));

    let error = client
        .get("Contact", "003000000000000AAA", None)
        .await
        .unwrap_err();
    assert!(matches!(error, RestError::NotFound { .. }), "{error:?}");

    // Two records with the same external id: 300.
    for name in ["One", "Two"] {
        client
            .create("Account", &json!({"Name": name, "Dup__c": "same"}))
            .await
            .expect("create");
    }
    let error = client
        .get_by_external_id("Account", "Dup__c", "same")
        .await
        .unwrap_err();
    match &error {
        RestError::MoreThanOneRecord { urls } => assert_eq!(urls.len(), 2, "{urls:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(error.status(), Some(300));
    let error = client
        .upsert("Account", "Dup__c", "same", &json!({"Name": "x"}))
        .await
        .unwrap_err();
    assert!(matches!(error, RestError::MoreThanOneRecord { .. }));

    // Refused before sending.
    for error in [
        client.get("Contact/../x", "003000000000000AAA", None).await,
        client.get("Contact", "not-an-id", None).await,
        client
            .get("Contact", "003000000000000AAA", Some(&["a,b"]))
            .await,
    ] {
        assert!(
            matches!(error, Err(RestError::InvalidArgument(_))),
            "{error:?}"
        );
    }
    let elsewhere = client
        .request(Method::GET, "https://example.com/services/data", None)
        .await;
    assert!(matches!(elsewhere, Err(RestError::InvalidArgument(_))));
}

#[tokio::test]
async fn a_401_logs_in_again_and_retries_once() {
    let org = emulator().await;
    let auth = login(&org);
    let client = SalesforceClient::new(auth.clone());
    client.limits().await.expect("first call");
    let before = client.session().await.expect("session");

    org.org().tokens.invalidate_all();
    // Many concurrent callers: all succeed, through one new login.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.limits().await })
        })
        .collect();
    for call in calls {
        call.await.expect("task").expect("retried");
    }
    let after = client.session().await.expect("session");
    assert_ne!(before.access_token, after.access_token);

    // An access token given as is cannot be renewed: ExpiredSession.
    let token = org
        .org()
        .tokens
        .issue(&org.org().org_id(), &org.org().user_id());
    let fixed = SalesforceClient::new(Authenticator::new(Credentials::AccessToken {
        access_token: Secret::new(token.clone()),
        instance_url: org.url(),
    }));
    fixed.limits().await.expect("valid token");
    org.org().tokens.invalidate_all();
    let error = fixed.limits().await.unwrap_err();
    assert!(
        matches!(error, RestError::ExpiredSession { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), Some("INVALID_SESSION_ID"));
    assert_eq!(error.status(), Some(401));
    let shown = format!("{error} {error:?} {fixed:?}");
    assert!(!shown.contains(&token), "token leaked: {shown}");
    // And stays expired.
    assert!(matches!(
        fixed.limits().await,
        Err(RestError::ExpiredSession { .. })
    ));
}

#[tokio::test]
async fn query_pages_lazily_and_counts() {
    let mut config = EmulatorConfig::for_tests();
    config.query_batch_size = 3;
    let org = emulator_with(config).await;
    let client = client(&org);
    let records: Vec<Value> = (0..10)
        .map(|i| json!({"LastName": format!("Pager {i:02}")}))
        .collect();
    client
        .create_records("Contact", &records, true)
        .await
        .expect("create");

    let soql = "SELECT Id, LastName FROM Contact ORDER BY LastName";
    let page = client.query_page(soql).await.expect("page");
    assert_eq!(page.total_size, 10);
    assert_eq!(page.records.len(), 3);
    assert!(!page.done);
    let next = page.next_records_url.clone().expect("next");
    let second = client.query_more(&next).await.expect("more");
    assert_eq!(second.records[0]["LastName"], "Pager 03");

    let names: Vec<String> = client
        .query(soql)
        .map_ok(|r| r["LastName"].as_str().unwrap_or_default().to_string())
        .try_collect()
        .await
        .expect("all pages");
    assert_eq!(names.len(), 10);
    assert_eq!(names[9], "Pager 09");

    // Lazily: taking 2 records fetches one page.
    let used = org.org().api_requests();
    let first_two: Vec<_> = client.query(soql).take(2).collect().await;
    assert_eq!(first_two.len(), 2);
    assert_eq!(org.org().api_requests(), used + 1);

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Contact {
        id: String,
        last_name: String,
    }
    let typed: Vec<Contact> = client.query_as(soql).try_collect().await.expect("typed");
    assert_eq!(typed.len(), 10);
    assert!(typed[0].id.starts_with("003"));
    assert_eq!(typed[0].last_name, "Pager 00");

    assert_eq!(
        client
            .count("SELECT COUNT() FROM Contact WHERE LastName LIKE 'Pager%'")
            .await
            .expect("count"),
        10
    );
    // An error ends the stream with that error.
    let mut bad = client.query("SELECT Nope FROM Contact");
    assert!(matches!(
        bad.next().await,
        Some(Err(RestError::MalformedRequest { .. }))
    ));
    assert!(bad.next().await.is_none());
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let org = emulator().await;
    let client = SalesforceClient::builder(login(&org))
        .max_concurrent_requests(4)
        .timeout(Duration::from_secs(30))
        .user_agent("sfstream-tests")
        .build();
    assert_eq!(client.max_concurrent_requests(), 4);
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let client = client.clone();
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(client.in_flight(), Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .create("Account", &json!({"Name": format!("Concurrent {i}")}))
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.expect("task").expect("call");
    }
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed);
    assert!((1..=4).contains(&peak), "peak in flight {peak}");
    assert_eq!(client.in_flight(), 0);
    assert_eq!(
        client
            .count("SELECT COUNT() FROM Account")
            .await
            .expect("count"),
        50
    );
}

#[tokio::test]
async fn escaped_values_cannot_break_queries() {
    let org = emulator().await;
    let client = client(&org);
    let tricky = [
        "O'Brien",
        r"back\slash",
        "quote\"d",
        "new\nline",
        "' OR LastName != '",
        "50%_off",
        "tab\there",
    ];
    for name in tricky {
        client
            .create("Contact", &json!({"LastName": name}))
            .await
            .expect("create");
    }
    for name in tricky {
        let soql = format_soql(
            "SELECT Id, LastName FROM Contact WHERE LastName = {}",
            &[&name],
        )
        .expect("soql");
        let found = client.query_collect(&soql).await.expect(&soql);
        assert_eq!(found.len(), 1, "{soql}");
        assert_eq!(found[0]["LastName"], name);
    }
    let soql = format_soql(
        "SELECT Id FROM Contact WHERE LastName LIKE {}",
        &[&Like::starts_with("50%")],
    )
    .expect("soql");
    assert_eq!(client.query_collect(&soql).await.expect("like").len(), 1);
    let soql = format_soql("SELECT Id FROM Contact WHERE LastName IN {}", &[&tricky]).expect("in");
    assert_eq!(
        client.query_collect(&soql).await.expect("in").len(),
        tricky.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any string, escaped and embedded, parses back as the same literal in
    /// the emulator's SOQL parser: it matches a record holding exactly
    /// that string and no other.
    #[test]
    fn any_string_round_trips_through_the_soql_parser(value in any::<String>(), other in "[a-z]{1,8}") {
        let soql = format_soql("SELECT Id FROM Contact WHERE LastName = {}", &[&value]).expect("soql");
        let query = sfstream_emulator::soql::parse(&soql).map_err(|e| TestCaseError::fail(format!("{soql}: {}", e.message)))?;
        let record = |v: &str| json!({"LastName": v}).as_object().cloned().unwrap_or_default();
        prop_assert!(query.matches(&record(&value)), "{soql} does not match {value:?}");
        let different = format!("{value}{other}");
        prop_assert!(!query.matches(&record(&different)), "{soql} matches {different:?}");
        // And inside a list.
        let soql = format_soql("SELECT Id FROM Contact WHERE LastName IN {}", &[&[value.as_str(), "x"]]).expect("soql");
        let query = sfstream_emulator::soql::parse(&soql).map_err(|e| TestCaseError::fail(e.message))?;
        prop_assert!(query.matches(&record(&value)));
        prop_assert!(quote(&value).starts_with('\'') && quote(&value).ends_with('\''));
    }

    /// LIKE patterns built from any text match that text literally.
    #[test]
    fn like_patterns_match_literally(value in "[ -~]{0,20}") {
        let soql = format_soql("SELECT Id FROM Contact WHERE LastName LIKE {}", &[&Like::contains(&value)]).expect("soql");
        let query = sfstream_emulator::soql::parse(&soql).map_err(|e| TestCaseError::fail(format!("{soql}: {}", e.message)))?;
        let record = |v: &str| json!({"LastName": v}).as_object().cloned().unwrap_or_default();
        let wrapped = format!("<{value}>");
        prop_assert!(query.matches(&record(&wrapped)), "{soql}");
        if value.contains(['%', '_']) {
            // The wildcard characters of the value are not wildcards.
            let swapped: String = value.chars().map(|c| if c == '%' || c == '_' { 'Z' } else { c }).collect();
            prop_assert!(!query.matches(&record(&swapped)), "{soql} matches {swapped:?}");
        }
    }
}

#[tokio::test]
async fn composite_collections_of_200_and_limits() {
    let org = emulator().await;
    let client = client(&org);
    let records: Vec<Value> = (0..200)
        .map(|i| json!({"Name": format!("Bulk {i}")}))
        .collect();
    let created = client
        .create_records("Account", &records, true)
        .await
        .expect("create 200");
    assert_eq!(created.len(), 200);
    assert!(created.iter().all(|r| r.success && r.errors.is_empty()));
    let ids: Vec<String> = created.iter().filter_map(|r| r.id.clone()).collect();

    let updates: Vec<Value> = ids
        .iter()
        .map(|id| json!({"Id": id, "Industry": "Energy"}))
        .collect();
    let updated = client
        .update_records("Account", &updates, false)
        .await
        .expect("update 200");
    assert!(updated.iter().all(|r| r.success));
    assert_eq!(
        client
            .count("SELECT COUNT() FROM Account WHERE Industry = 'Energy'")
            .await
            .expect("count"),
        200
    );

    let deleted = client.delete_records(&ids, true).await.expect("delete 200");
    assert!(deleted.iter().all(|r| r.success));
    assert_eq!(
        client
            .count("SELECT COUNT() FROM Account")
            .await
            .expect("count"),
        0
    );

    // More than 200: refused locally, and by the server.
    let too_many: Vec<Value> = (0..201)
        .map(|i| json!({"Name": format!("X {i}")}))
        .collect();
    assert!(matches!(
        client.create_records("Account", &too_many, false).await,
        Err(RestError::InvalidArgument(_))
    ));
    let body: Vec<Value> = too_many
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["attributes"] = json!({"type": "Account"});
            r
        })
        .collect();
    let error = client
        .request(
            Method::POST,
            "composite/sobjects",
            Some(&json!({"records": body})),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("EXCEEDED_ID_LIMIT"));
    assert!(matches!(
        client
            .update_records("Account", &[json!({"Name": "no id"})], false)
            .await,
        Err(RestError::InvalidArgument(_))
    ));

    // Per-record failures with allOrNone.
    let results = client
        .create_records(
            "Contact",
            &[
                json!({"LastName": "ok"}),
                json!({"FirstName": "no last name"}),
            ],
            true,
        )
        .await
        .expect("answered");
    assert!(!results[0].success);
    assert_eq!(
        results[0].errors[0].status_code,
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(results[1].errors[0].status_code, "REQUIRED_FIELD_MISSING");
    assert_eq!(results[1].errors[0].fields, ["LastName"]);
}

#[tokio::test]
async fn composite_batch() {
    let org = emulator().await;
    let client = client(&org);
    let id = client
        .create("Account", &json!({"Name": "Batch"}))
        .await
        .expect("create");
    let reply = client
        .batch(
            &[
                BatchRequest::get(format!("sobjects/Account/{id}")),
                BatchRequest::patch(
                    format!("sobjects/Account/{id}"),
                    json!({"Industry": "Retail"}),
                ),
                BatchRequest::post("sobjects/Contact", json!({"LastName": "Batched"})),
                BatchRequest::get("query?q=SELECT+Industry+FROM+Account"),
                BatchRequest::delete("sobjects/Account/001000000000000AAA"),
            ],
            false,
        )
        .await
        .expect("batch");
    assert!(reply.has_errors);
    let statuses: Vec<u16> = reply.results.iter().map(|r| r.status_code).collect();
    assert_eq!(statuses, [200, 204, 201, 200, 404]);
    assert_eq!(reply.results[0].result["Name"], "Batch");
    assert_eq!(reply.results[3].result["records"][0]["Industry"], "Retail");

    let too_many: Vec<BatchRequest> = (0..26).map(|_| BatchRequest::get("limits")).collect();
    assert!(matches!(
        client.batch(&too_many, false).await,
        Err(RestError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn sosl_search() {
    let org = emulator().await;
    let client = client(&org);
    client
        .create(
            "Contact",
            &json!({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@engine.org"}),
        )
        .await
        .expect("create");
    client
        .create("Account", &json!({"Name": "Analytical Engines"}))
        .await
        .expect("create");
    let term = escape_sosl("lovelace");
    let found = client
        .search(&format!(
            "FIND {{{term}}} IN ALL FIELDS RETURNING Contact(Id, Name, Email)"
        ))
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["Email"], "ada@engine.org");
    let found = client
        .search("FIND {engine*} RETURNING Contact(Name), Account(Name)")
        .await
        .expect("search");
    assert_eq!(found.len(), 2);
    let error = client.search("FIND nothing").await.unwrap_err();
    assert_eq!(error.code(), Some("MALFORMED_SEARCH"));
}

#[tokio::test]
async fn limits_usage_and_raw_requests() {
    let org = emulator().await;
    let client = client(&org);
    assert_eq!(client.last_api_usage(), None);
    let limits = client.limits().await.expect("limits");
    let daily = limits["DailyApiRequests"];
    assert_eq!(daily.max, 100_000);
    let usage = client.last_api_usage().expect("usage");
    assert_eq!(usage.max, 100_000);
    assert_eq!(usage.used, org.org().api_requests());
    client.describe_global().await.expect("describe");
    assert_eq!(client.last_api_usage().expect("usage").used, usage.used + 1);

    let (status, body) = client
        .request(Method::GET, "sobjects/Contact/describe", None)
        .await
        .expect("relative");
    assert_eq!(status, 200);
    assert_eq!(body["name"], "Contact");
    let (status, body) = client
        .request(Method::GET, "/services/data", None)
        .await
        .expect("absolute");
    assert_eq!(status, 200);
    assert!(body.as_array().is_some_and(|v| !v.is_empty()));
    let (status, body) = client
        .request(
            Method::POST,
            "sobjects/Contact",
            Some(&json!({"LastName": "Raw"})),
        )
        .await
        .expect("post");
    assert_eq!(status, 201);
    let id = body["id"].as_str().expect("id").to_string();
    let (status, body) = client
        .request(Method::DELETE, &format!("sobjects/Contact/{id}"), None)
        .await
        .expect("delete");
    assert_eq!((status, body), (204, Value::Null));
    // An Apex REST path the emulator does not serve: a typed 404.
    let error = client
        .request(Method::GET, "/services/apexrest/Orders/1", None)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(404));
    let session = client.session().await.expect("session");
    let (status, _) = client
        .request(
            Method::GET,
            &format!("{}/services/data/v62.0/limits", session.instance_url),
            None,
        )
        .await
        .expect("full URL on the instance");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn platform_events_and_generic_pushes() {
    let org = emulator().await;
    let client = client(&org);
    let id = client
        .publish_event("Printer_Status__e", &json!({"Status__c": "jammed"}))
        .await
        .expect("publish");
    assert!(!id.is_empty());
    let (latest, _) = org
        .org()
        .streaming
        .channel_state("/event/Printer_Status__e")
        .expect("event raised");
    assert!(latest >= 1);
    assert!(matches!(
        client.publish_event("Account", &json!({})).await,
        Err(RestError::InvalidArgument(_))
    ));

    let channel_id = client
        .create("StreamingChannel", &json!({"Name": "/u/Alerts"}))
        .await
        .expect("channel");
    let fanout = client
        .push_generic("/u/Alerts", &["first", "second"])
        .await
        .expect("push by name");
    assert_eq!(fanout, 0, "nobody subscribed");
    client
        .push_generic(&channel_id, &["third"])
        .await
        .expect("push by id");
    let (latest, _) = org
        .org()
        .streaming
        .channel_state("/u/Alerts")
        .expect("events raised");
    assert!(latest >= 3, "{latest}");
    let missing = client.push_generic("/u/Nope", &["x"]).await.unwrap_err();
    assert!(matches!(missing, RestError::NotFound { .. }), "{missing:?}");
}

#[tokio::test]
async fn transport_errors_and_timeouts_are_typed() {
    // Nothing listens on this port once the emulator is gone.
    let org = emulator().await;
    let auth = login(&org);
    let client = SalesforceClient::builder(auth)
        .timeout(Duration::from_millis(500))
        .build();
    client.session().await.expect("logged in");
    let mut org = org;
    org.stop().await;
    let error = client.limits().await.unwrap_err();
    assert!(matches!(error, RestError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
}
