//! A SOQL subset: parsing, checking against the schema, and evaluation.
//!
//! Supported: `SELECT f, ... FROM Object [WHERE cond] [ORDER BY f [ASC|DESC]
//! [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]` and `SELECT COUNT() FROM
//! Object [WHERE cond] ...`. Conditions use `= != <> < <= > >= LIKE IN NOT IN`,
//! `AND`, `OR`, prefix `NOT` and parentheses (AND and OR may only be mixed
//! with parentheses, as in Salesforce). Literals: quoted strings with
//! escapes, numbers, `true`/`false`, `null`, dates, datetimes and named date
//! literals (`TODAY`, `LAST_N_DAYS:n`, ...).
//!
//! As in Salesforce, string comparisons ignore case, a null field is
//! `!= 'x'` (but not `NOT IN ('x')`), and a null boolean counts as false.
//!
//! ```
//! use sfstream_emulator::soql;
//! let query = soql::parse("SELECT Id, Name FROM Contact WHERE Name LIKE 'a%' LIMIT 5").unwrap();
//! assert_eq!(query.fields, ["Id", "Name"]);
//! assert_eq!(query.from, "Contact");
//! ```

mod ast;
mod dates;
mod error;
mod eval;
mod lexer;
mod parser;
mod pushtopic;
mod resolve;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;

use chrono::{NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::schema::{FieldType, SObjectSchema};
use ast::{Cond, Extras};

pub use error::{
    INVALID_FIELD, INVALID_QUERY_FILTER_OPERATOR, MALFORMED_QUERY, NUMBER_OUTSIDE_VALID_RANGE,
    STRING_TOO_LONG, SoqlError,
};
pub use pushtopic::{MAX_PUSHTOPIC_QUERY_LENGTH, validate_pushtopic_query};

/// A record as stored: field name to JSON value.
pub type Record = Map<String, Value>;

/// One `ORDER BY` item.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    /// The field (canonical after [`Query::resolve`]).
    pub field: String,
    /// `DESC`.
    pub descending: bool,
    /// `NULLS LAST` (Salesforce puts nulls first by default, in either direction).
    pub nulls_last: bool,
    pos: usize,
    kind: Option<FieldType>,
}

/// An element of the SELECT list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SelectItem {
    /// A field, at this byte offset (its name is in `Query::fields`).
    Field(usize),
    /// `COUNT()`.
    Count,
    /// A function, TYPEOF or subquery (never in a query `parse` returns).
    Other,
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    /// Selected fields, in order (empty for `COUNT()`).
    pub fields: Vec<String>,
    /// The sobject type queried, as written.
    pub from: String,
    /// `ORDER BY` items, in order.
    pub order_by: Vec<OrderBy>,
    /// `LIMIT`.
    pub limit: Option<u64>,
    /// `OFFSET`.
    pub offset: Option<u64>,
    select: Vec<SelectItem>,
    cond: Option<Cond>,
    text: String,
    extras: Extras,
}

/// Parses a query. Syntax errors are `MALFORMED_QUERY`; so are valid SOQL
/// constructs the emulator does not run (aggregate functions other than
/// `COUNT()`, `GROUP BY`, `TYPEOF`, subqueries, several objects).
pub fn parse(text: &str) -> Result<Query, SoqlError> {
    let query = parser::parse_any(text)?;
    let extras = &query.extras;
    let unsupported = [
        (extras.aggregate, "aggregate functions"),
        (extras.function, "functions in SELECT"),
        (extras.group_by, "GROUP BY"),
        (extras.typeof_, "TYPEOF"),
        (extras.child_query, "relationship subqueries"),
        (extras.semi_join, "semi-join and anti-join subqueries"),
        (extras.extra_objects, "several objects in FROM"),
    ];
    match unsupported.iter().find(|(used, _)| *used) {
        Some((_, what)) => Err(SoqlError::new(
            MALFORMED_QUERY,
            format!("{what} are not supported by the emulator"),
        )),
        None => Ok(query),
    }
}

impl Query {
    fn empty() -> Self {
        Self {
            fields: Vec::new(),
            from: String::new(),
            order_by: Vec::new(),
            limit: None,
            offset: None,
            select: Vec::new(),
            cond: None,
            text: String::new(),
            extras: Extras::default(),
        }
    }

    /// The byte offsets of the selected fields, in order.
    fn select_positions(&self) -> Vec<usize> {
        self.select
            .iter()
            .filter_map(|s| match s {
                SelectItem::Field(pos) => Some(*pos),
                _ => None,
            })
            .collect()
    }

    /// Canonicalises every field name (SELECT, WHERE, ORDER BY) to the
    /// schema's case and checks filter values against field types. An
    /// unknown field or a value of the wrong type is `INVALID_FIELD`, a
    /// malformed id `INVALID_QUERY_FILTER_OPERATOR`.
    pub fn resolve(&mut self, schema: &SObjectSchema) -> Result<(), SoqlError> {
        resolve::resolve(self, schema)
    }

    /// Whether the record satisfies the WHERE clause (true without one).
    /// Named date literals are taken relative to the current UTC day.
    pub fn matches(&self, record: &Record) -> bool {
        self.matches_on(record, Utc::now().date_naive())
    }

    /// [`Query::matches`] with named date literals taken relative to `today`.
    pub fn matches_on(&self, record: &Record, today: NaiveDate) -> bool {
        self.cond
            .as_ref()
            .is_none_or(|c| eval::matches(c, record, today))
    }

    /// Fields named in the WHERE clause (canonical after
    /// [`Query::resolve`]), each once, in order of appearance.
    pub fn where_fields(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if let Some(cond) = &self.cond {
            cond.for_each_field(&mut |f| {
                if !names.iter().any(|n| n.eq_ignore_ascii_case(&f.name)) {
                    names.push(f.name.clone());
                }
            });
        }
        names
    }

    /// Whether this is `SELECT COUNT() ...`.
    pub fn is_count(&self) -> bool {
        self.select == [SelectItem::Count]
    }

    /// Filters, sorts, skips `OFFSET` rows, keeps `LIMIT` rows and projects
    /// each record to the selected fields in SELECT order (a missing field
    /// is null). For `COUNT()` the rows are returned unprojected: the count
    /// is their number.
    pub fn run<'a>(
        &self,
        rows: impl Iterator<Item = &'a Record>,
    ) -> Result<Vec<Record>, SoqlError> {
        self.run_on(rows, Utc::now().date_naive())
    }

    /// [`Query::run`] with named date literals taken relative to `today`.
    pub fn run_on<'a>(
        &self,
        rows: impl Iterator<Item = &'a Record>,
        today: NaiveDate,
    ) -> Result<Vec<Record>, SoqlError> {
        if self.select.contains(&SelectItem::Other) {
            return Err(SoqlError::new(
                MALFORMED_QUERY,
                "this query cannot be run by the emulator",
            ));
        }
        let mut rows: Vec<&Record> = rows.filter(|r| self.matches_on(r, today)).collect();
        if !self.order_by.is_empty() {
            rows.sort_by(|a, b| self.order(a, b));
        }
        let offset = usize::try_from(self.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let limit = self
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        let page = rows.into_iter().skip(offset).take(limit);
        if self.is_count() {
            return Ok(page.cloned().collect());
        }
        Ok(page.map(|r| self.project(r)).collect())
    }

    fn project(&self, record: &Record) -> Record {
        self.fields
            .iter()
            .map(|f| {
                let value = eval::lookup(record, f).cloned().unwrap_or(Value::Null);
                (f.clone(), value)
            })
            .collect()
    }

    fn order(&self, a: &Record, b: &Record) -> Ordering {
        for item in &self.order_by {
            let found = (eval::lookup(a, &item.field), eval::lookup(b, &item.field));
            let ordering = match found {
                (None, None) => Ordering::Equal,
                (None, Some(_)) if item.nulls_last => Ordering::Greater,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) if item.nulls_last => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => {
                    let o = eval::order_values(x, y, item.kind);
                    if item.descending { o.reverse() } else { o }
                }
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }
}
