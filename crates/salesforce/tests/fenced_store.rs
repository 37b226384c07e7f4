//! Fenced Redis stores (cluster mode): a marker is written only while the
//! channel's lease holds this replica's value, checked in the same script.
//! Against the Redis on 127.0.0.1:6379, with keys unique to each test.

use std::sync::Arc;

use parking_lot::Mutex;
use sfstream_salesforce::replay::{Fence, OpaqueMarker, RedisStore, ReplayMarker, ReplayStore};
use sfstream_testkit::unique;

const REDIS: &str = "redis://127.0.0.1:6379/0";

async fn set(key: &str, value: &str) {
    let client = redis::Client::open(REDIS).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379");
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut conn)
        .await
        .expect("SET");
}

#[tokio::test]
async fn writes_go_through_only_while_the_lease_holds_our_value() {
    let prefix = format!("{}:replay_id:", unique("fenced"));
    let lease_key = format!("{}:lease", unique("fenced"));
    // What this replica believes it holds; "" when it does not lead.
    let ours = Arc::new(Mutex::new("replica-a 1".to_string()));
    let fence: Fence = {
        let (ours, lease_key) = (ours.clone(), lease_key.clone());
        Arc::new(move |_channel: &str| (lease_key.clone(), ours.lock().clone()))
    };
    let store = RedisStore::connect(REDIS, None)
        .await
        .expect("Redis")
        .with_key_prefix(prefix)
        .with_fence(fence);
    assert!(store.is_fenced());
    let channel = "/topic/Orders";
    let topic = "/data/OrderChangeEvent";

    set(&lease_key, "replica-a 1").await;
    assert!(
        store
            .advance(channel, ReplayMarker::new(10, None))
            .await
            .expect("advance")
    );
    store
        .put_opaque(topic, &OpaqueMarker::new(vec![1, 2, 3], None))
        .await
        .expect("put");
    assert_eq!(
        store
            .get_opaque(topic)
            .await
            .expect("get")
            .map(|m| m.replay_id),
        Some(vec![1, 2, 3])
    );

    // Another replica took the lease (we were paused past it): our writes,
    // even ones that would move forward, change nothing.
    set(&lease_key, "replica-b 2").await;
    assert!(
        !store
            .advance(channel, ReplayMarker::new(20, None))
            .await
            .expect("refused, not an error")
    );
    store
        .advance_many(&[(channel.to_string(), ReplayMarker::new(30, None))])
        .await
        .expect("batch");
    store
        .put_opaque(topic, &OpaqueMarker::new(vec![9, 9], None))
        .await
        .expect("put");
    assert_eq!(
        store.get(channel).await.expect("get").map(|m| m.replay_id),
        Some(10)
    );
    assert_eq!(
        store
            .get_opaque(topic)
            .await
            .expect("get")
            .map(|m| m.replay_id),
        Some(vec![1, 2, 3])
    );

    // Not leading at all (an empty value): refused too.
    *ours.lock() = String::new();
    assert!(
        !store
            .advance(channel, ReplayMarker::new(40, None))
            .await
            .expect("refused")
    );

    // Leading again with the new value: writes go through.
    *ours.lock() = "replica-b 2".to_string();
    assert!(
        store
            .advance(channel, ReplayMarker::new(50, None))
            .await
            .expect("advance")
    );
    assert_eq!(
        store.get(channel).await.expect("get").map(|m| m.replay_id),
        Some(50)
    );
}
