//! The Avro codec and CDC bitmaps the server uses.
//!
//! TEMPORARY: a minimal stand-in with the signatures of
//! `sfstream_pubsub::{avro, bitmap}` until that lands; then this file
//! becomes re-exports.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// A codec failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

fn err<T>(message: impl Into<String>) -> Result<T, CodecError> {
    Err(CodecError(message.into()))
}

/// A parsed schema.
#[derive(Debug, Clone)]
pub struct Schema {
    root: Value,
    named: HashMap<String, Value>,
}

/// Parses a schema's JSON.
pub fn parse_schema(json: &str) -> Result<Schema, CodecError> {
    let root: Value = serde_json::from_str(json).map_err(|e| CodecError(e.to_string()))?;
    let mut named = HashMap::new();
    collect(&root, &mut named);
    Ok(Schema { root, named })
}

fn collect(schema: &Value, named: &mut HashMap<String, Value>) {
    match schema {
        Value::Array(branches) => branches.iter().for_each(|b| collect(b, named)),
        Value::Object(map) => {
            if let Some(name) = map.get("name").and_then(Value::as_str)
                && matches!(
                    map.get("type").and_then(Value::as_str),
                    Some("record" | "enum")
                )
            {
                named.insert(name.to_string(), schema.clone());
            }
            if let Some(fields) = map.get("fields").and_then(Value::as_array) {
                fields.iter().for_each(|f| collect(&f["type"], named));
            }
            if let Some(items) = map.get("items") {
                collect(items, named);
            }
            if let Some(Value::Object(_) | Value::Array(_)) = map.get("type") {
                collect(&map["type"], named);
            }
        }
        _ => {}
    }
}

fn resolve<'a>(schema: &'a Schema, s: &'a Value) -> &'a Value {
    match s {
        Value::String(name) => schema.named.get(name).unwrap_or(s),
        Value::Object(map) => match map.get("type") {
            Some(inner @ (Value::Object(_) | Value::Array(_))) => inner,
            _ => s,
        },
        _ => s,
    }
}

fn type_name(s: &Value) -> &str {
    match s {
        Value::String(t) => t,
        Value::Object(map) => map.get("type").and_then(Value::as_str).unwrap_or(""),
        Value::Array(_) => "union",
        _ => "",
    }
}

fn varint(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Encodes a JSON value as Avro binary.
pub fn encode(schema: &Schema, value: &Value) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    write(schema, &schema.root, value, &mut out)?;
    Ok(out)
}

fn write(schema: &Schema, s: &Value, v: &Value, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let s = resolve(schema, s);
    match (type_name(s), v) {
        ("null", Value::Null) => {}
        ("boolean", Value::Bool(b)) => out.push(u8::from(*b)),
        ("int" | "long", Value::Number(n)) => varint(
            out,
            n.as_i64()
                .ok_or_else(|| CodecError("not an integer".into()))?,
        ),
        ("double", Value::Number(n)) => {
            out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes())
        }
        ("string", Value::String(t)) => {
            varint(out, t.len() as i64);
            out.extend_from_slice(t.as_bytes());
        }
        ("enum", Value::String(t)) => {
            let symbols = s["symbols"].as_array().cloned().unwrap_or_default();
            let i = symbols
                .iter()
                .position(|x| x == t)
                .ok_or_else(|| CodecError(format!("no symbol {t}")))?;
            varint(out, i as i64);
        }
        ("array", Value::Array(items)) => {
            if !items.is_empty() {
                varint(out, items.len() as i64);
                for item in items {
                    write(schema, &s["items"], item, out)?;
                }
            }
            out.push(0);
        }
        ("record", Value::Object(map)) => {
            for field in s["fields"].as_array().into_iter().flatten() {
                let name = field["name"].as_str().unwrap_or_default();
                write(
                    schema,
                    &field["type"],
                    map.get(name).unwrap_or(&Value::Null),
                    out,
                )?;
            }
        }
        ("union", _) => {
            let branches = s.as_array().cloned().unwrap_or_default();
            for (i, b) in branches.iter().enumerate() {
                let mut buf = Vec::new();
                if write(schema, b, v, &mut buf).is_ok() {
                    varint(out, i as i64);
                    out.extend(buf);
                    return Ok(());
                }
            }
            return err(format!("no union branch for {v}"));
        }
        (t, v) => return err(format!("{v} is not a {t}")),
    }
    Ok(())
}

/// Decodes Avro binary to JSON.
pub fn decode(schema: &Schema, bytes: &[u8]) -> Result<Value, CodecError> {
    let mut at = 0;
    let value = read(schema, &schema.root, bytes, &mut at)?;
    if at != bytes.len() {
        return err("trailing bytes");
    }
    Ok(value)
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<i64, CodecError> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let Some(&b) = bytes.get(*at) else {
            return err("truncated");
        };
        *at += 1;
        z |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    err("varint too long")
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], CodecError> {
    let slice = bytes
        .get(*at..*at + n)
        .ok_or_else(|| CodecError("truncated".into()))?;
    *at += n;
    Ok(slice)
}

fn read(schema: &Schema, s: &Value, bytes: &[u8], at: &mut usize) -> Result<Value, CodecError> {
    let s = resolve(schema, s);
    Ok(match type_name(s) {
        "null" => Value::Null,
        "boolean" => Value::Bool(take(bytes, at, 1)?[0] != 0),
        "int" | "long" => Value::from(read_varint(bytes, at)?),
        "double" => {
            let b: [u8; 8] = take(bytes, at, 8)?
                .try_into()
                .map_err(|_| CodecError("double".into()))?;
            serde_json::json!(f64::from_le_bytes(b))
        }
        "string" => {
            let n = usize::try_from(read_varint(bytes, at)?)
                .map_err(|_| CodecError("length".into()))?;
            Value::String(
                String::from_utf8(take(bytes, at, n)?.to_vec())
                    .map_err(|e| CodecError(e.to_string()))?,
            )
        }
        "enum" => {
            let i = read_varint(bytes, at)?;
            s["symbols"][usize::try_from(i).unwrap_or(usize::MAX)].clone()
        }
        "array" => {
            let mut items = Vec::new();
            loop {
                let n = read_varint(bytes, at)?;
                if n == 0 {
                    break;
                }
                for _ in 0..n.unsigned_abs() {
                    items.push(read(schema, &s["items"], bytes, at)?);
                }
            }
            Value::Array(items)
        }
        "record" => {
            let mut map = Map::new();
            for field in s["fields"].as_array().into_iter().flatten() {
                let name = field["name"].as_str().unwrap_or_default().to_string();
                map.insert(name, read(schema, &field["type"], bytes, at)?);
            }
            Value::Object(map)
        }
        "union" => {
            let i = usize::try_from(read_varint(bytes, at)?).unwrap_or(usize::MAX);
            let branch = s
                .get(i)
                .ok_or_else(|| CodecError("bad union branch".into()))?;
            read(schema, branch, bytes, at)?
        }
        t => return err(format!("unsupported type {t}")),
    })
}

/// The bitmap of top-level field indices: `0x…`, bit 0 the least
/// significant bit of the last byte.
pub fn encode_top(indices: &[usize]) -> String {
    let max = indices.iter().copied().max().unwrap_or(0);
    let mut bytes = vec![0u8; max / 8 + 1];
    let len = bytes.len();
    for &i in indices {
        bytes[len - 1 - i / 8] |= 1 << (i % 8);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("0x{hex}")
}

/// The bitmap of a compound field's children: `P-0x…`.
pub fn encode_nested(parent: usize, children: &[usize]) -> String {
    format!("{parent}-{}", encode_top(children))
}
