//! The Pub/Sub API of the emulated org: flow control, keepalives, idle
//! close, replay presets, auth errors, topics and schemas.

mod common;

use std::time::Duration;

use common::pubsub::{CUSTOM, EARLIEST, LATEST, PubSub, events, more, next, number};
use serde_json::json;
use sfstream_emulator::pubsub::replay_bytes;
use sfstream_pubsub::errors;
use sfstream_pubsub::proto::{SchemaRequest, TopicRequest};
use tonic::Code;

const ACCOUNTS: &str = "/data/AccountChangeEvent";
const SECOND: Duration = Duration::from_secs(1);

async fn accounts(org: &common::Org, n: usize) {
    for i in 0..n {
        org.create("Account", json!({"Name": format!("Acme {i}")}))
            .await;
    }
}

#[tokio::test]
async fn never_more_than_requested_and_requests_are_capped() {
    let org = common::start().await;
    let mut ps = PubSub::connect(&org).await;
    let (tx, mut stream) = ps
        .subscribe(ACCOUNTS, LATEST, vec![], 2)
        .await
        .expect("subscribes");
    accounts(&org, 5).await;
    let got = events(&mut stream, 2, 3 * SECOND).await;
    let n: usize = got.iter().map(|r| r.events.len()).sum();
    assert_eq!(n, 2);
    assert_eq!(got.last().map(|r| r.pending_num_requested), Some(0));
    // Nothing more comes while nothing is requested.
    assert!(
        next(&mut stream, Duration::from_millis(400))
            .await
            .is_none()
    );
    tx.send(more(10)).await.expect("request");
    let got = events(&mut stream, 3, 3 * SECOND).await;
    let ids: Vec<i64> = got
        .iter()
        .flat_map(|r| r.events.iter().map(|e| number(&e.replay_id)))
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(got.last().map(|r| r.pending_num_requested), Some(7));
    // Requests accumulate but at most 100 are outstanding.
    tx.send(more(500)).await.expect("request");
    let keepalive = next(&mut stream, 3 * SECOND)
        .await
        .expect("keepalive")
        .expect("ok")
        .expect("open");
    assert!(keepalive.events.is_empty());
    assert_eq!(keepalive.pending_num_requested, 100);
}

#[tokio::test]
async fn keepalives_carry_the_latest_replay_id() {
    let org = common::start().await;
    accounts(&org, 2).await;
    let (latest, _) = org
        .emulator
        .org()
        .streaming
        .channel_state(ACCOUNTS)
        .expect("channel");
    let mut ps = PubSub::connect(&org).await;
    let (_tx, mut stream) = ps
        .subscribe(ACCOUNTS, LATEST, vec![], 5)
        .await
        .expect("subscribes");
    let started = std::time::Instant::now();
    let keepalive = next(&mut stream, 3 * SECOND)
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert!(keepalive.events.is_empty());
    assert_eq!(keepalive.latest_replay_id, replay_bytes(latest));
    assert_eq!(keepalive.latest_replay_id.len(), 10);
    assert_eq!(keepalive.pending_num_requested, 5);
    assert!(!keepalive.rpc_id.is_empty());
}

#[tokio::test]
async fn a_stream_with_nothing_requested_closes_when_idle() {
    let org = common::start().await;
    let mut ps = PubSub::connect(&org).await;
    let (_tx, mut stream) = ps
        .subscribe(ACCOUNTS, LATEST, vec![], 0)
        .await
        .expect("subscribes");
    let ended = next(&mut stream, 3 * SECOND).await.expect("closed in time");
    assert!(matches!(ended, Ok(None)), "{ended:?}");

    // A stream still owed events is kept open.
    let (_tx, mut stream) = ps
        .subscribe(ACCOUNTS, LATEST, vec![], 1)
        .await
        .expect("subscribes");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    accounts(&org, 1).await;
    assert_eq!(events(&mut stream, 1, 2 * SECOND).await.len(), 1);
}

#[tokio::test]
async fn replay_presets_and_corrupt_replay_ids() {
    let org = common::start().await;
    accounts(&org, 3).await;
    let mut ps = PubSub::connect(&org).await;
    let (_tx, mut stream) = ps
        .subscribe(ACCOUNTS, EARLIEST, vec![], 10)
        .await
        .expect("earliest");
    let all: Vec<Vec<u8>> = events(&mut stream, 3, 3 * SECOND)
        .await
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.replay_id.clone()))
        .collect();
    assert_eq!(all.len(), 3);

    let (_tx, mut stream) = ps
        .subscribe(ACCOUNTS, CUSTOM, all[0].clone(), 10)
        .await
        .expect("custom");
    let after: Vec<Vec<u8>> = events(&mut stream, 2, 3 * SECOND)
        .await
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.replay_id.clone()))
        .collect();
    assert_eq!(after, all[1..].to_vec());

    let (_tx, mut stream) = ps
        .subscribe(ACCOUNTS, LATEST, vec![], 10)
        .await
        .expect("latest");
    accounts(&org, 1).await;
    let new = events(&mut stream, 1, 3 * SECOND).await;
    assert_eq!(new.iter().map(|r| r.events.len()).sum::<usize>(), 1);
    assert!(number(&new[0].events[0].replay_id) > number(&all[2]));

    for garbage in [b"not a replay id".to_vec(), replay_bytes(1 << 40), vec![]] {
        let refused = ps
            .subscribe(ACCOUNTS, CUSTOM, garbage, 1)
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(
            errors::error_code(&refused),
            Some(errors::REPLAY_ID_CORRUPTED)
        );
    }
    // Expired by retention: corrupt too.
    org.fault(
        "expire",
        json!({"channel": ACCOUNTS, "through": number(&all[1])}),
    )
    .await;
    let refused = ps
        .subscribe(ACCOUNTS, CUSTOM, all[0].clone(), 1)
        .await
        .expect_err("expired");
    assert_eq!(
        errors::error_code(&refused),
        Some(errors::REPLAY_ID_CORRUPTED)
    );
    assert!(
        ps.subscribe(ACCOUNTS, CUSTOM, all[1].clone(), 1)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated_with_trailers() {
    let org = common::start().await;
    let mut ps = PubSub::connect(&org).await;
    ps.token = "00D000000000001!AQnot-a-token".into();
    let refused = ps
        .client
        .get_topic(ps.request(TopicRequest {
            topic_name: ACCOUNTS.into(),
        }))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(errors::error_code(&refused), Some(errors::AUTH_ERROR));
    let rpc_id = errors::rpc_id(&refused).expect("rpc-id");
    assert!(uuid::Uuid::parse_str(rpc_id).is_ok(), "{rpc_id}");
    let refused = ps
        .subscribe(ACCOUNTS, LATEST, vec![], 1)
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated);

    // An invalidated token ends an open stream at its next request.
    ps.token = org.token.clone();
    let (tx, mut stream) = ps
        .subscribe(ACCOUNTS, LATEST, vec![], 1)
        .await
        .expect("subscribes");
    org.fault("invalidate-tokens", json!({})).await;
    tx.send(more(1)).await.expect("request");
    let ended = loop {
        match next(&mut stream, 3 * SECOND).await.expect("in time") {
            Ok(Some(keepalive)) => assert!(keepalive.events.is_empty()),
            other => break other,
        }
    };
    let status = ended.expect_err("unauthenticated");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(errors::error_code(&status), Some(errors::AUTH_ERROR));
    assert!(errors::rpc_id(&status).is_some());
}

#[tokio::test]
async fn topics_and_schemas() {
    let org = common::start().await;
    let reply = org
        .http
        .post(org.url("/_emulator/platform-events/Order_Event__e"))
        .json(&json!({"fields": {"Order_Number__c": "string", "Amount__c": "double"}}))
        .send()
        .await
        .expect("define");
    assert_eq!(reply.status(), 200);
    let mut ps = PubSub::connect(&org).await;
    let topic = |name: &str| {
        ps.request(TopicRequest {
            topic_name: name.into(),
        })
    };
    let event = ps
        .client
        .clone()
        .get_topic(topic("/event/Order_Event__e"))
        .await
        .expect("topic")
        .into_inner();
    assert!(event.can_publish && event.can_subscribe);
    assert_eq!(event.tenant_guid, org.emulator.org().org_id());
    let cdc = ps
        .client
        .clone()
        .get_topic(topic(ACCOUNTS))
        .await
        .expect("topic")
        .into_inner();
    assert!(!cdc.can_publish && cdc.can_subscribe);
    assert_ne!(cdc.schema_id, event.schema_id);
    let missing = ps
        .client
        .clone()
        .get_topic(topic("/event/Nope__e"))
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound);
    assert!(errors::rpc_id(&missing).is_some());
    let missing = ps
        .subscribe("/data/NopeChangeEvent", LATEST, vec![], 1)
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound);

    let schema = ps
        .client
        .get_schema(ps.request(SchemaRequest {
            schema_id: event.schema_id.clone(),
        }))
        .await
        .expect("schema")
        .into_inner();
    assert_eq!(schema.schema_id, event.schema_id);
    let json: serde_json::Value = serde_json::from_str(&schema.schema_json).expect("json");
    let names: Vec<&str> = json["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names[..2], ["CreatedDate", "CreatedById"]);
    assert!(names.contains(&"Order_Number__c") && names.contains(&"Amount__c"));
    assert_eq!(json["fields"][0]["type"], "long");

    let cdc_schema = ps
        .client
        .get_schema(ps.request(SchemaRequest {
            schema_id: cdc.schema_id.clone(),
        }))
        .await
        .expect("schema")
        .into_inner();
    let json: serde_json::Value = serde_json::from_str(&cdc_schema.schema_json).expect("json");
    assert_eq!(json["name"], "AccountChangeEvent");
    let header = &json["fields"][0]["type"];
    let header_fields: Vec<&str> = header["fields"]
        .as_array()
        .expect("header")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(
        header_fields,
        [
            "entityName",
            "recordIds",
            "changeType",
            "changeOrigin",
            "transactionKey",
            "sequenceNumber",
            "commitTimestamp",
            "commitNumber",
            "commitUser",
            "nulledFields",
            "diffFields",
            "changedFields"
        ]
    );
    let unknown = ps
        .client
        .get_schema(ps.request(SchemaRequest {
            schema_id: "nope".into(),
        }))
        .await
        .expect_err("unknown schema");
    assert_eq!(unknown.code(), Code::NotFound);
}
