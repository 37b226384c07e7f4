//! The Salesforce side of the Bayeux session: the bearer token on every
//! request, `ext.replay` on handshake and subscribe, tracking the last
//! received replay id per subscription (so a re-handshake resubscribes from
//! exactly there), what Salesforce's errors mean, and the replay fallback
//! for expired replay ids.
//!
//! Filtered subscriptions (`/topic/X?Industry='Energy'`): Salesforce keeps
//! one subscription per channel in a session ("all subscriptions to the
//! same PushTopic must specify the same filter"), keys `ext.replay` by the
//! channel without the filter, and may name either form on the events.
//! So a client holds at most one subscription per channel, and an event of
//! channel `/topic/X` belongs to that one subscription: markers are keyed by
//! the subscription, filter included.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use parking_lot::{Mutex, RwLock};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sfstream_bayeux::{
    Attachment, ErrorField, Extension, HANDSHAKE, Message, SUBSCRIBE, SubscriptionFailure,
};
use tokio::sync::mpsc;

use super::commit::Commit;
use crate::replay::{ExpiredReplayId, Gap, ReplayFrom, ReplayMarker};

/// Most gaps waiting in the message stream (they are few: one per
/// fallback); past that they are still logged and reported as events.
pub(crate) const MAX_PENDING_GAPS: usize = 1024;

/// What the extension asks the commit loop to do, in order with the
/// markers it commits.
#[derive(Debug)]
pub(crate) enum Notice {
    /// A stored replay id had expired and the subscribe carrying the
    /// fallback is being sent.
    Fallback {
        channel: String,
        expired: i64,
        fallback: ReplayFrom,
        /// The window that may be missed.
        gap: Box<Gap>,
    },
}

/// An expired replay id, and when its event was created (if known).
type Expired = (i64, Option<DateTime<Utc>>);

/// Shared state of the Salesforce extension.
#[derive(Debug)]
pub(crate) struct SalesforceExtension {
    /// `Bearer <token>`, replaced after a re-login.
    authorization: RwLock<Option<HeaderValue>>,
    subscriptions: Mutex<Subscriptions>,
    fallback: Option<ReplayFrom>,
    /// Per channel key: a fallback decided on a refused subscribe (the
    /// expired id), announced when the retried subscribe is sent: the
    /// client may skip the retry, and the announcement must come before any
    /// event (and marker) of the new subscription. With the expired id's
    /// creation time, when known.
    fallbacks: Mutex<HashMap<String, Expired>>,
    notices: mpsc::UnboundedSender<Commit>,
    /// The gaps, for the message stream (in order with its events: a gap
    /// is queued before the subscribe that follows it is sent).
    gaps: mpsc::Sender<Gap>,
}

#[derive(Debug, Default)]
struct Subscriptions {
    /// Per subscription: where the next subscribe starts (`-1`, `-2`, or
    /// the last replay id received).
    resume: HashMap<String, i64>,
    /// Per subscription: when the event of its resume point was created,
    /// when known (the start of a gap, should that point expire).
    created: HashMap<String, DateTime<Utc>>,
    /// Channel (without filter) to its one subscription.
    by_channel: HashMap<String, Arc<str>>,
}

impl Subscriptions {
    fn of(&self, channel: &str) -> Option<&Arc<str>> {
        self.by_channel.get(channel_name(channel))
    }
}

/// What the extension learnt of a received event, attached to it so that
/// the stream does not parse or look it up again.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) marker: ReplayMarker,
    /// The subscription the event belongs to.
    pub(crate) subscription: Arc<str>,
}

/// A channel without its `?filter`: what Salesforce keys `ext.replay` by.
pub(crate) fn channel_name(subscription: &str) -> &str {
    subscription
        .split_once('?')
        .map_or(subscription, |(name, _)| name)
}

/// Whether a Bayeux error is Salesforce's "replay id outside the retention window".
pub fn is_invalid_replay_id(error: &ErrorField) -> bool {
    error.code == Some(400)
        && error.message.starts_with("The replayId {")
        && error.message.contains("you provided was invalid")
}

/// Whether a subscribe was refused because the channel does not exist
/// (it never will by retrying).
fn is_unknown_channel(error: &ErrorField) -> bool {
    error.code == Some(400)
        && error
            .message
            .starts_with("The channel you requested to subscribe to does not exist")
}

/// Salesforce's refusals for a spent org allocation: retried slowly (a
/// reconnect storm would burn what is left, and cannot help until the
/// allocation frees up).
const LIMIT_ERRORS: [&str; 2] = [
    "Organization total events daily limit exceeded",
    "Organization concurrent user limit exceeded",
];

/// The least delay before retrying after a limit refusal (doubling per
/// further refusal), unless the builder says otherwise.
pub const DEFAULT_LIMIT_RETRY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Whether a refused reply is one of Salesforce's allocation limits
/// (`403::Organization total events daily limit exceeded`,
/// `403::Organization concurrent user limit exceeded`); the error's text
/// when it is.
pub fn limit_exceeded(message: &Message) -> Option<ErrorField> {
    let error = ErrorField::parse(message.error.as_deref()?);
    (error.code == Some(403) && LIMIT_ERRORS.contains(&error.message.as_str())).then_some(error)
}

/// The [`sfstream_bayeux::SlowRetryCheck`] of Salesforce: its limit
/// refusals are retried no sooner than `floor`, with a clear log line.
pub(crate) fn slow_retry(floor: std::time::Duration) -> sfstream_bayeux::SlowRetryCheck {
    Arc::new(move |message: &Message| {
        let error = limit_exceeded(message)?;
        let what = if error.message.contains("daily") {
            "the org's daily streaming event allocation is spent (see `limits/` DailyStreamingApiEvents)"
        } else {
            "the org's concurrent streaming client allocation is taken (other clients must disconnect)"
        };
        tracing::error!(%error, ?floor, "{what}; retrying slowly, within the connection timeout");
        Some(floor)
    })
}

/// Salesforce's texts for "the access token is no good": log in again.
const AUTH_FAILURES: [&str; 2] = ["Authentication invalid", "Request requires authentication"];

/// Whether a refused Bayeux reply means the access token is no good:
/// `401::Authentication invalid` (or `401::Request requires authentication`)
/// on connect or subscribe, or a handshake denied with such a 401 failure
/// reason in `ext.sfdc.failureReason`. Other servers' 401s (Faye's
/// `401:<id>:Unknown client`) mean something else.
pub(crate) fn is_auth_failure(message: &Message) -> bool {
    let salesforce_401 = |text: &str| {
        let error = ErrorField::parse(text);
        error.code == Some(401) && AUTH_FAILURES.contains(&error.message.as_str())
    };
    let reason = message
        .ext
        .as_ref()
        .and_then(|ext| ext.get("sfdc"))
        .and_then(|sfdc| sfdc.get("failureReason"))
        .and_then(|r| r.as_str());
    message.error.as_deref().is_some_and(salesforce_401) || reason.is_some_and(salesforce_401)
}

impl SalesforceExtension {
    pub(crate) fn new(
        token: &str,
        fallback: Option<ReplayFrom>,
        notices: mpsc::UnboundedSender<Commit>,
        gaps: mpsc::Sender<Gap>,
    ) -> Self {
        let extension = Self {
            authorization: RwLock::new(None),
            subscriptions: Mutex::new(Subscriptions::default()),
            fallback,
            fallbacks: Mutex::new(HashMap::new()),
            notices,
            gaps,
        };
        extension.set_token(token);
        extension
    }

    /// Uses a new access token from now on.
    pub(crate) fn set_token(&self, token: &str) {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok();
        if let Some(v) = value.as_mut() {
            v.set_sensitive(true);
        }
        *self.authorization.write() = value;
    }

    /// Takes `subscription` for its channel, starting at `from`; refused
    /// (with the subscription already held) when the channel is held by a
    /// subscription with another filter.
    #[cfg(test)]
    pub(crate) fn claim(&self, subscription: &str, from: ReplayFrom) -> Result<(), String> {
        self.claim_at(subscription, from, None)
    }

    /// [`claim`](Self::claim), with the creation time of the event `from`
    /// names (a stored marker's), when known.
    pub(crate) fn claim_at(
        &self,
        subscription: &str,
        from: ReplayFrom,
        created: Option<DateTime<Utc>>,
    ) -> Result<(), String> {
        let mut state = self.subscriptions.lock();
        match state.of(subscription) {
            Some(held) if &**held != subscription => return Err(held.to_string()),
            _ => {}
        }
        state.by_channel.insert(
            channel_name(subscription).to_string(),
            Arc::from(subscription),
        );
        state.resume.insert(subscription.to_string(), from.as_i64());
        match created {
            Some(created) => state.created.insert(subscription.to_string(), created),
            None => state.created.remove(subscription),
        };
        // A new start point cancels a fallback that was never sent.
        self.fallbacks.lock().remove(subscription);
        Ok(())
    }

    /// The subscription an event of `channel` (with or without a filter)
    /// belongs to.
    pub(crate) fn subscription_of(&self, channel: &str) -> Option<String> {
        self.subscriptions.lock().of(channel).map(|s| s.to_string())
    }

    /// Forgets a subscription.
    pub(crate) fn forget(&self, subscription: &str) {
        self.fallbacks.lock().remove(subscription);
        let mut state = self.subscriptions.lock();
        state.resume.remove(subscription);
        state.created.remove(subscription);
        if state.of(subscription).is_some_and(|s| &**s == subscription) {
            state.by_channel.remove(channel_name(subscription));
        }
    }
}

impl Extension for SalesforceExtension {
    fn request_headers(&self, headers: &mut HeaderMap) {
        if let Some(value) = self.authorization.read().clone() {
            headers.insert(AUTHORIZATION, value);
        }
    }

    fn outgoing(&self, message: &mut Message) {
        if message.channel == HANDSHAKE {
            message.ext_mut().insert("replay".into(), Value::Bool(true));
        } else if message.channel == SUBSCRIBE
            && let Some(subscription) = message.subscription.as_deref()
        {
            let from = self
                .subscriptions
                .lock()
                .resume
                .get(subscription)
                .copied()
                .unwrap_or(-1);
            let key = channel_name(subscription).to_string();
            // The fallback is announced when its subscribe is sent, in order
            // with the markers (a retry that is never sent removes nothing).
            if let Some((expired, created)) = self.fallbacks.lock().remove(subscription)
                && let Some(fallback) = self.fallback
            {
                let gap = Gap {
                    channel: subscription.to_string(),
                    from: created,
                    to: Utc::now(),
                    fallback,
                    expired_replay_id: ExpiredReplayId::Number(expired),
                };
                // Queued before the subscribe goes out, so before any event
                // of the new subscription.
                if self.gaps.try_send(gap.clone()).is_err() {
                    tracing::error!(channel = %subscription, "too many gaps not taken from the stream; this one is only logged and reported as an event");
                }
                let _ = self.notices.send(Commit::Notice(Notice::Fallback {
                    channel: subscription.to_string(),
                    expired,
                    fallback,
                    gap: Box::new(gap),
                }));
            }
            message
                .ext_mut()
                .insert("replay".into(), json!({ key: from }));
        }
    }

    fn incoming(&self, message: &mut Message) {
        if message.is_meta() {
            return;
        }
        let Some(marker) = message.data.as_deref().and_then(ReplayMarker::from_raw) else {
            return;
        };
        let mut state = self.subscriptions.lock();
        let subscription = state
            .of(&message.channel)
            .cloned()
            .unwrap_or_else(|| Arc::from(message.channel.as_str()));
        let moved = match state.resume.get_mut(&*subscription) {
            Some(last) if *last < marker.replay_id => {
                *last = marker.replay_id;
                true
            }
            Some(_) => false,
            None => {
                state
                    .resume
                    .insert(subscription.to_string(), marker.replay_id);
                true
            }
        };
        if moved {
            match marker.created {
                Some(created) => state.created.insert(subscription.to_string(), created),
                None => state.created.remove(&*subscription),
            };
        }
        drop(state);
        message.attachment = Some(Attachment::new(Received {
            marker,
            subscription,
        }));
    }

    fn subscription_failed(&self, channel: &str, error: &ErrorField) -> SubscriptionFailure {
        if is_unknown_channel(error) {
            return SubscriptionFailure::GiveUp;
        }
        if !is_invalid_replay_id(error) {
            // Transient or unknown: an automatic resubscribe is retried
            // with backoff, a first subscribe fails to its caller.
            return SubscriptionFailure::RetryLater;
        }
        let Some(fallback) = self.fallback else {
            return SubscriptionFailure::GiveUp;
        };
        let key = channel.to_string();
        let expired = {
            let mut state = self.subscriptions.lock();
            let expired = state.resume.get(&key).copied().unwrap_or_default();
            if expired == fallback.as_i64() {
                // The fallback itself was refused: retrying would loop.
                return SubscriptionFailure::GiveUp;
            }
            state.resume.insert(key.clone(), fallback.as_i64());
            (expired, state.created.remove(&key))
        };
        self.fallbacks.lock().insert(key, expired);
        SubscriptionFailure::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_expired_replay_id_error() {
        let error = ErrorField::parse(
            "400::The replayId {1553783} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.",
        );
        assert!(is_invalid_replay_id(&error));
        assert!(!is_invalid_replay_id(&ErrorField::parse(
            "400::The channel you requested to subscribe to does not exist {/topic/X}"
        )));
    }

    #[test]
    fn limit_refusals_are_retried_slowly() {
        let reply = |error: &str| {
            let mut m = Message::new("/meta/connect");
            m.error = Some(error.into());
            m
        };
        let check = slow_retry(std::time::Duration::from_secs(60));
        for text in [
            "403::Organization total events daily limit exceeded",
            "403::Organization concurrent user limit exceeded",
        ] {
            assert_eq!(
                check(&reply(text)),
                Some(std::time::Duration::from_secs(60))
            );
            assert!(limit_exceeded(&reply(text)).is_some());
        }
        for other in [
            "403::Unknown client",
            "403::Subscription limit exceeded for this topic",
            "503::Server is too busy.  Please try your request again later.",
        ] {
            assert_eq!(check(&reply(other)), None, "{other}");
        }
        assert_eq!(check(&Message::new("/meta/connect")), None);
    }

    #[test]
    fn only_salesforce_texts_mean_log_in_again() {
        let reply = |error: &str| {
            let mut m = Message::new("/meta/connect");
            m.error = Some(error.into());
            m
        };
        assert!(is_auth_failure(&reply("401::Authentication invalid")));
        assert!(is_auth_failure(&reply(
            "401::Request requires authentication"
        )));
        // Faye's lost session is a 401 too: not a login problem.
        assert!(!is_auth_failure(&reply("401:abc123:Unknown client")));
        assert!(!is_auth_failure(&reply("403::Unknown client")));
        let mut handshake = reply("403::Handshake denied");
        handshake.ext = json!({"sfdc": {"failureReason": "401::Authentication invalid"}})
            .as_object()
            .cloned();
        assert!(is_auth_failure(&handshake));
    }

    #[test]
    fn one_subscription_per_channel_and_events_find_theirs() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let (gaps, _) = mpsc::channel(4);
        let ext = SalesforceExtension::new("t", None, tx, gaps);
        let energy = "/topic/X?Industry='Energy'&ShippingCity='San Francisco'";
        ext.claim(energy, ReplayFrom::New).expect("first");
        ext.claim(energy, ReplayFrom::New).expect("the same again");
        assert_eq!(
            ext.claim("/topic/X?Industry='Retail'", ReplayFrom::New),
            Err(energy.to_string())
        );
        assert_eq!(
            ext.claim("/topic/X", ReplayFrom::New),
            Err(energy.to_string())
        );
        // Events named either way belong to the one subscription.
        assert_eq!(ext.subscription_of("/topic/X").as_deref(), Some(energy));
        assert_eq!(ext.subscription_of(energy).as_deref(), Some(energy));
        ext.forget(energy);
        ext.claim("/topic/X", ReplayFrom::New).expect("free again");
    }

    #[test]
    fn subscribe_carries_the_resume_point_keyed_without_filter() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (gaps, mut gap_rx) = mpsc::channel(4);
        let ext = SalesforceExtension::new("t", Some(ReplayFrom::All), tx, gaps);
        ext.claim("/topic/X?Name=a", ReplayFrom::Id(41))
            .expect("claim");
        let mut event = Message::new("/topic/X");
        event.data = serde_json::value::to_raw_value(
            &json!({"event": {"replayId": 45, "createdDate": "2024-01-01T00:00:00Z"}}),
        )
        .ok();
        ext.incoming(&mut event);
        let mut subscribe = Message::new(SUBSCRIBE);
        subscribe.subscription = Some("/topic/X?Name=a".into());
        ext.outgoing(&mut subscribe);
        assert_eq!(
            subscribe.ext.as_ref().map(|e| e["replay"].clone()),
            Some(json!({"/topic/X": 45}))
        );

        let error = ErrorField::parse(
            "400::The replayId {45} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.",
        );
        assert_eq!(
            ext.subscription_failed("/topic/X?Name=a", &error),
            SubscriptionFailure::Retry
        );
        ext.outgoing(&mut subscribe);
        assert!(matches!(
            rx.try_recv(),
            Ok(Commit::Notice(Notice::Fallback {
                expired: 45,
                fallback: ReplayFrom::All,
                ..
            }))
        ));
        // The gap runs from the expired event's creation to now.
        let gap = gap_rx.try_recv().expect("a gap in the stream");
        assert_eq!(gap.channel, "/topic/X?Name=a");
        assert_eq!(
            gap.from,
            DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
                .ok()
                .map(|t| t.to_utc())
        );
        assert!((Utc::now() - gap.to).num_seconds() < 5);
        assert_eq!(gap.expired_replay_id, ExpiredReplayId::Number(45));
        assert_eq!(gap.fallback_name(), "ALL");
        // If the fallback is refused too, give up rather than loop.
        assert_eq!(
            ext.subscription_failed("/topic/X?Name=a", &error),
            SubscriptionFailure::GiveUp
        );
        // Other refusals: retried later, unless the channel does not exist.
        assert_eq!(
            ext.subscription_failed(
                "/topic/X?Name=a",
                &ErrorField::parse(
                    "503::Server is too busy.  Please try your request again later."
                )
            ),
            SubscriptionFailure::RetryLater
        );
        assert_eq!(
            ext.subscription_failed(
                "/topic/Y",
                &ErrorField::parse(
                    "400::The channel you requested to subscribe to does not exist {/topic/Y}"
                )
            ),
            SubscriptionFailure::GiveUp
        );
    }

    #[test]
    fn the_fallback_is_announced_only_when_the_retry_is_sent() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (gaps, _gap_rx) = mpsc::channel(4);
        let ext = SalesforceExtension::new("t", Some(ReplayFrom::New), tx, gaps);
        ext.claim("/topic/X", ReplayFrom::Id(45)).expect("claim");
        let error = ErrorField::parse(
            "400::The replayId {45} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.",
        );
        assert_eq!(
            ext.subscription_failed("/topic/X", &error),
            SubscriptionFailure::Retry
        );
        // The client may skip the retry (the channel was unsubscribed
        // meanwhile): nothing is announced until the retry goes out.
        assert!(
            rx.try_recv().is_err(),
            "announced before the retry was sent"
        );
        // The retried subscribe goes out with the fallback: announced now,
        // before any event of the new subscription can arrive.
        let mut subscribe = Message::new(SUBSCRIBE);
        subscribe.subscription = Some("/topic/X".into());
        ext.outgoing(&mut subscribe);
        assert_eq!(
            subscribe.ext.as_ref().map(|e| e["replay"].clone()),
            Some(json!({"/topic/X": -1}))
        );
        assert!(matches!(
            rx.try_recv(),
            Ok(Commit::Notice(Notice::Fallback {
                expired: 45,
                fallback: ReplayFrom::New,
                ..
            }))
        ));
        ext.outgoing(&mut subscribe);
        assert!(rx.try_recv().is_err(), "announced once");

        // A retry that never goes out (the channel was resubscribed from an
        // explicit point meanwhile) is never announced.
        ext.claim("/topic/X", ReplayFrom::Id(50)).expect("claim");
        assert_eq!(
            ext.subscription_failed("/topic/X", &ErrorField::parse(
                "400::The replayId {50} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.",
            )),
            SubscriptionFailure::Retry
        );
        ext.claim("/topic/X", ReplayFrom::Id(60)).expect("claim");
        ext.outgoing(&mut subscribe);
        assert!(rx.try_recv().is_err(), "a skipped retry was announced");
    }
}
