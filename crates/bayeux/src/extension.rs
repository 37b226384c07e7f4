//! Extensions: hooks on every outgoing and incoming message, on the HTTP
//! headers of every request, and on failed subscriptions.

use reqwest::header::HeaderMap;

use crate::error::ErrorField;
use crate::message::Message;

/// What to do when the server refuses a subscription (other than for a lost
/// session or refused credentials, which the client handles itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionFailure {
    /// Subscribe again at once (the extension changed what it will send).
    Retry,
    /// No opinion: an automatic resubscribe is retried with backoff; a
    /// subscribe someone waits for fails with the error.
    RetryLater,
    /// Give the subscription up and report the error (it cannot succeed).
    GiveUp,
}

/// A hook into the client's traffic. Every method has a default that does
/// nothing, so an extension implements only what it needs.
pub trait Extension: Send + Sync + 'static {
    /// Called on every message before it is sent.
    fn outgoing(&self, message: &mut Message) {
        let _ = message;
    }

    /// Called on every message received, before it is handled.
    fn incoming(&self, message: &mut Message) {
        let _ = message;
    }

    /// Called before every HTTP request (e.g. to add `Authorization`).
    fn request_headers(&self, headers: &mut HeaderMap) {
        let _ = headers;
    }

    /// Called when a subscribe was refused; an extension asking for a
    /// retry wins, then one giving up.
    fn subscription_failed(&self, channel: &str, error: &ErrorField) -> SubscriptionFailure {
        let _ = (channel, error);
        SubscriptionFailure::RetryLater
    }
}
