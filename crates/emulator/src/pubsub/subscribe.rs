//! Flow-controlled delivery of one topic, shared by Subscribe and
//! ManagedSubscribe: events go out only while requested (at most 100
//! outstanding), a subscription owed events sends keepalives carrying the
//! latest replay id, one with nothing requested closes when no request
//! comes, and a slow consumer only ever holds up its own task (the outgoing
//! queue is bounded).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::{Stream, StreamExt};
use serde_json::Value;
use sfstream_pubsub::MAX_REQUESTED;
use sfstream_pubsub::proto::{CommitReplayResponse, ConsumerEvent, ProducerEvent};
use tokio::sync::mpsc;
use tonic::Status;

use super::auth::{self, Caller};
use super::schema::{self, EventKind};
use super::{OpenGuard, PubSubState, codec, payload, replay_bytes};
use crate::org::Org;
use crate::streaming::StoredEvent;

/// Responses queued per stream before the server waits for the client.
pub const QUEUE: usize = 2;

/// What a client sends on an open subscription.
#[derive(Debug)]
pub enum Incoming {
    /// More events wanted (`num_requested`), maybe with a fresh token.
    Request {
        /// Events requested.
        num_requested: i32,
        /// A fresh access token (`auth_refresh`), or empty.
        auth_refresh: String,
    },
    /// A managed subscription's commit.
    Commit {
        /// The client's id of the commit.
        request_id: String,
        /// The replay id to commit.
        replay_id: Vec<u8>,
    },
}

/// What the server sends on a subscription.
#[derive(Debug)]
pub enum Outgoing {
    /// Events (none for a keepalive), the latest replay id, and how many
    /// more are still requested.
    Batch {
        /// The events.
        events: Vec<ConsumerEvent>,
        /// The replay id of the last event (or the stream's position).
        latest_replay_id: Vec<u8>,
        /// Events still requested.
        pending: i32,
    },
    /// The answer to a commit.
    Committed {
        /// The result.
        response: CommitReplayResponse,
        /// Events still requested.
        pending: i32,
    },
}

/// Answers a managed subscription's commits.
pub type Committer = Box<dyn Fn(&str, &[u8]) -> CommitReplayResponse + Send>;

/// One open subscription.
pub struct Subscription {
    /// The org.
    pub org: Arc<Org>,
    /// Who subscribed.
    pub caller: Caller,
    /// The topic (a channel name).
    pub topic: String,
    /// The last replay id delivered (or the start position).
    pub cursor: i64,
    /// Events requested and not yet sent.
    pub requested: i32,
    /// Answers commits (managed subscriptions only).
    pub committer: Option<Committer>,
}

/// Adds a request to what is outstanding, capped as Salesforce caps it.
pub fn add_requested(outstanding: i32, more: i32) -> i32 {
    outstanding.saturating_add(more.max(0)).min(MAX_REQUESTED)
}

impl Subscription {
    /// Serves the subscription until the client goes, the stream idles
    /// out, the token is invalidated or streams are dropped.
    pub async fn run<S, T>(
        mut self,
        mut incoming: S,
        out: mpsc::Sender<Result<T, Status>>,
        shape: fn(Outgoing, &str) -> T,
    ) where
        S: Stream<Item = Result<Incoming, Status>> + Unpin,
    {
        let state = self.state();
        let _open = OpenGuard::new(state.clone(), |s| &s.streams);
        let listed = super::listing::Listing::register(
            &state,
            &self.topic,
            self.committer.is_some(),
            &self.caller.user_id,
            self.cursor,
        );
        let mut wake = self.org.streaming.watch_events();
        let mut drops = state.watch_drops();
        let mut incoming_open = true;
        let mut last_request = Instant::now();
        let mut last_sent = Instant::now();
        let rpc_id = self.caller.rpc_id.clone();
        loop {
            wake.borrow_and_update();
            if self.requested > 0 {
                let (events, advanced) = self.next_batch(&state);
                if events.is_empty() && advanced {
                    continue;
                }
                if !events.is_empty() {
                    let batch = Outgoing::Batch {
                        events,
                        latest_replay_id: replay_bytes(self.cursor),
                        pending: self.requested,
                    };
                    if out.send(Ok(shape(batch, &rpc_id))).await.is_err() {
                        return;
                    }
                    listed.set_cursor(self.cursor);
                    last_sent = Instant::now();
                    continue;
                }
            }
            let keepalive_at = tokio::time::Instant::from_std(last_sent + state.keepalive);
            let idle_at = tokio::time::Instant::from_std(last_request + state.idle_timeout);
            tokio::select! {
                _ = drops.changed() => return,
                _ = out.closed() => return,
                message = incoming.next(), if incoming_open => match message {
                    None => incoming_open = false,
                    Some(Err(_)) => return,
                    Some(Ok(Incoming::Request { num_requested, auth_refresh })) => {
                        if !self.caller.still_valid(&self.org, &auth_refresh) {
                            let _ = out.send(Err(auth::unauthenticated(&rpc_id))).await;
                            return;
                        }
                        if num_requested < 0 {
                            let status = auth::invalid("num_requested must not be negative", &rpc_id);
                            let _ = out.send(Err(status)).await;
                            return;
                        }
                        self.requested = add_requested(self.requested, num_requested);
                        last_request = Instant::now();
                    }
                    Some(Ok(Incoming::Commit { request_id, replay_id })) => {
                        let Some(committer) = &self.committer else { continue };
                        let response = committer(&request_id, &replay_id);
                        let committed = Outgoing::Committed { response, pending: self.requested };
                        if out.send(Ok(shape(committed, &rpc_id))).await.is_err() {
                            return;
                        }
                    }
                },
                changed = wake.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(keepalive_at), if self.requested > 0 => {
                    let latest = self.org.streaming.channel_state(&self.topic).map_or(0, |s| s.0);
                    let keepalive = Outgoing::Batch {
                        events: Vec::new(),
                        latest_replay_id: replay_bytes(latest.max(self.cursor)),
                        pending: self.requested,
                    };
                    if out.send(Ok(shape(keepalive, &rpc_id))).await.is_err() {
                        return;
                    }
                    last_sent = Instant::now();
                }
                _ = tokio::time::sleep_until(idle_at), if self.requested == 0 => return,
            }
        }
    }

    fn state(&self) -> Arc<PubSubState> {
        self.org.pubsub.clone()
    }

    /// Takes up to the requested number of events after the cursor, and
    /// whether the cursor moved (events that cannot be encoded are skipped).
    fn next_batch(&mut self, state: &PubSubState) -> (Vec<ConsumerEvent>, bool) {
        let want = usize::try_from(self.requested).unwrap_or(0);
        let feed = self
            .org
            .streaming
            .read_after(&self.topic, self.cursor, want);
        let mut events = Vec::with_capacity(feed.events.len());
        for stored in &feed.events {
            self.cursor = stored.replay_id;
            match cached_consumer_event(&self.org, state, stored) {
                Ok(event) => {
                    events.push(event);
                    self.requested -= 1;
                }
                Err(e) => {
                    tracing::warn!(replay_id = stored.replay_id, error = %e, "event not encodable; skipped")
                }
            }
        }
        state
            .stats
            .events_delivered
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        (events, !feed.events.is_empty())
    }
}

/// [`consumer_event`], encoded once per stored event: every later delivery
/// (another subscriber, a replay) copies it, as Salesforce keeps an event
/// encoded with the schema it was published with.
pub fn cached_consumer_event(
    org: &Org,
    state: &PubSubState,
    stored: &StoredEvent,
) -> Result<ConsumerEvent, String> {
    if let Some(event) = stored.pubsub.get() {
        return Ok(event.clone());
    }
    let event = consumer_event(org, state, stored)?;
    // Two subscribers racing encode the same bytes; either copy will do.
    let _ = stored.pubsub.set(event.clone());
    Ok(event)
}

/// A stored event (its CometD message) as a Pub/Sub event: the payload
/// encoded with the event type's current schema.
pub fn consumer_event(
    org: &Org,
    state: &PubSubState,
    stored: &StoredEvent,
) -> Result<ConsumerEvent, String> {
    let message: Value = serde_json::from_slice(&stored.message).map_err(|e| e.to_string())?;
    let data = &message["data"];
    let body = &data["payload"];
    let event_schema = {
        let store = org.store.lock();
        let sobject = match body["ChangeEventHeader"]["entityName"].as_str() {
            Some(entity) => store.schema(entity).ok(),
            None => message["channel"]
                .as_str()
                .and_then(|c| schema::sobject_of_topic(&store, c)),
        };
        sobject
            .and_then(schema::of_sobject)
            .ok_or("unknown event type")?
    };
    let registered = state.register(event_schema)?;
    let schema = &registered.schema;
    let (value, id) = match schema.kind {
        EventKind::ChangeEvent => (
            payload::change_event(schema, body),
            body["ChangeEventHeader"]["transactionKey"].as_str(),
        ),
        EventKind::PlatformEvent => (
            payload::platform_event(schema, body),
            data["event"]["EventUuid"].as_str(),
        ),
    };
    let bytes = codec::encode(&registered.parsed, &value).map_err(|e| e.to_string())?;
    Ok(ConsumerEvent {
        event: Some(ProducerEvent {
            id: id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string),
            schema_id: schema.id.clone(),
            payload: bytes,
            headers: Vec::new(),
        }),
        replay_id: replay_bytes(stored.replay_id),
    })
}

/// Where a subscription starts: `preset` 0 LATEST, 1 EARLIEST, 2 CUSTOM
/// (after `replay_id`); `None` when the replay id is not valid there.
pub fn start_cursor(org: &Org, topic: &str, preset: i32, replay_id: &[u8]) -> Option<i64> {
    use crate::streaming::ReplayFrom;
    let from = match preset {
        1 => ReplayFrom::All,
        2 => ReplayFrom::After(super::replay_number(replay_id)?),
        _ => ReplayFrom::New,
    };
    org.streaming.start_cursor(topic, from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_accumulate_up_to_the_cap() {
        assert_eq!(add_requested(0, 5), 5);
        assert_eq!(add_requested(98, 5), 100);
        assert_eq!(add_requested(10, -3), 10);
        assert_eq!(add_requested(i32::MAX, i32::MAX), 100);
    }
}
