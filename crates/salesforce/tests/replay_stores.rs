//! One contract for every replay store (memory, redb file, Redis), plus the
//! file store's crash safety and the Redis store's compatibility with the
//! Python Nameko Salesforce extension.
//!
//! The Redis tests use `REDIS_URL` (default `redis://127.0.0.1:6379/0`) and
//! a key prefix unique to the test, removed afterwards. They need a real
//! Redis (`scripts/test-deps.sh` starts one).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::DateTime;
use redis::AsyncCommands;
use sfstream_salesforce::replay::{
    FileStore, MemoryStore, RedisStore, ReplayFrom, ReplayMarker, ReplayStore, StoreError,
    open_store, start_point,
};

#[path = "replay_stores/opaque.rs"]
mod opaque;

fn m(id: i64, ms: Option<i64>) -> ReplayMarker {
    ReplayMarker::new(id, ms.and_then(DateTime::from_timestamp_millis))
}

/// The behaviour every store must have. `store` must start empty.
async fn contract(store: &dyn ReplayStore) {
    let t0 = 1_712_694_387_000_i64;
    assert_eq!(store.get("/topic/A").await.expect("get"), None);
    assert!(store.list().await.expect("list").is_empty());
    assert_eq!(
        start_point(store, "/topic/A", ReplayFrom::All)
            .await
            .expect("start"),
        ReplayFrom::All
    );

    // First marker always lands.
    assert!(
        store
            .advance("/topic/A", m(10, Some(t0)))
            .await
            .expect("advance")
    );
    assert_eq!(
        store.get("/topic/A").await.expect("get"),
        Some(m(10, Some(t0)))
    );
    // A filtered subscription is a stream of its own, with its own marker.
    let filtered = "/topic/A?Industry='Energy'&ShippingCity='San Francisco'";
    assert!(
        store
            .advance(filtered, m(5, Some(t0)))
            .await
            .expect("advance")
    );
    assert_eq!(
        store.get(filtered).await.expect("get"),
        Some(m(5, Some(t0)))
    );
    assert_eq!(store.get("/topic/A?Other=1").await.expect("get"), None);
    assert_eq!(
        store.get("/topic/A").await.expect("get"),
        Some(m(10, Some(t0)))
    );
    store.remove(filtered).await.expect("remove");
    assert_eq!(store.get(filtered).await.expect("get"), None);
    assert_eq!(
        start_point(store, "/topic/A", ReplayFrom::All)
            .await
            .expect("start"),
        ReplayFrom::Id(10)
    );

    // Older time: kept, even with a larger replay id.
    assert!(
        !store
            .advance("/topic/A", m(99, Some(t0 - 1)))
            .await
            .expect("advance")
    );
    // The same marker again: kept.
    assert!(
        !store
            .advance("/topic/A", m(10, Some(t0)))
            .await
            .expect("advance")
    );
    // Same time, smaller id: kept; larger id: moves.
    assert!(
        !store
            .advance("/topic/A", m(9, Some(t0)))
            .await
            .expect("advance")
    );
    assert!(
        store
            .advance("/topic/A", m(11, Some(t0)))
            .await
            .expect("advance")
    );
    // Later time, smaller id: moves (times win when both are known).
    assert!(
        store
            .advance("/topic/A", m(5, Some(t0 + 250)))
            .await
            .expect("advance")
    );
    assert_eq!(
        store.get("/topic/A").await.expect("get"),
        Some(m(5, Some(t0 + 250)))
    );
    // Without a time the replay id decides, both ways.
    assert!(
        !store
            .advance("/topic/A", m(4, None))
            .await
            .expect("advance")
    );
    assert!(
        store
            .advance("/topic/A", m(6, None))
            .await
            .expect("advance")
    );
    assert_eq!(store.get("/topic/A").await.expect("get"), Some(m(6, None)));
    assert!(
        store
            .advance("/topic/A", m(7, Some(t0 - 5000)))
            .await
            .expect("advance")
    );
    assert_eq!(
        store.get("/topic/A").await.expect("get"),
        Some(m(7, Some(t0 - 5000)))
    );

    // Replay ids beyond 2^53 compare exactly (Lua numbers are doubles).
    let big = 9_007_199_254_740_992_i64;
    assert!(
        store
            .advance("/topic/Big", m(big + 1, None))
            .await
            .expect("advance")
    );
    assert!(
        !store
            .advance("/topic/Big", m(big, None))
            .await
            .expect("advance")
    );
    assert!(
        store
            .advance("/topic/Big", m(big + 2, None))
            .await
            .expect("advance")
    );
    assert!(
        store
            .advance("/topic/Big", m(i64::MAX, None))
            .await
            .expect("advance")
    );
    assert_eq!(
        store.get("/topic/Big").await.expect("get"),
        Some(m(i64::MAX, None))
    );

    // Times before 1970 and times with milliseconds survive.
    assert!(
        store
            .advance("/u/Old", m(1, Some(-86_400_123)))
            .await
            .expect("advance")
    );
    assert_eq!(
        store.get("/u/Old").await.expect("get"),
        Some(m(1, Some(-86_400_123)))
    );

    // replace moves backwards on purpose (the fallback after an expired id).
    store
        .replace("/topic/A", m(1, None))
        .await
        .expect("replace");
    assert_eq!(store.get("/topic/A").await.expect("get"), Some(m(1, None)));
    store
        .replace("/topic/A", m(2, Some(t0)))
        .await
        .expect("replace");
    assert_eq!(
        store.get("/topic/A").await.expect("get"),
        Some(m(2, Some(t0)))
    );

    // A batch: in order, duplicates included.
    let batch = vec![
        ("/data/ChangeEvents".to_string(), m(100, Some(t0))),
        ("/data/ChangeEvents".to_string(), m(101, Some(t0 + 1))),
        ("/data/ChangeEvents".to_string(), m(99, Some(t0 + 2))),
        ("/data/ChangeEvents".to_string(), m(500, Some(t0 - 1))),
        ("/topic/A".to_string(), m(1, Some(t0 - 1))),
        ("/topic/A".to_string(), m(3, Some(t0))),
        ("/event/Printer__e".to_string(), m(2112, None)),
    ];
    assert_eq!(store.advance_many(&batch).await.expect("batch"), 5);
    assert_eq!(store.advance_many(&[]).await.expect("empty batch"), 0);
    assert_eq!(store.advance_many(&batch).await.expect("batch again"), 0);
    assert_eq!(
        store.get("/data/ChangeEvents").await.expect("get"),
        Some(m(99, Some(t0 + 2)))
    );

    let listed = store.list().await.expect("list");
    assert_eq!(
        listed,
        vec![
            ("/data/ChangeEvents".to_string(), m(99, Some(t0 + 2))),
            ("/event/Printer__e".to_string(), m(2112, None)),
            ("/topic/A".to_string(), m(3, Some(t0))),
            ("/topic/Big".to_string(), m(i64::MAX, None)),
            ("/u/Old".to_string(), m(1, Some(-86_400_123))),
        ]
    );

    // remove, also of what is not there.
    store.remove("/topic/A").await.expect("remove");
    store
        .remove("/topic/Nothing")
        .await
        .expect("remove missing");
    assert_eq!(store.get("/topic/A").await.expect("get"), None);
    assert_eq!(store.list().await.expect("list").len(), 4);
    // After removal anything lands again.
    assert!(
        store
            .advance("/topic/A", m(1, None))
            .await
            .expect("advance")
    );

    for (channel, _) in store.list().await.expect("list") {
        store.remove(&channel).await.expect("cleanup");
    }
    assert!(store.list().await.expect("list").is_empty());
    opaque::contract(store).await;
}

/// Concurrent advancers on one store end with the maximum.
async fn concurrent_contract(stores: Vec<Arc<dyn ReplayStore>>) {
    let mut handles = Vec::new();
    let mut all = Vec::new();
    let mut rng = Rng::new();
    for (i, store) in stores.iter().enumerate() {
        let markers: Vec<ReplayMarker> = (0..40)
            .map(|_| {
                m(
                    rng.below(1000) as i64,
                    Some(1_700_000_000_000 + rng.below(500) as i64),
                )
            })
            .collect();
        all.extend(markers.iter().copied());
        let store = Arc::clone(store);
        handles.push(tokio::spawn(async move {
            for (n, marker) in markers.into_iter().enumerate() {
                if (n + i) % 4 == 0 {
                    let batch = vec![("/topic/Race".to_string(), marker)];
                    store.advance_many(&batch).await.expect("batch");
                } else {
                    store.advance("/topic/Race", marker).await.expect("advance");
                }
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let want = all
        .iter()
        .copied()
        .max_by_key(|m| (m.created, m.replay_id))
        .expect("markers");
    assert_eq!(stores[0].get("/topic/Race").await.expect("get"), Some(want));
    stores[0].remove("/topic/Race").await.expect("cleanup");
}

/// A small xorshift generator seeded from the clock.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Self(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------
// Memory

#[tokio::test]
async fn memory_store_contract() {
    contract(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_concurrent() {
    let store: Arc<dyn ReplayStore> = Arc::new(MemoryStore::new());
    concurrent_contract(vec![store; 8]).await;
}

// ---------------------------------------------------------------------------
// File

#[tokio::test]
async fn file_store_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileStore::open(dir.path().join("replay.redb")).expect("open");
    contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_store_concurrent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn ReplayStore> =
        Arc::new(FileStore::open(dir.path().join("replay.redb")).expect("open"));
    concurrent_contract(vec![store; 8]).await;
}

#[tokio::test]
async fn file_store_reopen_keeps_markers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("replay.redb");
    {
        let store = FileStore::open(&path).expect("open");
        store
            .advance("/topic/A", m(13, Some(1_000)))
            .await
            .expect("advance");
        store
            .advance_many(&[
                ("/topic/B".to_string(), m(20, None)),
                ("/topic/C".to_string(), m(30, Some(5))),
            ])
            .await
            .expect("batch");
        // Dropped without any close.
    }
    let store = FileStore::open(&path).expect("reopen");
    assert_eq!(
        store.list().await.expect("list"),
        vec![
            ("/topic/A".to_string(), m(13, Some(1_000))),
            ("/topic/B".to_string(), m(20, None)),
            ("/topic/C".to_string(), m(30, Some(5))),
        ]
    );
}

const CRASH_PATH_ENV: &str = "SFSTREAM_REPLAY_CRASH_PATH";

/// Not a test on its own: when run by `file_store_survives_a_crash` with
/// the crash path set, it writes markers and aborts the process.
#[tokio::test]
async fn crash_child() {
    let Ok(path) = std::env::var(CRASH_PATH_ENV) else {
        return;
    };
    let store = FileStore::open(&path).expect("open");
    store
        .advance("/topic/A", m(1, Some(1)))
        .await
        .expect("advance");
    let batch: Vec<_> = (0..100)
        .map(|i| (format!("/topic/T{i}"), m(i, Some(i * 10))))
        .collect();
    store.advance_many(&batch).await.expect("batch");
    store
        .advance("/topic/A", m(2, Some(2)))
        .await
        .expect("advance");
    std::process::abort();
}

#[test]
fn file_store_survives_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("replay.redb");
    let exe = std::env::current_exe().expect("test binary");
    let status = std::process::Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_PATH_ENV, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run child");
    assert!(!status.success(), "the child should have aborted");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = FileStore::open(&path).expect("reopen after crash");
        let listed = store.list().await.expect("list");
        assert_eq!(listed.len(), 101);
        assert_eq!(
            store.get("/topic/A").await.expect("get"),
            Some(m(2, Some(2)))
        );
        assert_eq!(
            store.get("/topic/T99").await.expect("get"),
            Some(m(99, Some(990)))
        );
    });
}

#[test]
fn file_store_errors_are_clear() {
    let dir = tempfile::tempdir().expect("tempdir");

    let not_redb = dir.path().join("notes.txt");
    std::fs::write(&not_redb, "these are not replay markers\n").expect("write");
    match FileStore::open(&not_redb) {
        Err(err @ StoreError::Corrupt { .. }) => {
            let text = err.to_string();
            eprintln!("{text}");
            assert!(text.contains("not a redb replay database"), "{text}");
            assert!(text.contains("notes.txt"), "{text}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let tiny = dir.path().join("tiny");
    std::fs::write(&tiny, "x").expect("write");
    assert!(matches!(
        FileStore::open(&tiny),
        Err(StoreError::Corrupt { .. })
    ));

    let no_dir = dir.path().join("missing").join("replay.redb");
    match FileStore::open(&no_dir) {
        Err(err @ StoreError::Io { .. }) => {
            let text = err.to_string();
            eprintln!("{text}");
            assert!(text.contains("does not exist"), "{text}");
            assert!(text.contains("missing"), "{text}");
        }
        other => panic!("expected Io, got {other:?}"),
    }

    assert!(matches!(
        FileStore::open(dir.path()),
        Err(StoreError::Io { .. })
    ));

    let path = dir.path().join("replay.redb");
    let _first = FileStore::open(&path).expect("open");
    match FileStore::open(&path) {
        Err(err @ StoreError::InUse { .. }) => {
            eprintln!("{err}");
            assert!(err.to_string().contains("already open"), "{err}");
        }
        other => panic!("expected InUse, got {other:?}"),
    }
}

#[tokio::test]
async fn open_store_uris() {
    let memory = open_store("memory:").await.expect("memory");
    contract(memory.as_ref()).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("replay.redb");
    let file = open_store(&format!("file:{}", path.display()))
        .await
        .expect("file");
    file.advance("/topic/A", m(1, None)).await.expect("advance");
    drop(file);
    let again = open_store(&format!("file://{}", path.display()))
        .await
        .expect("file again");
    assert_eq!(again.get("/topic/A").await.expect("get"), Some(m(1, None)));

    let err = open_store("ftp://x").await.expect_err("bad scheme");
    assert!(matches!(err, StoreError::InvalidUri { .. }));
    assert!(
        err.to_string().contains("memory:, file:PATH, redis://"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Redis

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_string())
}

/// A key prefix no other test (or test run) uses.
fn key_prefix(label: &str) -> String {
    format!("sfstream-test:{}:", sfstream_testkit::unique(label))
}

async fn raw_redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// Deletes every key starting with `prefix`.
async fn delete_prefix(url: &str, prefix: &str) {
    let mut conn = raw_redis(url).await;
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.expect("KEYS");
    if !keys.is_empty() {
        let _: i64 = conn.del(keys).await.expect("DEL");
    }
}

async fn redis_store(url: &str, base: &str, ttl: Option<Duration>) -> RedisStore {
    RedisStore::connect(url, ttl)
        .await
        .expect("connect to redis")
        .with_key_prefix(format!("{base}replay_id:"))
}

#[tokio::test]
async fn redis_store_contract() {
    let url = redis_url();
    let base = key_prefix("contract");
    let store = redis_store(&url, &base, Some(Duration::from_secs(600))).await;
    assert_eq!(store.created_prefix(), format!("{base}replay_created:"));
    contract(&store).await;
    delete_prefix(&url, &base).await;

    let base = key_prefix("contract-nottl");
    let store = redis_store(&url, &base, None).await;
    contract(&store).await;
    delete_prefix(&url, &base).await;

    // Prefixes where the created one extends the id one.
    let base = key_prefix("contract-nested");
    let store = RedisStore::connect(&url, None)
        .await
        .expect("connect")
        .with_key_prefix(base.clone());
    assert_eq!(store.created_prefix(), format!("{base}created:"));
    contract(&store).await;
    delete_prefix(&url, &base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_concurrent() {
    let url = redis_url();
    let base = key_prefix("race");
    let mut stores: Vec<Arc<dyn ReplayStore>> = Vec::new();
    // Eight separate connections, as eight processes would have.
    for _ in 0..8 {
        stores.push(Arc::new(
            redis_store(&url, &base, Some(Duration::from_secs(600))).await,
        ));
    }
    concurrent_contract(stores).await;
    delete_prefix(&url, &base).await;
}

#[tokio::test]
async fn redis_reads_and_writes_python_keys() {
    let url = redis_url();
    let mut conn = raw_redis(&url).await;
    // The default prefix, as the Python extension uses it; the channel is
    // unique so parallel runs do not collide.
    let channel = format!("/topic/X{}", key_prefix("compat").replace(':', "_"));
    let id_key = format!("salesforce:replay_id:{channel}");
    let created_key = format!("salesforce:replay_created:{channel}");
    let store = RedisStore::connect(&url, None).await.expect("connect");
    assert_eq!(store.id_prefix(), "salesforce:replay_id:");

    // What Python wrote: a bare integer.
    let _: () = conn.set(&id_key, 42).await.expect("SET");
    assert_eq!(store.get(&channel).await.expect("get"), Some(m(42, None)));
    assert!(
        !store
            .advance(&channel, m(41, Some(1)))
            .await
            .expect("advance")
    );
    assert!(
        store
            .advance(&channel, m(43, Some(5_000)))
            .await
            .expect("advance")
    );

    // What we wrote: an integer Python reads back with int(GET …).
    let raw: String = conn.get(&id_key).await.expect("GET");
    assert_eq!(raw, "43");
    let as_int: i64 = conn.get(&id_key).await.expect("GET");
    assert_eq!(as_int, 43);
    let created: String = conn.get(&created_key).await.expect("GET created");
    assert_eq!(created, "5000:43");

    // Python moves on and writes only the id key: our stale time must not
    // be believed, or an older event (by id) could win on time.
    let _: () = conn.set(&id_key, 50).await.expect("SET");
    assert_eq!(store.get(&channel).await.expect("get"), Some(m(50, None)));
    assert!(
        !store
            .advance(&channel, m(45, Some(9_000)))
            .await
            .expect("advance")
    );
    assert!(
        store
            .advance(&channel, m(51, Some(9_000)))
            .await
            .expect("advance")
    );
    assert_eq!(
        store.get(&channel).await.expect("get"),
        Some(m(51, Some(9_000)))
    );

    // A marker without a time drops the companion key.
    store.replace(&channel, m(7, None)).await.expect("replace");
    let exists: bool = conn.exists(&created_key).await.expect("EXISTS");
    assert!(!exists);

    // Garbage under our key is reported, not overwritten.
    let _: () = conn.set(&id_key, "not-a-number").await.expect("SET");
    let err = store.get(&channel).await.expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let err = store
        .advance(&channel, m(1, None))
        .await
        .expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&id_key), "{err}");
    let still: String = conn.get(&id_key).await.expect("GET");
    assert_eq!(still, "not-a-number");

    store.remove(&channel).await.expect("remove");
    let exists: bool = conn.exists(&id_key).await.expect("EXISTS");
    assert!(!exists);
}

#[tokio::test]
async fn redis_ttl_is_applied() {
    let url = redis_url();
    let mut conn = raw_redis(&url).await;
    let base = key_prefix("ttl");
    let store = redis_store(&url, &base, Some(Duration::from_secs(120))).await;
    store
        .advance("/topic/T", m(1, Some(10)))
        .await
        .expect("advance");
    let id_key = format!("{base}replay_id:/topic/T");
    let created_key = format!("{base}replay_created:/topic/T");
    for key in [&id_key, &created_key] {
        let ttl: i64 = conn.ttl(key).await.expect("TTL");
        assert!((100..=120).contains(&ttl), "{key}: TTL {ttl}");
    }
    // Every write renews it, batch writes too.
    let _: () = conn.expire(&id_key, 5).await.expect("EXPIRE");
    store
        .advance_many(&[("/topic/T".to_string(), m(2, Some(11)))])
        .await
        .expect("batch");
    let ttl: i64 = conn.ttl(&id_key).await.expect("TTL");
    assert!(ttl > 100, "TTL {ttl}");

    // Without a TTL keys do not expire.
    let forever = redis_store(&url, &base, None).await;
    forever
        .replace("/topic/T", m(3, None))
        .await
        .expect("replace");
    let ttl: i64 = conn.ttl(&id_key).await.expect("TTL");
    assert_eq!(ttl, -1);
    delete_prefix(&url, &base).await;

    // ttl= in a store URI.
    let channel = format!("/topic/U{}", key_prefix("uri").replace(':', "_"));
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = open_store(&format!("{url}{sep}ttl=77"))
        .await
        .expect("open");
    store.advance(&channel, m(1, None)).await.expect("advance");
    let key = format!("salesforce:replay_id:{channel}");
    let ttl: i64 = conn.ttl(&key).await.expect("TTL");
    assert!((60..=77).contains(&ttl), "TTL {ttl}");
    store.remove(&channel).await.expect("remove");
}

#[tokio::test]
async fn redis_ttl_is_refreshed_on_every_commit_even_when_the_marker_stays() {
    let url = redis_url();
    let mut conn = raw_redis(&url).await;
    let base = key_prefix("ttl-refresh");
    let store = redis_store(&url, &base, Some(Duration::from_secs(300))).await;
    let id_key = format!("{base}replay_id:/topic/T");
    let created_key = format!("{base}replay_created:/topic/T");
    store
        .advance("/topic/T", m(5, Some(50)))
        .await
        .expect("advance");
    let ttls = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        let keys = [id_key.clone(), created_key.clone()];
        async move {
            let mut out = Vec::new();
            for key in keys {
                let ttl: i64 = conn.ttl(&key).await.expect("TTL");
                out.push(ttl);
            }
            out
        }
    };
    let shorten = |conn: &mut redis::aio::MultiplexedConnection| {
        let mut conn = conn.clone();
        let keys = [id_key.clone(), created_key.clone()];
        async move {
            for key in keys {
                let _: () = conn.expire(&key, 5).await.expect("EXPIRE");
            }
        }
    };
    // An older marker (a late acknowledgement), the same marker again, and
    // an older one in a batch: the stored marker stays, its TTL is renewed.
    for (label, older) in [("older", m(4, Some(40))), ("same", m(5, Some(50)))] {
        shorten(&mut conn).await;
        let moved = store.advance("/topic/T", older).await.expect("advance");
        assert!(!moved, "{label}");
        for ttl in ttls(&mut conn).await {
            assert!(ttl > 250, "{label}: TTL {ttl} not renewed");
        }
    }
    shorten(&mut conn).await;
    store
        .advance_many(&[("/topic/T".to_string(), m(3, Some(30)))])
        .await
        .expect("batch");
    for ttl in ttls(&mut conn).await {
        assert!(ttl > 250, "batch: TTL {ttl} not renewed");
    }
    assert_eq!(
        store.get("/topic/T").await.expect("get"),
        Some(m(5, Some(50)))
    );
    delete_prefix(&url, &base).await;
}

/// Collects what `tracing` logs while `f` runs (on this thread).
async fn logs_of<F: std::future::Future<Output = ()>>(f: F) -> String {
    #[derive(Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map(|mut v| v.extend_from_slice(buf)).ok();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    {
        let _guard = tracing::subscriber::set_default(subscriber);
        f.await;
    }
    let bytes = sink.0.lock().map(|v| v.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(flavor = "current_thread")]
async fn redis_ttl_shorter_than_the_retention_is_warned_about() {
    let url = redis_url();
    let base = key_prefix("ttl-short");
    // Python's PUSHTOPIC_REPLAY_TTL: 3600 keeps working, with a warning.
    let logs = logs_of(async {
        let store = redis_store(&url, &base, Some(Duration::from_secs(3600))).await;
        store
            .advance("/topic/T", m(1, None))
            .await
            .expect("advance");
    })
    .await;
    assert!(
        logs.contains("WARN") && logs.contains("TTL") && logs.contains("retention"),
        "{logs}"
    );

    // 48 h covers PushTopics (24 h) but not Change Data Capture (72 h): the
    // first marker of such a channel is warned about, once.
    let logs = logs_of(async {
        let store = redis_store(&url, &base, Some(Duration::from_secs(48 * 3600))).await;
        store
            .advance("/topic/T", m(1, None))
            .await
            .expect("advance");
        store
            .advance("/u/Notes", m(1, None))
            .await
            .expect("advance");
    })
    .await;
    assert!(!logs.contains("WARN"), "{logs}");
    let logs = logs_of(async {
        let store = redis_store(&url, &base, Some(Duration::from_secs(48 * 3600))).await;
        store
            .advance("/data/AccountChangeEvent", m(1, None))
            .await
            .expect("advance");
        store
            .advance_many(&[("/event/Printer__e".to_string(), m(1, None))])
            .await
            .expect("advance");
    })
    .await;
    assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
    assert!(
        logs.contains("/data/AccountChangeEvent") && logs.contains("72"),
        "{logs}"
    );

    // Long enough, or no TTL: silent.
    let logs = logs_of(async {
        for ttl in [Some(Duration::from_secs(72 * 3600)), None] {
            let store = redis_store(&url, &base, ttl).await;
            store
                .advance("/data/ChangeEvents", m(2, None))
                .await
                .expect("advance");
        }
    })
    .await;
    assert!(!logs.contains("WARN"), "{logs}");
    delete_prefix(&url, &base).await;
}

#[tokio::test]
async fn redis_errors_hide_the_password() {
    let url = "redis://user:secret@127.0.0.1:1/0";
    let err = RedisStore::connect(url, None)
        .await
        .expect_err("nothing listens on port 1");
    let text = err.to_string();
    let debug = format!("{err:?}");
    eprintln!("{text}");
    assert!(
        !text.contains("secret") && !debug.contains("secret"),
        "{text} / {debug}"
    );
    assert!(text.contains("redis://user:***@127.0.0.1:1/0"), "{text}");

    let err = open_store(url).await.expect_err("closed port");
    assert!(!err.to_string().contains("secret"), "{err}");
    let err = open_store("redis://user:secret@[::1/0")
        .await
        .expect_err("bad url");
    eprintln!("{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
    assert!(!format!("{err:?}").contains("secret"), "{err:?}");
}
