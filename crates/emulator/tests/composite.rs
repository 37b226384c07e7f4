//! Composite resources (sObject collections, batch) and SOSL search, over HTTP.

mod common;

use reqwest::Method;
use serde_json::{Value, json};

fn accounts(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("Acme {i}")}))
        .collect()
}

fn ids(results: &Value) -> Vec<String> {
    results
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn collections_create_update_delete_200() {
    let org = common::start().await;
    let (status, created) = org
        .send(
            Method::POST,
            "composite/sobjects",
            json!({"allOrNone": true, "records": accounts(200)}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert!(
        created
            .as_array()
            .expect("array")
            .iter()
            .all(|r| r["success"] == true)
    );
    let ids = ids(&created);
    assert_eq!(ids.len(), 200);

    let updates: Vec<Value> = ids
        .iter()
        .map(|id| json!({"attributes": {"type": "Account"}, "id": id, "Industry": "Energy"}))
        .collect();
    let (status, updated) = org
        .send(
            Method::PATCH,
            "composite/sobjects",
            json!({"records": updates}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert!(
        updated
            .as_array()
            .expect("array")
            .iter()
            .all(|r| r["success"] == true)
    );
    let (_, one) = org.get(&format!("sobjects/Account/{}", ids[199])).await;
    assert_eq!(one["Industry"], "Energy");

    let (status, deleted) = org
        .send(
            Method::DELETE,
            &format!("composite/sobjects?ids={}&allOrNone=false", ids.join(",")),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert!(
        deleted
            .as_array()
            .expect("array")
            .iter()
            .all(|r| r["success"] == true)
    );
    let (_, count) = org.get("query?q=SELECT+COUNT()+FROM+Account").await;
    assert_eq!(count["totalSize"], 0);

    // Deleting again: each id fails on its own.
    let (_, again) = org
        .send(
            Method::DELETE,
            &format!("composite/sobjects?ids={},001000000000000AAA", ids[0]),
            Value::Null,
        )
        .await;
    assert_eq!(again[0]["success"], false);
    assert_eq!(again[0]["id"], ids[0]);
    assert_eq!(again[0]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
    assert_eq!(
        again[1]["errors"][0]["statusCode"],
        "INVALID_CROSS_REFERENCE_KEY"
    );
}

#[tokio::test]
async fn collections_refuse_more_than_200() {
    let org = common::start().await;
    let (status, errors) = org
        .send(
            Method::POST,
            "composite/sobjects",
            json!({"records": accounts(201)}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(errors[0]["errorCode"], "EXCEEDED_ID_LIMIT");
    let many: Vec<String> = (0..201).map(|i| format!("001{i:015}")).collect();
    let (status, errors) = org
        .send(
            Method::DELETE,
            &format!("composite/sobjects?ids={}", many.join(",")),
            Value::Null,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(errors[0]["errorCode"], "EXCEEDED_ID_LIMIT");
}

#[tokio::test]
async fn all_or_none_rolls_back_and_partial_saves() {
    let org = common::start().await;
    let mut records = accounts(3);
    records[1] = json!({"attributes": {"type": "Account"}, "Industry": "no name"});
    let (status, results) = org
        .send(
            Method::POST,
            "composite/sobjects",
            json!({"allOrNone": true, "records": records.clone()}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    let (_, count) = org.get("query?q=SELECT+COUNT()+FROM+Account").await;
    assert_eq!(count["totalSize"], 0, "rolled back");
    // No event was raised for the rolled-back record.
    assert!(
        org.emulator
            .org()
            .streaming
            .channel_state("/data/AccountChangeEvent")
            .is_none()
    );

    let (_, results) = org
        .send(
            Method::POST,
            "composite/sobjects",
            json!({"allOrNone": false, "records": records}),
        )
        .await;
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[1]["success"], false);
    assert_eq!(results[2]["success"], true);
    let (_, count) = org.get("query?q=SELECT+COUNT()+FROM+Account").await;
    assert_eq!(count["totalSize"], 2);

    // A record without a type, an update without an id.
    let (_, results) = org
        .send(
            Method::POST,
            "composite/sobjects",
            json!({"records": [{"Name": "typeless"}]}),
        )
        .await;
    assert_eq!(results[0]["errors"][0]["statusCode"], "INVALID_TYPE");
    let (_, results) = org
        .send(
            Method::PATCH,
            "composite/sobjects",
            json!({"records": [{"attributes": {"type": "Account"}, "Name": "x"}]}),
        )
        .await;
    assert_eq!(results[0]["errors"][0]["statusCode"], "MISSING_ARGUMENT");
}

#[tokio::test]
async fn batch_dispatches_subrequests() {
    let org = common::start().await;
    let id = org.create("Account", json!({"Name": "Batch"})).await;
    let (status, reply) = org
        .send(
            Method::POST,
            "composite/batch",
            json!({"batchRequests": [
                {"method": "GET", "url": format!("v62.0/sobjects/Account/{id}?fields=Name")},
                {"method": "PATCH", "url": format!("v62.0/sobjects/Account/{id}"), "richInput": {"Industry": "Retail"}},
                {"method": "POST", "url": "v62.0/sobjects/Contact/", "richInput": {"LastName": "Batched"}},
                {"method": "GET", "url": "v62.0/query?q=SELECT+Id,Industry+FROM+Account"},
                {"method": "GET", "url": "v62.0/sobjects/Account/001000000000000AAA"},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["hasErrors"], true);
    let results = reply["results"].as_array().expect("results");
    assert_eq!(results[0]["statusCode"], 200);
    assert_eq!(results[0]["result"]["Name"], "Batch");
    assert_eq!(results[1]["statusCode"], 204);
    assert_eq!(results[1]["result"], Value::Null);
    assert_eq!(results[2]["statusCode"], 201);
    assert_eq!(results[3]["result"]["records"][0]["Industry"], "Retail");
    assert_eq!(results[4]["statusCode"], 404);
    assert_eq!(results[4]["result"][0]["errorCode"], "NOT_FOUND");

    // haltOnError stops after the first failure.
    let (_, reply) = org
        .send(
            Method::POST,
            "composite/batch",
            json!({"haltOnError": true, "batchRequests": [
                {"method": "GET", "url": "v62.0/sobjects/Account/001000000000000AAA"},
                {"method": "GET", "url": "v62.0/limits"},
            ]}),
        )
        .await;
    assert_eq!(reply["results"][1]["statusCode"], 412);

    // More than 25 subrequests.
    let many: Vec<Value> = (0..26)
        .map(|_| json!({"method": "GET", "url": "v62.0/limits"}))
        .collect();
    let (status, errors) = org
        .send(
            Method::POST,
            "composite/batch",
            json!({"batchRequests": many}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(errors[0]["errorCode"], "INVALID_BATCH_REQUEST");

    // Subrequests need a valid session too: the batch itself is refused without one.
    let response = org
        .http
        .post(org.data("composite/batch"))
        .bearer_auth("bogus")
        .json(&json!({"batchRequests": [{"method": "GET", "url": "v62.0/limits"}]}))
        .send()
        .await
        .expect("batch");
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn sosl_search() {
    let org = common::start().await;
    org.create(
        "Contact",
        json!({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@engine.org"}),
    )
    .await;
    org.create(
        "Contact",
        json!({"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@navy.mil", "Phone": "555-0100"}),
    )
    .await;
    org.create("Account", json!({"Name": "Lovelace Engines"}))
        .await;

    let org = &org;
    let search = |q: &str| {
        let url = format!(
            "search?q={}",
            q.replace(' ', "+").replace('{', "%7B").replace('}', "%7D")
        );
        async move { org.get(&url).await }
    };
    let (status, found) =
        search("FIND {lovelace} RETURNING Contact(Id, Name), Account(Name)").await;
    assert_eq!(status, 200, "{found}");
    let records = found["searchRecords"].as_array().expect("records");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["attributes"]["type"], "Contact");
    assert_eq!(records[0]["Name"], "Ada Lovelace");
    assert_eq!(records[1]["Name"], "Lovelace Engines");

    let (_, found) = search("FIND {navy} IN EMAIL FIELDS RETURNING Contact(Email)").await;
    assert_eq!(found["searchRecords"][0]["Email"], "grace@navy.mil");
    let (_, found) = search("FIND {navy} IN NAME FIELDS RETURNING Contact").await;
    assert_eq!(found["searchRecords"].as_array().map(Vec::len), Some(0));
    let (_, found) = search("FIND {555*} IN PHONE FIELDS RETURNING Contact(LastName)").await;
    assert_eq!(found["searchRecords"][0]["LastName"], "Hopper");
    // Without RETURNING: every object, ids only; LIMIT caps the total.
    let (_, found) = search("FIND {lovelace}").await;
    assert_eq!(found["searchRecords"].as_array().map(Vec::len), Some(2));
    let (_, found) = search("FIND {lovelace} LIMIT 1").await;
    assert_eq!(found["searchRecords"].as_array().map(Vec::len), Some(1));
    // SOQL clauses inside RETURNING.
    let (_, found) =
        search("FIND {ac} RETURNING Contact(LastName WHERE Email LIKE '%navy%' ORDER BY LastName)")
            .await;
    assert_eq!(found["searchRecords"].as_array().map(Vec::len), Some(1));

    for (q, code) in [
        ("FIND lovelace", "MALFORMED_SEARCH"),
        ("FIND {x}", "MALFORMED_SEARCH"),
        ("FIND {lovelace} RETURNING Nope__x", "INVALID_TYPE"),
        ("FIND {lovelace} RETURNING Contact(Bogus)", "INVALID_FIELD"),
    ] {
        let (status, errors) = search(q).await;
        assert_eq!(status, 400, "{q}: {errors}");
        assert_eq!(errors[0]["errorCode"], code, "{q}");
    }
}
