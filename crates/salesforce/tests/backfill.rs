//! Backfill: when a stored replay id has expired and the subscription
//! falls back, the records the channel changed in the gap's window are
//! read through the REST API (`queryAll`, by `SystemModstamp`) and handed
//! out marked `backfilled`, after the gap and before the live events:
//! nothing changed while the marker was stale is lost. For a PushTopic
//! (its query's sobject, fields and filter) over CometD, and for Change
//! Data Capture over Pub/Sub; bounded by `backfill_max_records`.

mod pubsub_support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use sfstream_emulator::{Emulator, EmulatorConfig};
use sfstream_salesforce::replay::{MemoryStore, ReplayFrom, ReplayMarker, ReplayStore};
use sfstream_salesforce::{StreamMessage, StreamMessages, StreamingClient};
use sfstream_testkit::emulator::{authenticator, create, push_topic};

const TOPIC: &str = "/topic/BackfillContacts";

async fn next(events: &mut StreamMessages) -> StreamMessage {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an item in time")
        .expect("the stream goes on")
        .expect("an item")
}

fn fields(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// An org whose stored marker of [`TOPIC`] went stale while records
/// changed: returns the org, the store, the marker's time, and the ids of
/// `Old` (created before the marker, updated after), `Gone` (created then
/// deleted after) and `Kept` (created after).
async fn stale_marker() -> (
    Emulator,
    Arc<MemoryStore>,
    chrono::DateTime<chrono::Utc>,
    [String; 3],
) {
    let org = Emulator::start(EmulatorConfig::for_tests())
        .await
        .expect("emulator");
    let user = org.org().user_id();
    push_topic(
        &org,
        "BackfillContacts",
        "SELECT Id, LastName FROM Contact WHERE LastName != 'Ignored'",
        62.0,
    );
    let old = create(&org, "Contact", json!({"LastName": "Old"})).record["Id"]
        .as_str()
        .expect("id")
        .to_string();
    // Whole seconds apart: the window (read in whole seconds) starts after Old.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let anchor = create(&org, "Contact", json!({"LastName": "Anchor"}));
    let (marker_id, _) = org.org().streaming.channel_state(TOPIC).expect("events");
    let store = Arc::new(MemoryStore::new());
    store
        .advance(TOPIC, ReplayMarker::new(marker_id, Some(anchor.at)))
        .await
        .expect("seed");
    // While no one listens: changes, then retention passes them all.
    org.org()
        .update_record(
            "Contact",
            &old,
            fields(json!({"LastName": "Old renamed"})),
            &user,
        )
        .expect("update");
    let gone = create(&org, "Contact", json!({"LastName": "Gone"})).record["Id"]
        .as_str()
        .expect("id")
        .to_string();
    let kept = create(&org, "Contact", json!({"LastName": "Kept"})).record["Id"]
        .as_str()
        .expect("id")
        .to_string();
    create(&org, "Contact", json!({"LastName": "Ignored"}));
    org.org()
        .delete_record("Contact", &gone, &user)
        .expect("delete");
    let (latest, _) = org.org().streaming.channel_state(TOPIC).expect("events");
    org.org().streaming.expire(Some(TOPIC), Some(latest));
    (org, store, anchor.at, [old, gone, kept])
}

#[tokio::test]
async fn a_pushtopic_gap_is_backfilled_before_the_live_events() {
    let (org, store, marker_time, [old, gone, kept]) = stale_marker().await;
    let (client, mut events) = StreamingClient::builder(authenticator(&org.url()))
        .replay_store(store.clone())
        .replay_fallback(Some(ReplayFrom::New))
        .backfill(true)
        .connect()
        .await
        .expect("connects");
    client
        .subscribe(TOPIC)
        .await
        .expect("subscribes with the fallback");

    let gap = next(&mut events).await.gap.expect("the gap first");
    assert_eq!(
        gap.from.map(|t| t.timestamp_millis()),
        Some(marker_time.timestamp_millis())
    );
    // The records changed in the window, oldest change first, as
    // notifications of the topic: its fields, its filter.
    let mut backfilled = Vec::new();
    for _ in 0..4 {
        let message = next(&mut events).await;
        assert!(message.backfilled, "{}", message.data.get());
        assert_eq!(message.channel, TOPIC);
        assert_eq!(message.replay_id(), None);
        backfilled.push(message.data_value().expect("json"));
    }
    let seen: Vec<(String, String)> = backfilled
        .iter()
        .map(|d| {
            assert_eq!(d["backfilled"], true, "{d}");
            (
                d["sobject"]["Id"].as_str().unwrap_or_default().to_string(),
                d["event"]["type"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for expected in [
        (old.clone(), "updated"),
        (kept.clone(), "created"),
        (gone.clone(), "deleted"),
    ] {
        assert!(
            seen.contains(&(expected.0.clone(), expected.1.to_string())),
            "{expected:?} not in {seen:?}"
        );
    }
    let renamed = backfilled
        .iter()
        .find(|d| d["sobject"]["Id"] == old.as_str())
        .expect("Old");
    assert_eq!(renamed["sobject"]["LastName"], "Old renamed");
    // Only the topic's fields.
    let keys: Vec<&String> = renamed["sobject"]
        .as_object()
        .expect("sobject")
        .keys()
        .collect();
    assert_eq!(keys, ["Id", "LastName"], "{renamed}");

    // Then streaming goes on, live.
    let live = create(&org, "Contact", json!({"LastName": "Live"}));
    let message = next(&mut events).await;
    assert!(!message.backfilled);
    assert!(message.replay_id().is_some());
    assert_eq!(
        message.data_value().expect("json")["sobject"]["Id"],
        live.record["Id"]
    );
    client.close().await;
}

#[tokio::test]
async fn a_backfill_stops_at_its_bound_and_streaming_goes_on() {
    let (org, store, _, _) = stale_marker().await;
    let (client, mut events) = StreamingClient::builder(authenticator(&org.url()))
        .replay_store(store)
        .replay_fallback(Some(ReplayFrom::New))
        .backfill(true)
        .backfill_max_records(2)
        .connect()
        .await
        .expect("connects");
    client.subscribe(TOPIC).await.expect("subscribes");
    assert!(next(&mut events).await.gap.is_some());
    assert!(next(&mut events).await.backfilled);
    assert!(next(&mut events).await.backfilled);
    let live = create(&org, "Contact", json!({"LastName": "Live"}));
    let message = next(&mut events).await;
    assert!(!message.backfilled, "two at most: {}", message.data.get());
    assert_eq!(
        message.data_value().expect("json")["sobject"]["Id"],
        live.record["Id"]
    );
    client.close().await;
}

#[tokio::test]
async fn a_change_data_capture_gap_is_backfilled_over_pubsub() {
    use pubsub_support::{ACCOUNTS, number, stored_after, take};
    // Early is created in an earlier second than the marker's event.
    let org = pubsub_support::org().await;
    let user = org.emulator.org().user_id();
    let early = create(&org.emulator, "Account", json!({"Name": "Early"})).record["Id"]
        .as_str()
        .expect("id")
        .to_string();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    org.accounts(2);
    let (store, got, stored) = stored_after(&org, 3).await;

    // While no one listens: Early renamed, Missed created; retention
    // passes them.
    org.emulator
        .org()
        .update_record(
            "Account",
            &early,
            fields(json!({"Name": "Early renamed"})),
            &user,
        )
        .expect("update");
    let missed = create(&org.emulator, "Account", json!({"Name": "Missed"}));
    org.fault(
        "expire",
        json!({"channel": ACCOUNTS, "through": number(&got[2].replay_id) + 2}),
    )
    .await;

    let (client, mut messages) = org
        .builder()
        .replay_store(store.clone())
        .replay_fallback(Some(ReplayFrom::New))
        .backfill(true)
        .connect()
        .await
        .expect("connects");
    client.subscribe(ACCOUNTS).await.expect("subscribes");
    let gap = take(&mut messages, 1).await.remove(0).gap.expect("a gap");
    assert_eq!(gap.from, stored.created);
    // The window's records (in whole seconds from the marker's event):
    // the two accounts changed after it, and those of its second.
    let mut backfilled = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(2), messages.next()).await
    {
        backfilled.push(message);
    }
    assert!((2..=4).contains(&backfilled.len()), "{backfilled:?}");
    let mut by_id = std::collections::HashMap::new();
    for message in &backfilled {
        assert!(message.backfilled);
        assert_eq!(message.line_data()["backfilled"], true);
        let header = &message.payload["ChangeEventHeader"];
        assert_eq!(header["entityName"], "Account");
        by_id.insert(
            header["recordIds"][0]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            (
                header["changeType"].clone(),
                message.payload["Name"].clone(),
            ),
        );
    }
    assert_eq!(
        by_id[&early],
        (json!("UPDATE"), json!("Early renamed")),
        "{by_id:?}"
    );
    let missed_id = missed.record["Id"].as_str().expect("id");
    assert_eq!(
        by_id[missed_id],
        (json!("CREATE"), json!("Missed")),
        "{by_id:?}"
    );

    // Then live events, after the backfill.
    org.wait_subscribed(ACCOUNTS).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    create(&org.emulator, "Account", json!({"Name": "Live"}));
    let live = take(&mut messages, 1).await.remove(0);
    assert!(!live.backfilled);
    assert_eq!(live.payload["Name"], "Live");
    assert!(number(&live.replay_id) > number(&got[2].replay_id));
    client.close().await;
}
