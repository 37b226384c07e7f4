//! PushTopics: Salesforce's validation when saving one, and the
//! NotifyForFields / NotifyForOperation* rules when records change.

mod common;

use reqwest::Method;
use serde_json::{Value, json};

async fn topic(org: &common::Org, name: &str, query: &str, extra: Value) -> String {
    let mut body = json!({"Name": name, "Query": query, "ApiVersion": 62.0});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    org.create("PushTopic", body).await
}

async fn refused(org: &common::Org, name: &str, query: &str) -> Value {
    let (status, errors) = org
        .send(
            Method::POST,
            "sobjects/PushTopic",
            json!({"Name": name, "Query": query, "ApiVersion": 62.0}),
        )
        .await;
    assert_eq!(status, 400, "{name}: {query} was accepted");
    errors[0].clone()
}

#[tokio::test]
async fn pushtopic_validation() {
    let org = common::start().await;
    topic(
        &org,
        "ContactUpdates",
        "SELECT Id, Name FROM Contact",
        json!({}),
    )
    .await;
    let duplicate = refused(&org, "ContactUpdates", "SELECT Id FROM Contact").await;
    assert_eq!(duplicate["errorCode"], "DUPLICATE_VALUE");
    let long = refused(
        &org,
        "ThisNameIsWayTooLongForATopic",
        "SELECT Id FROM Contact",
    )
    .await;
    assert_eq!(long["errorCode"], "STRING_TOO_LONG");
    for query in [
        "SELECT Name FROM Contact",
        "SELECT Id FROM Contact ORDER BY Name",
        "SELECT Id FROM Contact LIMIT 5",
        "SELECT Id, Account.Name FROM Contact",
        "SELECT COUNT() FROM Contact",
        "SELECT Id FROM Contact WHERE NOT Email = 'x'",
        "SELECT Id FROM Nope__x",
        "SELECT Id, Bogus FROM Contact",
        "SELEC Id FROM Contact",
    ] {
        let error = refused(&org, "Bad", query).await;
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{query}: {error}"
        );
    }
    let bad_mode = org
        .send(
            Method::POST,
            "sobjects/PushTopic",
            json!({"Name": "BadMode", "Query": "SELECT Id FROM Contact", "ApiVersion": 62.0, "NotifyForFields": "Sometimes"}),
        )
        .await;
    assert_eq!(bad_mode.0, 400);
}

#[tokio::test]
async fn notifications_follow_where_and_operations() {
    let org = common::start().await;
    topic(
        &org,
        "NewYorkContacts",
        "SELECT Id, Name, Email FROM Contact WHERE Department = 'NY'",
        json!({"NotifyForFields": "Referenced", "NotifyForOperationUndelete": false}),
    )
    .await;
    let mut bayeux = org.bayeux();
    bayeux.open("/topic/NewYorkContacts", None).await;

    let ny = org
        .create(
            "Contact",
            json!({"FirstName": "Ann", "LastName": "Lee", "Department": "NY"}),
        )
        .await;
    org.create(
        "Contact",
        json!({"LastName": "Elsewhere", "Department": "SF"}),
    )
    .await;
    org.update("Contact", &ny, json!({"Email": "ann@example.com"}))
        .await;
    org.update("Contact", &ny, json!({"Title": "Boss"})).await; // Title is not referenced
    org.delete("Contact", &ny).await;
    let undelete = org
        .http
        .post(org.url(&format!("/_emulator/records/Contact/{ny}/undelete")))
        .send()
        .await
        .expect("undelete");
    assert_eq!(undelete.status(), 204);

    let events = bayeux.events(3, 3).await;
    let types: Vec<&str> = events
        .iter()
        .filter_map(|e| e["data"]["event"]["type"].as_str())
        .collect();
    assert_eq!(types, vec!["created", "updated", "deleted"]);
    let created = &events[0]["data"];
    assert_eq!(
        created["sobject"],
        json!({"Id": ny, "Name": "Ann Lee", "Email": null})
    );
    assert!(
        created["event"]["createdDate"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z'))
    );
    assert_eq!(events[1]["data"]["sobject"]["Email"], "ann@example.com");
    assert_eq!(events[2]["data"]["sobject"], json!({"Id": ny}));
    assert_eq!(events[0]["channel"], "/topic/NewYorkContacts");
    // Nothing else is pending: the Title change and the undelete raised nothing.
    assert!(bayeux.events(1, 1).await.is_empty());
}

#[tokio::test]
async fn notify_for_fields_modes() {
    let org = common::start().await;
    let query = "SELECT Id, Email FROM Contact WHERE Department != null";
    for (name, mode) in [
        ("ModeAll", "All"),
        ("ModeSelect", "Select"),
        ("ModeWhere", "Where"),
        ("ModeReferenced", "Referenced"),
    ] {
        topic(
            &org,
            name,
            query,
            json!({"NotifyForFields": mode, "NotifyForOperationCreate": false}),
        )
        .await;
    }
    let mut clients = Vec::new();
    for name in ["ModeAll", "ModeSelect", "ModeWhere", "ModeReferenced"] {
        let mut bayeux = org.bayeux();
        bayeux.open(&format!("/topic/{name}"), None).await;
        clients.push(bayeux);
    }
    let id = org
        .create("Contact", json!({"LastName": "X", "Department": "D"}))
        .await;
    org.update("Contact", &id, json!({"Title": "unreferenced"}))
        .await;
    org.update("Contact", &id, json!({"Email": "select@example.com"}))
        .await;
    org.update("Contact", &id, json!({"Department": "where"}))
        .await;

    let mut counts = Vec::new();
    for bayeux in &mut clients {
        counts.push(bayeux.events(4, 1).await.len());
    }
    // All: every update; Select: the Email change; Where: the Department change; Referenced: both.
    assert_eq!(counts, vec![3, 1, 1, 2]);
}

#[tokio::test]
async fn inactive_topics_notify_nobody_and_cannot_be_subscribed() {
    let org = common::start().await;
    let id = topic(&org, "Paused", "SELECT Id FROM Lead", json!({})).await;
    let mut bayeux = org.bayeux();
    bayeux.open("/topic/Paused", None).await;
    org.update("PushTopic", &id, json!({"IsActive": false}))
        .await;
    org.create("Lead", json!({"LastName": "L", "Company": "C"}))
        .await;
    assert!(bayeux.events(1, 1).await.is_empty());
    let mut late = org.bayeux();
    late.handshake().await;
    assert_eq!(
        late.subscribe("/topic/Paused", None).await["successful"],
        false
    );
}
