//! The codec's error, and the field path an error carries (built only when
//! an error unwinds, so the success path pays nothing for it).

use serde_json::Value;
use std::fmt::Write as _;

/// Why a schema, a payload, a JSON value or a field bitmap was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The schema text is not a valid Avro schema.
    #[error("invalid Avro schema: {0}")]
    Schema(String),
    /// The payload is not one datum of the schema.
    #[error("invalid Avro payload at byte {offset}{}: {reason}", in_path(.path))]
    Decode {
        /// The field path of the value being read (`Name.FirstName`), empty
        /// at the top.
        path: String,
        /// Where in the payload reading failed.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// The JSON value does not fit the schema.
    #[error("{}{reason}", path_prefix(.path))]
    Encode {
        /// The field path of the offending value (`Name.FirstName`), empty
        /// at the top.
        path: String,
        /// What was wrong, e.g. `expected a string, got 5`.
        reason: String,
    },
    /// A Change Data Capture field bitmap that does not fit the schema.
    #[error("invalid field bitmap {entry:?}: {reason}")]
    Bitmap {
        /// The bitmap entry, e.g. `0x650004E0` or `3-0x01`.
        entry: String,
        /// What was wrong.
        reason: String,
    },
}

fn in_path(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" (in {path})")
    }
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// One step of a field path.
#[derive(Debug)]
pub(crate) enum Seg {
    Field(String),
    Index(usize),
    Key(String),
}

/// An error on its way up: the path is collected innermost first.
#[derive(Debug)]
pub(crate) struct Fail {
    segs: Vec<Seg>,
    offset: usize,
    reason: String,
}

/// Boxed so the `Result`s of the hot recursive calls stay small.
pub(crate) type Failure = Box<Fail>;

impl Fail {
    pub(crate) fn new(reason: impl Into<String>) -> Failure {
        Box::new(Fail {
            segs: Vec::new(),
            offset: 0,
            reason: reason.into(),
        })
    }

    pub(crate) fn at_byte(offset: usize, reason: impl Into<String>) -> Failure {
        Box::new(Fail {
            segs: Vec::new(),
            offset,
            reason: reason.into(),
        })
    }

    /// Adds the step this failure happened under.
    pub(crate) fn under(mut self: Box<Self>, seg: Seg) -> Failure {
        self.segs.push(seg);
        self
    }

    /// Moves the failure to a byte offset of the payload.
    pub(crate) fn at_offset(mut self: Box<Self>, offset: usize) -> Failure {
        self.offset = offset;
        self
    }

    pub(crate) fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.segs.iter().rev() {
            match seg {
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
                Seg::Key(k) => {
                    let _ = write!(out, "[{}]", Value::String(k.clone()));
                }
            }
        }
        out
    }

    pub(crate) fn into_decode(self) -> CodecError {
        CodecError::Decode {
            path: self.path(),
            offset: self.offset,
            reason: self.reason,
        }
    }

    pub(crate) fn into_encode(self) -> CodecError {
        CodecError::Encode {
            path: self.path(),
            reason: self.reason,
        }
    }
}

/// Adds a path step to a failure as it unwinds.
pub(crate) trait At<T> {
    fn at(self, seg: impl FnOnce() -> Seg) -> Result<T, Failure>;
}

impl<T> At<T> for Result<T, Failure> {
    #[inline]
    fn at(self, seg: impl FnOnce() -> Seg) -> Result<T, Failure> {
        self.map_err(|f| f.under(seg()))
    }
}

/// A short rendering of a JSON value for an error message: scalars as
/// JSON (long strings cut), containers by kind only.
pub(crate) fn show(value: &Value) -> String {
    const MAX: usize = 40;
    match value {
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
        Value::String(s) if s.chars().count() > MAX => {
            let cut: String = s.chars().take(MAX).collect();
            format!("{}…", Value::String(cut))
        }
        other => other.to_string(),
    }
}
