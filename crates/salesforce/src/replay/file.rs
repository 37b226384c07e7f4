//! [`FileStore`]: markers in a crash-safe redb database file.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::DateTime;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::marker::ReplayMarker;
use super::opaque::OpaqueMarker;
use super::store::{ReplayStore, StoreError};

/// channel key → (replay id, creation time in epoch ms or [`NO_TIME`]).
const TABLE: TableDefinition<&str, (i64, i64)> = TableDefinition::new("replay_markers");

/// Pub/Sub topic → (opaque replay id, creation time in epoch ms or
/// [`NO_TIME`]): a table of its own, so a topic name that is also a CometD
/// channel keeps both markers apart.
const OPAQUE_TABLE: TableDefinition<&str, (&[u8], i64)> =
    TableDefinition::new("pubsub_replay_markers");

/// The stored creation time of a marker without one.
const NO_TIME: i64 = i64::MIN;

/// The first bytes of every redb file.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Markers in a [redb](https://docs.rs/redb) database file.
///
/// Every [`advance`](ReplayStore::advance),
/// [`advance_many`](ReplayStore::advance_many), [`replace`](ReplayStore::replace)
/// and [`remove`](ReplayStore::remove) is one durable write transaction:
/// after it returns the change survives a crash, and a crash during it
/// leaves the previous markers. Batching with `advance_many` pays for one
/// `fsync` per batch instead of one per event. The file is locked while it is
/// open, so two processes cannot write it at once.
///
/// ```
/// use sfstream_salesforce::replay::{FileStore, ReplayMarker, ReplayStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("replay.redb");
/// {
///     let store = FileStore::open(&path)?;
///     store.advance("/data/ChangeEvents", ReplayMarker::new(37904280, None)).await?;
/// }
/// let store = FileStore::open(&path)?;
/// assert_eq!(
///     store.get("/data/ChangeEvents").await?,
///     Some(ReplayMarker::new(37904280, None))
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FileStore {
    db: Arc<Database>,
    path: PathBuf,
    name: Arc<str>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish()
    }
}

impl FileStore {
    /// Opens the database at `path`, creating the file if it does not exist
    /// (its directory must). Blocks while the file is opened.
    ///
    /// Fails with [`StoreError::Corrupt`] when the file is not a redb
    /// database, [`StoreError::InUse`] when it is already open, and
    /// [`StoreError::Io`] when its directory does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let name = format!("file:{}", path.display());
        let io = |context: String, source: std::io::Error| StoreError::Io {
            store: name.clone(),
            context,
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(io(
                format!("directory {} does not exist", parent.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                return Err(io(
                    "the path is a directory, not a database file".to_string(),
                    std::io::Error::from(std::io::ErrorKind::InvalidInput),
                ));
            }
            Ok(meta) if meta.len() > 0 => {
                let mut head = [0u8; REDB_MAGIC.len()];
                let read = File::open(&path)
                    .and_then(|mut file| read_up_to(&mut file, &mut head))
                    .map_err(|e| io("cannot read the file".to_string(), e))?;
                if read < head.len() || head != REDB_MAGIC {
                    return Err(StoreError::Corrupt {
                        store: name,
                        detail: "the file is not a redb replay database".to_string(),
                    });
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("cannot inspect the file".to_string(), e)),
        }
        let db = Database::create(&path).map_err(|e| map_err(&name, e))?;
        // Create the table up front, so reads never meet a missing table and
        // a file with another layout is refused now.
        let txn = db.begin_write().map_err(|e| map_err(&name, e))?;
        txn.open_table(TABLE).map_err(|e| map_err(&name, e))?;
        txn.open_table(OPAQUE_TABLE)
            .map_err(|e| map_err(&name, e))?;
        txn.commit().map_err(|e| map_err(&name, e))?;
        Ok(Self {
            db: Arc::new(db),
            path,
            name: name.into(),
        })
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `op` on a blocking thread: redb reads and commits block.
    async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database, &str) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let name = Arc::clone(&self.name);
        tokio::task::spawn_blocking(move || op(&db, &name))
            .await
            .map_err(|e| StoreError::Task {
                store: self.name.to_string(),
                detail: e.to_string(),
            })?
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn map_err(store: &str, err: impl Into<redb::Error>) -> StoreError {
    let store = store.to_string();
    match err.into() {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            StoreError::InUse { store }
        }
        redb::Error::Io(source) => StoreError::Io {
            store,
            context: "database I/O failed".to_string(),
            source,
        },
        redb::Error::Corrupted(detail) => StoreError::Corrupt { store, detail },
        e @ (redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }) => StoreError::Corrupt {
            store,
            detail: format!("the file holds another kind of database: {e}"),
        },
        source => StoreError::Database { store, source },
    }
}

fn encode(marker: ReplayMarker) -> (i64, i64) {
    (marker.replay_id, marker.created_millis().unwrap_or(NO_TIME))
}

fn decode(
    store: &str,
    channel: &str,
    (replay_id, ms): (i64, i64),
) -> Result<ReplayMarker, StoreError> {
    let created = decode_time(store, channel, ms)?;
    Ok(ReplayMarker { replay_id, created })
}

fn decode_time(
    store: &str,
    channel: &str,
    ms: i64,
) -> Result<Option<DateTime<chrono::Utc>>, StoreError> {
    if ms == NO_TIME {
        return Ok(None);
    }
    DateTime::from_timestamp_millis(ms)
        .map(Some)
        .ok_or_else(|| StoreError::Corrupt {
            store: store.to_string(),
            detail: format!("creation time {ms} of {channel} is out of range"),
        })
}

fn decode_opaque(
    store: &str,
    topic: &str,
    (replay_id, ms): (&[u8], i64),
) -> Result<OpaqueMarker, StoreError> {
    Ok(OpaqueMarker {
        replay_id: replay_id.to_vec(),
        created: decode_time(store, topic, ms)?,
    })
}

/// Writes opaque markers in one durable transaction.
fn put_opaque_in(
    db: &Database,
    store: &str,
    markers: &[(String, OpaqueMarker)],
) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(|e| map_err(store, e))?;
    {
        let mut table = txn
            .open_table(OPAQUE_TABLE)
            .map_err(|e| map_err(store, e))?;
        for (topic, marker) in markers {
            let value = (
                marker.replay_id.as_slice(),
                marker.created_millis().unwrap_or(NO_TIME),
            );
            table
                .insert(topic.as_str(), value)
                .map_err(|e| map_err(store, e))?;
        }
    }
    txn.commit().map_err(|e| map_err(store, e))
}

/// Advances one marker inside an open write transaction.
fn advance_in(
    store: &str,
    table: &mut redb::Table<'_, &'static str, (i64, i64)>,
    channel: &str,
    marker: ReplayMarker,
) -> Result<bool, StoreError> {
    let key = channel;
    let stored = match table.get(key).map_err(|e| map_err(store, e))? {
        Some(guard) => Some(decode(store, key, guard.value())?),
        None => None,
    };
    if stored.is_some_and(|stored| !marker.is_newer_than(&stored)) {
        return Ok(false);
    }
    table
        .insert(key, encode(marker))
        .map_err(|e| map_err(store, e))?;
    Ok(true)
}

/// Runs `op` in one write transaction and commits it if `op` changed
/// anything (`op` returns the result and whether to commit).
fn write<T>(
    db: &Database,
    store: &str,
    op: impl FnOnce(&mut redb::Table<'_, &'static str, (i64, i64)>) -> Result<(T, bool), StoreError>,
) -> Result<T, StoreError> {
    let txn = db.begin_write().map_err(|e| map_err(store, e))?;
    let (result, changed) = {
        let mut table = txn.open_table(TABLE).map_err(|e| map_err(store, e))?;
        op(&mut table)?
    };
    if changed {
        txn.commit().map_err(|e| map_err(store, e))?;
    } else {
        txn.abort().map_err(|e| map_err(store, e))?;
    }
    Ok(result)
}

#[async_trait]
impl ReplayStore for FileStore {
    async fn get(&self, channel: &str) -> Result<Option<ReplayMarker>, StoreError> {
        let key = channel.to_string();
        self.run(move |db, store| {
            let txn = db.begin_read().map_err(|e| map_err(store, e))?;
            let table = txn.open_table(TABLE).map_err(|e| map_err(store, e))?;
            match table.get(key.as_str()).map_err(|e| map_err(store, e))? {
                Some(guard) => decode(store, &key, guard.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn advance(&self, channel: &str, marker: ReplayMarker) -> Result<bool, StoreError> {
        let key = channel.to_string();
        self.run(move |db, store| {
            write(db, store, |table| {
                let moved = advance_in(store, table, &key, marker)?;
                Ok((moved, moved))
            })
        })
        .await
    }

    async fn advance_many(&self, markers: &[(String, ReplayMarker)]) -> Result<usize, StoreError> {
        if markers.is_empty() {
            return Ok(0);
        }
        let markers = markers.to_vec();
        self.run(move |db, store| {
            write(db, store, |table| {
                let mut moved = 0;
                for (channel, marker) in &markers {
                    if advance_in(store, table, channel, *marker)? {
                        moved += 1;
                    }
                }
                Ok((moved, moved > 0))
            })
        })
        .await
    }

    async fn replace(&self, channel: &str, marker: ReplayMarker) -> Result<(), StoreError> {
        let key = channel.to_string();
        self.run(move |db, store| {
            write(db, store, |table| {
                table
                    .insert(key.as_str(), encode(marker))
                    .map_err(|e| map_err(store, e))?;
                Ok(((), true))
            })
        })
        .await
    }

    async fn remove(&self, channel: &str) -> Result<(), StoreError> {
        let key = channel.to_string();
        self.run(move |db, store| {
            write(db, store, |table| {
                let removed = table
                    .remove(key.as_str())
                    .map_err(|e| map_err(store, e))?
                    .is_some();
                Ok(((), removed))
            })
        })
        .await
    }

    async fn list(&self) -> Result<Vec<(String, ReplayMarker)>, StoreError> {
        self.run(move |db, store| {
            let txn = db.begin_read().map_err(|e| map_err(store, e))?;
            let table = txn.open_table(TABLE).map_err(|e| map_err(store, e))?;
            let mut all = Vec::new();
            for entry in table.iter().map_err(|e| map_err(store, e))? {
                let (key, value) = entry.map_err(|e| map_err(store, e))?;
                let channel = key.value().to_string();
                let marker = decode(store, &channel, value.value())?;
                all.push((channel, marker));
            }
            Ok(all)
        })
        .await
    }

    async fn get_opaque(&self, topic: &str) -> Result<Option<OpaqueMarker>, StoreError> {
        let key = topic.to_string();
        self.run(move |db, store| {
            let txn = db.begin_read().map_err(|e| map_err(store, e))?;
            let table = txn
                .open_table(OPAQUE_TABLE)
                .map_err(|e| map_err(store, e))?;
            match table.get(key.as_str()).map_err(|e| map_err(store, e))? {
                Some(guard) => decode_opaque(store, &key, guard.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn put_opaque(&self, topic: &str, marker: &OpaqueMarker) -> Result<(), StoreError> {
        let batch = vec![(topic.to_string(), marker.clone())];
        self.run(move |db, store| put_opaque_in(db, store, &batch))
            .await
    }

    async fn put_opaque_many(&self, markers: &[(String, OpaqueMarker)]) -> Result<(), StoreError> {
        if markers.is_empty() {
            return Ok(());
        }
        let batch = markers.to_vec();
        self.run(move |db, store| put_opaque_in(db, store, &batch))
            .await
    }

    async fn remove_opaque(&self, topic: &str) -> Result<(), StoreError> {
        let key = topic.to_string();
        self.run(move |db, store| {
            let txn = db.begin_write().map_err(|e| map_err(store, e))?;
            let removed = {
                let mut table = txn
                    .open_table(OPAQUE_TABLE)
                    .map_err(|e| map_err(store, e))?;
                table
                    .remove(key.as_str())
                    .map_err(|e| map_err(store, e))?
                    .is_some()
            };
            if removed {
                txn.commit().map_err(|e| map_err(store, e))
            } else {
                txn.abort().map_err(|e| map_err(store, e))
            }
        })
        .await
    }

    async fn list_opaque(&self) -> Result<Vec<(String, OpaqueMarker)>, StoreError> {
        self.run(move |db, store| {
            let txn = db.begin_read().map_err(|e| map_err(store, e))?;
            let table = txn
                .open_table(OPAQUE_TABLE)
                .map_err(|e| map_err(store, e))?;
            let mut all = Vec::new();
            for entry in table.iter().map_err(|e| map_err(store, e))? {
                let (key, value) = entry.map_err(|e| map_err(store, e))?;
                let topic = key.value().to_string();
                let marker = decode_opaque(store, &topic, value.value())?;
                all.push((topic, marker));
            }
            Ok(all)
        })
        .await
    }
}
