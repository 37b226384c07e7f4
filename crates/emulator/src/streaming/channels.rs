//! Channel histories: the events each channel retains, with replay ids, so
//! subscribers can ask for new events (-1), all retained ones (-2) or those
//! after a given replay id.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sfstream_pubsub::proto::ConsumerEvent;

/// What kind of channel, which decides its retention window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// `/topic/<PushTopic Name>`.
    PushTopic,
    /// `/u/<StreamingChannel>`.
    Generic,
    /// `/data/...ChangeEvent(s)`.
    ChangeEvent,
    /// `/event/<Name>__e`.
    PlatformEvent,
}

impl ChannelKind {
    /// The kind of a channel name (without any `?filter`), if it is one.
    pub fn of(channel: &str) -> Option<Self> {
        if channel.starts_with("/topic/") {
            Some(Self::PushTopic)
        } else if channel.starts_with("/u/") {
            Some(Self::Generic)
        } else if channel.starts_with("/data/") {
            Some(Self::ChangeEvent)
        } else if channel.starts_with("/event/") {
            Some(Self::PlatformEvent)
        } else {
            None
        }
    }
}

/// One retained event: its replay id, time, and the whole Bayeux message
/// already serialised (`{"data":…,"channel":…}`), so delivery only copies bytes.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The replay id.
    pub replay_id: i64,
    /// When it was raised.
    pub at: DateTime<Utc>,
    /// The serialised Bayeux message.
    pub message: Bytes,
    /// The event as Pub/Sub delivers it, encoded on its first delivery
    /// (shared by clones; dropped with the event, so bounded by retention).
    pub pubsub: Arc<OnceLock<ConsumerEvent>>,
}

/// The retained events of one channel.
#[derive(Debug)]
pub struct ChannelLog {
    kind: ChannelKind,
    events: VecDeque<StoredEvent>,
    /// The highest replay id no longer retained (0 when nothing was dropped).
    expired_through: i64,
    /// The highest replay id ever raised on this channel.
    latest: i64,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// Only events raised from now on (-1).
    New,
    /// Every retained event, then new ones (-2).
    All,
    /// Events after this replay id.
    After(i64),
}

impl ReplayFrom {
    /// From the number a client sends.
    pub fn from_id(id: i64) -> Self {
        match id {
            -1 => Self::New,
            -2 => Self::All,
            n => Self::After(n),
        }
    }
}

impl ChannelLog {
    /// An empty history.
    pub fn new(kind: ChannelKind) -> Self {
        Self {
            kind,
            events: VecDeque::new(),
            expired_through: 0,
            latest: 0,
        }
    }

    /// The kind of channel.
    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// The highest replay id raised so far (0 if none).
    pub fn latest(&self) -> i64 {
        self.latest
    }

    /// Number of retained events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Appends an event, dropping the oldest beyond `limit`.
    pub fn push(&mut self, event: StoredEvent, limit: usize) {
        self.latest = self.latest.max(event.replay_id);
        self.events.push_back(event);
        while self.events.len() > limit.max(1) {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(old) = self.events.pop_front() {
            self.expired_through = self.expired_through.max(old.replay_id);
        }
    }

    /// Drops events older than the retention window.
    pub fn apply_retention(&mut self, now: DateTime<Utc>, retention: Duration) {
        let Ok(window) = chrono::Duration::from_std(retention) else {
            return;
        };
        while self.events.front().is_some_and(|e| now - e.at > window) {
            self.drop_oldest();
        }
    }

    /// Expires every retained event with a replay id up to `through`
    /// (all of them when `None`), as if the retention window had passed.
    pub fn expire(&mut self, through: Option<i64>) {
        let limit = through.unwrap_or(self.latest);
        while self.events.front().is_some_and(|e| e.replay_id <= limit) {
            self.drop_oldest();
        }
        self.expired_through = self.expired_through.max(limit.min(self.latest));
    }

    /// The cursor (last replay id already seen) a subscription starts from,
    /// or `None` when the replay id is outside the retained window.
    pub fn start_cursor(&self, from: ReplayFrom) -> Option<i64> {
        match from {
            ReplayFrom::New => Some(self.latest),
            ReplayFrom::All => Some(self.expired_through),
            ReplayFrom::After(id) if id >= self.expired_through && id <= self.latest => Some(id),
            ReplayFrom::After(_) => None,
        }
    }

    /// Whether events after `cursor` were lost to retention.
    pub fn lost_after(&self, cursor: i64) -> bool {
        cursor < self.expired_through
    }

    /// Up to `max` events after `cursor`, in order.
    pub fn after(&self, cursor: i64, max: usize) -> impl Iterator<Item = &StoredEvent> {
        let start = self.events.partition_point(|e| e.replay_id <= cursor);
        self.events.range(start..).take(max)
    }

    /// Whether any event follows `cursor`.
    pub fn has_after(&self, cursor: i64) -> bool {
        self.latest > cursor && self.events.back().is_some_and(|e| e.replay_id > cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64) -> StoredEvent {
        StoredEvent {
            replay_id: id,
            at: Utc::now(),
            message: Bytes::from(format!("{{\"id\":{id}}}")),
            pubsub: Arc::default(),
        }
    }

    #[test]
    fn replay_cursors_and_expiry() {
        let mut log = ChannelLog::new(ChannelKind::PushTopic);
        for id in [3, 7, 9, 12] {
            log.push(event(id), 3);
        }
        // 3 was dropped by the history limit.
        assert_eq!(log.len(), 3);
        assert_eq!(log.start_cursor(ReplayFrom::New), Some(12));
        assert_eq!(log.start_cursor(ReplayFrom::All), Some(3));
        assert_eq!(log.start_cursor(ReplayFrom::After(7)), Some(7));
        assert_eq!(log.start_cursor(ReplayFrom::After(2)), None);
        assert_eq!(log.start_cursor(ReplayFrom::After(13)), None);
        let ids: Vec<i64> = log.after(7, 10).map(|e| e.replay_id).collect();
        assert_eq!(ids, vec![9, 12]);
        assert!(log.has_after(9));
        assert!(!log.has_after(12));
        log.expire(Some(9));
        assert_eq!(log.start_cursor(ReplayFrom::After(7)), None);
        assert_eq!(log.start_cursor(ReplayFrom::After(9)), Some(9));
        assert!(log.lost_after(7));
        log.expire(None);
        assert!(log.is_empty());
        assert_eq!(log.start_cursor(ReplayFrom::All), Some(12));
    }

    #[test]
    fn retention_drops_old_events() {
        let mut log = ChannelLog::new(ChannelKind::ChangeEvent);
        let mut old = event(1);
        old.at = Utc::now() - chrono::Duration::hours(80);
        log.push(old, 10);
        log.push(event(2), 10);
        log.apply_retention(Utc::now(), Duration::from_secs(72 * 3600));
        assert_eq!(log.len(), 1);
        assert_eq!(log.start_cursor(ReplayFrom::After(0)), None);
        assert_eq!(log.start_cursor(ReplayFrom::After(1)), Some(1));
    }
}
