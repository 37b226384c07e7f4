//! Replay ids in Redis as the Python extension keeps them
//! (`PUSHTOPIC_REPLAY_ENABLED`): key `salesforce:replay_id:<channel>`
//! holding an integer with the TTL, and a value "Python" wrote is where a
//! restart resumes. Needs Redis on 127.0.0.1:6379 (database 11).

mod common;

use std::sync::Arc;

use parking_lot::Mutex;
use redis::AsyncCommands;
use sfstream_service::{PushTopic, Service, handle_notification};

use common::{config, contacts, emulator, eventually, latest};
use sfstream_testkit::unique;

const REDIS: &str = "redis://127.0.0.1:6379/11";

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379")
}

#[tokio::test]
async fn markers_live_in_redis_where_the_python_extension_keeps_them() {
    let org = emulator().await;
    let mut conn = redis().await;
    let name = unique("Py");
    let channel = format!("/topic/{name}");
    let key = format!("salesforce:replay_id:{channel}");
    let created_key = format!("salesforce:replay_created:{channel}");
    let settings = format!(
        "PUSHTOPIC_REPLAY_ENABLED: True\nPUSHTOPIC_REPLAY_REDIS_URI: {REDIS}\nPUSHTOPIC_REPLAY_TTL: 3600\nDEFAULT_REPLAY: ALL"
    );
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let service = |seen: Arc<Mutex<Vec<i64>>>| {
        Service::new("python-compat")
            .config(config(&org, "", &settings))
            .handler(
                move |PushTopic(event): PushTopic| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().push(event.event.replay_id);
                    }
                },
                [handle_notification(name.clone()).query("SELECT Id, LastName FROM Contact")],
            )
    };

    let running = service(seen.clone()).start().await.expect("starts");
    contacts(&org, 0, 3);
    assert!(eventually(15, || seen.lock().len() == 3).await);
    running.stop().await.expect("stops");
    let stored: i64 = conn
        .get(&key)
        .await
        .expect("an integer under the Python key");
    assert_eq!(stored, latest(&org, &channel));
    let ttl: i64 = conn.ttl(&key).await.expect("ttl");
    assert!(ttl > 0 && ttl <= 3600, "ttl {ttl}");

    // "Python" handled only up to the first event: a plain SET, no
    // creation time.
    let first = seen.lock()[0];
    let _: () = conn.del(&created_key).await.expect("del");
    let _: () = conn.set(&key, first).await.expect("set");
    contacts(&org, 3, 2);
    let again: Arc<Mutex<Vec<i64>>> = Arc::default();
    let running = service(again.clone()).start().await.expect("restarts");
    let last = latest(&org, &channel);
    assert!(eventually(15, || again.lock().last() == Some(&last)).await);
    running.stop().await.expect("stops");
    let expected: Vec<i64> = seen.lock()[1..].to_vec();
    let got = again.lock().clone();
    assert_eq!(
        got[..2],
        expected[..],
        "resumed right after the Python marker"
    );
    assert_eq!(got.len(), 4, "{got:?}");
    let stored: i64 = conn.get(&key).await.expect("integer");
    assert_eq!(stored, last);

    let _: () = conn.del(&[&key, &created_key]).await.expect("cleanup");
}
