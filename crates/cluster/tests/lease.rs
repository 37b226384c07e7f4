//! Leases against a real Redis (127.0.0.1:6379; keys unique per test).

use std::time::Duration;

use redis::aio::ConnectionManager;
use sfstream_cluster::{Lease, LeaseKey, LeaseState};
use sfstream_testkit::unique;

async fn redis() -> ConnectionManager {
    let client = redis::Client::open("redis://127.0.0.1:6379/0").expect("redis url");
    ConnectionManager::new(client)
        .await
        .expect("Redis on 127.0.0.1:6379 (scripts/test-deps.sh starts it)")
}

fn key() -> LeaseKey {
    LeaseKey::new(unique("svc"), "/topic/Orders")
}

const TTL: Duration = Duration::from_millis(600);

#[tokio::test]
async fn one_holder_at_a_time_and_release_hands_over_at_once() {
    let conn = redis().await;
    let key = key();
    let a = Lease::try_acquire(&conn, key.clone(), "replica-a", Duration::from_secs(30))
        .await
        .expect("redis")
        .expect("free at first");
    assert!(a.is_valid());
    assert!(
        Lease::try_acquire(&conn, key.clone(), "replica-b", TTL)
            .await
            .expect("redis")
            .is_none(),
        "held by a"
    );
    match Lease::state(&conn, &key).await.expect("redis") {
        LeaseState::Held { holder, token, ttl } => {
            assert_eq!(holder, "replica-a");
            assert_eq!(token, a.token());
            assert!(ttl > Duration::from_secs(25) && ttl <= Duration::from_secs(30));
        }
        LeaseState::Free => panic!("held"),
    }
    let first_token = a.token();
    assert!(a.release().await.expect("redis"));
    assert_eq!(
        Lease::state(&conn, &key).await.expect("redis"),
        LeaseState::Free
    );
    let b = Lease::try_acquire(&conn, key.clone(), "replica-b", TTL)
        .await
        .expect("redis")
        .expect("free after the release, without waiting for the TTL");
    assert!(
        b.token() > first_token,
        "tokens grow with every acquisition"
    );
}

#[tokio::test]
async fn renewing_keeps_the_lease_past_its_ttl() {
    let conn = redis().await;
    let key = key();
    let mut a = Lease::try_acquire(&conn, key.clone(), "replica-a", TTL)
        .await
        .expect("redis")
        .expect("free");
    for _ in 0..6 {
        tokio::time::sleep(TTL / 3).await;
        assert!(a.renew().await.expect("redis"));
        assert!(a.is_valid());
    }
    // Two TTLs have passed: still a's.
    assert!(
        Lease::try_acquire(&conn, key.clone(), "replica-b", TTL)
            .await
            .expect("redis")
            .is_none()
    );
}

#[tokio::test]
async fn a_holder_paused_past_its_ttl_is_invalid_and_cannot_take_it_back() {
    let conn = redis().await;
    let key = key();
    let mut a = Lease::try_acquire(&conn, key.clone(), "replica-a", TTL)
        .await
        .expect("redis")
        .expect("free");
    // a stalls (no renewals) past its TTL.
    tokio::time::sleep(TTL + Duration::from_millis(100)).await;
    assert!(!a.is_valid(), "known invalid locally before asking Redis");
    let b = Lease::try_acquire(&conn, key.clone(), "replica-b", Duration::from_secs(30))
        .await
        .expect("redis")
        .expect("expired, so free");
    assert!(b.token() > a.token());
    // a wakes up: its renewal is refused, and its release does not remove b's lease.
    assert!(!a.renew().await.expect("redis"));
    assert!(!a.is_valid());
    assert!(!a.release().await.expect("redis"));
    match Lease::state(&conn, &key).await.expect("redis") {
        LeaseState::Held { holder, token, .. } => {
            assert_eq!(holder, "replica-b");
            assert_eq!(token, b.token());
        }
        LeaseState::Free => panic!("b holds it"),
    }
}

#[tokio::test]
async fn holder_ids_with_spaces_are_refused() {
    let conn = redis().await;
    assert!(Lease::try_acquire(&conn, key(), "a b", TTL).await.is_err());
    assert!(Lease::try_acquire(&conn, key(), "", TTL).await.is_err());
}
