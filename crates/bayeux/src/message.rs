//! Bayeux messages as they travel in long-polling request and response
//! bodies (JSON arrays of messages).

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::advice::Advice;
use crate::error::ErrorField;

/// Meta channel of the handshake.
pub const HANDSHAKE: &str = "/meta/handshake";
/// Meta channel of the long-poll connect.
pub const CONNECT: &str = "/meta/connect";
/// Meta channel of subscribe.
pub const SUBSCRIBE: &str = "/meta/subscribe";
/// Meta channel of unsubscribe.
pub const UNSUBSCRIBE: &str = "/meta/unsubscribe";
/// Meta channel of disconnect (sent by the client, or by the server).
pub const DISCONNECT: &str = "/meta/disconnect";

/// One Bayeux message. Unknown fields are ignored; `data` is kept as raw
/// JSON so that forwarding an event costs no re-serialisation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The channel, e.g. `/meta/connect` or `/topic/Accounts`.
    pub channel: String,
    /// Message id (a string or a number on the wire), echoed in replies.
    #[serde(
        default,
        deserialize_with = "id_from_any",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// The client id given at handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Whether a meta request succeeded (replies only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful: Option<bool>,
    /// `code:args:message` error text of a failed reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Server advice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
    /// Extension data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<Map<String, Value>>,
    /// The payload of an event or publish, as raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// The channel of a subscribe or unsubscribe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// `long-polling` on connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_type: Option<String>,
    /// Protocol version on handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Lowest protocol version on handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_version: Option<String>,
    /// Transports offered on handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_connection_types: Option<Vec<String>>,
    /// What an extension attached to a received message (e.g. what it
    /// parsed out of it), so that the layer above need not parse it again.
    /// Never sent.
    #[serde(skip)]
    pub attachment: Option<Attachment>,
}

/// A value an [`Extension`](crate::Extension) attached to a received
/// [`Message`], read back by type with [`Attachment::get`].
#[derive(Clone)]
pub struct Attachment(std::sync::Arc<dyn std::any::Any + Send + Sync>);

impl Attachment {
    /// Wraps `value`.
    pub fn new<T: std::any::Any + Send + Sync>(value: T) -> Self {
        Self(std::sync::Arc::new(value))
    }

    /// The value, if it is a `T`.
    pub fn get<T: std::any::Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attachment")
    }
}

fn id_from_any<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum AnyId {
        Text(String),
        Number(i64),
        Other(Value),
    }
    Ok(match Option::<AnyId>::deserialize(deserializer)? {
        None => None,
        Some(AnyId::Text(s)) => Some(s),
        Some(AnyId::Number(n)) => Some(n.to_string()),
        Some(AnyId::Other(Value::Null)) => None,
        Some(AnyId::Other(other)) => {
            return Err(de::Error::custom(format!("unexpected message id {other}")));
        }
    })
}

impl Message {
    /// A message on `channel` with nothing else set.
    pub fn new(channel: impl Into<String>) -> Self {
        Self {
            channel: channel.into(),
            ..Self::default()
        }
    }

    /// Whether this is a `/meta/...` message.
    pub fn is_meta(&self) -> bool {
        self.channel.starts_with("/meta/")
    }

    /// Whether this is an event (a message on a non-meta channel carrying data).
    pub fn is_event(&self) -> bool {
        !self.is_meta() && self.data.is_some()
    }

    /// Whether the reply says `successful: true`.
    pub fn is_successful(&self) -> bool {
        self.successful == Some(true)
    }

    /// The parsed `error` field, if any.
    pub fn error_field(&self) -> Option<ErrorField> {
        self.error.as_deref().map(ErrorField::parse)
    }

    /// The raw JSON text of `data` (`null` when absent).
    pub fn data_json(&self) -> &str {
        self.data.as_deref().map_or("null", RawValue::get)
    }

    /// `data` parsed into a JSON value.
    pub fn data_value(&self) -> serde_json::Result<Value> {
        serde_json::from_str(self.data_json())
    }

    /// Sets `data` from any serialisable value.
    pub fn with_data<T: Serialize>(mut self, data: &T) -> serde_json::Result<Self> {
        self.data = Some(serde_json::value::to_raw_value(data)?);
        Ok(self)
    }

    /// The extension object, created when missing.
    pub fn ext_mut(&mut self) -> &mut Map<String, Value> {
        self.ext.get_or_insert_with(Map::new)
    }
}

/// Parses a response body: a JSON array of messages (a single object is
/// accepted too). Bodies that are not Bayeux give an error, never a panic.
pub fn parse_messages(body: &[u8]) -> Result<Vec<Message>, serde_json::Error> {
    let trimmed = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&body[..0], |i| &body[i..]);
    if trimmed.first() == Some(&b'{') {
        return serde_json::from_slice::<Message>(trimmed).map(|m| vec![m]);
    }
    serde_json::from_slice(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_salesforce_replies_and_events() {
        let body = br#"[{"data":{"event":{"replayId":13,"type":"created"},"sobject":{"Id":"a"}},"channel":"/topic/X"},
            {"clientId":"41kd","advice":{"reconnect":"retry","interval":0,"timeout":110000},"channel":"/meta/connect","id":7,"successful":true}]"#;
        let messages = parse_messages(body).expect("parses");
        assert_eq!(messages.len(), 2);
        assert!(messages[0].is_event());
        assert_eq!(
            messages[0].data_value().expect("data")["event"]["replayId"],
            13
        );
        assert_eq!(messages[1].id.as_deref(), Some("7"));
        assert!(messages[1].is_successful());
        assert_eq!(
            messages[1].advice.as_ref().and_then(|a| a.timeout),
            Some(110000)
        );
    }

    #[test]
    fn single_object_and_garbage() {
        assert_eq!(
            parse_messages(br#" {"channel":"/meta/connect"}"#)
                .expect("object")
                .len(),
            1
        );
        assert!(parse_messages(b"<html>").is_err());
        assert!(parse_messages(br#"[{"channel":5}]"#).is_err());
        assert!(parse_messages(br#"[{"channel":"/x","id":{"a":1}}]"#).is_err());
        assert!(parse_messages(b"").is_err());
    }

    #[test]
    fn serialises_only_what_is_set() {
        let mut message = Message::new(SUBSCRIBE);
        message.subscription = Some("/topic/X".into());
        message
            .ext_mut()
            .insert("replay".into(), serde_json::json!({"/topic/X": -1}));
        let text = serde_json::to_string(&message).expect("json");
        assert_eq!(
            text,
            r#"{"channel":"/meta/subscribe","ext":{"replay":{"/topic/X":-1}},"subscription":"/topic/X"}"#
        );
    }
}
