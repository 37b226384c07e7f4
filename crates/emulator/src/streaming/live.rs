//! What the console shows of streaming: events as they are raised (the
//! last few kept for a page that just opened, each new one broadcast), and
//! snapshots of the channels and of the CometD clients.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use super::Streaming;

/// Events kept for a page that opens later.
pub const RECENT: usize = 100;
/// Events queued per live reader before it starts missing some (it is told).
const BROADCAST: usize = 256;

/// One raised event, as the console lists it.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    /// The channel it was raised on.
    pub channel: String,
    /// Its replay id.
    pub replay_id: i64,
    /// When it was raised.
    pub at: DateTime<Utc>,
    /// The whole Bayeux message (`{"data":…,"channel":…}`), serialised.
    pub message: Bytes,
}

impl LiveEvent {
    /// `{"channel", "replayId", "at", "message"}` as JSON text (the
    /// message copied as is).
    pub fn to_json(&self) -> String {
        let message = std::str::from_utf8(&self.message).unwrap_or("null");
        let message = if message.is_empty() { "null" } else { message };
        format!(
            r#"{{"channel":{},"replayId":{},"at":"{}","message":{}}}"#,
            serde_json::Value::String(self.channel.clone()),
            self.replay_id,
            crate::store::event_datetime(self.at),
            message
        )
    }
}

/// The last [`RECENT`] events, and a broadcast of every new one.
#[derive(Debug)]
pub struct LiveFeed {
    recent: Mutex<VecDeque<LiveEvent>>,
    sender: broadcast::Sender<LiveEvent>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        Self {
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            sender: broadcast::channel(BROADCAST).0,
        }
    }
}

impl LiveFeed {
    /// Records a raised event.
    pub fn push(&self, event: LiveEvent) {
        {
            let mut recent = self.recent.lock();
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        // Nobody listening is fine.
        let _ = self.sender.send(event);
    }

    /// The kept events, oldest first, and a receiver of the next ones
    /// (taken together, so nothing falls between).
    pub fn subscribe(&self) -> (Vec<LiveEvent>, broadcast::Receiver<LiveEvent>) {
        let recent = self.recent.lock();
        let receiver = self.sender.subscribe();
        (recent.iter().cloned().collect(), receiver)
    }
}

/// A channel with history, as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelSummary {
    /// The channel.
    pub channel: String,
    /// The highest replay id raised on it.
    pub latest_replay_id: i64,
    /// Events retained.
    pub retained: usize,
    /// CometD clients subscribed to it.
    pub subscribers: usize,
}

/// A CometD client, as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientSummary {
    /// Its `clientId`.
    pub client_id: String,
    /// Its subscriptions (a filter included) and the last replay id each
    /// was sent.
    pub subscriptions: Vec<SubscriptionSummary>,
    /// Seconds since it was last answered.
    pub idle_secs: f64,
    /// Whether a connect of it is being held.
    pub connected: bool,
}

/// One subscription of a CometD client.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionSummary {
    /// The channel, with `?filter` when subscribed with one.
    pub channel: String,
    /// The last replay id delivered (or where it started).
    pub replay_id: i64,
}

impl Streaming {
    /// The events as they are raised (see [`LiveFeed::subscribe`]).
    pub fn live(&self) -> &LiveFeed {
        &self.live
    }

    /// Every channel with history, sorted by name.
    pub fn channel_summaries(&self) -> Vec<ChannelSummary> {
        let inner = self.inner.lock();
        let mut out: Vec<ChannelSummary> = inner
            .channels
            .iter()
            .map(|(name, log)| ChannelSummary {
                channel: name.clone(),
                latest_replay_id: log.latest(),
                retained: log.len(),
                subscribers: inner
                    .clients
                    .values()
                    .filter(|c| c.subscriptions.contains_key(name))
                    .count(),
            })
            .collect();
        out.sort_by(|a, b| a.channel.cmp(&b.channel));
        out
    }

    /// Every CometD client, sorted by id.
    pub fn client_summaries(&self) -> Vec<ClientSummary> {
        let inner = self.inner.lock();
        let now = Instant::now();
        let mut out: Vec<ClientSummary> = inner
            .clients
            .iter()
            .map(|(id, client)| {
                let mut subscriptions: Vec<SubscriptionSummary> = client
                    .subscriptions
                    .iter()
                    .map(|(channel, replay_id)| SubscriptionSummary {
                        channel: match client.filters.get(channel) {
                            Some(filter) => format!("{channel}?{}", filter.expression()),
                            None => channel.clone(),
                        },
                        replay_id: *replay_id,
                    })
                    .collect();
                subscriptions.sort_by(|a, b| a.channel.cmp(&b.channel));
                ClientSummary {
                    client_id: id.clone(),
                    subscriptions,
                    idle_secs: now
                        .saturating_duration_since(client.last_seen)
                        .as_secs_f64(),
                    connected: client.connect_outstanding,
                }
            })
            .collect();
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64) -> LiveEvent {
        LiveEvent {
            channel: "/topic/\"X\"".into(),
            replay_id: id,
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            message: Bytes::from_static(br#"{"data":{"a":1},"channel":"/topic/X"}"#),
        }
    }

    #[test]
    fn keeps_the_last_events_and_broadcasts_new_ones() {
        let feed = LiveFeed::default();
        for id in 1..=(RECENT as i64 + 5) {
            feed.push(event(id));
        }
        let (recent, mut receiver) = feed.subscribe();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].replay_id, 6);
        feed.push(event(999));
        assert_eq!(receiver.try_recv().map(|e| e.replay_id).ok(), Some(999));
    }

    #[test]
    fn event_json_embeds_the_message() {
        let json: serde_json::Value =
            serde_json::from_str(&event(7).to_json()).expect("valid JSON");
        assert_eq!(json["channel"], "/topic/\"X\"");
        assert_eq!(json["replayId"], 7);
        assert_eq!(json["at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["message"]["data"]["a"], 1);
    }
}
