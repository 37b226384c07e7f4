//! [`Payload`]: an event's payload as JSON text, decoded straight from Avro,
//! with the JSON value built only when asked for.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Serialize, Serializer};
use serde_json::Value;
use sfstream_pubsub::avro::Schema;

/// The decoded payload of a [`PubSubMessage`](super::PubSubMessage):
/// Change Data Capture bitmaps (`changedFields`, `nulledFields`,
/// `diffFields`) are field names.
///
/// It is JSON text ([`json`](Self::json)), which is what a consumer that
/// writes or forwards events needs; the [`Value`] is built from the Avro
/// payload the first time it is asked for (through `Deref`, so
/// `payload["Name"]` and `payload.get("Name")` work as on a `Value`), then
/// kept.
#[derive(Clone)]
pub struct Payload {
    json: String,
    /// The Avro datum and its schema, for the value (exact: not re-parsed
    /// from the text).
    avro: Option<(Arc<Schema>, Vec<u8>)>,
    /// Boxed: a message stays small until its value is asked for.
    value: OnceLock<Box<Value>>,
}

impl Payload {
    /// A payload decoded from `avro` (of `schema`) to `json`.
    pub(crate) fn decoded(json: String, schema: Arc<Schema>, avro: Vec<u8>) -> Self {
        Payload {
            json,
            avro: Some((schema, avro)),
            value: OnceLock::new(),
        }
    }

    /// The payload as compact JSON text: byte for byte
    /// `self.value().to_string()`.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The payload as a JSON value (built on first use, then kept).
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| Box::new(self.build()))
    }

    /// The JSON value, owned.
    pub fn into_value(mut self) -> Value {
        match self.value.take() {
            Some(value) => *value,
            None => self.build(),
        }
    }

    fn build(&self) -> Value {
        if let Some((schema, avro)) = &self.avro
            && let Ok(mut value) = sfstream_pubsub::avro::decode(schema, avro)
            && sfstream_pubsub::bitmap::expand_change_event(schema, &mut value).is_ok()
        {
            return value;
        }
        // The text was decoded from the same bytes: this is not reached.
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

impl Default for Payload {
    /// `null`.
    fn default() -> Self {
        Payload::from(Value::Null)
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Payload {
            json: value.to_string(),
            avro: None,
            value: OnceLock::from(Box::new(value)),
        }
    }
}

impl Deref for Payload {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.json == other.json || self.value() == other.value()
    }
}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl PartialEq<Payload> for Value {
    fn eq(&self, other: &Payload) -> bool {
        self == other.value()
    }
}

/// The JSON text.
impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.json)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Payload").field(&self.json).finish()
    }
}

/// As its value.
impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Arc<Schema> {
        Arc::new(
            sfstream_pubsub::avro::parse_schema(
                r#"{"type": "record", "name": "E", "fields": [
                    {"name": "ChangeEventHeader", "type": {"type": "record", "name": "H", "fields": [
                        {"name": "changedFields", "type": {"type": "array", "items": "string"}}]}},
                    {"name": "Name", "type": ["null", "string"]},
                    {"name": "Tiny", "type": "float"}
                ]}"#,
            )
            .unwrap(),
        )
    }

    fn decoded(value: &Value) -> Payload {
        let schema = schema();
        let avro = sfstream_pubsub::avro::encode(&schema, value).unwrap();
        let mut json = Vec::new();
        sfstream_pubsub::avro::decode_event_json(&schema, &avro, &mut json).unwrap();
        Payload::decoded(String::from_utf8(json).unwrap(), schema, avro)
    }

    #[test]
    fn the_value_is_built_from_avro_and_matches_the_text() {
        let source =
            json!({"ChangeEventHeader": {"changedFields": ["0x02"]}, "Name": "Ada", "Tiny": 1e-45});
        let payload = decoded(&source);
        assert_eq!(
            payload.json(),
            r#"{"ChangeEventHeader":{"changedFields":["Name"]},"Name":"Ada","Tiny":1e-45}"#
        );
        // Through Deref, as a Value.
        assert_eq!(
            payload["ChangeEventHeader"]["changedFields"],
            json!(["Name"])
        );
        assert_eq!(payload.get("Name").and_then(Value::as_str), Some("Ada"));
        // Exact (serde_json reads 1e-45 back an ulp off).
        assert_eq!(payload["Tiny"].as_f64(), Some(1e-45));
        assert_eq!(payload.value().to_string(), payload.json());
        assert_eq!(payload.to_string(), payload.json());
        let value = payload.value().clone();
        assert_eq!(payload, value);
        assert_eq!(value, payload);
        assert_eq!(payload.clone().into_value(), value);
        assert_eq!(serde_json::to_value(&payload).unwrap(), value);
        assert_eq!(decoded(&source).into_value(), value);
    }

    #[test]
    fn a_payload_from_a_value() {
        let payload = Payload::from(json!({"a": [1, null]}));
        assert_eq!(payload.json(), r#"{"a":[1,null]}"#);
        assert_eq!(payload["a"][0], 1);
        assert_eq!(Payload::default().json(), "null");
        assert!(Payload::default().is_null());
    }
}
