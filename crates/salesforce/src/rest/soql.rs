//! Building SOQL safely: values are quoted and escaped, never pasted.
//!
//! [`format_soql`] fills the `{}` placeholders of a query template with
//! values rendered as SOQL literals; [`quote`] renders one string;
//! [`Like`] builds `LIKE` patterns in which `%` and `_` from the value are
//! matched literally.
//!
//! ```
//! use chrono::NaiveDate;
//! use sfstream_salesforce::rest::{Like, format_soql};
//!
//! let email = "o'brien@example.com";
//! let names = vec!["Ada", "Grace"];
//! let since = NaiveDate::from_ymd_opt(2024, 1, 31).unwrap();
//! let soql = format_soql(
//!     "SELECT Id FROM Contact WHERE Email = {} AND FirstName IN {} AND Birthdate > {} AND Title LIKE {}",
//!     &[&email, &names, &since, &Like::contains("50%_off")],
//! )?;
//! assert_eq!(
//!     soql,
//!     r"SELECT Id FROM Contact WHERE Email = 'o\'brien@example.com' AND FirstName IN ('Ada', 'Grace') AND Birthdate > 2024-01-31 AND Title LIKE '%50\%\_off%'"
//! );
//! # Ok::<(), sfstream_salesforce::rest::RestError>(())
//! ```

use chrono::{DateTime, NaiveDate, Utc};

use super::error::RestError;

/// A value as a SOQL literal.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SoqlValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A decimal number (must be finite).
    Float(f64),
    /// A string, quoted and escaped.
    String(String),
    /// A date, `2024-01-31`.
    Date(NaiveDate),
    /// A datetime, `2024-01-31T10:00:00Z` (in UTC, to the second).
    DateTime(DateTime<Utc>),
    /// A list for `IN`, `('a', 'b')` (must not be empty).
    List(Vec<SoqlValue>),
    /// A `LIKE` pattern.
    Like(Like),
}

/// A `LIKE` pattern whose text is matched literally (its `%` and `_`
/// escaped), with wildcards only where the constructor puts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Like(String);

impl Like {
    /// Matches values containing `text`: `'%text%'`.
    pub fn contains(text: &str) -> Self {
        Self(format!("%{}%", escape_like(text)))
    }

    /// Matches values starting with `text`: `'text%'`.
    pub fn starts_with(text: &str) -> Self {
        Self(format!("{}%", escape_like(text)))
    }

    /// Matches values ending with `text`: `'%text'`.
    pub fn ends_with(text: &str) -> Self {
        Self(format!("%{}", escape_like(text)))
    }

    /// Matches `text` exactly (ignoring case, as `LIKE` does).
    pub fn exactly(text: &str) -> Self {
        Self(escape_like(text))
    }

    /// The pattern as a SOQL literal, quotes included.
    pub fn literal(&self) -> String {
        format!("'{}'", self.0)
    }
}

/// Escapes `text` for the inside of a SOQL string literal: backslash,
/// quotes and the control characters `\n \r \t \b \f`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `text` for the inside of a `LIKE` pattern: as [`escape`], and
/// `%` and `_` too, so they match themselves.
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in escape(text).chars() {
        if matches!(c, '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` as a quoted, escaped SOQL string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", escape(text))
}

impl SoqlValue {
    /// The value as SOQL text.
    ///
    /// # Errors
    ///
    /// [`RestError::InvalidArgument`] for a non-finite number or an empty
    /// list.
    pub fn render(&self) -> Result<String, RestError> {
        Ok(match self {
            SoqlValue::Null => "null".into(),
            SoqlValue::Bool(b) => b.to_string(),
            SoqlValue::Int(i) => i.to_string(),
            SoqlValue::Float(f) if f.is_finite() => {
                let text = f.to_string();
                if text == "-0" { "0".into() } else { text }
            }
            SoqlValue::Float(f) => {
                return Err(RestError::invalid(format!(
                    "{f} cannot be used in SOQL (only finite numbers)"
                )));
            }
            SoqlValue::String(s) => quote(s),
            SoqlValue::Date(d) => d.format("%Y-%m-%d").to_string(),
            SoqlValue::DateTime(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            SoqlValue::List(items) if items.is_empty() => {
                return Err(RestError::invalid(
                    "an empty list cannot be used in SOQL (IN () is a syntax error)",
                ));
            }
            SoqlValue::List(items) => {
                let rendered: Result<Vec<String>, RestError> = items
                    .iter()
                    .map(|item| match item {
                        SoqlValue::List(_) => {
                            Err(RestError::invalid("lists cannot be nested in SOQL"))
                        }
                        other => other.render(),
                    })
                    .collect();
                format!("({})", rendered?.join(", "))
            }
            SoqlValue::Like(like) => like.literal(),
        })
    }
}

/// A Rust value that can be a SOQL literal.
pub trait ToSoql {
    /// The value as a SOQL literal.
    fn to_soql(&self) -> SoqlValue;
}

impl ToSoql for SoqlValue {
    fn to_soql(&self) -> SoqlValue {
        self.clone()
    }
}

impl ToSoql for Like {
    fn to_soql(&self) -> SoqlValue {
        SoqlValue::Like(self.clone())
    }
}

impl ToSoql for str {
    fn to_soql(&self) -> SoqlValue {
        SoqlValue::String(self.to_string())
    }
}

impl ToSoql for String {
    fn to_soql(&self) -> SoqlValue {
        SoqlValue::String(self.clone())
    }
}

impl ToSoql for bool {
    fn to_soql(&self) -> SoqlValue {
        SoqlValue::Bool(*self)
    }
}

macro_rules! int_to_soql {
    ($($t:ty),*) => {$(
        impl ToSoql for $t {
            fn to_soql(&self) -> SoqlValue {
                SoqlValue::Int(i64::from(*self))
            }
        }
    )*};
}
int_to_soql!(i8, i16, i32, i64, u8, u16, u32);

impl ToSoql for f64 {
    fn to_soql(&self) -> SoqlValue {
        SoqlValue::Float(*self)
    }
}

impl ToSoql for f32 {
    fn to_soql(&self) -> SoqlValue {
        SoqlValue::Float(f64::from(*self))
    }
}

impl ToSoql for NaiveDate {
    fn to_soql(&self) -> SoqlValue {
        SoqlValue::Date(*self)
    }
}

impl ToSoql for DateTime<Utc> {
    fn to_soql(&self) -> SoqlValue {
        SoqlValue::DateTime(*self)
    }
}

impl<T: ToSoql + ?Sized> ToSoql for &T {
    fn to_soql(&self) -> SoqlValue {
        (**self).to_soql()
    }
}

impl<T: ToSoql> ToSoql for Option<T> {
    fn to_soql(&self) -> SoqlValue {
        self.as_ref().map_or(SoqlValue::Null, ToSoql::to_soql)
    }
}

impl<T: ToSoql> ToSoql for [T] {
    fn to_soql(&self) -> SoqlValue {
        SoqlValue::List(self.iter().map(ToSoql::to_soql).collect())
    }
}

impl<T: ToSoql> ToSoql for Vec<T> {
    fn to_soql(&self) -> SoqlValue {
        self.as_slice().to_soql()
    }
}

impl<T: ToSoql, const N: usize> ToSoql for [T; N] {
    fn to_soql(&self) -> SoqlValue {
        self.as_slice().to_soql()
    }
}

/// Fills each `{}` of `template` with the next value of `values`, rendered
/// as a SOQL literal (strings quoted and escaped, lists as `(…)`). `{{`
/// and `}}` stand for literal braces.
///
/// Only values go through placeholders: field and object names belong in
/// the template.
///
/// # Errors
///
/// [`RestError::InvalidArgument`] when the number of placeholders and
/// values differ, a brace is unmatched, or a value cannot be rendered (a
/// non-finite number, an empty list).
pub fn format_soql(template: &str, values: &[&dyn ToSoql]) -> Result<String, RestError> {
    let mut out = String::with_capacity(template.len() + 16 * values.len());
    let mut values = values.iter();
    let mut used = 0usize;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('{', Some('{')) | ('}', Some('}')) => {
                chars.next();
                out.push(c);
            }
            ('{', Some('}')) => {
                chars.next();
                let value = values.next().ok_or_else(|| {
                    RestError::invalid(format!(
                        "format_soql: more placeholders than the {used} values given"
                    ))
                })?;
                out.push_str(&value.to_soql().render()?);
                used += 1;
            }
            ('{', _) | ('}', _) => {
                return Err(RestError::invalid(
                    "format_soql: unmatched brace (write {{ or }} for a literal brace)",
                ));
            }
            (c, _) => out.push(c),
        }
    }
    if values.next().is_some() {
        return Err(RestError::invalid(format!(
            "format_soql: more values than the {used} placeholders"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(quote("it's"), r"'it\'s'");
        assert_eq!(
            quote("a\\b\"c\nd\re\tf\u{8}g\u{c}"),
            r#"'a\\b\"c\nd\re\tf\bg\f'"#
        );
        assert_eq!(escape_like("50%_x'"), r"50\%\_x\'");
        assert_eq!(Like::starts_with("a_").literal(), r"'a\_%'");
        assert_eq!(Like::ends_with("%").literal(), r"'%\%'");
        assert_eq!(Like::exactly("x").literal(), "'x'");
    }

    #[test]
    fn renders_values() {
        let soql = format_soql(
            "SELECT Id FROM X WHERE A = {} AND B = {} AND C = {} AND D IN {} AND E = {} AND F = {} AND G = {}",
            &[&42, &1.5, &true, &["x", "y'"], &None::<&str>, &Some("z"), &-0.0],
        )
        .expect("renders");
        assert_eq!(
            soql,
            r"SELECT Id FROM X WHERE A = 42 AND B = 1.5 AND C = true AND D IN ('x', 'y\'') AND E = null AND F = 'z' AND G = 0"
        );
        let t = DateTime::parse_from_rfc3339("2024-01-31T10:00:00.5+02:00")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(
            format_soql("{}", &[&t]).expect("renders"),
            "2024-01-31T08:00:00Z"
        );
        assert_eq!(format_soql("{{}}", &[]).expect("braces"), "{}");
    }

    #[test]
    fn refuses_what_cannot_be_rendered() {
        assert!(format_soql("{} {}", &[&1]).is_err());
        assert!(format_soql("{}", &[&1, &2]).is_err());
        assert!(format_soql("{", &[]).is_err());
        assert!(format_soql("x }", &[]).is_err());
        assert!(format_soql("{}", &[&f64::NAN]).is_err());
        assert!(format_soql("{}", &[&Vec::<String>::new()]).is_err());
        let nested = SoqlValue::List(vec![SoqlValue::List(vec![SoqlValue::Int(1)])]);
        assert!(format_soql("{}", &[&nested]).is_err());
    }
}
