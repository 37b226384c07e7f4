//! The Pub/Sub client against the emulated org: subscribing, decoding
//! (Change Data Capture bitmaps as field names), the CLI's line data,
//! publishing (Publish and PublishStream), topics and schemas, and managed
//! subscriptions.

#[path = "pubsub_support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use sfstream_salesforce::Delivery;
use sfstream_salesforce::pubsub::{PubSubError, PubSubEvent, Published};
use sfstream_salesforce::replay::{ReplayFrom, ReplayStore};
use support::{ACCOUNTS, assert_increasing, next, number, numbers, org, take};

#[tokio::test]
async fn change_events_are_decoded_with_field_names() {
    let org = org().await;
    org.accounts(3);
    let (client, mut messages) = org
        .builder()
        .default_replay(ReplayFrom::All)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    let got = take(&mut messages, 3).await;
    assert_increasing(&numbers(&got));
    let first = &got[0];
    assert_eq!(first.topic, ACCOUNTS);
    assert!(!first.schema_id.is_empty());
    let header = &first.payload["ChangeEventHeader"];
    assert_eq!(header["changeType"], "CREATE", "{}", first.payload);
    assert_eq!(header["entityName"], "Account");
    let changed = header["changedFields"].as_array().expect("names");
    assert!(
        changed
            .iter()
            .all(|f| f.as_str().is_some_and(|f| !f.starts_with("0x"))),
        "bitmaps not expanded: {changed:?}"
    );
    assert_eq!(first.payload["Name"], "Acme 0");
    let line = first.line_data();
    assert_eq!(line["schema"], first.schema_id.as_str());
    assert_eq!(line["payload"], first.payload);
    assert_eq!(
        line["event"]["replayId"].as_str(),
        Some(first.replay_id_text().as_str())
    );
    assert_eq!(
        sfstream_pubsub::replay_id::from_text(&first.replay_id_text()).ok(),
        Some(first.replay_id.clone())
    );
    client.close().await;
}

#[tokio::test]
async fn topics_schemas_and_unknown_topics() {
    let org = org().await;
    let (client, mut messages) = org.connect().await;
    let info = client.get_topic(ACCOUNTS).await.expect("topic");
    assert!(info.can_subscribe);
    let schema = client.get_schema(&info.schema_id).await.expect("schema");
    assert!(schema.contains("ChangeEventHeader"), "{schema}");
    let error = client
        .subscribe("/event/Nope__e")
        .await
        .expect_err("unknown");
    assert!(
        matches!(&error, PubSubError::Rpc { code, .. } if matches!(code, tonic::Code::NotFound | tonic::Code::PermissionDenied)),
        "{error:?}"
    );
    assert!(error.to_string().contains("/event/Nope__e"), "{error}");
    assert!(client.get_schema("nope").await.is_err());
    client.close().await;
    assert!(next(&mut messages, Duration::from_secs(1)).await.is_none());
}

async fn printer_status(org: &support::Org) -> &'static str {
    let reply = reqwest::Client::new()
        .post(format!(
            "{}/_emulator/platform-events/Printer_Status__e",
            org.emulator.url()
        ))
        .json(&json!({"fields": {"Printer_Model__c": "string", "Pages__c": "int"}}))
        .send()
        .await
        .expect("define");
    assert_eq!(reply.status(), 200);
    "/event/Printer_Status__e"
}

#[tokio::test]
async fn publish_round_trip_with_errors_per_event() {
    let org = org().await;
    let topic = printer_status(&org).await;
    let (client, mut messages) = org.connect().await;
    client.subscribe(topic).await.expect("subscribes");
    org.wait_subscribed(topic).await;
    let user = org.emulator.org().user_id();
    let event = |model: &str, pages: serde_json::Value| {
        json!({"CreatedDate": 1_712_666_096_000_i64, "CreatedById": user,
            "Printer_Model__c": model, "Pages__c": pages})
    };
    let results = client
        .publish(
            topic,
            &[
                event("XZO-5", json!(12)),
                event("bad", json!("twelve")),
                event("XZO-6", json!(3)),
            ],
        )
        .await
        .expect("publishes");
    assert_eq!(results.len(), 3);
    assert!(matches!(&results[0], Published::Ok { replay_id } if !replay_id.is_empty()));
    assert!(
        matches!(&results[1], Published::Failed { error } if error.contains("Pages__c")),
        "{:?}",
        results[1]
    );
    assert!(matches!(&results[2], Published::Ok { .. }));

    let publisher = client.publisher(topic).await.expect("stream");
    let streamed = publisher
        .publish(&[event("XZO-7", json!(1))])
        .await
        .expect("publishes");
    assert!(matches!(&streamed[0], Published::Ok { .. }), "{streamed:?}");

    let got = take(&mut messages, 3).await;
    let models: Vec<_> = got
        .iter()
        .map(|m| m.payload["Printer_Model__c"].clone())
        .collect();
    assert_eq!(models, vec![json!("XZO-5"), json!("XZO-6"), json!("XZO-7")]);
    assert_eq!(got[1].payload["Pages__c"], 3);
    if let Published::Ok { replay_id } = &results[0] {
        assert_eq!(&got[0].replay_id, replay_id);
    }
    client.close().await;
}

async fn managed(org: &support::Org) {
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/_emulator/managed-subscriptions", org.emulator.url()))
        .json(&json!({"developer_name": "Accounts", "topic_name": ACCOUNTS, "default_replay": "EARLIEST"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
}

async fn committed(org: &support::Org) -> Option<i64> {
    let listed: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/_emulator/managed-subscriptions",
            org.emulator.url()
        ))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    listed[0]["committed"].as_i64()
}

#[tokio::test]
async fn a_managed_subscription_resumes_after_the_acknowledged_events() {
    let org = org().await;
    managed(&org).await;
    org.accounts(3);
    let (client, mut messages) = org
        .builder()
        .delivery(Delivery::Acknowledged)
        .connect()
        .await
        .expect("connects");
    client.subscribe_managed("Accounts").await.expect("managed");
    let got = take(&mut messages, 3).await;
    assert_increasing(&numbers(&got));
    // Acknowledged out of order: the server's position stays in order.
    got[1].ack();
    got[0].ack();
    let second = number(&got[1].replay_id);
    for _ in 0..300 {
        if committed(&org).await == Some(second) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(committed(&org).await, Some(second));
    client.close().await;
    drop(messages);

    let (client, mut messages) = org.connect().await;
    client.subscribe_managed("Accounts").await.expect("managed");
    let again = take(&mut messages, 1).await;
    assert_eq!(again[0].replay_id, got[2].replay_id);
    // Automatic delivery commits on hand-out.
    for _ in 0..300 {
        if committed(&org).await == Some(number(&got[2].replay_id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(committed(&org).await, Some(number(&got[2].replay_id)));
    assert!(org.count(|e| matches!(e, PubSubEvent::Subscribed { .. })) >= 2);
    client.close().await;
}

#[tokio::test]
async fn a_schema_change_mid_stream_is_fetched_and_decoded() {
    let org = org().await;
    let topic = printer_status(&org).await;
    let (client, mut messages) = org.connect().await;
    client.subscribe(topic).await.expect("subscribes");
    org.wait_subscribed(topic).await;
    let user = org.emulator.org().user_id();
    let results = client
        .publish(
            topic,
            &[json!({"CreatedDate": 1, "CreatedById": user, "Printer_Model__c": "A", "Pages__c": 1})],
        )
        .await
        .expect("publishes");
    assert!(matches!(&results[0], Published::Ok { .. }), "{results:?}");
    let before = take(&mut messages, 1).await;
    // The event gains a field: a new schema id.
    let reply = reqwest::Client::new()
        .post(format!(
            "{}/_emulator/platform-events/Printer_Status__e",
            org.emulator.url()
        ))
        .json(&json!({"fields": {"Printer_Model__c": "string", "Pages__c": "int", "Toner__c": "double"}}))
        .send()
        .await
        .expect("redefine");
    assert_eq!(reply.status(), 200);
    let results = client
        .publish(
            topic,
            &[json!({"CreatedDate": 2, "CreatedById": user, "Printer_Model__c": "B", "Pages__c": 2, "Toner__c": 0.5})],
        )
        .await
        .expect("publishes");
    assert!(matches!(&results[0], Published::Ok { .. }), "{results:?}");
    let after = take(&mut messages, 1).await;
    assert_ne!(after[0].schema_id, before[0].schema_id);
    assert_eq!(after[0].payload["Toner__c"], 0.5);
    assert_eq!(after[0].payload["Printer_Model__c"], "B");
    client.close().await;
}

#[tokio::test]
async fn one_subscription_per_topic_and_resubscribing_resumes_in_order() {
    let org = org().await;
    let store = std::sync::Arc::new(sfstream_salesforce::replay::MemoryStore::new());
    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .default_replay(ReplayFrom::All)
        .connect()
        .await
        .expect("connects");
    org.accounts(2);
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    let error = client.subscribe(ACCOUNTS).await.expect_err("twice");
    assert!(
        matches!(error, PubSubError::AlreadySubscribed { .. }),
        "{error:?}"
    );
    let mut got = take(&mut messages, 2).await;
    client.unsubscribe(ACCOUNTS);
    client
        .flush_within(Duration::from_secs(2))
        .await
        .expect("flush");
    // Free again; it resumes after the stored marker.
    let mut again = Err(PubSubError::Closed);
    for _ in 0..100 {
        again = client.subscribe(ACCOUNTS).await;
        if again.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    again.expect("resubscribes");
    org.accounts(2);
    got.extend(take(&mut messages, 2).await);
    assert_increasing(&numbers(&got));
    client
        .flush_within(Duration::from_secs(2))
        .await
        .expect("flush");
    let stored = store
        .get_opaque(ACCOUNTS)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        stored.replay_id, got[3].replay_id,
        "the new subscription's markers count"
    );
    // With the event's creation time (its commitTimestamp): the marker's age.
    let commit_ms = got[3].payload["ChangeEventHeader"]["commitTimestamp"]
        .as_i64()
        .expect("commitTimestamp");
    assert_eq!(
        got[3].created.map(|c| c.timestamp_millis()),
        Some(commit_ms)
    );
    assert_eq!(stored.created, got[3].created);
    client.close().await;
}

/// An access token given as is has no org id: it comes from the token's
/// prefix, and the token shows nowhere.
#[tokio::test]
async fn a_bare_access_token_gets_its_org_id_from_the_token() {
    use sfstream_salesforce::{Authenticator, Credentials};
    let org = org().await;
    let emulated = org.emulator.org();
    let token = emulated
        .tokens
        .issue(&emulated.org_id(), &emulated.user_id());
    let login = Authenticator::new(Credentials::access_token(token.clone(), org.emulator.url()));
    let (client, mut messages) = sfstream_salesforce::pubsub::PubSubClient::builder(login)
        .url(org.emulator.pubsub_url())
        .default_replay(ReplayFrom::All)
        .connect()
        .await
        .expect("connects");
    org.accounts(1);
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    take(&mut messages, 1).await;
    let shown = format!("{client:?}");
    assert!(!shown.contains(&token[20..]), "{shown}");
    client.close().await;

    let bare = Authenticator::new(Credentials::access_token(
        "not-an-org-token",
        org.emulator.url(),
    ));
    let error = sfstream_salesforce::pubsub::PubSubClient::builder(bare)
        .url(org.emulator.pubsub_url())
        .connect()
        .await
        .expect_err("no org id");
    assert!(matches!(error, PubSubError::NoOrgId), "{error:?}");
}

async fn open_streams(org: &support::Org) -> i64 {
    let stats: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/_emulator/stats", org.emulator.url()))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    stats["pubsub"]["streams"].as_i64().expect("streams")
}

#[tokio::test]
async fn dropping_the_message_stream_ends_the_subscriptions() {
    let org = org().await;
    let (client, messages) = org.connect().await;
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    org.wait_subscribed(ACCOUNTS).await;
    assert_eq!(open_streams(&org).await, 1);
    drop(messages);
    let mut open = 1;
    for _ in 0..200 {
        open = open_streams(&org).await;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open, 0, "the stream outlived its consumer");
    client.close().await;
}

/// TLS: the server's certificate is verified (a self-signed one is
/// refused unless its CA is added).
#[tokio::test]
async fn tls_verifies_the_server_certificate() {
    let (cert_pem, key_pem) = sfstream_testkit::tls::self_signed();
    let mut config = support::config();
    config.pubsub_tls = Some(sfstream_emulator::config::PubSubTls {
        cert_pem: cert_pem.clone(),
        key_pem,
    });
    let org = support::org_with(config).await;
    assert!(org.emulator.pubsub_url().starts_with("https://"));
    let (client, mut messages) = org
        .builder()
        .add_root_certificate(cert_pem)
        .default_replay(ReplayFrom::All)
        .connect()
        .await
        .expect("connects");
    org.accounts(1);
    client
        .subscribe(ACCOUNTS)
        .await
        .expect("subscribes over TLS");
    take(&mut messages, 1).await;
    client.close().await;

    let (untrusting, _messages) = org.connect().await;
    let error = untrusting.get_topic(ACCOUNTS).await.expect_err("refused");
    assert!(matches!(error, PubSubError::Rpc { .. }), "{error:?}");
    untrusting.close().await;
}
