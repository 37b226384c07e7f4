//! Change Data Capture gap events: the emulator raises them on demand (the
//! `gap-events` and `gap-overflow` faults: a header with the record ids,
//! or the entity and time, and no field values), on CometD and Pub/Sub
//! alike; with `fetch_gap_records` both clients read the records through
//! the REST API and hand them out in the event (`"fetched": true`),
//! without it the event passes as it came.

mod pubsub_support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::StreamingClient;
use sfstream_salesforce::replay::ReplayFrom;
use sfstream_testkit::emulator::{authenticator, create};

const CONTACTS: &str = "/data/ContactChangeEvent";

async fn fault(org: &Emulator, name: &str, body: Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/_emulator/faults/{name}", org.url()))
        .json(&body)
        .send()
        .await
        .expect("fault");
    assert_eq!(response.status(), 200, "arming {name}");
}

/// The payloads of the next `n` CometD events (10 s at most).
async fn payloads(events: &mut sfstream_salesforce::StreamMessages, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        let item = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap_or_else(|_| panic!("only {} events in time: {got:?}", got.len()))
            .expect("the stream goes on")
            .expect("an event");
        got.push(item.data_value().expect("json")["payload"].clone());
    }
    got
}

fn change_type(payload: &Value) -> &str {
    payload["ChangeEventHeader"]["changeType"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn cometd_gap_events_get_their_records_fetched() {
    let org = Emulator::start(EmulatorConfig::for_tests())
        .await
        .expect("emulator");
    let user = org.org().user_id();
    let (client, mut events) = StreamingClient::builder(authenticator(&org.url()))
        .fetch_gap_records(true)
        .connect()
        .await
        .expect("connects");
    client
        .subscribe_from(CONTACTS, ReplayFrom::New)
        .await
        .expect("subscribes");

    let ada = create(
        &org,
        "Contact",
        json!({"LastName": "Lovelace", "FirstName": "Ada"}),
    );
    let id = ada.record["Id"].as_str().expect("id").to_string();
    // The next two changes of a Contact raise gap events.
    fault(&org, "gap-events", json!({"entity": "Contact", "count": 2})).await;
    let fields = json!({"FirstName": "Augusta"});
    org.org()
        .update_record(
            "Contact",
            &id,
            fields.as_object().cloned().unwrap_or_default(),
            &user,
        )
        .expect("update");
    org.org()
        .delete_record("Contact", &id, &user)
        .expect("delete");
    create(&org, "Contact", json!({"LastName": "Hopper"}));

    let got = payloads(&mut events, 4).await;
    let types: Vec<&str> = got.iter().map(change_type).collect();
    assert_eq!(types, ["CREATE", "GAP_UPDATE", "GAP_DELETE", "CREATE"]);
    // A normal event is untouched.
    assert_eq!(got[0]["FirstName"], "Ada");
    assert!(got[0].get("fetched").is_none(), "{}", got[0]);
    // The gap update: the record as it is now, read by its id.
    assert_eq!(got[1]["ChangeEventHeader"]["recordIds"], json!([id]));
    assert_eq!(got[1]["fetched"], true, "{}", got[1]);
    let records = got[1]["fetchedRecords"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{}", got[1]);
    assert_eq!(records[0]["Id"], id.as_str());
    assert_eq!(records[0]["LastName"], "Lovelace");
    // The gap delete: read with queryAll, so the deleted record is there.
    let deleted = &got[2]["fetchedRecords"][0];
    assert_eq!(deleted["Id"], id.as_str(), "{}", got[2]);
    assert_eq!(deleted["IsDeleted"], true);
    assert_eq!(got[3]["LastName"], "Hopper");
    client.close().await;
}

#[tokio::test]
async fn without_the_option_gap_events_pass_unchanged_with_no_field_values() {
    let org = Emulator::start(EmulatorConfig::for_tests())
        .await
        .expect("emulator");
    let (client, mut events) = StreamingClient::builder(authenticator(&org.url()))
        .connect()
        .await
        .expect("connects");
    client
        .subscribe_from(CONTACTS, ReplayFrom::New)
        .await
        .expect("subscribes");
    fault(&org, "gap-events", json!({"entity": "Contact", "count": 1})).await;
    let id = create(&org, "Contact", json!({"LastName": "Noether"})).record["Id"].clone();
    let got = payloads(&mut events, 1).await;
    assert_eq!(change_type(&got[0]), "GAP_CREATE");
    assert_eq!(got[0]["ChangeEventHeader"]["recordIds"], json!([id]));
    // The header alone: no field values, nothing fetched.
    let keys: Vec<&String> = got[0].as_object().expect("payload").keys().collect();
    assert_eq!(keys, ["ChangeEventHeader"], "{}", got[0]);
    client.close().await;
}

#[tokio::test]
async fn pubsub_overflow_and_gap_events_get_their_records_fetched() {
    let org = pubsub_support::org().await;
    let (client, mut messages) = org
        .builder()
        .fetch_gap_records(true)
        .connect()
        .await
        .expect("connects");
    client
        .subscribe(pubsub_support::ACCOUNTS)
        .await
        .expect("subscribes");
    org.wait_subscribed(pubsub_support::ACCOUNTS).await;

    org.fault("gap-overflow", json!({"entity": "Account", "count": 1}))
        .await;
    let acme = create(
        &org.emulator,
        "Account",
        json!({"Name": "Overflowing Acme"}),
    );
    org.fault("gap-events", json!({"entity": "Account", "count": 1}))
        .await;
    let globex = create(&org.emulator, "Account", json!({"Name": "Gapped Globex"}));

    let got = pubsub_support::take(&mut messages, 2).await;
    let overflow = &got[0].payload;
    assert_eq!(change_type(overflow), "GAP_OVERFLOW", "{overflow}");
    assert_eq!(overflow["ChangeEventHeader"]["recordIds"], json!([]));
    assert_eq!(overflow["fetched"], true, "{overflow}");
    // The entity's records changed up to the commit: the overflowing one
    // among them.
    let names: Vec<&str> = overflow["fetchedRecords"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["Name"].as_str())
        .collect();
    assert!(names.contains(&"Overflowing Acme"), "{names:?}");
    // Read by SystemModstamp up to the commit (whole seconds).
    let commit = overflow["ChangeEventHeader"]["commitTimestamp"]
        .as_i64()
        .expect("commit time");
    assert_eq!(commit, acme.at.timestamp_millis());

    let gap = &got[1].payload;
    assert_eq!(change_type(gap), "GAP_CREATE", "{gap}");
    assert_eq!(gap["fetchedRecords"][0]["Id"], globex.record["Id"]);
    assert_eq!(gap["fetchedRecords"][0]["Name"], "Gapped Globex");
    // The CLI line carries the same payload.
    assert_eq!(got[1].line_data()["payload"]["fetched"], true);
    client.close().await;
}

#[tokio::test]
async fn the_gap_faults_are_listed_and_checked() {
    let org = Emulator::start(EmulatorConfig::for_tests())
        .await
        .expect("emulator");
    for name in ["gap-events", "gap-overflow"] {
        assert!(sfstream_emulator::faults::FAULTS.contains(&name));
    }
    let response = reqwest::Client::new()
        .post(format!("{}/_emulator/faults/gap-events", org.url()))
        .json(&json!({"count": 1}))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 400, "an entity is required");
}
