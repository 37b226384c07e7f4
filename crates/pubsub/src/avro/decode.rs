//! Avro binary to a JSON value, in one pass.

use super::error::{At, Failure, Seg};
use super::read::{Reader, may_be_empty, shortest_float};
use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Number, Value};

pub(super) fn decode(schema: &Schema, payload: &[u8]) -> Result<Value, Failure> {
    let mut r = Reader::new(schema, payload);
    let value = r.value(schema)?;
    r.finish()?;
    Ok(value)
}

impl<'s> Reader<'s, '_> {
    /// The next value of `schema`.
    pub(super) fn value(&mut self, schema: &'s Schema) -> Result<Value, Failure> {
        Ok(match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => Value::Bool(self.boolean()?),
            Schema::Int | Schema::Date | Schema::TimeMillis => Value::from(self.int()?),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Value::from(self.long()?),
            Schema::Float => shortest_float(self.float()?)
                .and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number),
            Schema::Double => Number::from_f64(self.double()?).map_or(Value::Null, Value::Number),
            Schema::String | Schema::Uuid(UuidSchema::String) => {
                Value::String(self.str()?.to_owned())
            }
            Schema::Bytes
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::Bytes)
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            }) => {
                let n = self.len()?;
                Value::String(STANDARD.encode(self.take(n)?))
            }
            Schema::Fixed(f)
            | Schema::Duration(f)
            | Schema::Uuid(UuidSchema::Fixed(f))
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: InnerDecimalSchema::Fixed(f),
                ..
            }) => Value::String(STANDARD.encode(self.take(f.size)?)),
            Schema::Enum(e) => Value::String(self.symbol(e)?.to_owned()),
            Schema::Union(u) => {
                let branch = self.branch(u)?;
                self.value(branch)?
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
                let target = self.resolve(schema)?;
                self.value(target)?
            }
        })
    }

    fn array(&mut self, items: &'s Schema) -> Result<Value, Failure> {
        let free = may_be_empty(items);
        let mut out = Vec::new();
        loop {
            let n = self.array_block(free)?;
            if n == 0 {
                break;
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
            let n = self.map_block()?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                let key = self.str()?.to_owned();
                match self.value(values) {
                    Ok(v) => out.insert(key, v),
                    Err(e) => return Err(e.under(Seg::Key(key))),
                };
            }
        }
        Ok(Value::Object(out))
    }
}
