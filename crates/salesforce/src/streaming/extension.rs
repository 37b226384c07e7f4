//! The Salesforce side of the Bayeux session: the bearer token on every
//! request, `ext.replay` on handshake and subscribe, tracking the last
//! received replay id per channel (so a re-handshake resubscribes from
//! exactly there), and the replay fallback for expired replay ids.

use std::collections::HashMap;

use parking_lot::{Mutex, RwLock};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sfstream_bayeux::{ErrorField, Extension, HANDSHAKE, Message, SUBSCRIBE, SubscriptionFailure};
use tokio::sync::mpsc;

use super::commit::Commit;
use crate::replay::{ReplayFrom, ReplayMarker, channel_key};

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
    },
}

/// Shared state of the Salesforce extension.
#[derive(Debug)]
pub(crate) struct SalesforceExtension {
    /// `Bearer <token>`, replaced after a re-login.
    authorization: RwLock<Option<HeaderValue>>,
    /// Per channel key: where the next subscribe starts (`-1`, `-2`, or the
    /// last replay id received).
    resume: Mutex<HashMap<String, i64>>,
    fallback: Option<ReplayFrom>,
    /// Per channel key: a fallback decided on a refused subscribe (the
    /// expired id), announced when the retried subscribe is sent: the
    /// client may skip the retry, and the announcement must come before any
    /// event (and marker) of the new subscription.
    fallbacks: Mutex<HashMap<String, i64>>,
    notices: mpsc::UnboundedSender<Commit>,
}

/// Whether a Bayeux error is Salesforce's "replay id outside the retention window".
pub fn is_invalid_replay_id(error: &ErrorField) -> bool {
    error.code == Some(400)
        && error.message.starts_with("The replayId {")
        && error.message.contains("you provided was invalid")
}

impl SalesforceExtension {
    pub(crate) fn new(
        token: &str,
        fallback: Option<ReplayFrom>,
        notices: mpsc::UnboundedSender<Commit>,
    ) -> Self {
        let extension = Self {
            authorization: RwLock::new(None),
            resume: Mutex::new(HashMap::new()),
            fallback,
            fallbacks: Mutex::new(HashMap::new()),
            notices,
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

    /// Sets where the next subscribe of `channel` starts.
    pub(crate) fn set_resume(&self, channel: &str, from: ReplayFrom) {
        let key = channel_key(channel);
        self.fallbacks.lock().remove(key);
        self.resume.lock().insert(key.to_string(), from.as_i64());
    }

    /// Forgets a channel.
    pub(crate) fn forget(&self, channel: &str) {
        let key = channel_key(channel);
        self.fallbacks.lock().remove(key);
        self.resume.lock().remove(key);
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
            && let Some(subscription) = message.subscription.clone()
        {
            let key = channel_key(&subscription).to_string();
            let from = self.resume.lock().get(&key).copied().unwrap_or(-1);
            if let Some(expired) = self.fallbacks.lock().remove(&key)
                && let Some(fallback) = self.fallback
            {
                let _ = self.notices.send(Commit::Notice(Notice::Fallback {
                    channel: key.clone(),
                    expired,
                    fallback,
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
        let mut resume = self.resume.lock();
        let key = channel_key(&message.channel);
        match resume.get_mut(key) {
            Some(last) if *last < marker.replay_id => *last = marker.replay_id,
            Some(_) => {}
            None => {
                resume.insert(key.to_string(), marker.replay_id);
            }
        }
    }

    fn subscription_failed(&self, channel: &str, error: &ErrorField) -> SubscriptionFailure {
        let Some(fallback) = self.fallback else {
            return SubscriptionFailure::GiveUp;
        };
        if !is_invalid_replay_id(error) {
            return SubscriptionFailure::GiveUp;
        }
        let key = channel_key(channel).to_string();
        let expired = {
            let mut resume = self.resume.lock();
            let expired = resume.get(&key).copied().unwrap_or_default();
            if expired == fallback.as_i64() {
                // The fallback itself was refused: retrying would loop.
                return SubscriptionFailure::GiveUp;
            }
            resume.insert(key.clone(), fallback.as_i64());
            expired
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
    fn subscribe_carries_the_resume_point_keyed_without_filter() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let ext = SalesforceExtension::new("t", Some(ReplayFrom::All), tx);
        ext.set_resume("/topic/X?Name=a", ReplayFrom::Id(41));
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
        // If the fallback is refused too, give up rather than loop.
        assert_eq!(
            ext.subscription_failed("/topic/X", &error),
            SubscriptionFailure::GiveUp
        );
    }

    #[test]
    fn the_fallback_is_announced_only_when_the_retry_is_sent() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let ext = SalesforceExtension::new("t", Some(ReplayFrom::New), tx);
        ext.set_resume("/topic/X", ReplayFrom::Id(45));
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
        ext.set_resume("/topic/X", ReplayFrom::Id(50));
        assert_eq!(
            ext.subscription_failed("/topic/X", &ErrorField::parse(
                "400::The replayId {50} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.",
            )),
            SubscriptionFailure::Retry
        );
        ext.set_resume("/topic/X", ReplayFrom::Id(60));
        ext.outgoing(&mut subscribe);
        assert!(rx.try_recv().is_err(), "a skipped retry was announced");
    }
}
