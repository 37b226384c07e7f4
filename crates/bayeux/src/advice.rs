//! Server advice: how and when to reconnect. Intervals and timeouts are in
//! milliseconds, as the Bayeux specification says.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the server advises after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reconnect {
    /// Connect again after `interval`.
    Retry,
    /// Handshake again; do not retry the connect.
    Handshake,
    /// Neither connect nor handshake without outside action.
    None,
}

/// The `advice` field. Values of an unknown kind (a reconnect policy this
/// client does not know, a number sent as text) are ignored, so that one odd
/// message never makes a whole response unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advice {
    /// Reconnect policy.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub reconnect: Option<Reconnect>,
    /// Milliseconds to wait before the next connect.
    #[serde(
        default,
        deserialize_with = "lenient_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<i64>,
    /// Milliseconds the server may hold a connect.
    #[serde(
        default,
        deserialize_with = "lenient_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<i64>,
    /// Several clients share one browser: poll, don't long-poll.
    #[serde(
        default,
        rename = "multiple-clients",
        skip_serializing_if = "Option::is_none"
    )]
    pub multiple_clients: Option<bool>,
}

/// Any JSON value; `None` when it is not a `T`.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// Milliseconds as an integer or a float (rounded down); `None` otherwise.
fn lenient_millis<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(value
        .as_i64()
        .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)))
}

/// The advice in force, updated field by field as replies bring advice
/// (servers only resend advice when it changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentAdvice {
    /// Reconnect policy.
    pub reconnect: Reconnect,
    /// Wait before the next connect.
    pub interval: Duration,
    /// How long the server may hold a connect.
    pub timeout: Duration,
}

impl Default for CurrentAdvice {
    fn default() -> Self {
        Self {
            reconnect: Reconnect::Retry,
            interval: Duration::ZERO,
            timeout: Duration::from_secs(110),
        }
    }
}

impl CurrentAdvice {
    /// Applies newly received advice. Negative numbers are ignored.
    pub fn update(&mut self, advice: &Advice) {
        if let Some(reconnect) = advice.reconnect {
            self.reconnect = reconnect;
        }
        if let Some(ms) = advice.interval.filter(|ms| *ms >= 0) {
            self.interval = Duration::from_millis(ms as u64);
        }
        if let Some(ms) = advice.timeout.filter(|ms| *ms >= 0) {
            self.timeout = Duration::from_millis(ms as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_values_are_ignored_not_fatal() {
        let advice: Advice = serde_json::from_str(
            r#"{"reconnect":"sometimes","interval":"soon","timeout":1500.7,"multiple-clients":true}"#,
        )
        .expect("an odd advice still parses");
        assert_eq!(advice.reconnect, None);
        assert_eq!(advice.interval, None);
        assert_eq!(advice.timeout, Some(1500));
        let advice: Advice = serde_json::from_str(r#"{"reconnect":"handshake"}"#).expect("advice");
        assert_eq!(advice.reconnect, Some(Reconnect::Handshake));
    }

    #[test]
    fn milliseconds_not_seconds() {
        let mut current = CurrentAdvice::default();
        let advice: Advice =
            serde_json::from_str(r#"{"reconnect":"retry","interval":2000,"timeout":110000}"#)
                .expect("advice");
        current.update(&advice);
        assert_eq!(current.interval, Duration::from_secs(2));
        assert_eq!(current.timeout, Duration::from_secs(110));
        current.update(&Advice {
            reconnect: Some(Reconnect::Handshake),
            ..Advice::default()
        });
        assert_eq!(current.reconnect, Reconnect::Handshake);
        assert_eq!(
            current.interval,
            Duration::from_secs(2),
            "unchanged fields stay"
        );
        current.update(&Advice {
            interval: Some(-5),
            ..Advice::default()
        });
        assert_eq!(current.interval, Duration::from_secs(2));
    }
}
