//! Evaluating conditions against records, and ordering records.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::Record;
use super::ast::{CmpOp, Cond, FieldRef, Literal, StrChar, plain};
use crate::schema::FieldType;
use crate::store::parse_datetime;

/// A record's value for a field: exact name first, then any case; null is `None`.
pub(crate) fn lookup<'a>(record: &'a Record, name: &str) -> Option<&'a Value> {
    record
        .get(name)
        .or_else(|| {
            record
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// Whether `record` satisfies `cond`, with named dates seen from `today`.
pub(crate) fn matches(cond: &Cond, record: &Record, today: NaiveDate) -> bool {
    match cond {
        Cond::And(list) => list.iter().all(|c| matches(c, record, today)),
        Cond::Or(list) => list.iter().any(|c| matches(c, record, today)),
        Cond::Not(inner) => !matches(inner, record, today),
        Cond::Cmp {
            field, op, value, ..
        } => compare(field, record, *op, value, today),
        Cond::In {
            field,
            negated,
            values,
        } => {
            let found = values
                .iter()
                .any(|(v, _)| compare(field, record, CmpOp::Eq, v, today));
            if *negated {
                // Unlike `!=`, NOT IN leaves out rows whose field is null
                // (observed behaviour reported by Salesforce developers).
                !found && field_value(field, record).is_some()
            } else {
                found
            }
        }
        Cond::SubQuery { .. } => false,
    }
}

/// The field's value, with Salesforce's rule that a null boolean is false.
fn field_value<'a>(field: &FieldRef, record: &'a Record) -> Option<&'a Value> {
    const FALSE: &Value = &Value::Bool(false);
    match lookup(record, &field.name) {
        None if field.kind == Some(FieldType::Boolean) => Some(FALSE),
        found => found,
    }
}

fn compare(field: &FieldRef, record: &Record, op: CmpOp, lit: &Literal, today: NaiveDate) -> bool {
    let value = field_value(field, record);
    if field.kind == Some(FieldType::Boolean) && *lit == Literal::Null {
        // Salesforce: on a boolean field `= null` means false, `!= null` true.
        let truthy = value.and_then(as_bool) == Some(true);
        return match op {
            CmpOp::Eq => !truthy,
            CmpOp::Ne => truthy,
            _ => false,
        };
    }
    let Some(value) = value else {
        // A missing value equals only null, and differs from everything else.
        return match op {
            CmpOp::Eq => *lit == Literal::Null,
            CmpOp::Ne => *lit != Literal::Null,
            _ => false,
        };
    };
    match (lit, op) {
        (Literal::Null, CmpOp::Ne) => true,
        (Literal::Null, _) => false,
        (Literal::Str(pattern), CmpOp::Like) => like(&text_of(value), pattern),
        (_, CmpOp::Like) => false,
        (Literal::Named(named), _) => match named.range(today) {
            Some((start, end)) => in_range(value, op, start, end),
            None => false,
        },
        _ => {
            let ordering = order_against(value, lit, field.kind);
            match op {
                CmpOp::Eq => ordering == Some(Ordering::Equal),
                CmpOp::Ne => ordering != Some(Ordering::Equal),
                CmpOp::Lt => ordering == Some(Ordering::Less),
                CmpOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
                CmpOp::Gt => ordering == Some(Ordering::Greater),
                CmpOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
                CmpOp::Like => false,
            }
        }
    }
}

/// A value compared with a day range `[start, end)`.
fn in_range(value: &Value, op: CmpOp, start: NaiveDate, end: NaiveDate) -> bool {
    let position = |v: &Value| -> Option<(bool, bool)> {
        let s = v.as_str()?;
        if let Some(at) = parse_datetime(s) {
            let start = midnight(start)?;
            let end = midnight(end)?;
            Some((at < start, at < end))
        } else {
            let day = parse_date(s)?;
            Some((day < start, day < end))
        }
    };
    let Some((before_start, before_end)) = position(value) else {
        return op == CmpOp::Ne;
    };
    let inside = !before_start && before_end;
    match op {
        CmpOp::Eq => inside,
        CmpOp::Ne => !inside,
        CmpOp::Lt => before_start,
        CmpOp::Le => before_end,
        CmpOp::Gt => !before_end,
        CmpOp::Ge => !before_start,
        CmpOp::Like => false,
    }
}

fn midnight(day: NaiveDate) -> Option<DateTime<Utc>> {
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// The text Salesforce would compare for a stored value.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// How a stored value orders against a literal (`None`: not comparable).
fn order_against(value: &Value, lit: &Literal, kind: Option<FieldType>) -> Option<Ordering> {
    match lit {
        Literal::Str(chars) => {
            let text = plain(chars);
            if matches!(kind, Some(FieldType::Id | FieldType::Reference))
                && let (Some(a), Some(b)) = (
                    crate::ids::normalize(&text_of(value)),
                    crate::ids::normalize(&text),
                )
            {
                return Some(a.cmp(&b));
            }
            Some(fold(&text_of(value)).cmp(&fold(&text)))
        }
        Literal::Number(n) => as_number(value)?.partial_cmp(n),
        Literal::Bool(b) => Some(as_bool(value)?.cmp(b)),
        Literal::Date(d) => {
            let s = value.as_str()?;
            match parse_date(s) {
                Some(day) => Some(day.cmp(d)),
                None => Some(parse_datetime(s)?.date_naive().cmp(d)),
            }
        }
        Literal::DateTime(at) => {
            let s = value.as_str()?;
            match parse_datetime(s) {
                Some(v) => Some(v.cmp(at)),
                None => Some(midnight(parse_date(s)?)?.cmp(at)),
            }
        }
        Literal::Null | Literal::Named(_) => None,
    }
}

/// Case folding for case-insensitive comparison.
fn fold(text: &str) -> String {
    text.to_lowercase()
}

/// LIKE: `%` any run, `_` any one character, case-insensitive.
pub(crate) fn like(text: &str, pattern: &[StrChar]) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Any,
        One,
        Char(char),
    }
    let pat: Vec<P> = pattern
        .iter()
        .flat_map(|c| match *c {
            StrChar::Wild('%') => vec![P::Any],
            StrChar::Wild(_) => vec![P::One],
            StrChar::Lit(c) | StrChar::Escaped(c) => c.to_lowercase().map(P::Char).collect(),
        })
        .collect();
    let text: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    // Greedy matching with backtracking to the last `%`.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(P::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(P::One) => {
                t += 1;
                p += 1;
            }
            Some(P::Char(c)) if text.get(t) == Some(c) => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat.get(p..)
        .is_some_and(|rest| rest.iter().all(|x| *x == P::Any))
}

/// Orders two stored values of a field (nulls handled by the caller).
pub(crate) fn order_values(a: &Value, b: &Value, kind: Option<FieldType>) -> Ordering {
    let numeric = matches!(
        kind,
        Some(FieldType::Int | FieldType::Double | FieldType::Currency)
    ) || (a.is_number() && b.is_number());
    if numeric && let (Some(x), Some(y)) = (as_number(a), as_number(b)) {
        return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    }
    if let (Value::Bool(x), Value::Bool(y)) = (a, b) {
        return x.cmp(y);
    }
    if kind == Some(FieldType::DateTime)
        && let (Some(x), Some(y)) = (
            a.as_str().and_then(parse_datetime),
            b.as_str().and_then(parse_datetime),
        )
    {
        return x.cmp(&y);
    }
    let (x, y) = (text_of(a), text_of(b));
    fold(&x).cmp(&fold(&y)).then_with(|| x.cmp(&y))
}
