//! Avro binary straight to JSON text: byte for byte what decoding to a
//! [`Value`] and serialising it (compact) gives, without building the value.
//!
//! For change events ([`decode_event_json`](super::decode_event_json)) the
//! text is that of the value after
//! [`expand_change_event`](crate::bitmap::expand_change_event), and the
//! event's creation time is picked up on the way. The few values that need
//! a look at a whole value first (maps, whose keys may repeat; the bitmap
//! arrays; the timestamps) go through the value decoder, sharing the same
//! reader, so errors are the same as [`decode`](super::decode)'s.

use super::error::{At, Fail, Failure, Seg};
use super::read::{Reader, may_be_empty, shortest_float};
use super::{CodecError, Schema};
use crate::bitmap::{self, BITMAP_FIELDS, HEADER_FIELD};
use apache_avro::schema::{InnerDecimalSchema, RecordSchema, UuidSchema};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use serde_json::ser::{CompactFormatter, Formatter as _};

/// Where a value sits in a change event, for what it means there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Nothing special.
    Plain,
    /// The event itself (change-event decoding only).
    Root,
    /// The event's `ChangeEventHeader` field.
    Header,
}

/// What a change event's decoding picks up besides the text.
#[derive(Default)]
struct Cdc {
    /// A bitmap that does not fit the schema, per [`BITMAP_FIELDS`] entry:
    /// reported once the whole payload is read, as the value path does.
    bitmap_errors: [Option<CodecError>; 3],
    /// `ChangeEventHeader.commitTimestamp` as an integer, when the header
    /// has that field (`Some(None)`: it has, but not an integer).
    commit: Option<Option<i64>>,
    /// The event's `CreatedDate` as an integer, when it has that field.
    created_date: Option<Option<i64>>,
    /// Set when the event was decoded as a whole value (a map).
    whole: Option<Option<i64>>,
}

struct Text<'s, 'b, 'o> {
    r: Reader<'s, 'b>,
    root: &'s Schema,
    out: &'o mut Vec<u8>,
    cdc: Option<Cdc>,
}

/// Appends the JSON text of the datum to `out` (left as it was on error);
/// with `cdc`, as a change event: bitmaps expanded, and the creation time
/// (`ChangeEventHeader.commitTimestamp`, else `CreatedDate`) returned.
pub(super) fn decode(
    schema: &Schema,
    payload: &[u8],
    out: &mut Vec<u8>,
    cdc: bool,
) -> Result<Option<i64>, CodecError> {
    let start = out.len();
    let mut t = Text {
        r: Reader::new(schema, payload),
        root: schema,
        out,
        cdc: cdc.then(Cdc::default),
    };
    let ctx = if cdc { Ctx::Root } else { Ctx::Plain };
    let done = t
        .write(schema, ctx)
        .and_then(|()| t.r.finish())
        .map_err(|f| f.into_decode());
    let outcome = done.and_then(|()| match t.cdc.take() {
        None => Ok(None),
        Some(cdc) => {
            if let Some(error) = cdc.bitmap_errors.into_iter().flatten().next() {
                return Err(error);
            }
            Ok(match cdc.whole {
                Some(created) => created,
                None => cdc.commit.unwrap_or(cdc.created_date.flatten()),
            })
        }
    });
    if outcome.is_err() {
        out.truncate(start);
    }
    outcome
}

impl<'s> Text<'s, '_, '_> {
    fn write(&mut self, schema: &'s Schema, ctx: Ctx) -> Result<(), Failure> {
        let f = &mut CompactFormatter;
        match schema {
            Schema::Null => self.out.extend_from_slice(b"null"),
            Schema::Boolean => {
                let b = self.r.boolean()?;
                self.out
                    .extend_from_slice(if b { b"true" } else { b"false" });
            }
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                let n = self.r.int()?;
                io(f.write_i32(self.out, n))?;
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
                let n = self.r.long()?;
                io(f.write_i64(self.out, n))?;
            }
            Schema::Float => match shortest_float(self.r.float()?) {
                Some(x) => io(f.write_f64(self.out, x))?,
                None => self.out.extend_from_slice(b"null"),
            },
            Schema::Double => {
                let x = self.r.double()?;
                if x.is_finite() {
                    io(f.write_f64(self.out, x))?;
                } else {
                    self.out.extend_from_slice(b"null");
                }
            }
            Schema::String | Schema::Uuid(UuidSchema::String) => {
                let s = self.r.str()?;
                self.string(s)?;
            }
            Schema::Bytes
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::Bytes)
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            }) => {
                let n = self.r.len()?;
                let raw = self.r.take(n)?;
                self.base64(raw);
            }
            Schema::Fixed(fixed)
            | Schema::Duration(fixed)
            | Schema::Uuid(UuidSchema::Fixed(fixed))
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: InnerDecimalSchema::Fixed(fixed),
                ..
            }) => {
                let raw = self.r.take(fixed.size)?;
                self.base64(raw);
            }
            Schema::Enum(e) => {
                let symbol = self.r.symbol(e)?;
                self.string(symbol)?;
            }
            Schema::Union(u) => {
                let branch = self.r.branch(u)?;
                self.write(branch, ctx)?;
            }
            Schema::Record(r) => {
                self.r.enter()?;
                self.record(r, ctx)?;
                self.r.depth -= 1;
            }
            Schema::Array(a) => {
                self.r.enter()?;
                self.array(&a.items)?;
                self.r.depth -= 1;
            }
            // Keys may repeat (the last value wins, in the first key's
            // place): decoded as a value first.
            Schema::Map(_) => {
                let mut value = self.r.value(schema)?;
                self.whole_value(&mut value, ctx);
                self.value(&value)?;
            }
            Schema::Ref { .. } => {
                let target = self.r.resolve(schema)?;
                self.write(target, ctx)?;
            }
        }
        Ok(())
    }

    fn record(&mut self, r: &'s RecordSchema, ctx: Ctx) -> Result<(), Failure> {
        self.out.push(b'{');
        for (i, field) in r.fields.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.string(&field.name)?;
            self.out.push(b':');
            let special = match ctx {
                Ctx::Plain => None,
                Ctx::Root => match field.name.as_str() {
                    HEADER_FIELD => {
                        self.write(&field.schema, Ctx::Header)
                            .at(|| Seg::Field(field.name.clone()))?;
                        continue;
                    }
                    "CreatedDate" => Some(Special::CreatedDate),
                    _ => None,
                },
                Ctx::Header => match field.name.as_str() {
                    "commitTimestamp" => Some(Special::CommitTimestamp),
                    name => BITMAP_FIELDS
                        .iter()
                        .position(|k| *k == name)
                        .map(Special::Bitmap),
                },
            };
            match special {
                None => self
                    .write(&field.schema, Ctx::Plain)
                    .at(|| Seg::Field(field.name.clone()))?,
                Some(special) => {
                    let value = self
                        .r
                        .value(&field.schema)
                        .at(|| Seg::Field(field.name.clone()))?;
                    self.special(special, value)?;
                }
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    fn special(&mut self, special: Special, value: Value) -> Result<(), Failure> {
        let Some(cdc) = self.cdc.as_mut() else {
            return self.value(&value);
        };
        match special {
            Special::CreatedDate => {
                cdc.created_date = Some(value.as_i64());
                self.value(&value)
            }
            Special::CommitTimestamp => {
                cdc.commit = Some(value.as_i64());
                self.value(&value)
            }
            Special::Bitmap(k) => {
                let Value::Array(items) = &value else {
                    return self.value(&value);
                };
                match bitmap::bitmap_names(self.root, BITMAP_FIELDS[k], items) {
                    Ok(names) => {
                        self.out.push(b'[');
                        for (i, name) in names.iter().enumerate() {
                            if i > 0 {
                                self.out.push(b',');
                            }
                            self.string(name)?;
                        }
                        self.out.push(b']');
                        Ok(())
                    }
                    Err(error) => {
                        cdc.bitmap_errors[k].get_or_insert(error);
                        self.value(&value)
                    }
                }
            }
        }
    }

    /// What the value path does to a change event or its header decoded
    /// as a whole (a map).
    fn whole_value(&mut self, value: &mut Value, ctx: Ctx) {
        let Some(cdc) = self.cdc.as_mut() else {
            return;
        };
        match ctx {
            Ctx::Plain => {}
            Ctx::Root => {
                if let Err(error) = bitmap::expand_change_event(self.root, value) {
                    cdc.bitmap_errors[0].get_or_insert(error);
                }
                cdc.whole = Some(bitmap::created_millis(value));
            }
            Ctx::Header => {
                if let Value::Object(header) = value {
                    if let Err(error) = bitmap::expand_header(self.root, header) {
                        cdc.bitmap_errors[0].get_or_insert(error);
                    }
                    cdc.commit = header.get("commitTimestamp").map(Value::as_i64);
                }
            }
        }
    }

    fn array(&mut self, items: &'s Schema) -> Result<(), Failure> {
        let free = may_be_empty(items);
        self.out.push(b'[');
        let mut i = 0usize;
        loop {
            let n = self.r.array_block(free)?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                if i > 0 {
                    self.out.push(b',');
                }
                self.write(items, Ctx::Plain).at(|| Seg::Index(i))?;
                i += 1;
            }
        }
        self.out.push(b']');
        Ok(())
    }

    fn string(&mut self, s: &str) -> Result<(), Failure> {
        write_str(self.out, s);
        Ok(())
    }

    fn base64(&mut self, raw: &[u8]) {
        self.out.push(b'"');
        let start = self.out.len();
        let n = base64::encoded_len(raw.len(), true).unwrap_or(0);
        self.out.resize(start + n, 0);
        let written = STANDARD
            .encode_slice(raw, &mut self.out[start..])
            .unwrap_or(0);
        self.out.truncate(start + written);
        self.out.push(b'"');
    }

    fn value(&mut self, value: &Value) -> Result<(), Failure> {
        serde_json::to_writer(&mut *self.out, value)
            .map_err(|e| Fail::new(format!("cannot write JSON: {e}")))
    }
}

/// A field whose value is looked at as a whole.
#[derive(Clone, Copy)]
enum Special {
    CreatedDate,
    CommitTimestamp,
    /// The [`BITMAP_FIELDS`] entry at this index.
    Bitmap(usize),
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it (`\"`,
/// `\\`, `\b \f \n \r \t`, other control characters as `\u00xx`;
/// nothing else). Strings that need no escaping (nearly all) are checked
/// eight bytes at a time and copied whole.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if plain(bytes) {
        out.extend_from_slice(bytes);
    } else {
        escape(out, bytes);
    }
    out.push(b'"');
}

/// Whether no byte of `bytes` needs escaping.
#[inline]
fn plain(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    /// Whether a byte of `w` is below 0x20, `"` or `\`.
    #[inline]
    fn special(chunk: &[u8]) -> bool {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let control = w.wrapping_sub(ONES * 0x20) & !w;
        let q = w ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q;
        let b = w ^ (ONES * u64::from(b'\\'));
        let backslash = b.wrapping_sub(ONES) & !b;
        (control | quote | backslash) & HIGH != 0
    }
    if bytes.len() < 8 {
        return !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    }
    let mut chunks = bytes.chunks_exact(8);
    if chunks.any(special) {
        return false;
    }
    // The last (partial) chunk, as the last eight bytes.
    bytes.len().is_multiple_of(8) || !special(&bytes[bytes.len() - 8..])
}

#[cold]
fn escape(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut done = 0; // copied up to here
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..0x20 => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[done..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        done = i + 1;
    }
    out.extend_from_slice(&bytes[done..]);
}

/// Writing to a `Vec` does not fail; should it, the error is the payload's.
fn io(result: std::io::Result<()>) -> Result<(), Failure> {
    result.map_err(|e| Fail::new(format!("cannot write JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::write_str;
    use proptest::prelude::*;

    fn check(s: &str) -> Result<(), TestCaseError> {
        let mut out = b"x".to_vec();
        write_str(&mut out, s);
        prop_assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("x{}", serde_json::to_string(s).unwrap())
        );
        Ok(())
    }

    #[test]
    fn every_ascii_byte_at_every_offset() {
        for byte in 0u8..0x80 {
            for at in 0..20 {
                let mut s = "abcdefghijklmnopqrs".to_string();
                s.insert(at, char::from(byte));
                check(&s).unwrap();
            }
        }
    }

    proptest! {
        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(
            s in "[\\x00-\\x23\\x5b-\\x5d\\x7f a-z\u{e9}\u{2713}\u{1f600}]{0,40}",
            t in any::<String>(),
        ) {
            check(&s)?;
            check(&t)?;
        }
    }
}
