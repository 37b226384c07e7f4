//! CometD: the Bayeux handshake, connect, subscribe and replay as
//! Salesforce speaks them, each event kind, and the injected faults.

mod common;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

async fn generic_channel(org: &common::Org, name: &str) -> String {
    org.create("StreamingChannel", json!({"Name": name})).await
}

async fn push(org: &common::Org, channel_id: &str, payloads: &[&str]) {
    let events: Vec<Value> = payloads
        .iter()
        .map(|p| json!({"payload": p, "userIds": []}))
        .collect();
    let (status, reply) = org
        .send(
            Method::POST,
            &format!("sobjects/StreamingChannel/{channel_id}/push"),
            json!({"pushEvents": events}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
}

#[tokio::test]
async fn handshake_connect_subscribe_and_receive_generic_events() {
    let org = common::start().await;
    let channel_id = generic_channel(&org, "/u/notifications").await;
    let mut bayeux = org.bayeux();
    let hello = bayeux.handshake().await;
    assert_eq!(hello["successful"], true);
    assert_eq!(hello["version"], "1.0");
    assert_eq!(hello["supportedConnectionTypes"], json!(["long-polling"]));
    assert_eq!(hello["ext"]["replay"], true);

    // The first connect returns at once with advice in milliseconds.
    let started = Instant::now();
    let first = bayeux.connect().await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        first[0]["advice"],
        json!({"reconnect": "retry", "interval": 0, "timeout": 2000})
    );

    assert_eq!(
        bayeux.subscribe("/u/notifications", None).await["successful"],
        true
    );
    push(&org, &channel_id, &["one", "two"]).await;
    let events = bayeux.events(2, 3).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["channel"], "/u/notifications");
    assert_eq!(events[0]["data"]["payload"], "one");
    assert!(
        events[0]["data"]["event"]["createdDate"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z'))
    );
    let ids = common::replay_ids(&events);
    assert!(ids[0] < ids[1]);

    // With nothing to deliver a connect is held for the hold time, then answered.
    let started = Instant::now();
    let reply = bayeux.connect().await;
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "held {:?}",
        started.elapsed()
    );
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0]["successful"], true);

    // A held connect returns as soon as an event arrives.
    let pusher = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        push(&org, &channel_id, &["three"]).await;
    };
    let started = Instant::now();
    let (events, _) = tokio::join!(bayeux.events(1, 1), pusher);
    assert_eq!(events.len(), 1);
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn replay_new_all_given_and_invalid() {
    let org = common::start().await;
    let channel_id = generic_channel(&org, "/u/replay").await;
    push(&org, &channel_id, &["a", "b", "c"]).await;

    let mut all = org.bayeux();
    all.open("/u/replay", Some(-2)).await;
    let events = all.events(3, 2).await;
    let ids = common::replay_ids(&events);
    assert_eq!(ids.len(), 3);

    let mut after = org.bayeux();
    after.open("/u/replay", Some(ids[0])).await;
    assert_eq!(
        common::replay_ids(&after.events(2, 2).await),
        ids[1..].to_vec()
    );

    let mut new = org.bayeux();
    new.open("/u/replay", Some(-1)).await;
    push(&org, &channel_id, &["d"]).await;
    let fresh = common::replay_ids(&new.events(1, 2).await);
    assert_eq!(fresh.len(), 1);
    assert!(fresh[0] > ids[2]);

    // Expired ids are refused with Salesforce's exact words (two spaces after "invalid.").
    org.fault("expire", json!({"channel": "/u/replay", "through": ids[1]}))
        .await;
    let mut stale = org.bayeux();
    stale.handshake().await;
    let reply = stale.subscribe("/u/replay", Some(ids[0])).await;
    assert_eq!(reply["successful"], false);
    assert_eq!(
        reply["error"],
        format!(
            "400::The replayId {{{}}} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.",
            ids[0]
        )
    );
    // -2 after expiry gets only what is retained.
    let mut rest = org.bayeux();
    rest.open("/u/replay", Some(-2)).await;
    let retained = common::replay_ids(&rest.events(2, 2).await);
    assert_eq!(retained, vec![ids[2], fresh[0]]);

    // A replay map without the channel is refused too.
    let mut missing = org.bayeux();
    missing.handshake().await;
    let id = missing.id();
    let (_, reply) = missing
        .post(json!([{"channel": "/meta/subscribe", "clientId": missing.client_id, "subscription": "/u/replay",
            "id": id, "ext": {"replay": {"/u/other": -1}}}]))
        .await;
    assert!(
        reply[0]["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("400::The replayId for channel {/u/replay} wasn't found")
    );
}

#[tokio::test]
async fn unknown_channels_clients_and_missing_cookies() {
    let org = common::start().await;
    let mut bayeux = org.bayeux();
    bayeux.handshake().await;
    let reply = bayeux.subscribe("/topic/AccountUpdates", None).await;
    assert_eq!(reply["successful"], false);
    assert_eq!(
        reply["error"],
        "400::The channel you requested to subscribe to does not exist {/topic/AccountUpdates}"
    );
    assert_eq!(reply["subscription"], "/topic/AccountUpdates");

    // Without the BAYEUX_BROWSER cookie the session is refused.
    let plain = reqwest::Client::new();
    let response = plain
        .post(org.url("/cometd/62.0"))
        .bearer_auth(&org.token)
        .json(&json!([{"channel": "/meta/connect", "clientId": bayeux.client_id, "connectionType": "long-polling", "id": "9"}]))
        .send()
        .await
        .expect("POST");
    let (_, reply) = common::status_json(response).await;
    assert_eq!(
        reply[0]["error"],
        format!(
            "400::Client {{{}}} has established a session, but no BAYEUX_BROWSER cookie present",
            bayeux.client_id
        )
    );

    // Forgotten clients get 403::Unknown client with advice to handshake.
    org.fault("forget-clients", json!({})).await;
    let reply = bayeux.connect().await;
    assert_eq!(reply[0]["error"], "403::Unknown client");
    assert_eq!(
        reply[0]["advice"],
        json!({"reconnect": "handshake", "interval": 0})
    );
    assert_eq!(reply[0]["successful"], false);
}

#[tokio::test]
async fn invalid_tokens_are_refused_on_handshake_and_connect() {
    let org = common::start().await;
    let mut bayeux = org.bayeux();
    bayeux.handshake().await;
    bayeux.connect().await;
    org.fault("invalidate-tokens", json!({})).await;
    let reply = bayeux.connect().await;
    assert_eq!(reply[0]["error"], "401::Authentication invalid");
    assert_eq!(reply[0]["advice"]["reconnect"], "none");
    let denied = bayeux.handshake().await;
    assert_eq!(denied["error"], "403::Handshake denied");
    assert_eq!(
        denied["ext"]["sfdc"]["failureReason"],
        "401::Authentication invalid"
    );
    assert!(denied.get("clientId").is_none());
}

#[tokio::test]
async fn sessions_expire_when_no_connect_comes_in_time() {
    let mut config = common::config();
    config.session_timeout = Duration::from_millis(300);
    let org = common::start_with(config).await;
    let mut bayeux = org.bayeux();
    bayeux.handshake().await;
    bayeux.connect().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(bayeux.connect().await[0]["error"], "403::Unknown client");
}

#[tokio::test]
async fn faults_busy_dropped_malformed_and_server_disconnect() {
    let org = common::start().await;
    let mut bayeux = org.bayeux();

    org.fault("busy-handshakes", json!({"count": 2})).await;
    for _ in 0..2 {
        let busy = bayeux.handshake().await;
        assert_eq!(
            busy["error"],
            "503::Server is too busy.  Please try your request again later."
        );
    }
    assert_eq!(bayeux.handshake().await["successful"], true);
    bayeux.connect().await;

    org.fault("drop-connects", json!({"count": 1})).await;
    let id = bayeux.id();
    let dropped = bayeux
        .http
        .post(&bayeux.url)
        .bearer_auth(&bayeux.token)
        .json(&json!([{"channel": "/meta/connect", "clientId": bayeux.client_id, "connectionType": "long-polling", "id": id}]))
        .send()
        .await;
    assert!(dropped.is_err(), "the socket should have been closed");
    // The session survives a dropped connection.
    assert_eq!(bayeux.connect().await[0]["successful"], true);

    org.fault("malformed", json!({"count": 1})).await;
    let response = bayeux
        .http
        .post(&bayeux.url)
        .bearer_auth(&bayeux.token)
        .json(&json!([{"channel": "/meta/connect", "clientId": bayeux.client_id, "connectionType": "long-polling", "id": "x"}]))
        .send()
        .await
        .expect("POST");
    assert!(serde_json::from_str::<Value>(&response.text().await.expect("text")).is_err());

    // A server-side disconnect reaches the held connect at once.
    let disconnect = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        org.fault("server-disconnect", json!({})).await;
    };
    let (reply, _) = tokio::join!(bayeux.connect(), disconnect);
    assert_eq!(reply[0]["channel"], "/meta/disconnect");
    assert_eq!(bayeux.connect().await[0]["error"], "403::Unknown client");

    let response = org
        .http
        .get(org.url("/_emulator/stats"))
        .send()
        .await
        .expect("stats");
    let (_, stats) = common::status_json(response).await;
    assert_eq!(stats["handshakes"], 3);
    assert_eq!(stats["handshakes_ok"], 1);
}

#[tokio::test]
async fn request_size_limit_and_meta_errors() {
    let org = common::start().await;
    let mut bayeux = org.bayeux();
    bayeux.handshake().await;
    let huge = "x".repeat(40_000);
    let (status, _) = bayeux
        .post(json!([{"channel": "/meta/connect", "clientId": bayeux.client_id, "pad": huge}]))
        .await;
    assert_eq!(status, 413);
    let (_, reply) = bayeux
        .post(json!([{"channel": "/meta/connect", "id": "1"}]))
        .await;
    assert_eq!(reply[0]["error"], "403::Client has not completed handshake");
    let id = bayeux.id();
    let (_, reply) = bayeux
        .post(json!([{"channel": "/meta/disconnect", "clientId": bayeux.client_id, "id": id}]))
        .await;
    assert_eq!(reply[0]["successful"], true);
    assert_eq!(bayeux.connect().await[0]["error"], "403::Unknown client");
}

#[tokio::test]
async fn platform_events_and_change_data_capture() {
    let org = common::start().await;
    let mut events = org.bayeux();
    events.open("/event/Printer_Status__e", Some(-1)).await;
    let (status, reply) = org
        .send(
            Method::POST,
            "sobjects/Printer_Status__e",
            json!({"Printer_Model__c": "XZO-5"}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(reply["id"].as_str().is_some_and(|id| id.starts_with("e00")));
    let received = events.events(1, 2).await;
    let data = &received[0]["data"];
    assert_eq!(data["payload"]["Printer_Model__c"], "XZO-5");
    assert_eq!(data["payload"]["CreatedById"], org.emulator.org().user_id());
    assert!(data["event"]["EventUuid"].as_str().is_some());
    assert!(data["event"]["replayId"].as_i64().is_some());
    assert!(data["schema"].as_str().is_some());

    let mut all = org.bayeux();
    all.open("/data/ChangeEvents", None).await;
    let mut contacts = org.bayeux();
    contacts.open("/data/ContactChangeEvent", None).await;
    let id = org.create("Contact", json!({"LastName": "Doe"})).await;
    org.update("Contact", &id, json!({"Email": "d@example.com"}))
        .await;
    org.delete("Contact", &id).await;
    org.create("Account", json!({"Name": "Acme"})).await;

    let received = contacts.events(3, 3).await;
    let kinds: Vec<&str> = received
        .iter()
        .filter_map(|e| e["data"]["payload"]["ChangeEventHeader"]["changeType"].as_str())
        .collect();
    assert_eq!(kinds, vec!["CREATE", "UPDATE", "DELETE"]);
    let header = &received[1]["data"]["payload"]["ChangeEventHeader"];
    assert_eq!(header["entityName"], "Contact");
    assert_eq!(header["recordIds"], json!([id]));
    // Salesforce: "including the LastModifiedDate system field".
    assert_eq!(
        header["changedFields"],
        json!(["Email", "LastModifiedDate"])
    );
    assert!(header["commitTimestamp"].as_i64().is_some());
    assert_eq!(received[1]["data"]["payload"]["Email"], "d@example.com");
    assert_eq!(received[0]["data"]["payload"]["LastName"], "Doe");

    let everything = all.events(4, 3).await;
    assert_eq!(everything.len(), 4);
    assert!(
        everything
            .iter()
            .all(|e| e["channel"] == "/data/ChangeEvents")
    );
    // The same event has the same replay id on both channels.
    assert_eq!(
        common::replay_ids(&everything[..3]),
        common::replay_ids(&received)
    );
}

#[tokio::test]
async fn a_backlog_is_delivered_in_bounded_batches_in_order() {
    let mut config = common::config();
    config.max_events_per_connect = 100;
    let org = common::start_with(config).await;
    generic_channel(&org, "/u/bulk").await;
    let response = org
        .http
        .post(org.url("/_emulator/load"))
        .json(&json!({"channel": "/u/bulk", "count": 250}))
        .send()
        .await
        .expect("load");
    assert_eq!(response.status(), 200);
    let mut bayeux = org.bayeux();
    bayeux.open("/u/bulk", Some(-2)).await;
    let first = bayeux.events(1, 1).await;
    assert_eq!(first.len(), 100);
    let rest = bayeux.events(150, 3).await;
    let ids: Vec<i64> = common::replay_ids(&first)
        .into_iter()
        .chain(common::replay_ids(&rest))
        .collect();
    assert_eq!(ids.len(), 250);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn restart_drops_connections_and_sessions_but_keeps_events() {
    let mut org = common::start().await;
    let channel_id = generic_channel(&org, "/u/restart").await;
    push(&org, &channel_id, &["before"]).await;
    let mut bayeux = org.bayeux();
    bayeux.open("/u/restart", Some(-2)).await;
    let before = common::replay_ids(&bayeux.events(1, 2).await);
    org.emulator.restart().await.expect("restart");
    assert_eq!(bayeux.connect().await[0]["error"], "403::Unknown client");
    let mut again = org.bayeux();
    again.open("/u/restart", Some(before[0])).await;
    push(&org, &channel_id, &["after"]).await;
    let after = again.events(1, 2).await;
    assert_eq!(after[0]["data"]["payload"], "after");
}

#[tokio::test]
async fn batched_subscribes_unsubscribe_and_delays() {
    let org = common::start().await;
    let a = generic_channel(&org, "/u/a").await;
    let b = generic_channel(&org, "/u/b").await;
    let mut bayeux = org.bayeux();
    bayeux.handshake().await;
    bayeux.connect().await;
    let client_id = bayeux.client_id.clone();
    let (_, replies) = bayeux
        .post(json!([
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/u/a", "id": "s1"},
            {"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/u/b", "id": "s2"},
        ]))
        .await;
    assert_eq!(replies[0]["id"], "s1");
    assert_eq!(replies[1]["id"], "s2");
    assert!(
        replies
            .as_array()
            .expect("replies")
            .iter()
            .all(|r| r["successful"] == true)
    );

    let (_, replies) = bayeux
        .post(json!([{"channel": "/meta/unsubscribe", "clientId": client_id, "subscription": "/u/a", "id": "u1"}]))
        .await;
    assert_eq!(replies[0]["successful"], true);
    assert_eq!(replies[0]["subscription"], "/u/a");
    push(&org, &a, &["ignored"]).await;
    push(&org, &b, &["kept"]).await;
    let events = bayeux.events(1, 2).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["channel"], "/u/b");

    org.fault("delay", json!({"ms": 400, "count": 1})).await;
    let started = Instant::now();
    let (_, reply) = bayeux
        .post(json!([{"channel": "/meta/unsubscribe", "clientId": client_id, "subscription": "/u/b", "id": "u2"}]))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(reply[0]["successful"], true);
}
