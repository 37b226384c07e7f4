//! JSON to Avro binary, checking every value against the schema.

use super::Lookup;
use super::error::{At, Fail, Failure, Seg, show};
use apache_avro::Schema;
use apache_avro::schema::{
    DecimalSchema, InnerDecimalSchema, RecordSchema, UnionSchema, UuidSchema,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde_json::Value;

/// Deeper nesting than this is refused (a recursive schema would otherwise
/// let a deep value overflow the stack).
const MAX_DEPTH: usize = 64;

pub(super) fn encode(schema: &Schema, value: &Value, out: &mut Vec<u8>) -> Result<(), Failure> {
    let mut e = Encoder {
        lookup: Lookup::new(schema),
        depth: 0,
    };
    e.value(schema, value, out, Mode::Json)
}

/// How a JSON value represents an Avro value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Ours: bytes as base64, unions by the value's fit.
    Json,
    /// A field default as the Avro specification writes it: bytes as a
    /// string of code points 0-255, unions as their first branch.
    Default,
}

struct Encoder<'s> {
    lookup: Lookup<'s>,
    depth: usize,
}

fn expected(what: &str, got: &Value) -> Failure {
    Fail::new(format!("expected {what}, got {}", show(got)))
}

pub(super) fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

impl<'s> Encoder<'s> {
    fn value(
        &mut self,
        schema: &'s Schema,
        v: &Value,
        out: &mut Vec<u8>,
        mode: Mode,
    ) -> Result<(), Failure> {
        match schema {
            Schema::Null => match v {
                Value::Null => {}
                _ => return Err(expected("null", v)),
            },
            Schema::Boolean => match v {
                Value::Bool(b) => out.push(u8::from(*b)),
                _ => return Err(expected("a boolean", v)),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                let n = integer(v, kind_name(schema))?;
                let n = i32::try_from(n)
                    .map_err(|_| Fail::new(format!("{n} is out of range for an int")))?;
                write_long(out, i64::from(n));
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => write_long(out, integer(v, kind_name(schema))?),
            Schema::Float => {
                let f = v.as_f64().ok_or_else(|| expected("a float", v))?;
                if f.abs() > f64::from(f32::MAX) {
                    return Err(Fail::new(format!(
                        "{} is out of range for a float",
                        show(v)
                    )));
                }
                out.extend_from_slice(&(f as f32).to_le_bytes());
            }
            Schema::Double => {
                let f = v.as_f64().ok_or_else(|| expected("a double", v))?;
                out.extend_from_slice(&f.to_le_bytes());
            }
            Schema::String | Schema::Uuid(UuidSchema::String) => match v {
                Value::String(s) => write_bytes(out, s.as_bytes()),
                _ => return Err(expected("a string", v)),
            },
            Schema::Bytes
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::Bytes)
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            }) => write_bytes(out, &binary(v, mode)?),
            Schema::Fixed(f)
            | Schema::Duration(f)
            | Schema::Uuid(UuidSchema::Fixed(f))
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Fixed(f),
                ..
            }) => {
                let bytes = binary(v, mode)?;
                if bytes.len() != f.size {
                    return Err(Fail::new(format!(
                        "expected {} bytes for {}, got {}",
                        f.size,
                        f.name.name(),
                        bytes.len()
                    )));
                }
                out.extend_from_slice(&bytes);
            }
            Schema::Enum(e) => {
                let symbol = v
                    .as_str()
                    .ok_or_else(|| expected("a string (an enum symbol)", v))?;
                let i = e.symbols.iter().position(|s| s == symbol).ok_or_else(|| {
                    Fail::new(format!(
                        "{} is not one of {}",
                        show(v),
                        e.symbols.join(", ")
                    ))
                })?;
                write_long(out, i as i64);
            }
            Schema::Union(u) => self.union(u, v, out, mode)?,
            Schema::Record(r) => {
                self.enter()?;
                self.record(r, v, out, mode)?;
                self.depth -= 1;
            }
            Schema::Array(a) => {
                let Value::Array(items) = v else {
                    return Err(expected("an array", v));
                };
                self.enter()?;
                if !items.is_empty() {
                    write_long(out, items.len() as i64);
                    for (i, item) in items.iter().enumerate() {
                        self.value(&a.items, item, out, mode).at(|| Seg::Index(i))?;
                    }
                }
                out.push(0);
                self.depth -= 1;
            }
            Schema::Map(m) => {
                let Value::Object(entries) = v else {
                    return Err(expected("an object (a map)", v));
                };
                self.enter()?;
                if !entries.is_empty() {
                    write_long(out, entries.len() as i64);
                    for (k, item) in entries {
                        write_bytes(out, k.as_bytes());
                        self.value(&m.types, item, out, mode)
                            .at(|| Seg::Key(k.clone()))?;
                    }
                }
                out.push(0);
                self.depth -= 1;
            }
            Schema::Ref { .. } => {
                let target = self.lookup.resolve(schema)?;
                self.value(target, v, out, mode)?;
            }
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), Failure> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Fail::new(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn record(
        &mut self,
        r: &'s RecordSchema,
        v: &Value,
        out: &mut Vec<u8>,
        mode: Mode,
    ) -> Result<(), Failure> {
        let Value::Object(obj) = v else {
            return Err(expected(
                &format!("an object (record {})", r.name.name()),
                v,
            ));
        };
        let mut matched = 0;
        for field in &r.fields {
            let result = match obj.get(&field.name) {
                Some(value) => {
                    matched += 1;
                    self.value(&field.schema, value, out, mode)
                }
                None => match &field.default {
                    Some(default) => self.value(&field.schema, default, out, Mode::Default),
                    None if self.nullable(&field.schema)? => {
                        self.value(&field.schema, &Value::Null, out, mode)
                    }
                    None => Err(Fail::new(
                        "missing (the field has no default and is not nullable)",
                    )),
                },
            };
            result.at(|| Seg::Field(field.name.clone()))?;
        }
        if matched < obj.len()
            && let Some(unknown) = obj.keys().find(|k| !r.lookup.contains_key(*k))
        {
            return Err(Fail::new(format!(
                "not a field of {} (fields: {})",
                r.name.name(),
                field_list(r)
            ))
            .under(Seg::Field(unknown.clone())));
        }
        Ok(())
    }

    fn nullable(&mut self, schema: &'s Schema) -> Result<bool, Failure> {
        Ok(match self.lookup.resolve(schema)? {
            Schema::Null => true,
            Schema::Union(u) => u.variants().iter().any(|s| matches!(s, Schema::Null)),
            _ => false,
        })
    }

    fn union(
        &mut self,
        u: &'s UnionSchema,
        v: &Value,
        out: &mut Vec<u8>,
        mode: Mode,
    ) -> Result<(), Failure> {
        let variants = u.variants();
        if mode == Mode::Default {
            // The specification's defaults are for the first branch; some
            // writers ignore that, so fall back to fitting the value.
            if let Some(first) = variants.first() {
                let mark = out.len();
                write_long(out, 0);
                if self.value(first, v, out, mode).is_ok() {
                    return Ok(());
                }
                out.truncate(mark);
            }
        }
        let mut candidates = 0;
        for s in variants {
            if self.fits(s, v)? {
                candidates += 1;
            }
        }
        if candidates == 0 {
            let mut names = Vec::with_capacity(variants.len());
            for s in variants {
                let s = self.lookup.resolve(s)?;
                names.push(kind_name(s).to_string());
            }
            return Err(expected(&names.join(" or "), v));
        }
        let mark = out.len();
        let mut first_error = None;
        for (i, s) in variants.iter().enumerate() {
            if !self.fits(s, v)? {
                continue;
            }
            write_long(out, i as i64);
            match self.value(s, v, out, mode) {
                Ok(()) => return Ok(()),
                // With one candidate its error is the useful one.
                Err(e) if candidates == 1 => return Err(e),
                Err(e) => {
                    out.truncate(mark);
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| expected("a value of the union", v)))
    }

    /// Whether `v` is of the JSON kind `schema` takes (a shallow check that
    /// picks union branches).
    fn fits(&mut self, schema: &'s Schema, v: &Value) -> Result<bool, Failure> {
        let schema = self.lookup.resolve(schema)?;
        Ok(match v {
            Value::Null => matches!(schema, Schema::Null),
            Value::Bool(_) => matches!(schema, Schema::Boolean),
            Value::Number(_) => matches!(
                schema,
                Schema::Int
                    | Schema::Long
                    | Schema::Float
                    | Schema::Double
                    | Schema::Date
                    | Schema::TimeMillis
                    | Schema::TimeMicros
                    | Schema::TimestampMillis
                    | Schema::TimestampMicros
                    | Schema::TimestampNanos
                    | Schema::LocalTimestampMillis
                    | Schema::LocalTimestampMicros
                    | Schema::LocalTimestampNanos
            ),
            Value::String(s) => match schema {
                Schema::Enum(e) => e.symbols.iter().any(|x| x == s),
                Schema::String
                | Schema::Bytes
                | Schema::Fixed(_)
                | Schema::Decimal(_)
                | Schema::BigDecimal
                | Schema::Uuid(_)
                | Schema::Duration(_) => true,
                _ => false,
            },
            Value::Array(_) => matches!(schema, Schema::Array(_)),
            Value::Object(_) => matches!(schema, Schema::Record(_) | Schema::Map(_)),
        })
    }
}

/// An integral JSON number.
fn integer(v: &Value, what: &str) -> Result<i64, Failure> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Err(Fail::new(format!("{n} is out of range for {what}")))
            } else {
                Err(expected(what, v))
            }
        }
        _ => Err(expected(what, v)),
    }
}

/// The bytes of a bytes or fixed value.
fn binary(v: &Value, mode: Mode) -> Result<Vec<u8>, Failure> {
    let Value::String(s) = v else {
        return Err(expected("a base64 string", v));
    };
    match mode {
        Mode::Json => STANDARD
            .decode(s)
            .or_else(|_| STANDARD_NO_PAD.decode(s))
            .map_err(|_| expected("a base64 string", v)),
        Mode::Default => s
            .chars()
            .map(|c| u8::try_from(u32::from(c)))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| expected("a string of code points 0-255 (a bytes default)", v)),
    }
}

/// What a schema takes, for error messages.
fn kind_name(schema: &Schema) -> &'static str {
    match schema {
        Schema::Null => "null",
        Schema::Boolean => "a boolean",
        Schema::Int => "an int",
        Schema::Long => "a long",
        Schema::Float => "a float",
        Schema::Double => "a double",
        Schema::Date => "an int (date, days since 1970-01-01)",
        Schema::TimeMillis => "an int (time-millis)",
        Schema::TimeMicros => "a long (time-micros)",
        Schema::TimestampMillis => "a long (timestamp-millis, ms since the epoch)",
        Schema::TimestampMicros => "a long (timestamp-micros)",
        Schema::TimestampNanos => "a long (timestamp-nanos)",
        Schema::LocalTimestampMillis => "a long (local-timestamp-millis)",
        Schema::LocalTimestampMicros => "a long (local-timestamp-micros)",
        Schema::LocalTimestampNanos => "a long (local-timestamp-nanos)",
        Schema::String | Schema::Uuid(UuidSchema::String) => "a string",
        Schema::Bytes
        | Schema::BigDecimal
        | Schema::Decimal(_)
        | Schema::Uuid(_)
        | Schema::Fixed(_)
        | Schema::Duration(_) => "a base64 string",
        Schema::Enum(_) => "an enum symbol",
        Schema::Array(_) => "an array",
        Schema::Map(_) => "an object (a map)",
        Schema::Record(_) => "an object",
        Schema::Union(_) => "a value of the union",
        Schema::Ref { .. } => "a named type",
    }
}

fn field_list(r: &RecordSchema) -> String {
    const MAX: usize = 12;
    let mut names: Vec<&str> = r.fields.iter().take(MAX).map(|f| f.name.as_str()).collect();
    if r.fields.len() > MAX {
        names.push("…");
    }
    names.join(", ")
}
