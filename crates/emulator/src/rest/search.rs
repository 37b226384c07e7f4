//! SOSL search (`GET search/?q=`), a subset:
//!
//! ```text
//! FIND {term} [IN ALL FIELDS | NAME FIELDS | EMAIL FIELDS | PHONE FIELDS]
//!     [RETURNING Object [(field, ... [WHERE ...] [ORDER BY ...] [LIMIT n])] [, Object ...]]
//!     [LIMIT n]
//! ```
//!
//! The term matches text fields case-insensitively as a substring; `*`
//! matches any run of characters and `?` any one character. Without
//! `RETURNING` every searchable object is searched and only `Id` returned.
//! What follows the field list inside a `RETURNING` object's parentheses is
//! run as SOQL (`WHERE`, `ORDER BY`, `LIMIT`, `OFFSET`). Errors are
//! `MALFORMED_SEARCH` (400), unknown objects `INVALID_TYPE`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Authed;
use super::records::with_attributes;
use crate::error::ApiError;
use crate::org::Org;
use crate::schema::{FieldType, ObjectKind, SObjectSchema};
use crate::soql;
use crate::store::Record;

/// Most records a search returns when it gives no `LIMIT`.
const DEFAULT_LIMIT: usize = 2000;

/// Objects never searched without `RETURNING`.
const NOT_SEARCHED: [&str; 3] = ["PushTopic", "StreamingChannel", "RecordType"];

pub(super) fn routes() -> Router<Arc<Org>> {
    Router::new().route("/services/data/{version}/search", get(search))
}

#[derive(Debug, Deserialize)]
struct Q {
    q: Option<String>,
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("MALFORMED_SEARCH", message)
}

/// Which fields the term is looked for in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    Name,
    Email,
    Phone,
}

/// One `RETURNING` object.
#[derive(Debug)]
struct Returning {
    sobject: String,
    /// The field list, `Id` when none is given.
    fields: String,
    /// SOQL clauses after the field list.
    clauses: String,
}

/// A parsed search.
#[derive(Debug)]
struct Search {
    term: String,
    scope: Scope,
    returning: Vec<Returning>,
    limit: Option<usize>,
}

async fn search(
    State(org): State<Arc<Org>>,
    authed: Authed,
    Query(q): Query<Q>,
) -> Result<Response, ApiError> {
    let text =
        q.q.filter(|t| !t.trim().is_empty())
            .ok_or_else(|| malformed("A search string has to be specified"))?;
    let search = parse(&text)?;
    let pattern = Pattern::new(&search.term)?;
    let store = org.store.lock();
    let targets: Vec<Returning> = if search.returning.is_empty() {
        store
            .schemas()
            .into_iter()
            .filter(|s| s.kind == ObjectKind::Record && !NOT_SEARCHED.contains(&s.name.as_str()))
            .map(|s| Returning {
                sobject: s.name.clone(),
                fields: "Id".into(),
                clauses: String::new(),
            })
            .collect()
    } else {
        search.returning
    };
    let limit = search.limit.unwrap_or(DEFAULT_LIMIT);
    let mut out: Vec<Value> = Vec::new();
    for target in targets {
        let schema = store.schema(&target.sobject)?;
        if schema.kind != ObjectKind::Record {
            return Err(ApiError::invalid_type(&target.sobject));
        }
        let soql_text = format!(
            "SELECT {} FROM {} {}",
            target.fields, schema.name, target.clauses
        );
        let mut query = soql::parse(&soql_text).map_err(|e| malformed(e.message))?;
        query
            .resolve(schema)
            .map_err(|e| ApiError::bad_request(e.code, e.message))?;
        let hits = store
            .rows(&schema.name, false)
            .filter(|r| found(schema, r, search.scope, &pattern));
        let rows = query
            .run(hits)
            .map_err(|e| ApiError::bad_request(e.code, e.message))?;
        for row in rows {
            if out.len() >= limit {
                break;
            }
            out.push(Value::Object(with_attributes(
                &authed.version,
                &schema.name,
                &row,
            )));
        }
    }
    Ok(axum::Json(json!({"searchRecords": out})).into_response())
}

/// Whether any field in scope of `record` matches.
fn found(schema: &SObjectSchema, record: &Record, scope: Scope, pattern: &Pattern) -> bool {
    schema
        .fields
        .iter()
        .filter(|f| match scope {
            Scope::All => {
                f.kind.is_text() && f.kind != FieldType::Id && f.kind != FieldType::Reference
            }
            Scope::Name => {
                matches!(
                    f.name.as_str(),
                    "Name" | "FirstName" | "LastName" | "Subject" | "CaseNumber"
                )
            }
            Scope::Email => f.kind == FieldType::Email,
            Scope::Phone => f.kind == FieldType::Phone,
        })
        .filter_map(|f| record.get(&f.name).and_then(Value::as_str))
        .any(|value| pattern.found_in(value))
}

/// A search term: lower-cased pieces between `*` wildcards.
#[derive(Debug)]
struct Pattern {
    chars: Vec<char>,
}

impl Pattern {
    fn new(term: &str) -> Result<Self, ApiError> {
        let term = term.trim().trim_matches('"').trim();
        let significant = term.chars().filter(|c| !matches!(c, '*' | '?')).count();
        if significant < 2 {
            return Err(malformed("search term must be longer than one character"));
        }
        Ok(Self {
            chars: term.to_lowercase().chars().collect(),
        })
    }

    /// Substring match with `*` (any run) and `?` (one character).
    fn found_in(&self, value: &str) -> bool {
        let text: Vec<char> = value.to_lowercase().chars().collect();
        (0..=text.len()).any(|start| glob_prefix(&self.chars, &text[start..]))
    }
}

/// Whether `pattern` matches a prefix of `text`.
fn glob_prefix(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => true,
        Some(('*', rest)) => (0..=text.len()).any(|skip| glob_prefix(rest, &text[skip..])),
        Some(('?', rest)) => !text.is_empty() && glob_prefix(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob_prefix(rest, &text[1..]),
    }
}

/// Parses the supported SOSL subset.
fn parse(text: &str) -> Result<Search, ApiError> {
    let text = text.trim();
    let rest = strip_keyword(text, "FIND")
        .ok_or_else(|| malformed("search must start with FIND"))?
        .trim_start();
    let (term, rest) = braced_term(rest)?;
    let mut rest = rest.trim_start();
    let mut scope = Scope::All;
    if let Some(after) = strip_keyword(rest, "IN") {
        let after = after.trim_start();
        let (word, after) = split_word(after);
        scope = match word.to_ascii_uppercase().as_str() {
            "ALL" => Scope::All,
            "NAME" => Scope::Name,
            "EMAIL" => Scope::Email,
            "PHONE" => Scope::Phone,
            _ => return Err(malformed(format!("unsupported search group: {word}"))),
        };
        rest = strip_keyword(after.trim_start(), "FIELDS")
            .ok_or_else(|| malformed("expecting FIELDS after the search group"))?
            .trim_start();
    }
    let mut returning = Vec::new();
    if let Some(after) = strip_keyword(rest, "RETURNING") {
        rest = after.trim_start();
        loop {
            let (name, after) = split_word(rest);
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(malformed(format!(
                    "expecting an object name after RETURNING, found: {}",
                    rest.chars().take(20).collect::<String>()
                )));
            }
            let after = after.trim_start();
            let (inner, after) = if after.starts_with('(') {
                let (inner, after) = parenthesised(after)?;
                (Some(inner), after)
            } else {
                (None, after)
            };
            returning.push(returning_object(name, inner)?);
            rest = after.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None => break,
            }
        }
    }
    let mut limit = None;
    if let Some(after) = strip_keyword(rest, "LIMIT") {
        let (n, after) = split_word(after.trim_start());
        limit = Some(
            n.parse::<usize>()
                .map_err(|_| malformed(format!("invalid LIMIT: {n}")))?,
        );
        rest = after.trim_start();
    }
    if !rest.is_empty() {
        return Err(malformed(format!(
            "unexpected token: {}",
            rest.chars().take(30).collect::<String>()
        )));
    }
    Ok(Search {
        term,
        scope,
        returning,
        limit,
    })
}

/// `Object` or `Object(field, ... [clauses])`.
fn returning_object(name: &str, inner: Option<&str>) -> Result<Returning, ApiError> {
    let Some(inner) = inner.map(str::trim).filter(|i| !i.is_empty()) else {
        return Ok(Returning {
            sobject: name.to_string(),
            fields: "Id".into(),
            clauses: String::new(),
        });
    };
    // The field list ends at the first clause keyword.
    let upper = inner.to_ascii_uppercase();
    let end = [" WHERE ", " ORDER BY ", " LIMIT ", " OFFSET "]
        .iter()
        .filter_map(|k| upper.find(k))
        .min()
        .unwrap_or(inner.len());
    let (fields, clauses) = inner.split_at(end);
    let fields = fields.trim().trim_end_matches(',').trim();
    if fields.is_empty() {
        return Err(malformed(format!("no fields listed for {name}")));
    }
    Ok(Returning {
        sobject: name.to_string(),
        fields: fields.to_string(),
        clauses: clauses.trim().to_string(),
    })
}

/// `{term}` with `\}` and `\\` escapes; returns the term and what follows.
fn braced_term(text: &str) -> Result<(String, &str), ApiError> {
    let body = text
        .strip_prefix('{')
        .ok_or_else(|| malformed("the search term must be enclosed in braces: FIND {term}"))?;
    let mut term = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, next)) => term.push(next),
                None => break,
            },
            '}' => return Ok((term, &body[i + 1..])),
            c => term.push(c),
        }
    }
    Err(malformed("missing closing brace '}' after the search term"))
}

/// The text inside balanced parentheses (quotes respected) and what follows.
fn parenthesised(text: &str) -> Result<(&str, &str), ApiError> {
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '\'') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' => quoted = true,
            '(' => depth += 1,
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok((&text[1..i], &text[i + 1..]));
                }
            }
            _ => {}
        }
    }
    Err(malformed("missing closing parenthesis in RETURNING"))
}

/// `text` after a leading keyword (any case) followed by a space or the end.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword)
        && rest
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == '{' || c == '('))
    .then_some(rest)
}

/// The leading word (letters, digits, `_`) and what follows.
fn split_word(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    text.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let s = parse("FIND {Lovelace} IN NAME FIELDS RETURNING Contact(Id, Name WHERE Email != null ORDER BY Name LIMIT 5), Account LIMIT 10").expect("parses");
        assert_eq!(s.term, "Lovelace");
        assert_eq!(s.scope, Scope::Name);
        assert_eq!(s.returning.len(), 2);
        assert_eq!(s.returning[0].fields, "Id, Name");
        assert_eq!(
            s.returning[0].clauses,
            "WHERE Email != null ORDER BY Name LIMIT 5"
        );
        assert_eq!(s.returning[1].fields, "Id");
        assert_eq!(s.limit, Some(10));
        let s = parse(r"find {a\}b} returning Contact").expect("parses");
        assert_eq!(s.term, "a}b");
        for bad in [
            "SEARCH {x}",
            "FIND x",
            "FIND {x",
            "FIND {xy} IN BOGUS FIELDS",
            "FIND {xy} RETURNING Contact(Id",
            "FIND {xy} LIMIT many",
            "FIND {xy} trailing",
        ] {
            assert_eq!(
                parse(bad).map(|_| ()).unwrap_err().code,
                "MALFORMED_SEARCH",
                "{bad}"
            );
        }
    }

    #[test]
    fn wildcards() {
        let p = Pattern::new("love*").expect("pattern");
        assert!(p.found_in("Ada Lovelace"));
        let p = Pattern::new("l?ve").expect("pattern");
        assert!(p.found_in("LOVE"));
        assert!(!p.found_in("lve"));
        assert!(Pattern::new("a*").is_err());
    }
}
