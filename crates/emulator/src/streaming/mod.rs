//! Streaming: channel histories, the events record changes raise
//! (PushTopic, Change Data Capture, platform events, generic channels),
//! CometD clients and their subscriptions, and the `/cometd` endpoint.

mod channels;
mod clients;
mod cometd;
mod events;
mod feed;
mod live;
mod pushtopics;

pub use channels::{ChannelKind, ChannelLog, ReplayFrom, StoredEvent};
pub use clients::StreamingStats;
pub use feed::Feed;
pub use live::{ChannelSummary, ClientSummary, LiveEvent, LiveFeed, RECENT, SubscriptionSummary};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::config::EmulatorConfig;
use crate::error::ApiError;
use crate::org::Org;
use crate::schema::ObjectKind;
use crate::store::{Record, RecordChange, Store};

use clients::Client;

/// Channels, clients and events of the org.
#[derive(Debug)]
pub struct Streaming {
    settings: Settings,
    inner: Mutex<Inner>,
    /// Bumped whenever something a waiting connect may care about happens.
    wake: watch::Sender<u64>,
    stats: StreamingStats,
    /// Raised events, for the console.
    live: LiveFeed,
}

#[derive(Debug, Clone)]
struct Settings {
    connect_hold: Duration,
    session_timeout: Duration,
    retention_standard: Duration,
    retention_extended: Duration,
    history_limit: usize,
    max_events_per_connect: usize,
}

#[derive(Debug, Default)]
struct Inner {
    channels: HashMap<String, ChannelLog>,
    next_replay_id: i64,
    commit_number: i64,
    clients: HashMap<String, Client>,
    topics: pushtopics::TopicCache,
    /// Armed gap faults, by entity (sobject API name).
    gap_faults: HashMap<String, GapFault>,
}

/// The next changes of an entity that raise gap events instead of
/// change events (`POST /_emulator/faults/gap-events`, `gap-overflow`).
#[derive(Debug, Default, Clone, Copy)]
struct GapFault {
    /// Changes that raise `GAP_CREATE`/`GAP_UPDATE`/… with the record id.
    gaps: u32,
    /// Changes that raise `GAP_OVERFLOW` (entity and time, no record id).
    overflows: u32,
}

/// What a change raises on the change event channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeShape {
    /// A change event with the record's fields.
    Normal,
    /// A gap event: header only, `GAP_<type>`, the record id.
    Gap,
    /// An overflow event: header only, `GAP_OVERFLOW`, no record id.
    Overflow,
}

impl Streaming {
    /// Streaming state for an org with these settings.
    pub fn new(config: &EmulatorConfig) -> Self {
        Self {
            settings: Settings {
                connect_hold: config.connect_hold,
                session_timeout: config.session_timeout,
                retention_standard: config.retention_standard,
                retention_extended: config.retention_extended,
                history_limit: config.history_limit,
                max_events_per_connect: config.max_events_per_connect.max(1),
            },
            inner: Mutex::new(Inner {
                next_replay_id: 1,
                commit_number: 1_082_990_428_000,
                ..Inner::default()
            }),
            wake: watch::channel(0).0,
            stats: StreamingStats::default(),
            live: LiveFeed::default(),
        }
    }

    /// Counters of CometD traffic.
    pub fn stats(&self) -> &StreamingStats {
        &self.stats
    }

    fn retention(&self, kind: ChannelKind) -> Duration {
        match kind {
            ChannelKind::PushTopic | ChannelKind::Generic => self.settings.retention_standard,
            ChannelKind::ChangeEvent | ChannelKind::PlatformEvent => {
                self.settings.retention_extended
            }
        }
    }

    /// Validates records that streaming owns (PushTopic, StreamingChannel)
    /// before they are saved.
    pub fn check_record(
        &self,
        store: &Store,
        sobject: &str,
        fields: &Record,
        id: Option<&str>,
    ) -> Result<(), ApiError> {
        if sobject.eq_ignore_ascii_case("PushTopic") {
            pushtopics::check(store, fields, id)?;
        }
        if sobject.eq_ignore_ascii_case("StreamingChannel")
            && let Some(name) = fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Name"))
                .and_then(|(_, v)| v.as_str())
            && (!name.starts_with("/u/") || name.len() <= 3)
        {
            return Err(ApiError::bad_request(
                "FIELD_INTEGRITY_EXCEPTION",
                format!("Streaming Channel Name: the name must start with /u/: {name}"),
            )
            .with_fields(vec!["Name".into()]));
        }
        Ok(())
    }

    /// Raises the events a record change causes: PushTopic notifications,
    /// Change Data Capture events, or the platform event itself. Returns
    /// the replay id of the CDC or platform event, if one was raised.
    pub fn record_changed(&self, store: &Store, change: &RecordChange) -> Option<i64> {
        let schema = store.schema(&change.sobject).ok()?;
        let mut inner = self.inner.lock();
        if schema.kind == ObjectKind::PlatformEvent {
            // The schema id Pub/Sub sends too: a fingerprint of the Avro schema.
            let schema_id = crate::pubsub::schema::platform_event(schema).id;
            let channel = format!("/event/{}", schema.name);
            let replay_id = self.append(&mut inner, &channel, change.at, |id| {
                events::platform(id, change, &schema_id)
            });
            return Some(replay_id);
        }
        for note in inner.topics.notifications(store, change) {
            let sobject = note.sobject;
            self.append(&mut inner, &note.channel, change.at, |id| {
                events::pushtopic(id, change.at, change.kind, sobject)
            });
        }
        if schema.cdc_enabled {
            inner.commit_number += 1;
            let commit = inner.commit_number;
            let avro = crate::pubsub::schema::change_event(schema);
            let (entity, schema_id) = (avro.name, avro.id);
            let shape = take_gap_fault(&mut inner.gap_faults, &change.sobject);
            let data = {
                let replay_id = inner.next_replay_id;
                events::change_event(replay_id, change, commit, &schema_id, shape)
            };
            // One event, the same replay id, on both the per-object and the all-objects channel.
            let replay_id = inner.next_replay_id;
            inner.next_replay_id += 1;
            for channel in [format!("/data/{entity}"), "/data/ChangeEvents".to_string()] {
                self.append_with_id(&mut inner, &channel, change.at, replay_id, &data);
            }
            self.notify();
            return Some(replay_id);
        }
        None
    }

    /// Publishes a generic streaming event on `/u/<name>`.
    pub fn publish_generic(&self, channel: &str, payload: &str) -> i64 {
        let mut inner = self.inner.lock();
        let at = Utc::now();
        self.append(&mut inner, channel, at, |id| {
            events::generic(id, at, payload)
        })
    }

    /// Appends `count` PushTopic-shaped events to `channel` at once (for
    /// benchmarks and backlog tests). Returns the last replay id.
    pub fn preload(&self, channel: &str, count: usize, sobject: &Record) -> i64 {
        let mut inner = self.inner.lock();
        let at = Utc::now();
        let mut last = 0;
        for _ in 0..count {
            let id = inner.next_replay_id;
            inner.next_replay_id += 1;
            let data =
                events::pushtopic(id, at, crate::store::ChangeKind::Updated, sobject.clone());
            self.append_with_id(&mut inner, channel, at, id, &data);
            last = id;
        }
        self.notify();
        last
    }

    fn append(
        &self,
        inner: &mut Inner,
        channel: &str,
        at: DateTime<Utc>,
        data: impl FnOnce(i64) -> Value,
    ) -> i64 {
        let replay_id = inner.next_replay_id;
        inner.next_replay_id += 1;
        let data = data(replay_id);
        self.append_with_id(inner, channel, at, replay_id, &data);
        self.notify();
        replay_id
    }

    fn append_with_id(
        &self,
        inner: &mut Inner,
        channel: &str,
        at: DateTime<Utc>,
        replay_id: i64,
        data: &Value,
    ) {
        let Some(kind) = ChannelKind::of(channel) else {
            return;
        };
        let message = json!({ "data": data, "channel": channel });
        let bytes = Bytes::from(serde_json::to_vec(&message).unwrap_or_default());
        let log = inner
            .channels
            .entry(channel.to_string())
            .or_insert_with(|| ChannelLog::new(kind));
        log.push(
            StoredEvent {
                replay_id,
                at,
                message: bytes.clone(),
                pubsub: Arc::default(),
            },
            self.settings.history_limit,
        );
        self.live.push(LiveEvent {
            channel: channel.to_string(),
            replay_id,
            at,
            message: bytes,
        });
        self.stats.events_raised.fetch_add(1, Ordering::Relaxed);
    }

    fn notify(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Forgets every CometD client (a server restart or a lost session).
    pub fn forget_clients(&self) {
        self.inner.lock().clients.clear();
        self.notify();
    }

    /// Has every connected client receive a server-side `/meta/disconnect`
    /// on its next (or current) connect, as Salesforce does when it moves
    /// clients between app servers.
    pub fn disconnect_all(&self) {
        for client in self.inner.lock().clients.values_mut() {
            client.disconnect_pending = true;
        }
        self.notify();
    }

    /// Expires retained events as if the retention window had passed: on
    /// one channel or all, up to a replay id or entirely.
    pub fn expire(&self, channel: Option<&str>, through: Option<i64>) {
        let mut inner = self.inner.lock();
        for (name, log) in inner.channels.iter_mut() {
            if channel.is_none_or(|c| c == name) {
                log.expire(through);
            }
        }
    }

    /// Makes the next `count` changes of records of `entity` (an sobject
    /// API name) raise gap events (`GAP_CREATE`, `GAP_UPDATE`,
    /// `GAP_DELETE`, `GAP_UNDELETE`: a header with the record id and no
    /// field values) instead of change events, on CometD and Pub/Sub alike.
    /// With `overflow`, they raise `GAP_OVERFLOW` events instead (the
    /// entity and commit time, no record id), as Salesforce does for a
    /// transaction past 100,000 changes.
    pub fn arm_gap_events(&self, entity: &str, count: u32, overflow: bool) {
        let mut inner = self.inner.lock();
        let fault = inner.gap_faults.entry(entity.to_string()).or_default();
        if overflow {
            fault.overflows = count;
        } else {
            fault.gaps = count;
        }
    }

    /// The highest replay id raised on a channel, and how many are retained.
    pub fn channel_state(&self, channel: &str) -> Option<(i64, usize)> {
        self.inner
            .lock()
            .channels
            .get(channel)
            .map(|log| (log.latest(), log.len()))
    }

    /// Ids of the connected CometD clients.
    pub fn client_ids(&self) -> Vec<String> {
        self.inner.lock().clients.keys().cloned().collect()
    }
}

/// Consumes one armed gap fault of `entity` (overflows first).
fn take_gap_fault(faults: &mut HashMap<String, GapFault>, entity: &str) -> ChangeShape {
    let Some(fault) = faults
        .iter_mut()
        .find(|(name, _)| name.eq_ignore_ascii_case(entity))
        .map(|(_, f)| f)
    else {
        return ChangeShape::Normal;
    };
    if fault.overflows > 0 {
        fault.overflows -= 1;
        ChangeShape::Overflow
    } else if fault.gaps > 0 {
        fault.gaps -= 1;
        ChangeShape::Gap
    } else {
        ChangeShape::Normal
    }
}

/// Routes of the CometD endpoint.
pub fn routes() -> Router<Arc<Org>> {
    cometd::routes()
}

impl Streaming {
    /// How many clients are subscribed to a channel.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        self.inner
            .lock()
            .clients
            .values()
            .filter(|c| c.subscriptions.contains_key(channel))
            .count()
    }
}
