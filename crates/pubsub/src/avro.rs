#![allow(deprecated)]
//! Event payloads between Avro binary and JSON, by schema.
//!
//! STAND-IN until the codec lands on main (same signatures); replaced by
//! the real module at the merge.

pub use apache_avro::Schema;

/// Why a schema, a payload or a JSON value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The schema text is not a valid Avro schema.
    #[error("invalid Avro schema: {0}")]
    Schema(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Parses an Avro schema (JSON text).
pub fn parse_schema(json: &str) -> Result<Schema, CodecError> {
    Schema::parse_str(json).map_err(|e| CodecError::Schema(e.to_string()))
}

/// Decodes one Avro datum of `schema` to JSON.
pub fn decode(schema: &Schema, payload: &[u8]) -> Result<serde_json::Value, CodecError> {
    let mut reader = payload;
    let value = apache_avro::from_avro_datum(schema, &mut reader, None)
        .map_err(|e| CodecError::Other(e.to_string()))?;
    serde_json::Value::try_from(value).map_err(|e| CodecError::Other(e.to_string()))
}

/// Encodes a JSON value as one Avro datum of `schema`.
pub fn encode(schema: &Schema, value: &serde_json::Value) -> Result<Vec<u8>, CodecError> {
    let value = apache_avro::to_value(value)
        .and_then(|v| v.resolve(schema))
        .map_err(|e| CodecError::Other(e.to_string()))?;
    apache_avro::to_avro_datum(schema, value).map_err(|e| CodecError::Other(e.to_string()))
}
