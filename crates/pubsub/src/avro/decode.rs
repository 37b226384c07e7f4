//! Avro binary to JSON, in one pass and without an intermediate value.

use super::Lookup;
use super::error::{At, Fail, Failure, Seg};
use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Number, Value};

/// Deeper nesting than this is refused (a recursive schema and crafted
/// input would otherwise overflow the stack).
const MAX_DEPTH: usize = 64;

/// Array items that may take no bytes at all (nulls, empty records) are
/// limited to this many per payload: their count is not bounded by the
/// payload's length.
const MAX_FREE_ITEMS: usize = 100_000;

pub(super) fn decode(schema: &Schema, payload: &[u8]) -> Result<Value, Failure> {
    let mut d = Decoder {
        lookup: Lookup::new(schema),
        buf: payload,
        pos: 0,
        depth: 0,
        free_items: 0,
    };
    let value = d.value(schema)?;
    if d.pos != payload.len() {
        return Err(Fail::at_byte(
            d.pos,
            format!("{} trailing bytes after the datum", payload.len() - d.pos),
        ));
    }
    Ok(value)
}

struct Decoder<'s, 'b> {
    lookup: Lookup<'s>,
    buf: &'b [u8],
    pos: usize,
    depth: usize,
    free_items: usize,
}

impl<'s> Decoder<'s, '_> {
    fn fail(&self, reason: impl Into<String>) -> Failure {
        Fail::at_byte(self.pos, reason)
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Failure> {
        if n > self.remaining() {
            return Err(self.fail(format!(
                "truncated: {n} bytes expected, {} left",
                self.remaining()
            )));
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    /// A zigzag varint of at most 64 bits.
    fn long(&mut self) -> Result<i64, Failure> {
        let mut raw: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(self.fail("truncated: a number is cut short"));
            };
            if shift == 63 && byte > 1 {
                return Err(self.fail("a number longer than 64 bits"));
            }
            self.pos += 1;
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn int(&mut self) -> Result<i32, Failure> {
        let start = self.pos;
        let n = self.long()?;
        i32::try_from(n)
            .map_err(|_| Fail::at_byte(start, format!("{n} is out of range for an int")))
    }

    /// A length prefix, checked against the bytes left.
    fn len(&mut self) -> Result<usize, Failure> {
        let start = self.pos;
        let n = self.long()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            Ok(n) => Err(Fail::at_byte(
                start,
                format!("truncated: {n} bytes announced, {} left", self.remaining()),
            )),
            Err(_) => Err(Fail::at_byte(start, format!("negative length {n}"))),
        }
    }

    fn bytes(&mut self) -> Result<Value, Failure> {
        let n = self.len()?;
        Ok(Value::String(STANDARD.encode(self.take(n)?)))
    }

    fn fixed(&mut self, size: usize) -> Result<Value, Failure> {
        Ok(Value::String(STANDARD.encode(self.take(size)?)))
    }

    fn string(&mut self) -> Result<String, Failure> {
        let n = self.len()?;
        let start = self.pos;
        let raw = self.take(n)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(Fail::at_byte(start, "a string that is not UTF-8")),
        }
    }

    fn value(&mut self, schema: &'s Schema) -> Result<Value, Failure> {
        Ok(match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => match self.take(1)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    self.pos -= 1;
                    return Err(self.fail(format!("a boolean byte of {b}")));
                }
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => Value::from(self.int()?),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Value::from(self.long()?),
            Schema::Float => {
                let raw = self.take(4)?;
                let f = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                float_value(f)
            }
            Schema::Double => {
                let raw = self.take(8)?;
                let mut b = [0u8; 8];
                b.copy_from_slice(raw);
                Number::from_f64(f64::from_le_bytes(b)).map_or(Value::Null, Value::Number)
            }
            Schema::String | Schema::Uuid(UuidSchema::String) => Value::String(self.string()?),
            Schema::Bytes
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::Bytes)
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            }) => self.bytes()?,
            Schema::Fixed(f)
            | Schema::Duration(f)
            | Schema::Uuid(UuidSchema::Fixed(f))
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: InnerDecimalSchema::Fixed(f),
                ..
            }) => self.fixed(f.size)?,
            Schema::Enum(e) => {
                let start = self.pos;
                let i = self.int()?;
                match usize::try_from(i).ok().and_then(|i| e.symbols.get(i)) {
                    Some(symbol) => Value::String(symbol.clone()),
                    None => {
                        return Err(Fail::at_byte(
                            start,
                            format!(
                                "enum index {i}, but {} has {} symbols",
                                e.name.name(),
                                e.symbols.len()
                            ),
                        ));
                    }
                }
            }
            Schema::Union(u) => {
                let start = self.pos;
                let i = self.long()?;
                let variants = u.variants();
                match usize::try_from(i).ok().and_then(|i| variants.get(i)) {
                    Some(branch) => self.value(branch)?,
                    None => {
                        return Err(Fail::at_byte(
                            start,
                            format!("union branch {i}, but the union has {}", variants.len()),
                        ));
                    }
                }
            }
            Schema::Record(r) => {
                self.enter()?;
                let mut map = Map::with_capacity(r.fields.len());
                for field in &r.fields {
                    let v = self
                        .value(&field.schema)
                        .at(|| Seg::Field(field.name.clone()))?;
                    map.insert(field.name.clone(), v);
                }
                self.depth -= 1;
                Value::Object(map)
            }
            Schema::Array(a) => {
                self.enter()?;
                let v = self.array(&a.items)?;
                self.depth -= 1;
                v
            }
            Schema::Map(m) => {
                self.enter()?;
                let v = self.map(&m.types)?;
                self.depth -= 1;
                v
            }
            Schema::Ref { .. } => {
                let start = self.pos;
                let target = self
                    .lookup
                    .resolve(schema)
                    .map_err(|f| f.at_offset(start))?;
                self.value(target)?
            }
        })
    }

    fn enter(&mut self) -> Result<(), Failure> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fail(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    /// The item count of the next block (0 at the end); a negative count
    /// is followed by the block's size in bytes, which is not needed here.
    fn block(&mut self) -> Result<usize, Failure> {
        let start = self.pos;
        let n = self.long()?;
        if n < 0 {
            self.len()?;
        }
        let n = n.unsigned_abs();
        usize::try_from(n).map_err(|_| Fail::at_byte(start, format!("a block of {n} items")))
    }

    fn array(&mut self, items: &'s Schema) -> Result<Value, Failure> {
        let free = may_be_empty(items);
        let mut out = Vec::new();
        loop {
            let start = self.pos;
            let n = self.block()?;
            if n == 0 {
                break;
            }
            if free {
                self.free_items = self.free_items.saturating_add(n);
                if self.free_items > MAX_FREE_ITEMS {
                    return Err(Fail::at_byte(
                        start,
                        format!("more than {MAX_FREE_ITEMS} empty array items"),
                    ));
                }
            } else if n > self.remaining() {
                // Every item takes at least a byte.
                return Err(Fail::at_byte(
                    start,
                    format!(
                        "truncated: {n} items announced, {} bytes left",
                        self.remaining()
                    ),
                ));
            }
            out.reserve(n.min(self.remaining().max(16)));
            for _ in 0..n {
                let i = out.len();
                let v = self.value(items).at(|| Seg::Index(i))?;
                out.push(v);
            }
        }
        Ok(Value::Array(out))
    }

    fn map(&mut self, values: &'s Schema) -> Result<Value, Failure> {
        let mut out = Map::new();
        loop {
            let start = self.pos;
            let n = self.block()?;
            if n == 0 {
                break;
            }
            // Every entry takes at least a byte (its key's length).
            if n > self.remaining() {
                return Err(Fail::at_byte(
                    start,
                    format!(
                        "truncated: {n} entries announced, {} bytes left",
                        self.remaining()
                    ),
                ));
            }
            for _ in 0..n {
                let key = self.string()?;
                match self.value(values) {
                    Ok(v) => out.insert(key, v),
                    Err(e) => return Err(e.under(Seg::Key(key))),
                };
            }
        }
        Ok(Value::Object(out))
    }
}

/// Whether a value of `schema` may take no bytes (then array counts are
/// not bounded by the payload's length). References count as possibly
/// empty: safe, and it keeps this from following cycles.
fn may_be_empty(schema: &Schema) -> bool {
    match schema {
        Schema::Null | Schema::Ref { .. } => true,
        Schema::Record(r) => r.fields.iter().all(|f| may_be_empty(&f.schema)),
        Schema::Fixed(f) => f.size == 0,
        Schema::Decimal(apache_avro::schema::DecimalSchema {
            inner: InnerDecimalSchema::Fixed(f),
            ..
        }) => f.size == 0,
        _ => false,
    }
}

/// A float as the shortest decimal that reads back as the same `f32`
/// (`0.1`, not `0.10000000149011612`); non-finite as null.
fn float_value(f: f32) -> Value {
    if !f.is_finite() {
        return Value::Null;
    }
    let shortest: f64 = f.to_string().parse().unwrap_or(f64::from(f));
    Number::from_f64(shortest).map_or(Value::Null, Value::Number)
}
