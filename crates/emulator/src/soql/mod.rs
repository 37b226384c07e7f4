//! A SOQL subset: parsing, checking against the schema, and evaluation.
//!
//! PLACEHOLDER interface, to be replaced by the full implementation.

use serde_json::{Map, Value};

use crate::schema::SObjectSchema;

/// A record as stored: field name to JSON value.
pub type Record = Map<String, Value>;

/// A SOQL error: the Salesforce `errorCode` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlError {
    /// `MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`, ...
    pub code: &'static str,
    /// The message as Salesforce words it.
    pub message: String,
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    /// Selected fields, in order.
    pub fields: Vec<String>,
    /// The sobject type queried.
    pub from: String,
}

/// Parses a query.
pub fn parse(text: &str) -> Result<Query, SoqlError> {
    Err(SoqlError {
        code: "MALFORMED_QUERY",
        message: format!("not implemented: {text}"),
    })
}

impl Query {
    /// Canonicalises field names against the schema; unknown ones are `INVALID_FIELD`.
    pub fn resolve(&mut self, _schema: &SObjectSchema) -> Result<(), SoqlError> {
        Ok(())
    }

    /// Whether the record satisfies the WHERE clause (true without one).
    pub fn matches(&self, _record: &Record) -> bool {
        true
    }

    /// Fields named in the WHERE clause.
    pub fn where_fields(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether this is `SELECT COUNT() ...`.
    pub fn is_count(&self) -> bool {
        false
    }

    /// Filters, sorts, pages and projects the rows.
    pub fn run<'a>(
        &self,
        rows: impl Iterator<Item = &'a Record>,
    ) -> Result<Vec<Record>, SoqlError> {
        Ok(rows.cloned().collect())
    }
}

/// Checks a PushTopic query against Salesforce's PushTopic rules.
pub fn validate_pushtopic_query(text: &str) -> Result<Query, SoqlError> {
    parse(text)
}
