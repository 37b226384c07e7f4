//! REST API: records, upsert, describe, limits and errors, over HTTP.

mod common;

use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn record_lifecycle_with_system_fields() {
    let org = common::start().await;
    let id = org
        .create(
            "Contact",
            json!({"FirstName": "Ada", "LastName": "Lovelace"}),
        )
        .await;
    assert!(id.starts_with("003") && id.len() == 18, "{id}");

    let (status, record) = org.get(&format!("sobjects/Contact/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(record["attributes"]["type"], "Contact");
    assert_eq!(
        record["attributes"]["url"],
        format!("/services/data/v62.0/sobjects/Contact/{id}")
    );
    assert_eq!(record["Name"], "Ada Lovelace");
    assert_eq!(record["Id"], id);
    let created = record["CreatedDate"].as_str().expect("CreatedDate");
    assert!(
        created.ends_with("+0000") && created.len() == 28,
        "{created}"
    );
    assert_eq!(record["LastModifiedById"], org.emulator.org().user_id());

    // The 15-character form and chosen fields.
    let (status, record) = org
        .get(&format!(
            "sobjects/Contact/{}?fields=Email,LastName",
            &id[..15]
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(record["LastName"], "Lovelace");
    assert!(record.get("FirstName").is_none());

    org.update("Contact", &id, json!({"Email": "ada@example.com"}))
        .await;
    let (_, record) = org.get(&format!("sobjects/Contact/{id}")).await;
    assert_eq!(record["Email"], "ada@example.com");

    org.delete("Contact", &id).await;
    let (status, errors) = org.get(&format!("sobjects/Contact/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(errors[0]["errorCode"], "NOT_FOUND");

    // Deleted records can be undeleted (through the control API; REST has no undelete).
    let response = org
        .http
        .post(org.url(&format!("/_emulator/records/Contact/{id}/undelete")))
        .send()
        .await
        .expect("undelete");
    assert_eq!(response.status(), 204);
    assert_eq!(org.get(&format!("sobjects/Contact/{id}")).await.0, 200);
}

#[tokio::test]
async fn every_response_carries_limit_info_and_bad_tokens_get_401() {
    let org = common::start().await;
    let response = org
        .http
        .get(org.data("limits/"))
        .bearer_auth(&org.token)
        .send()
        .await
        .expect("limits");
    assert_eq!(response.status(), 200);
    let info = response.headers()["sforce-limit-info"]
        .to_str()
        .expect("header")
        .to_string();
    assert!(
        info.starts_with("api-usage=") && info.ends_with("/100000"),
        "{info}"
    );
    let (_, limits) = common::status_json(response).await;
    assert_eq!(limits["DailyApiRequests"]["Max"], 100000);

    let response = org
        .http
        .get(org.data("sobjects"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 401);
    let (_, errors) = common::status_json(response).await;
    assert_eq!(
        errors,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );

    // Invalidated tokens stop working.
    org.fault("invalidate-tokens", json!({})).await;
    assert_eq!(org.get("limits").await.0, 401);
}

#[tokio::test]
async fn input_errors_use_salesforce_codes() {
    let org = common::start().await;
    let (status, errors) = org
        .send(Method::POST, "sobjects/Contact", json!({"FirstName": "x"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(errors[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(errors[0]["fields"], json!(["LastName"]));

    let (status, errors) = org
        .send(
            Method::POST,
            "sobjects/Contact",
            json!({"LastName": "x", "Bogus": 1}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(errors[0]["errorCode"], "INVALID_FIELD");

    let (status, errors) = org
        .send(Method::POST, "sobjects/Nope", json!({"Name": "x"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(errors[0]["errorCode"], "INVALID_TYPE");

    let response = org
        .http
        .post(org.data("sobjects/Contact"))
        .bearer_auth(&org.token)
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400);
    let (_, errors) = common::status_json(response).await;
    assert_eq!(errors[0]["errorCode"], "JSON_PARSER_ERROR");

    let (status, errors) = org
        .send(
            Method::PATCH,
            "sobjects/Contact/003badid",
            json!({"LastName": "y"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(errors[0]["errorCode"], "MALFORMED_ID");

    let (status, _) = org.get("sobjects/Contact/describe/extra/path").await;
    assert_eq!(status, 404);
    let response = org
        .http
        .get(org.url("/services/data/v7.0/sobjects"))
        .bearer_auth(&org.token)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn upsert_by_external_id_creates_updates_and_detects_duplicates() {
    let org = common::start().await;
    let path = "sobjects/Account/External_Id__c/ACME-1";
    let (status, reply) = org.send(Method::PATCH, path, json!({"Name": "Acme"})).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["created"], true);
    let id = reply["id"].as_str().expect("id").to_string();

    let (status, reply) = org
        .send(Method::PATCH, path, json!({"Name": "Acme Corp"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        reply,
        json!({"id": id, "success": true, "errors": [], "created": false})
    );

    let (status, record) = org.get(path).await;
    assert_eq!(status, 200);
    assert_eq!(record["Name"], "Acme Corp");

    org.create(
        "Account",
        json!({"Name": "Clone", "External_Id__c": "ACME-1"}),
    )
    .await;
    let (status, _) = org
        .send(Method::PATCH, path, json!({"Name": "Again"}))
        .await;
    assert_eq!(status, 300);

    let (status, errors) = org
        .send(
            Method::PATCH,
            "sobjects/Account/Phone/123",
            json!({"Name": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Provided external ID field does not exist")
    );
}

#[tokio::test]
async fn describe_and_global_describe() {
    let org = common::start().await;
    let (status, global) = org.get("sobjects/").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = global["sobjects"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for expected in [
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "Case",
        "Task",
        "User",
        "RecordType",
        "PushTopic",
        "StreamingChannel",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let (status, describe) = org.get("sobjects/Case/describe").await;
    assert_eq!(status, 200);
    assert_eq!(describe["keyPrefix"], "500");
    let fields: Vec<&str> = describe["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(fields.contains(&"CaseNumber") && !fields.contains(&"Name"));
    let (status, info) = org.get("sobjects/Contact").await;
    assert_eq!(status, 200);
    assert_eq!(info["objectDescribe"]["keyPrefix"], "003");
    assert_eq!(org.get("sobjects/Nope/describe").await.0, 404);
}

#[tokio::test]
async fn versions_are_listed_without_a_token() {
    let org = common::start().await;
    let response = org
        .http
        .get(org.url("/services/data/"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    let (_, versions) = common::status_json(response).await;
    let last = versions
        .as_array()
        .and_then(|v| v.last())
        .cloned()
        .expect("versions");
    assert_eq!(last["version"], sfstream_emulator::LATEST_API_VERSION);
    assert_eq!(
        last["url"],
        format!("/services/data/v{}", sfstream_emulator::LATEST_API_VERSION)
    );
}
