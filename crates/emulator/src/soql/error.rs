//! The error type, and Salesforce's way of pointing at the offending token.

use std::fmt;

/// The query could not be parsed.
pub const MALFORMED_QUERY: &str = "MALFORMED_QUERY";
/// A field is unknown, or used in a way the query does not allow.
pub const INVALID_FIELD: &str = "INVALID_FIELD";
/// A filter value is not valid for its field (e.g. a malformed id).
pub const INVALID_QUERY_FILTER_OPERATOR: &str = "INVALID_QUERY_FILTER_OPERATOR";
/// A number (e.g. `OFFSET`) is out of the allowed range.
pub const NUMBER_OUTSIDE_VALID_RANGE: &str = "NUMBER_OUTSIDE_VALID_RANGE";
/// A text value is longer than its field allows.
pub const STRING_TOO_LONG: &str = "STRING_TOO_LONG";

/// A SOQL error: the Salesforce `errorCode` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlError {
    /// `MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`, ...
    pub code: &'static str,
    /// The message as Salesforce words it.
    pub message: String,
}

impl SoqlError {
    /// An error with a plain message.
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An error whose message quotes the query and points at `offset`
    /// (a byte offset into `text`), as Salesforce does.
    pub(crate) fn at(code: &'static str, text: &str, offset: usize, message: &str) -> Self {
        Self::new(code, pointer(text, offset, message))
    }
}

impl fmt::Display for SoqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SoqlError {}

/// The 1-based row and column (in characters) of a byte offset, and the
/// text of that row.
pub(crate) fn locate(text: &str, offset: usize) -> (usize, usize, &str) {
    let mut row = 1;
    let mut line_start = 0;
    let mut col = 1;
    for (i, c) in text.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            row += 1;
            line_start = i + 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    let rest = text.get(line_start..).unwrap_or("");
    let line = rest.split('\n').next().unwrap_or("").trim_end_matches('\r');
    (row, col, line)
}

/// `\n<row text>\n   ^\nERROR at Row:r:Column:c\n<message>`.
fn pointer(text: &str, offset: usize, message: &str) -> String {
    let (row, col, line) = locate(text, offset);
    let caret = format!("{}^", " ".repeat(col.saturating_sub(1)));
    format!("\n{line}\n{caret}\nERROR at Row:{row}:Column:{col}\n{message}")
}
