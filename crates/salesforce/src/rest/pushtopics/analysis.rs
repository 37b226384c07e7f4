//! Checks of a topic before any call: its name, its query's shape (read
//! by a small tokenizer that skips string literals), its API version.

use super::types::{MAX_TOPIC_NAME_LEN, MAX_TOPIC_QUERY_LEN};
use crate::rest::error::RestError;

/// Checks a topic name: 1 to 25 letters, digits and underscores.
pub(super) fn check_topic_name(name: &str) -> Result<(), RestError> {
    if name.is_empty() {
        return Err(RestError::invalid("a PushTopic name cannot be empty"));
    }
    let len = name.chars().count();
    if len > MAX_TOPIC_NAME_LEN {
        return Err(RestError::invalid(format!(
            "PushTopic name {name:?} is {len} characters long; at most {MAX_TOPIC_NAME_LEN} are allowed"
        )));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(RestError::invalid(format!(
            "PushTopic name {name:?} may only contain letters, digits and underscores"
        )));
    }
    Ok(())
}

/// The words of a query outside string literals, upper-cased, and whether
/// each is followed by a comma.
fn query_words(query: &str) -> Result<Vec<String>, RestError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut chars = query.chars();
    let flush = |current: &mut String, words: &mut Vec<String>| {
        if !current.is_empty() {
            words.push(std::mem::take(current).to_ascii_uppercase());
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                flush(&mut current, &mut words);
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '\'' => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if !closed {
                    return Err(RestError::invalid(
                        "the PushTopic query has an unterminated string literal",
                    ));
                }
                words.push("'".into());
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => current.push(c),
            ',' => {
                flush(&mut current, &mut words);
                words.push(",".into());
            }
            _ => flush(&mut current, &mut words),
        }
    }
    flush(&mut current, &mut words);
    Ok(words)
}

/// Checks a topic query's basic shape: `SELECT … Id … FROM Object`, no
/// `LIMIT`, `ORDER BY`, `OFFSET` or `GROUP BY`, at most 1,300 characters.
pub(super) fn check_topic_query(query: &str) -> Result<(), RestError> {
    let len = query.chars().count();
    if len > MAX_TOPIC_QUERY_LEN {
        return Err(RestError::invalid(format!(
            "the PushTopic query is {len} characters long; at most {MAX_TOPIC_QUERY_LEN} are allowed"
        )));
    }
    let words = query_words(query)?;
    if words.first().map(String::as_str) != Some("SELECT") {
        return Err(RestError::invalid(
            "a PushTopic query must start with SELECT",
        ));
    }
    let from = words
        .iter()
        .position(|w| w == "FROM")
        .ok_or_else(|| RestError::invalid("a PushTopic query needs a FROM clause"))?;
    if !words[1..from].iter().any(|w| w == "ID") {
        return Err(RestError::invalid(
            "a PushTopic query must select Id (SELECT Id, … FROM …)",
        ));
    }
    if !words
        .get(from + 1)
        .is_some_and(|w| w.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
    {
        return Err(RestError::invalid(
            "a PushTopic query must name one object after FROM",
        ));
    }
    for (at, word) in words.iter().enumerate() {
        let next_is_by = words.get(at + 1).is_some_and(|w| w == "BY");
        let refused = match word.as_str() {
            "LIMIT" => Some("LIMIT"),
            "OFFSET" => Some("OFFSET"),
            "ORDER" if next_is_by => Some("ORDER BY"),
            "GROUP" if next_is_by => Some("GROUP BY"),
            _ => None,
        };
        if let Some(clause) = refused {
            return Err(RestError::invalid(format!(
                "PushTopic queries cannot use {clause}"
            )));
        }
    }
    Ok(())
}

/// An API version as the number `ApiVersion` holds.
pub(super) fn parse_version(version: &str) -> Result<f64, RestError> {
    let trimmed = version.trim().trim_start_matches(['v', 'V']);
    trimmed
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && trimmed.contains('.'))
        .ok_or_else(|| {
            RestError::invalid(format!(
                "{version:?} is not an API version such as \"62.0\""
            ))
        })
}
