//! Conversion between JSON values and AMQP header values, and Nameko's
//! `nameko.<key>` context headers.

use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde_json::{Map, Number, Value};

/// The prefix of Nameko's context headers (`nameko.call_id_stack`, …).
pub const HEADER_PREFIX: &str = "nameko";

/// Converts a JSON value to an AMQP field value the way kombu/py-amqp
/// encodes the equivalent Python value (strings as long strings, integers as
/// 64-bit signed, floats as doubles, lists as arrays, dicts as tables).
pub fn json_to_amqp(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                AMQPValue::LongLongInt(i)
            } else if let Some(f) = n.as_f64() {
                AMQPValue::Double(f)
            } else {
                AMQPValue::LongString(LongString::from(n.to_string()))
            }
        }
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(json_to_amqp).collect::<Vec<_>>(),
        )),
        Value::Object(map) => AMQPValue::FieldTable(json_map_to_table(map)),
    }
}

/// Converts a JSON object to an AMQP field table.
pub fn json_map_to_table(map: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in map {
        table.insert(ShortString::from(k.as_str()), json_to_amqp(v));
    }
    table
}

/// Converts an AMQP field value to JSON. Byte strings that are not UTF-8 are
/// decoded lossily; decimals become floats; timestamps integers.
pub fn amqp_to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::from(*i),
        AMQPValue::ShortShortUInt(i) => Value::from(*i),
        AMQPValue::ShortInt(i) => Value::from(*i),
        AMQPValue::ShortUInt(i) => Value::from(*i),
        AMQPValue::LongInt(i) => Value::from(*i),
        AMQPValue::LongUInt(i) => Value::from(*i),
        AMQPValue::LongLongInt(i) => Value::from(*i),
        AMQPValue::Float(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => {
            let v = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            Number::from_f64(v).map_or(Value::Null, Value::Number)
        }
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => {
            Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(amqp_to_json).collect()),
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::FieldTable(t) => Value::Object(table_to_json_map(t)),
        AMQPValue::ByteArray(b) => {
            Value::String(String::from_utf8_lossy(b.as_slice()).into_owned())
        }
        AMQPValue::Void => Value::Null,
    }
}

/// Converts an AMQP field table to a JSON object.
pub fn table_to_json_map(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), amqp_to_json(v)))
        .collect()
}

/// Reads message headers into context data as `HeaderDecoder.unpack_message_headers`
/// does: the `nameko.` prefix is stripped, other headers are kept unchanged.
pub fn unpack_context_headers(headers: Option<&FieldTable>) -> Map<String, Value> {
    let prefix = format!("{HEADER_PREFIX}.");
    let mut out = Map::new();
    if let Some(table) = headers {
        for (k, v) in table.inner() {
            let key = k.as_str();
            let key = key.strip_prefix(&prefix).unwrap_or(key);
            out.insert(key.to_owned(), amqp_to_json(v));
        }
    }
    out
}

/// Builds message headers from context data as `HeaderEncoder.get_message_headers`
/// does: every key gets the `nameko.` prefix and `null` values are dropped.
pub fn encode_context_headers(data: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in data {
        if v.is_null() {
            continue;
        }
        table.insert(
            ShortString::from(format!("{HEADER_PREFIX}.{k}")),
            json_to_amqp(v),
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn context_headers_roundtrip() {
        let mut data = Map::new();
        data.insert("call_id_stack".into(), json!(["a.b.1", "c.d.2"]));
        data.insert("language".into(), json!("en"));
        data.insert("user_id".into(), Value::Null);
        data.insert("n".into(), json!({"x": 1, "f": 1.5, "t": true}));
        let table = encode_context_headers(&data);
        assert!(table.inner().contains_key("nameko.call_id_stack"));
        assert!(!table.inner().contains_key("nameko.user_id"));
        let back = unpack_context_headers(Some(&table));
        assert_eq!(back["call_id_stack"], json!(["a.b.1", "c.d.2"]));
        assert_eq!(back["language"], json!("en"));
        assert_eq!(back["n"], json!({"x": 1, "f": 1.5, "t": true}));
        assert!(!back.contains_key("user_id"));
    }

    #[test]
    fn foreign_headers_keep_their_names() {
        let mut t = FieldTable::default();
        t.insert("x-other".into(), AMQPValue::ShortInt(3));
        assert_eq!(unpack_context_headers(Some(&t))["x-other"], json!(3));
        assert!(unpack_context_headers(None).is_empty());
    }
}
