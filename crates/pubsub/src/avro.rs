//! Event payloads between Avro binary and JSON, by schema.
//!
//! A Pub/Sub payload is one Avro datum (no container, no prefix) of the
//! schema `GetSchema` returns. [`decode`] turns it into JSON: records become
//! objects in schema field order, unions their chosen branch's value, bytes
//! and fixed base64 strings, logical types their underlying number or string
//! (a `timestamp-millis` stays an epoch-ms number). [`encode`] is the
//! reverse, strict about what it accepts so that a typo in a published event
//! is caught here rather than lost.
//!
//! [`decode_json`] writes the same JSON as text without building a value,
//! and [`decode_event_json`] the text of a change event with its bitmaps
//! expanded: what a consumer that only prints or forwards events needs.
//!
//! None caches anything: the caller keeps parsed schemas (by schema id).

mod decode;
mod encode;
mod error;
mod read;
mod text;

pub use apache_avro::Schema;
pub use error::CodecError;

use apache_avro::schema::{Name, ResolvedSchema};
use error::{Fail, Failure};

/// Parses an Avro schema (JSON text), checking that every named type it
/// refers to is defined in it.
pub fn parse_schema(json: &str) -> Result<Schema, CodecError> {
    let schema = Schema::parse_str(json).map_err(|e| CodecError::Schema(e.to_string()))?;
    ResolvedSchema::new(&schema).map_err(|e| CodecError::Schema(e.to_string()))?;
    Ok(schema)
}

/// Decodes one Avro datum of `schema` to JSON.
///
/// The whole of `payload` must be the datum: trailing bytes, truncated input
/// and malformed values are errors. Lengths and counts are checked against
/// the bytes left before anything is allocated.
pub fn decode(schema: &Schema, payload: &[u8]) -> Result<serde_json::Value, CodecError> {
    decode::decode(schema, payload).map_err(|f| f.into_decode())
}

/// Appends the JSON text of one Avro datum of `schema` to `out`: byte for
/// byte `decode(schema, payload)?.to_string()`, without building the
/// value. Errors are [`decode`]'s; on error `out` is left as it was.
pub fn decode_json(schema: &Schema, payload: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    text::decode(schema, payload, out, false).map(|_| ())
}

/// Appends the JSON text of one event payload of `schema` to `out`, as a
/// change event: byte for byte the text of [`decode`] followed by
/// [`expand_change_event`](crate::bitmap::expand_change_event) (Change
/// Data Capture bitmaps as field names; other events unchanged), without
/// building the value. Returns what
/// [`created_millis`](crate::bitmap::created_millis) gives for that value:
/// when the event was created, in epoch milliseconds, if it says. Errors
/// are those of the two steps; on error `out` is left as it was.
pub fn decode_event_json(
    schema: &Schema,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<i64>, CodecError> {
    text::decode(schema, payload, out, true)
}

/// Encodes a JSON value as one Avro datum of `schema`.
///
/// Unions take JSON `null` as their null branch, anything else as the first
/// branch it fits. A record field missing from its object takes the field's
/// default, else null if the field is nullable; a key that is not a field is
/// an error. Errors name the field path, e.g.
/// `Name.FirstName: expected a string, got 5`.
pub fn encode(schema: &Schema, value: &serde_json::Value) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    encode::encode(schema, value, &mut out).map_err(|f| f.into_encode())?;
    Ok(out)
}

/// Follows `Schema::Ref`s to their definitions, found by walking the root
/// schema when a name is first met (most events never meet one) and then
/// remembered for the rest of the call.
pub(crate) struct Lookup<'s> {
    root: &'s Schema,
    found: Vec<(&'s Name, &'s Schema)>,
}

impl<'s> Lookup<'s> {
    pub(crate) fn new(root: &'s Schema) -> Self {
        Lookup {
            root,
            found: Vec::new(),
        }
    }

    /// `schema` itself, or what it refers to.
    #[inline]
    pub(crate) fn resolve(&mut self, schema: &'s Schema) -> Result<&'s Schema, Failure> {
        match schema {
            Schema::Ref { name } => self.named(name),
            other => Ok(other),
        }
    }

    #[cold]
    fn named(&mut self, name: &'s Name) -> Result<&'s Schema, Failure> {
        if let Some((_, s)) = self.found.iter().find(|(n, _)| *n == name) {
            return Ok(s);
        }
        let def = find_named(self.root, None, name).ok_or_else(|| {
            Fail::new(format!(
                "the schema refers to {}, which it does not define",
                name.fullname(None)
            ))
        })?;
        self.found.push((name, def));
        Ok(def)
    }
}

/// The definition of the named type `wanted` (fully qualified, as the
/// parser writes references) within `schema`.
fn find_named<'s>(schema: &'s Schema, ns: Option<&'s str>, wanted: &Name) -> Option<&'s Schema> {
    use apache_avro::schema::{DecimalSchema, InnerDecimalSchema, UuidSchema};
    let is =
        |name: &Name| name.name() == wanted.name() && name.namespace().or(ns) == wanted.namespace();
    match schema {
        Schema::Record(r) => {
            if is(&r.name) {
                return Some(schema);
            }
            let inner = r.name.namespace().or(ns);
            r.fields
                .iter()
                .find_map(|f| find_named(&f.schema, inner, wanted))
        }
        Schema::Enum(e) if is(&e.name) => Some(schema),
        Schema::Fixed(f)
        | Schema::Duration(f)
        | Schema::Uuid(UuidSchema::Fixed(f))
        | Schema::Decimal(DecimalSchema {
            inner: InnerDecimalSchema::Fixed(f),
            ..
        }) if is(&f.name) => Some(schema),
        Schema::Array(a) => find_named(&a.items, ns, wanted),
        Schema::Map(m) => find_named(&m.types, ns, wanted),
        Schema::Union(u) => u.variants().iter().find_map(|v| find_named(v, ns, wanted)),
        _ => None,
    }
}
