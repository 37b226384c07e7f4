//! Avro payloads to and from JSON (to be written).
