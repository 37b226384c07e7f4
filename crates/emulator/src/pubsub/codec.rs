//! The Avro codec and CDC bitmaps of sfstream-pubsub, as the server uses them.

pub use sfstream_pubsub::avro::{CodecError, Schema, decode, encode, parse_schema};
pub use sfstream_pubsub::bitmap::{encode_nested, encode_top};
