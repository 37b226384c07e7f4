//! Salesforce's rules for PushTopic queries.
//!
//! The messages quoted in "Unsupported PushTopic Queries" (Streaming API
//! Developer Guide) are used where the guide gives one; the others are
//! written in the same style and marked as such.

use super::Query;
use super::ast::Cond;
use super::error::{INVALID_FIELD, STRING_TOO_LONG, SoqlError};
use super::parser::parse_any;

/// The longest PushTopic query, in characters.
pub const MAX_PUSHTOPIC_QUERY_LENGTH: usize = 1300;

/// Parses a PushTopic query and enforces Salesforce's PushTopic rules:
/// `Id` selected; one object; no aggregates or `COUNT`, `GROUP BY`, `LIMIT`,
/// `ORDER BY`, `OFFSET`, `TYPEOF`, relationships, semi/anti joins or `NOT`;
/// at most 1,300 characters. Syntax errors are `MALFORMED_QUERY`, rule
/// violations `INVALID_FIELD` and an overlong query `STRING_TOO_LONG`.
pub fn validate_pushtopic_query(text: &str) -> Result<Query, SoqlError> {
    if text.chars().count() > MAX_PUSHTOPIC_QUERY_LENGTH {
        // The generic Salesforce message for an overlong text field.
        return Err(SoqlError::new(
            STRING_TOO_LONG,
            format!(
                "Query: data value too large: {text} (max length={MAX_PUSHTOPIC_QUERY_LENGTH})"
            ),
        ));
    }
    let query = parse_any(text)?;
    let rule = |message: &str| Err(SoqlError::new(INVALID_FIELD, message));
    let extras = &query.extras;
    if extras.semi_join {
        return rule("semi/anti join sub-selects are not supported");
    }
    if extras.aggregate || extras.group_by || query.is_count() {
        return rule("Aggregate queries are not supported");
    }
    if query.limit.is_some() {
        return rule("'LIMIT' is not allowed");
    }
    if !query.order_by.is_empty() {
        return rule("'ORDER BY' clause is not allowed");
    }
    if query.offset.is_some() {
        // Not in the guide; worded like the LIMIT rule.
        return rule("'OFFSET' is not allowed");
    }
    if extras.typeof_ {
        // Not in the guide; worded like the LIMIT rule.
        return rule("'TYPEOF' is not allowed");
    }
    if extras.child_query || uses_relationship(&query) {
        return rule("relationships are not supported");
    }
    if extras.extra_objects {
        // Not in the guide, which says "Only one entity per query".
        return rule("only one entity per query is supported");
    }
    if extras.function {
        // Not in the guide: functions other than aggregates (toLabel,
        // FORMAT, FIELDS, ...) are not supported by the emulator.
        return rule("functions are not supported in PushTopic queries");
    }
    if extras.not_operator {
        return rule("'NOT' is not supported");
    }
    if !query.fields.iter().any(|f| f.eq_ignore_ascii_case("Id")) {
        // Not in the guide, which says "The query SELECT clause must include Id".
        return rule("The PushTopic query SELECT clause must include Id");
    }
    Ok(query)
}

/// Whether any field (SELECT or WHERE) is a relationship path (`Account.Name`).
fn uses_relationship(query: &Query) -> bool {
    let mut found = query.fields.iter().any(|f| f.contains('.'));
    if let Some(cond) = &query.cond {
        Cond::for_each_field(cond, &mut |f| found |= f.name.contains('.'));
    }
    found
}
