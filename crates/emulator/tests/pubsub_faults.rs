//! Pub/Sub under faults: busy streams, dropped streams, restarts, and the
//! managed subscriptions whose commits outlive streams.

mod common;

use std::time::Duration;

use common::pubsub::{EARLIEST, LATEST, PubSub, events, next, number};
use futures::StreamExt;
use serde_json::json;
use sfstream_pubsub::errors;
use sfstream_pubsub::proto::{CommitReplayRequest, ManagedFetchRequest, TopicRequest};
use tonic::Code;

const ACCOUNTS: &str = "/data/AccountChangeEvent";
const WAIT: Duration = Duration::from_secs(3);

async fn stats(org: &common::Org) -> serde_json::Value {
    org.http
        .get(org.url("/_emulator/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn busy_ends_the_next_streams_with_service_unavailable() {
    let org = common::start().await;
    let mut ps = PubSub::connect(&org).await;
    org.fault("busy", json!({"count": 2})).await;
    for _ in 0..2 {
        let refused = ps
            .subscribe(ACCOUNTS, LATEST, vec![], 1)
            .await
            .expect_err("busy");
        assert_eq!(refused.code(), Code::Internal);
        assert_eq!(refused.message(), errors::SERVICE_UNAVAILABLE_MESSAGE);
        assert_eq!(
            errors::error_code(&refused),
            Some(errors::SERVICE_UNAVAILABLE)
        );
        assert!(errors::rpc_id(&refused).is_some());
    }
    assert!(ps.subscribe(ACCOUNTS, LATEST, vec![], 1).await.is_ok());
}

#[tokio::test]
async fn drop_streams_ends_open_streams_abruptly_and_stats_count_them() {
    let org = common::start().await;
    let mut ps = PubSub::connect(&org).await;
    let (_tx1, mut one) = ps
        .subscribe(ACCOUNTS, LATEST, vec![], 5)
        .await
        .expect("subscribes");
    let (_tx2, mut two) = ps
        .subscribe("/data/ChangeEvents", LATEST, vec![], 5)
        .await
        .expect("subscribes");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let open = stats(&org).await;
    assert_eq!(open["pubsub"]["streams"], 2, "{open}");
    assert_eq!(open["pubsub"]["clients"], 1, "{open}");
    org.fault("drop-streams", json!({})).await;
    for stream in [&mut one, &mut two] {
        // Not a clean end: the connection went away.
        let ended = loop {
            match next(stream, WAIT).await.expect("ended in time") {
                Ok(Some(keepalive)) => assert!(keepalive.events.is_empty()),
                other => break other,
            }
        };
        let status = ended.expect_err("abrupt");
        assert_ne!(status.code(), Code::Ok);
        assert_eq!(errors::remedy(&status), errors::Remedy::Retry, "{status:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(stats(&org).await["pubsub"]["streams"], 0);
    // The server itself is fine: a new connection subscribes again.
    let mut again = PubSub::connect(&org).await;
    assert!(again.subscribe(ACCOUNTS, LATEST, vec![], 1).await.is_ok());
}

#[tokio::test]
async fn restart_keeps_the_port_and_the_events() {
    let mut org = common::start().await;
    org.create("Account", json!({"Name": "Before"})).await;
    let url = org.emulator.pubsub_url();
    let mut ps = PubSub::connect(&org).await;
    let (_tx, mut stream) = ps
        .subscribe(ACCOUNTS, LATEST, vec![], 5)
        .await
        .expect("subscribes");
    org.emulator.restart().await.expect("restarts");
    assert_eq!(org.emulator.pubsub_url(), url);
    let ended = loop {
        match next(&mut stream, WAIT).await.expect("ended in time") {
            Ok(Some(keepalive)) => assert!(keepalive.events.is_empty()),
            other => break other,
        }
    };
    assert!(ended.is_err(), "{ended:?}");
    let mut ps = PubSub::connect(&org).await;
    let (_tx, mut stream) = ps
        .subscribe(ACCOUNTS, EARLIEST, vec![], 5)
        .await
        .expect("subscribes");
    assert_eq!(events(&mut stream, 1, WAIT).await.len(), 1);
    let topic = ps
        .client
        .clone()
        .get_topic(ps.request(TopicRequest {
            topic_name: ACCOUNTS.into(),
        }))
        .await;
    assert!(topic.is_ok());
}

#[tokio::test]
async fn managed_subscriptions_resume_after_the_last_commit() {
    let org = common::start().await;
    let created = org
        .http
        .post(org.url("/_emulator/managed-subscriptions"))
        .json(&json!({"developer_name": "Accounts", "topic_name": ACCOUNTS, "default_replay": "EARLIEST"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.expect("json");
    for i in 0..3 {
        org.create("Account", json!({"Name": format!("A{i}")}))
            .await;
    }
    let mut ps = PubSub::connect(&org).await;
    let (tx, mut stream) = ps.managed("Accounts", 10).await.expect("managed");
    let mut got = Vec::new();
    while got.len() < 3 {
        let response = next(&mut stream, WAIT)
            .await
            .expect("in time")
            .expect("ok")
            .expect("open");
        got.extend(response.events);
    }
    let second = got[1].replay_id.clone();
    tx.send(ManagedFetchRequest {
        commit_replay_id_request: Some(CommitReplayRequest {
            commit_request_id: "c1".into(),
            replay_id: second.clone(),
        }),
        ..Default::default()
    })
    .await
    .expect("commit");
    let committed = loop {
        let response = next(&mut stream, WAIT)
            .await
            .expect("in time")
            .expect("ok")
            .expect("open");
        if let Some(commit) = response.commit_response {
            break commit;
        }
    };
    assert_eq!(committed.commit_request_id, "c1");
    assert_eq!(committed.replay_id, second);
    assert!(committed.error.is_none());
    drop((tx, stream));

    let listed: serde_json::Value = org
        .http
        .get(org.url("/_emulator/managed-subscriptions"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["committed"].as_i64(), Some(number(&second)));

    // A new stream (by id this time) resumes after the commit.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(ManagedFetchRequest {
        subscription_id: created["id"].as_str().expect("id").into(),
        num_requested: 10,
        ..Default::default()
    })
    .await
    .expect("queue");
    let requests =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut stream = ps
        .client
        .managed_subscribe(ps.request(requests.boxed()))
        .await
        .expect("managed")
        .into_inner();
    let response = next(&mut stream, WAIT)
        .await
        .expect("in time")
        .expect("ok")
        .expect("open");
    assert_eq!(response.events.len(), 1);
    assert_eq!(response.events[0].replay_id, got[2].replay_id);

    let missing = ps.managed("Nope", 1).await.expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound);
    let stopped = org
        .http
        .post(org.url(&format!(
            "/_emulator/managed-subscriptions/{}/state",
            created["id"].as_str().expect("id")
        )))
        .json(&json!({"state": "STOP"}))
        .send()
        .await
        .expect("stop");
    assert_eq!(stopped.status(), 204);
    let refused = ps.managed("Accounts", 1).await.expect_err("stopped");
    assert_eq!(refused.code(), Code::FailedPrecondition);
}
