//! The opaque-marker (Pub/Sub API) part of the store contract, and the
//! Redis layout of opaque markers (on a private redis-server).

use std::time::Duration;

use chrono::DateTime;
use redis::AsyncCommands;
use sfstream_salesforce::replay::{
    DEFAULT_OPAQUE_PREFIX, FileStore, OpaqueMarker, RedisStore, ReplayMarker, ReplayStore,
};
use sfstream_testkit::redis::RedisServer;

fn o(id: &[u8], ms: Option<i64>) -> OpaqueMarker {
    OpaqueMarker::new(id.to_vec(), ms.and_then(DateTime::from_timestamp_millis))
}

/// What every store does with opaque markers. `store` must hold no opaque
/// markers; integer markers it holds are left as they are.
pub async fn contract(store: &dyn ReplayStore) {
    let t0 = 1_712_694_387_000_i64;
    let topic = "/data/AccountChangeEvent";
    assert_eq!(store.get_opaque(topic).await.expect("get"), None);
    assert!(store.list_opaque().await.expect("list").is_empty());
    let integers = store.list().await.expect("list");

    // The same name as a CometD channel: the two markers never mix.
    store
        .advance(topic, ReplayMarker::new(77, None))
        .await
        .expect("advance");
    let first = o(&[0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0], Some(t0));
    store.put_opaque(topic, &first).await.expect("put");
    assert_eq!(store.get_opaque(topic).await.expect("get"), Some(first));
    assert_eq!(
        store.get(topic).await.expect("get"),
        Some(ReplayMarker::new(77, None))
    );

    // Opaque ids cannot be compared: the store keeps what it is given,
    // even bytes that look smaller (the client orders them).
    let second = o(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0], None);
    store.put_opaque(topic, &second).await.expect("put");
    assert_eq!(
        store.get_opaque(topic).await.expect("get"),
        Some(second.clone())
    );

    // A batch: a later entry of the same topic wins; any bytes round-trip.
    let odd = o(&[0xff, 0x00, b' ', b':', 0x80], Some(-1));
    store
        .put_opaque_many(&[
            ("/event/Order__e".to_string(), o(&[1], Some(t0))),
            ("/event/Order__e".to_string(), odd.clone()),
            ("/event/Other__e?".to_string(), o(&[2; 64], Some(t0 + 1))),
        ])
        .await
        .expect("put many");
    store.put_opaque_many(&[]).await.expect("empty batch");
    assert_eq!(
        store.list_opaque().await.expect("list"),
        vec![
            ("/data/AccountChangeEvent".to_string(), second),
            ("/event/Order__e".to_string(), odd),
            ("/event/Other__e?".to_string(), o(&[2; 64], Some(t0 + 1))),
        ]
    );

    // Removing one kind leaves the other.
    store.remove(topic).await.expect("remove");
    assert!(store.get_opaque(topic).await.expect("get").is_some());
    store
        .advance(topic, ReplayMarker::new(78, None))
        .await
        .expect("advance");
    store.remove_opaque(topic).await.expect("remove");
    store.remove_opaque(topic).await.expect("removing twice");
    assert_eq!(store.get_opaque(topic).await.expect("get"), None);
    assert_eq!(
        store.get(topic).await.expect("get"),
        Some(ReplayMarker::new(78, None))
    );
    store.remove(topic).await.expect("remove");

    for (topic, _) in store.list_opaque().await.expect("list") {
        store.remove_opaque(&topic).await.expect("cleanup");
    }
    assert!(store.list_opaque().await.expect("list").is_empty());
    assert_eq!(store.list().await.expect("list"), integers);
}

#[tokio::test]
async fn file_store_keeps_opaque_markers_across_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("replay.redb");
    let marker = o(&[9, 8, 7], Some(1_712_694_387_000));
    {
        let store = FileStore::open(&path).expect("open");
        store.put_opaque("/event/E__e", &marker).await.expect("put");
    }
    let store = FileStore::open(&path).expect("reopen");
    assert_eq!(
        store.get_opaque("/event/E__e").await.expect("get"),
        Some(marker)
    );
    assert_eq!(store.get("/event/E__e").await.expect("get"), None);
}

#[tokio::test]
async fn redis_opaque_markers_live_apart_from_python_keys_with_the_ttl() {
    let server = RedisServer::start().await;
    let url = server.url();
    let store = RedisStore::connect(&url, Some(Duration::from_secs(600)))
        .await
        .expect("connect");
    assert_eq!(store.opaque_prefix(), DEFAULT_OPAQUE_PREFIX);
    contract(&store).await;

    let topic = "/data/AccountChangeEvent";
    store
        .put_opaque(topic, &o(&[0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0], Some(5)))
        .await
        .expect("put");
    let mut raw = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    // The documented layout, under a key the Python extension never reads.
    let value: Option<String> = raw
        .get(format!("salesforce:pubsub_replay:{topic}"))
        .await
        .expect("GET");
    assert_eq!(value.as_deref(), Some("AAAAAAAAEjQAAA== 5"));
    let python: Option<String> = raw
        .get(format!("salesforce:replay_id:{topic}"))
        .await
        .expect("GET");
    assert_eq!(python, None);
    let ttl: i64 = raw
        .pttl(format!("salesforce:pubsub_replay:{topic}"))
        .await
        .expect("PTTL");
    assert!(ttl > 590_000 && ttl <= 600_000, "{ttl}");

    // Without a TTL the key stays.
    let forever = RedisStore::connect(&url, None).await.expect("connect");
    forever
        .put_opaque(topic, &o(&[1], None))
        .await
        .expect("put");
    let ttl: i64 = raw
        .pttl(format!("salesforce:pubsub_replay:{topic}"))
        .await
        .expect("PTTL");
    assert_eq!(ttl, -1);

    // A value that is not a marker is reported, naming the key.
    let _: () = raw
        .set(format!("salesforce:pubsub_replay:{topic}"), "not base64!")
        .await
        .expect("SET");
    let error = store.get_opaque(topic).await.expect_err("corrupt");
    assert!(
        error
            .to_string()
            .contains("salesforce:pubsub_replay:/data/"),
        "{error}"
    );
}
