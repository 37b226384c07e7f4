//! Reading channel histories for transports other than CometD (the
//! Pub/Sub API): one history, one replay id per event, whichever transport
//! a subscriber uses.

use chrono::Utc;
use tokio::sync::watch;

use super::{ChannelKind, ChannelLog, ReplayFrom, StoredEvent, Streaming};

/// Events read from a channel after a cursor.
#[derive(Debug, Default)]
pub struct Feed {
    /// Up to the asked number of events, in replay order.
    pub events: Vec<StoredEvent>,
    /// The highest replay id raised on the channel so far.
    pub latest: i64,
}

impl Streaming {
    /// A receiver that changes whenever an event is raised (or clients are
    /// forgotten).
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// Where a subscription to `channel` starts (the last replay id it has
    /// seen), retention applied; `None` when a replay id is outside the
    /// retained window or was never raised there.
    pub fn start_cursor(&self, channel: &str, from: ReplayFrom) -> Option<i64> {
        let kind = ChannelKind::of(channel)?;
        let retention = self.retention(kind);
        let mut inner = self.inner.lock();
        let log = inner
            .channels
            .entry(channel.to_string())
            .or_insert_with(|| ChannelLog::new(kind));
        log.apply_retention(Utc::now(), retention);
        log.start_cursor(from)
    }

    /// Up to `max` events of `channel` after `cursor`, retention applied.
    pub fn read_after(&self, channel: &str, cursor: i64, max: usize) -> Feed {
        let mut inner = self.inner.lock();
        let Some(log) = inner.channels.get_mut(channel) else {
            return Feed::default();
        };
        let latest = log.latest();
        if max == 0 || !log.has_after(cursor) {
            return Feed {
                events: Vec::new(),
                latest,
            };
        }
        log.apply_retention(Utc::now(), self.retention(log.kind()));
        Feed {
            events: log.after(cursor, max).cloned().collect(),
            latest,
        }
    }
}
