//! Change Data Capture's field bitmaps.
//!
//! Over Pub/Sub, a change event's `ChangeEventHeader.changedFields`,
//! `nulledFields` and `diffFields` hold bitmaps rather than field names:
//!
//! - `"0x650004E0"`: bit *i* set means top-level field *i* of the event's
//!   record schema; the hex is big-endian, so bit 0 is the least
//!   significant bit of the last byte.
//! - `"P-0xHH"`: a bitmap over the fields of the compound field at
//!   top-level position *P* (a nested record such as `Name` or
//!   `BillingAddress`, usually in a union with null); its fields are named
//!   `Parent.Child`, e.g. `Name.LastName`.
//!
//! Salesforce emits the hex in upper case, in whole bytes.

use crate::avro::{CodecError, Lookup};
use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// The header fields that hold bitmaps.
pub const BITMAP_FIELDS: [&str; 3] = ["changedFields", "nulledFields", "diffFields"];

/// The record field of a change event holding its header.
pub const HEADER_FIELD: &str = "ChangeEventHeader";

/// The field names the bitmap entries of a change event of `schema` stand
/// for, entry by entry, each bitmap's fields in schema order. An entry that
/// is not a bitmap (already a field name) is kept as it is.
pub fn field_names(schema: &Schema, bitmaps: &[String]) -> Result<Vec<String>, CodecError> {
    let mut lookup = Lookup::new(schema);
    let mut names = Vec::new();
    for entry in bitmaps {
        match parse_entry(entry)? {
            Entry::Name => names.push(entry.clone()),
            Entry::Top(hex) => {
                let record = root_record(schema, entry)?;
                for i in bits(hex, entry)? {
                    names.push(field_at(record, i, entry)?.name.clone());
                }
            }
            Entry::Nested(parent, hex) => {
                let record = root_record(schema, entry)?;
                let field = field_at(record, parent, entry)?;
                let nested = compound_record(&mut lookup, &field.schema).ok_or_else(|| {
                    bad(
                        entry,
                        format!(
                            "field {parent} ({}) is not a compound field (a nested record)",
                            field.name
                        ),
                    )
                })?;
                for i in bits(hex, entry)? {
                    let child = field_at(nested, i, entry)?;
                    names.push(format!("{}.{}", field.name, child.name));
                }
            }
        }
    }
    Ok(names)
}

/// The bitmap of top-level field positions `indices`, as Salesforce writes
/// it: `0x`, upper-case hex, the fewest whole bytes (at least one).
/// The indices are schema field positions (small numbers).
pub fn encode_top(indices: &[usize]) -> String {
    let len = indices.iter().max().map_or(1, |&max| max / 8 + 1);
    let mut bytes = vec![0u8; len];
    for &i in indices {
        bytes[len - 1 - i / 8] |= 1 << (i % 8);
    }
    let mut out = String::with_capacity(2 + 2 * len);
    out.push_str("0x");
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// The bitmap entry of the fields at `child_indices` of the compound field
/// at top-level position `parent`: `P-0xHH`.
pub fn encode_nested(parent: usize, child_indices: &[usize]) -> String {
    format!("{parent}-{}", encode_top(child_indices))
}

/// Replaces, in a decoded change event, the bitmaps of `changedFields`,
/// `nulledFields` and `diffFields` (in its `ChangeEventHeader`) by field
/// names. An event without a header (not a change event) is left as it is;
/// on error the event is left unchanged.
pub fn expand_change_event(schema: &Schema, event: &mut Value) -> Result<(), CodecError> {
    match event.get_mut(HEADER_FIELD).and_then(Value::as_object_mut) {
        Some(header) => expand_header(schema, header),
        None => Ok(()),
    }
}

/// [`expand_change_event`] on the header itself.
pub(crate) fn expand_header(
    schema: &Schema,
    header: &mut Map<String, Value>,
) -> Result<(), CodecError> {
    let mut expanded = Vec::with_capacity(BITMAP_FIELDS.len());
    for key in BITMAP_FIELDS {
        let Some(Value::Array(items)) = header.get(key) else {
            continue;
        };
        expanded.push((key, bitmap_names(schema, key, items)?));
    }
    for (key, names) in expanded {
        header.insert(
            key.to_string(),
            Value::Array(names.into_iter().map(Value::String).collect()),
        );
    }
    Ok(())
}

/// The field names of the bitmap entries `items` of header field `key`.
pub(crate) fn bitmap_names(
    schema: &Schema,
    key: &str,
    items: &[Value],
) -> Result<Vec<String>, CodecError> {
    let entries = items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(bad(
                &other.to_string(),
                format!("{key} holds a non-string entry"),
            )),
        })
        .collect::<Result<Vec<String>, _>>()?;
    field_names(schema, &entries)
}

/// When a decoded event was created, in epoch milliseconds: a change
/// event's `ChangeEventHeader.commitTimestamp`, else a platform event's
/// `CreatedDate` (`None` when the field holds no integer).
pub fn created_millis(event: &Value) -> Option<i64> {
    event
        .get(HEADER_FIELD)
        .and_then(|h| h.get("commitTimestamp"))
        .or_else(|| event.get("CreatedDate"))
        .and_then(Value::as_i64)
}

enum Entry<'a> {
    /// Already a field name.
    Name,
    /// The hex digits of a top-level bitmap.
    Top(&'a str),
    /// A compound field's position and the hex digits of its bitmap.
    Nested(usize, &'a str),
}

fn parse_entry(entry: &str) -> Result<Entry<'_>, CodecError> {
    if let Some(hex) = strip_hex_prefix(entry) {
        return Ok(Entry::Top(hex));
    }
    let digits = entry.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || entry.as_bytes().get(digits) != Some(&b'-') {
        // Field names start with a letter or `_`.
        return Ok(Entry::Name);
    }
    let parent = entry[..digits]
        .parse::<usize>()
        .map_err(|_| bad(entry, "the compound field position is too large"))?;
    let hex = strip_hex_prefix(&entry[digits + 1..])
        .ok_or_else(|| bad(entry, "expected 0x and hex digits after the position"))?;
    Ok(Entry::Nested(parent, hex))
}

fn strip_hex_prefix(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

/// The positions of the bits set in big-endian hex, lowest first.
fn bits(hex: &str, entry: &str) -> Result<Vec<usize>, CodecError> {
    if hex.is_empty() {
        return Err(bad(entry, "no hex digits"));
    }
    let mut set = Vec::new();
    for (k, c) in hex.bytes().rev().enumerate() {
        let nibble = char::from(c)
            .to_digit(16)
            .ok_or_else(|| bad(entry, format!("{:?} is not a hex digit", char::from(c))))?;
        for b in 0..4 {
            if nibble & (1 << b) != 0 {
                set.push(k * 4 + b);
            }
        }
    }
    Ok(set)
}

fn root_record<'s>(schema: &'s Schema, entry: &str) -> Result<&'s RecordSchema, CodecError> {
    match schema {
        Schema::Record(r) => Ok(r),
        _ => Err(bad(entry, "the event schema is not a record")),
    }
}

fn field_at<'s>(
    record: &'s RecordSchema,
    i: usize,
    entry: &str,
) -> Result<&'s apache_avro::schema::RecordField, CodecError> {
    record.fields.get(i).ok_or_else(|| {
        bad(
            entry,
            format!(
                "it names field {i}, but {} has {} fields",
                record.name.name(),
                record.fields.len()
            ),
        )
    })
}

/// The nested record of a compound field: the field's record, or the one
/// record among its union's branches.
fn compound_record<'s>(lookup: &mut Lookup<'s>, schema: &'s Schema) -> Option<&'s RecordSchema> {
    match lookup.resolve(schema).ok()? {
        Schema::Record(r) => Some(r),
        Schema::Union(u) => {
            let mut found = None;
            for branch in u.variants() {
                if let Ok(Schema::Record(r)) = lookup.resolve(branch) {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(r);
                }
            }
            found
        }
        _ => None,
    }
}

fn bad(entry: &str, reason: impl Into<String>) -> CodecError {
    CodecError::Bitmap {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}
