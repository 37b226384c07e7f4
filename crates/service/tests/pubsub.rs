//! Services over the Pub/Sub API: `TRANSPORT: pubsub` (or per entrypoint)
//! runs the same handlers; PushTopics stay on CometD beside it; markers
//! are the Pub/Sub client's opaque ones, and a restart resumes after them.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::json;
use sfstream_emulator::Emulator;
use sfstream_emulator::schema::FieldType;
use sfstream_salesforce::Transport;
use sfstream_salesforce::replay::{MemoryStore, ReplayStore};
use sfstream_service::{
    Change, Channel, Name, Platform, Replay, ReplayId, Service, ServiceError, SobjectType,
    change_events, change_events_all, handle_sobject_notification, platform_event,
};

use common::{config, create, emulator, eventually};

fn pubsub_config(org: &Emulator, transport: &str) -> sfstream_service::config::Config {
    config(
        org,
        "",
        &format!("TRANSPORT: {transport}\nPUBSUB_URL: {}", org.pubsub_url()),
    )
}

/// What the handlers saw: channel, sobject type or event name, change type
/// or field, replay id as text, CometD replay id.
type Seen = Arc<Mutex<Vec<(String, String, String, Option<String>, Option<i64>)>>>;

async fn start(
    org: &Emulator,
    transport: &str,
    store: Arc<MemoryStore>,
    seen: Seen,
) -> sfstream_service::RunningService {
    let (c, p, s) = (seen.clone(), seen.clone(), seen);
    Service::new("pubsub_service")
        .config(pubsub_config(org, transport))
        .replay_store(store)
        .handler(
            move |Channel(channel): Channel,
                  SobjectType(t): SobjectType,
                  Change(event): Change,
                  Replay(replay): Replay,
                  ReplayId(id): ReplayId| {
                let c = c.clone();
                async move {
                    c.lock()
                        .push((channel, t, event.payload.header.change_type, replay, id));
                }
            },
            [change_events("Contact"), change_events_all()],
        )
        .handler(
            move |Name(name): Name, Platform(event): Platform, Replay(replay): Replay| {
                let p = p.clone();
                async move {
                    let model = event.payload["Model__c"].as_str().unwrap_or_default();
                    p.lock()
                        .push((name, model.to_string(), String::new(), replay, None));
                }
            },
            [platform_event("Printer__e")],
        )
        .handler(
            move |Channel(channel): Channel, ReplayId(id): ReplayId| {
                let s = s.clone();
                async move {
                    s.lock()
                        .push((channel, "Lead".into(), "notification".into(), None, id));
                }
            },
            // Changes by the service's own user are excluded by default.
            [handle_sobject_notification("Lead").exclude_current_user(false)],
        )
        .start()
        .await
        .expect("starts")
}

#[tokio::test]
async fn the_same_handlers_run_over_pubsub_and_a_restart_resumes_after_the_markers() {
    let org = emulator().await;
    org.org()
        .define_platform_event("Printer__e", &[("Model__c", FieldType::String)])
        .expect("event type");
    let store = Arc::new(MemoryStore::new());
    let seen: Seen = Arc::default();
    let running = start(&org, "pubsub", store.clone(), seen.clone()).await;

    create(&org, "Contact", json!({"LastName": "Lovelace"}));
    create(&org, "Printer__e", json!({"Model__c": "XZO-5"}));
    create(
        &org,
        "Lead",
        json!({"LastName": "Hopper", "Company": "Navy"}),
    );
    // Contact and Lead on /data/ChangeEvents, Contact on its own topic,
    // the platform event, the Lead PushTopic notification.
    assert!(
        eventually(15, || seen.lock().len() >= 5).await,
        "{:?}",
        seen.lock()
    );
    let got = seen.lock().clone();
    let contact: Vec<_> = got
        .iter()
        .filter(|(channel, sobject, ..)| channel.starts_with("/data/") && sobject == "Contact")
        .collect();
    assert_eq!(contact.len(), 2, "{got:?}");
    for (channel, sobject, change, replay, id) in &contact {
        assert!(
            channel == "/data/ContactChangeEvent" || channel == "/data/ChangeEvents",
            "{channel}"
        );
        assert_eq!((sobject.as_str(), change.as_str()), ("Contact", "CREATE"));
        // Over Pub/Sub: an opaque replay id, as base64 text.
        let text = replay.as_deref().expect("a replay id");
        assert!(sfstream_pubsub_text(text), "{text}");
        assert_eq!(*id, None);
    }
    let printer = got
        .iter()
        .find(|(name, ..)| name == "Printer__e")
        .expect("the platform event");
    assert_eq!(printer.1, "XZO-5");
    assert!(sfstream_pubsub_text(printer.3.as_deref().expect("replay")));
    // The PushTopic stays on CometD, with its numeric replay id.
    let lead = got
        .iter()
        .find(|(_, _, kind, ..)| kind == "notification")
        .expect("the PushTopic notification");
    assert!(lead.4.is_some(), "{lead:?}");

    // Markers: opaque ones for the Pub/Sub topics, an integer one for the
    // PushTopic.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.list_opaque().await.expect("list").len() < 3
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let topics: BTreeSet<String> = store
        .list_opaque()
        .await
        .expect("list")
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    for topic in [
        "/data/ContactChangeEvent",
        "/data/ChangeEvents",
        "/event/Printer__e",
    ] {
        assert!(topics.contains(topic), "{topic} not in {topics:?}");
    }
    assert!(
        store.get("/topic/Lead").await.expect("get").is_some(),
        "the PushTopic's integer marker"
    );
    assert!(
        store
            .get_opaque("/topic/Lead")
            .await
            .expect("get")
            .is_none()
    );
    running.stop().await.expect("stops");

    // A restart with the same store: only what came after.
    create(&org, "Contact", json!({"LastName": "Babbage"}));
    let again: Seen = Arc::default();
    let running = start(&org, "pubsub", store.clone(), again.clone()).await;
    assert!(
        eventually(15, || again.lock().len() >= 2).await,
        "{:?}",
        again.lock()
    );
    // Give a duplicate time to show up.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let replays: Vec<_> = again.lock().iter().map(|e| e.3.clone()).collect();
    assert_eq!(
        again.lock().len(),
        2,
        "only the new contact, twice: {replays:?}"
    );
    running.stop().await.expect("stops");
}

fn sfstream_pubsub_text(text: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .is_ok_and(|bytes| bytes.len() == 10)
}

#[tokio::test]
async fn an_entrypoint_chooses_its_transport_and_two_choices_for_one_channel_are_refused() {
    let org = emulator().await;
    let store = Arc::new(MemoryStore::new());
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let s = seen.clone();
    // The config says CometD; this entrypoint says Pub/Sub.
    let running = Service::new("per_entrypoint")
        .config(pubsub_config(&org, "cometd"))
        .replay_store(store.clone())
        .handler(
            move |Replay(replay): Replay| {
                let s = s.clone();
                async move { s.lock().push(replay) }
            },
            [change_events("Account").transport(Transport::PubSub)],
        )
        .start()
        .await
        .expect("starts");
    create(&org, "Account", json!({"Name": "Acme"}));
    assert!(eventually(15, || !seen.lock().is_empty()).await);
    let replay = seen.lock()[0].clone().expect("replay");
    assert!(sfstream_pubsub_text(&replay), "{replay}");
    running.stop().await.expect("stops");

    let refused = Service::new("conflict")
        .config(pubsub_config(&org, "cometd"))
        .handler(
            || async {},
            [
                change_events("Account").transport(Transport::PubSub),
                change_events("Account"),
            ],
        )
        .start()
        .await;
    match refused {
        Err(ServiceError::ConflictingTransports { channel, .. }) => {
            assert_eq!(channel, "/data/AccountChangeEvent");
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("started with two transports for one channel"),
    }
}
