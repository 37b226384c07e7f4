//! SOQL over REST: filters, ordering, paging with nextRecordsUrl, queryAll
//! and the error codes.

mod common;

use serde_json::{Value, json};
use sfstream_testkit::emulator::USERNAME;

async fn query(org: &common::Org, resource: &str, soql: &str) -> (u16, Value) {
    let response = org
        .http
        .get(org.data(resource))
        .query(&[("q", soql)])
        .bearer_auth(&org.token)
        .send()
        .await
        .expect("query");
    common::status_json(response).await
}

#[tokio::test]
async fn filters_order_and_projection() {
    let org = common::start().await;
    for (last, dept, n) in [
        ("Ames", "NY", 3),
        ("Baker", "SF", 1),
        ("Cole", "NY", 2),
        ("O'Hara", "LA", 5),
    ] {
        org.create(
            "Contact",
            json!({"LastName": last, "Department": dept, "Title": format!("T{n}")}),
        )
        .await;
    }
    let (status, result) = query(
        &org,
        "query/",
        "SELECT Id, LastName FROM Contact WHERE Department IN ('NY', 'LA') AND (LastName LIKE 'a%' OR LastName = 'O\\'Hara') ORDER BY LastName DESC",
    )
    .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["totalSize"], 2);
    assert_eq!(result["done"], true);
    let names: Vec<&str> = result["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["LastName"].as_str())
        .collect();
    assert_eq!(names, vec!["O'Hara", "Ames"]);
    let first = &result["records"][0];
    assert_eq!(first["attributes"]["type"], "Contact");
    let keys: Vec<&String> = first.as_object().expect("record").keys().collect();
    assert_eq!(keys, vec!["attributes", "Id", "LastName"]);

    let (_, count) = query(
        &org,
        "query",
        "SELECT COUNT() FROM Contact WHERE Department = 'ny'",
    )
    .await;
    assert_eq!(count["totalSize"], 2);
    let (_, user) = query(
        &org,
        "query",
        &format!("SELECT Id, Username FROM User WHERE Username = '{USERNAME}'"),
    )
    .await;
    assert_eq!(user["records"][0]["Id"], org.emulator.org().user_id());
    let (_, types) = query(&org, "query", "SELECT Id, DeveloperName FROM RecordType WHERE SobjectType = 'Contact' AND DeveloperName = 'Student'").await;
    assert_eq!(types["totalSize"], 1);
}

#[tokio::test]
async fn paging_follows_next_records_url_and_query_all_sees_deleted_rows() {
    let mut config = common::config();
    config.query_batch_size = 2;
    let org = common::start_with(config).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            org.create("Lead", json!({"LastName": format!("L{i}"), "Company": "C"}))
                .await,
        );
    }
    org.delete("Lead", &ids[0]).await;

    let (_, mut page) = query(&org, "query", "SELECT Id FROM Lead").await;
    assert_eq!(page["totalSize"], 4);
    let mut seen = Vec::new();
    loop {
        seen.extend(
            page["records"]
                .as_array()
                .expect("records")
                .iter()
                .filter_map(|r| r["Id"].as_str().map(str::to_string)),
        );
        if page["done"] == true {
            break;
        }
        let next = page["nextRecordsUrl"]
            .as_str()
            .expect("nextRecordsUrl")
            .to_string();
        assert!(next.starts_with("/services/data/v62.0/query/01g"), "{next}");
        let response = org
            .http
            .get(org.url(&next))
            .bearer_auth(&org.token)
            .send()
            .await
            .expect("next");
        page = common::status_json(response).await.1;
    }
    assert_eq!(seen, ids[1..].to_vec());

    let (_, all) = query(
        &org,
        "queryAll",
        "SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true",
    )
    .await;
    assert_eq!(all["totalSize"], 1);
    assert_eq!(all["records"][0]["Id"], ids[0]);
}

#[tokio::test]
async fn query_errors() {
    let org = common::start().await;
    for (soql, code) in [
        ("SELECT Id FORM Contact", "MALFORMED_QUERY"),
        ("SELECT Id, Bogus FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
        (
            "SELECT Id FROM Contact WHERE Id = 'xyz'",
            "INVALID_QUERY_FILTER_OPERATOR",
        ),
        (
            "SELECT Id FROM Contact WHERE Name = :name",
            "MALFORMED_QUERY",
        ),
    ] {
        let (status, errors) = query(&org, "query", soql).await;
        assert_eq!(status, 400, "{soql}");
        assert_eq!(errors[0]["errorCode"], code, "{soql}: {errors}");
    }
    let (status, errors) = query(&org, "query", "").await;
    assert_eq!(
        (status, errors[0]["errorCode"].as_str()),
        (400, Some("MALFORMED_QUERY"))
    );
    let response = org
        .http
        .get(org.data("query/01gBOGUS-2000"))
        .bearer_auth(&org.token)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 400);
}
