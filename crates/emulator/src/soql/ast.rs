//! The parsed form of a query's conditions and literals.

use chrono::{DateTime, NaiveDate, Utc};

use super::dates::NamedDate;
use crate::schema::FieldType;

/// One character of a string literal, keeping what LIKE needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrChar {
    /// An ordinary character (escapes already decoded).
    Lit(char),
    /// An unescaped `%` or `_`: a wildcard in LIKE, itself elsewhere.
    Wild(char),
    /// `\%` or `\_`: the character itself in LIKE, backslash and character elsewhere.
    Escaped(char),
}

/// The text of a string literal outside LIKE.
pub(crate) fn plain(chars: &[StrChar]) -> String {
    let mut out = String::new();
    for c in chars {
        match *c {
            StrChar::Lit(c) | StrChar::Wild(c) => out.push(c),
            StrChar::Escaped(c) => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out
}

/// A literal value in a condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer or decimal number.
    Number(f64),
    /// A quoted string.
    Str(Vec<StrChar>),
    /// `2024-01-31`.
    Date(NaiveDate),
    /// `2024-01-31T10:00:00Z`.
    DateTime(DateTime<Utc>),
    /// `TODAY`, `LAST_N_DAYS:7`, ...
    Named(NamedDate),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

/// A field named in a condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldRef {
    /// As written, canonical after `resolve`.
    pub name: String,
    /// Byte offset in the query text.
    pub pos: usize,
    /// The field's type, known after `resolve`.
    pub kind: Option<FieldType>,
}

/// A WHERE condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// `field op literal`; `pos` is the literal's offset.
    Cmp {
        field: FieldRef,
        op: CmpOp,
        value: Literal,
        pos: usize,
    },
    /// `field [NOT] IN (literal, ...)`, with each literal's offset.
    In {
        field: FieldRef,
        negated: bool,
        values: Vec<(Literal, usize)>,
    },
    /// `field [NOT] IN (SELECT ...)`: parsed, never evaluated.
    SubQuery {
        field: FieldRef,
        negated: bool,
    },
}

impl Cond {
    /// Calls `f` on every field reference, depth first.
    pub(crate) fn for_each_field(&self, f: &mut impl FnMut(&FieldRef)) {
        match self {
            Cond::And(list) | Cond::Or(list) => list.iter().for_each(|c| c.for_each_field(f)),
            Cond::Not(inner) => inner.for_each_field(f),
            Cond::Cmp { field, .. } | Cond::In { field, .. } | Cond::SubQuery { field, .. } => {
                f(field)
            }
        }
    }
}

/// Constructs seen while parsing that this emulator does not evaluate, or
/// that PushTopic queries forbid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Extras {
    /// AVG, MAX, MIN, SUM, COUNT(field), COUNT_DISTINCT.
    pub aggregate: bool,
    /// Other functions in SELECT (toLabel, FORMAT, FIELDS, ...).
    pub function: bool,
    /// `TYPEOF ... END`.
    pub typeof_: bool,
    /// A parent-to-child subquery in SELECT.
    pub child_query: bool,
    /// `IN (SELECT ...)` / `NOT IN (SELECT ...)`.
    pub semi_join: bool,
    /// `GROUP BY`.
    pub group_by: bool,
    /// More than one object in FROM.
    pub extra_objects: bool,
    /// The logical `NOT` operator.
    pub not_operator: bool,
}
