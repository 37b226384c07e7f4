//! What a work message carries beside its body: the Salesforce channel, the
//! replay id and the event's creation time (so that a consumer can compute
//! its handler lag), as AMQP headers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sfstream_nameko::amqp::lapin::BasicProperties;
use sfstream_nameko::amqp::lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// Header: the Salesforce channel of the event (text).
pub const HEADER_CHANNEL: &str = "sfstream-channel";
/// Header: the event's replay id (text: an integer for CometD, base64 for
/// the Pub/Sub API).
pub const HEADER_REPLAY_ID: &str = "sfstream-replay-id";
/// Header: when the event was created in Salesforce, in milliseconds since
/// the Unix epoch (64-bit integer).
pub const HEADER_CREATED_AT: &str = "sfstream-created-at";
/// Header: when the streamer published it, in milliseconds since the Unix
/// epoch (64-bit integer).
pub const HEADER_PUBLISHED_AT: &str = "sfstream-published-at";
/// Header: the record key used for partitioning, if any (text).
pub const HEADER_RECORD_KEY: &str = "sfstream-record-key";
/// Header: the entrypoint (text).
pub const HEADER_ENTRYPOINT: &str = "sfstream-entrypoint";

/// The event a work message carries.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use sfstream_cluster::queue::EventMeta;
///
/// let meta = EventMeta::new("/data/AccountChangeEvent", "12345")
///     .created_at(UNIX_EPOCH + Duration::from_millis(1_700_000_000_000));
/// assert_eq!(meta.replay_id, "12345");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventMeta {
    /// The Salesforce channel (`/topic/…`, `/data/…`, `/event/…`).
    pub channel: String,
    /// The replay id, as text.
    pub replay_id: String,
    /// When Salesforce created the event, if known.
    pub created_at: Option<SystemTime>,
    /// The message's content type; `application/json` when `None`.
    pub content_type: Option<String>,
    /// Further headers, passed through unchanged.
    pub extra: FieldTable,
}

impl EventMeta {
    /// The channel and replay id of an event.
    pub fn new(channel: impl Into<String>, replay_id: impl Into<String>) -> Self {
        Self {
            channel: channel.into(),
            replay_id: replay_id.into(),
            ..Self::default()
        }
    }

    /// Sets the event's creation time.
    pub fn created_at(mut self, at: SystemTime) -> Self {
        self.created_at = Some(at);
        self
    }

    /// Adds a header of its own.
    pub fn header(mut self, key: &str, value: AMQPValue) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// The properties of a persistent message carrying this event.
    pub(crate) fn properties(&self, entrypoint: &str, record_key: Option<&str>) -> BasicProperties {
        let mut headers = self.extra.clone();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        headers.insert(HEADER_CHANNEL.into(), text(&self.channel));
        headers.insert(HEADER_REPLAY_ID.into(), text(&self.replay_id));
        headers.insert(HEADER_ENTRYPOINT.into(), text(entrypoint));
        if let Some(key) = record_key {
            headers.insert(HEADER_RECORD_KEY.into(), text(key));
        }
        if let Some(ms) = self.created_at.and_then(epoch_ms) {
            headers.insert(HEADER_CREATED_AT.into(), AMQPValue::LongLongInt(ms));
        }
        let now = SystemTime::now();
        if let Some(ms) = epoch_ms(now) {
            headers.insert(HEADER_PUBLISHED_AT.into(), AMQPValue::LongLongInt(ms));
        }
        let content_type = self.content_type.as_deref().unwrap_or("application/json");
        BasicProperties::default()
            .with_content_type(ShortString::from(content_type))
            .with_delivery_mode(2)
            .with_message_id(ShortString::from(format!(
                "{}/{}",
                self.channel, self.replay_id
            )))
            .with_timestamp(now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
            .with_headers(headers)
    }
}

fn epoch_ms(at: SystemTime) -> Option<i64> {
    at.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

/// A text header (long or short string; bytes read as UTF-8).
pub(crate) fn text_header(headers: Option<&FieldTable>, key: &str) -> Option<String> {
    match headers?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// A time header in milliseconds since the epoch (any integer type).
pub(crate) fn time_header(headers: Option<&FieldTable>, key: &str) -> Option<SystemTime> {
    let ms: u64 = match headers?.inner().get(key)? {
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok()?,
        AMQPValue::LongInt(v) => u64::try_from(*v).ok()?,
        AMQPValue::LongUInt(v) => u64::from(*v),
        AMQPValue::Timestamp(v) => *v,
        _ => return None,
    };
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_roundtrip() {
        let created = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let meta = EventMeta::new("/data/X", "AAA=")
            .created_at(created)
            .header("custom", AMQPValue::Boolean(true));
        let props = meta.properties("ep", Some("001"));
        let h = props.headers().as_ref();
        assert_eq!(text_header(h, HEADER_CHANNEL).as_deref(), Some("/data/X"));
        assert_eq!(text_header(h, HEADER_REPLAY_ID).as_deref(), Some("AAA="));
        assert_eq!(text_header(h, HEADER_RECORD_KEY).as_deref(), Some("001"));
        assert_eq!(text_header(h, HEADER_ENTRYPOINT).as_deref(), Some("ep"));
        assert_eq!(time_header(h, HEADER_CREATED_AT), Some(created));
        assert!(time_header(h, HEADER_PUBLISHED_AT).is_some());
        assert_eq!(
            h.and_then(|t| t.inner().get("custom")),
            Some(&AMQPValue::Boolean(true))
        );
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(
            props.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        let none = EventMeta::new("/c", "1").properties("ep", None);
        assert_eq!(
            text_header(none.headers().as_ref(), HEADER_RECORD_KEY),
            None
        );
        assert_eq!(
            time_header(none.headers().as_ref(), HEADER_CREATED_AT),
            None
        );
    }
}
