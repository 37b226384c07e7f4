//! Splits SOQL text into tokens.

use chrono::{DateTime, NaiveDate, Utc};

use super::ast::{CmpOp, StrChar};
use super::error::{MALFORMED_QUERY, SoqlError, locate};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A keyword, name or dotted path (`Account.Name`).
    Ident(String),
    /// A quoted string, escapes decoded.
    Str(Vec<StrChar>),
    /// A number as written, sign included.
    Number(String),
    /// `2024-01-31`.
    Date(NaiveDate),
    /// `2024-01-31T10:00:00Z` and friends.
    DateTime(DateTime<Utc>),
    Comma,
    LParen,
    RParen,
    Colon,
    /// `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`.
    Op(CmpOp),
    /// End of input.
    Eof,
}

/// A token and where it is (byte offsets into the query text).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// Tokenises `text`; the result always ends with [`Tok::Eof`].
pub(crate) fn lex(text: &str) -> Result<Vec<Token>, SoqlError> {
    let mut lexer = Lexer {
        text,
        chars: text.char_indices().collect(),
        i: 0,
        out: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.out)
}

struct Lexer<'a> {
    text: &'a str,
    chars: Vec<(usize, char)>,
    i: usize,
    out: Vec<Token>,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).map(|&(_, c)| c)
    }

    /// The byte offset of character `i` (the text's length past the end).
    fn offset(&self, i: usize) -> usize {
        self.chars.get(i).map_or(self.text.len(), |&(o, _)| o)
    }

    fn slice(&self, from: usize, to: usize) -> &str {
        self.text
            .get(self.offset(from)..self.offset(to))
            .unwrap_or("")
    }

    fn run(&mut self) -> Result<(), SoqlError> {
        while let Some(c) = self.peek(0) {
            let start = self.i;
            if c.is_whitespace() {
                self.i += 1;
                continue;
            }
            let next = self.peek(1);
            let (tok, len) = match c {
                ',' => (Tok::Comma, 1),
                '(' => (Tok::LParen, 1),
                ')' => (Tok::RParen, 1),
                ':' => (Tok::Colon, 1),
                '=' => (Tok::Op(CmpOp::Eq), 1),
                '!' if next == Some('=') => (Tok::Op(CmpOp::Ne), 2),
                '<' if next == Some('>') => (Tok::Op(CmpOp::Ne), 2),
                '<' if next == Some('=') => (Tok::Op(CmpOp::Le), 2),
                '<' => (Tok::Op(CmpOp::Lt), 1),
                '>' if next == Some('=') => (Tok::Op(CmpOp::Ge), 2),
                '>' => (Tok::Op(CmpOp::Gt), 1),
                '\'' => (self.string()?, 0),
                '-' | '+' if next.is_some_and(|d| d.is_ascii_digit()) => (self.number()?, 0),
                c if c.is_ascii_digit() => (self.number()?, 0),
                c if c.is_alphabetic() || c == '_' => (self.ident(), 0),
                c => return Err(self.bad_char(start, c)),
            };
            self.i += len;
            self.out.push(Token {
                tok,
                start: self.offset(start),
                end: self.offset(self.i),
            });
        }
        self.out.push(Token {
            tok: Tok::Eof,
            start: self.text.len(),
            end: self.text.len(),
        });
        Ok(())
    }

    /// Salesforce's lexer error: `line 1:7 no viable alternative at character '"'`
    /// (the column is 0-based there).
    fn bad_char(&self, at: usize, c: char) -> SoqlError {
        let (row, col, _) = locate(self.text, self.offset(at));
        SoqlError::new(
            MALFORMED_QUERY,
            format!(
                "line {row}:{} no viable alternative at character '{c}'",
                col - 1
            ),
        )
    }

    fn ident(&mut self) -> Tok {
        let start = self.i;
        while self
            .peek(0)
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            self.i += 1;
        }
        Tok::Ident(self.slice(start, self.i).to_string())
    }

    fn string(&mut self) -> Result<Tok, SoqlError> {
        let start = self.i;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = match self.peek(0) {
                Some(c) => c,
                None => {
                    let (row, col, _) = locate(self.text, self.text.len());
                    return Err(SoqlError::new(
                        MALFORMED_QUERY,
                        format!(
                            "line {row}:{} mismatched character '<EOF>' expecting '''",
                            col - 1
                        ),
                    ));
                }
            };
            self.i += 1;
            match c {
                '\'' => return Ok(Tok::Str(out)),
                '%' | '_' => out.push(StrChar::Wild(c)),
                '\\' => {
                    let decoded = match self.peek(0) {
                        Some('\'') => StrChar::Lit('\''),
                        Some('"') => StrChar::Lit('"'),
                        Some('\\') => StrChar::Lit('\\'),
                        Some('n') => StrChar::Lit('\n'),
                        Some('r') => StrChar::Lit('\r'),
                        Some('t') => StrChar::Lit('\t'),
                        Some('b') => StrChar::Lit('\u{8}'),
                        Some('f') => StrChar::Lit('\u{c}'),
                        Some(c @ ('_' | '%')) => StrChar::Escaped(c),
                        Some(other) => return Err(self.bad_escape(start, other)),
                        None => continue,
                    };
                    self.i += 1;
                    out.push(decoded);
                }
                c => out.push(StrChar::Lit(c)),
            }
        }
    }

    /// Salesforce: `Invalid string literal '\x'. Illegal character sequence '\x' in string literal.`
    fn bad_escape(&self, start: usize, c: char) -> SoqlError {
        let mut end = self.i;
        while self.peek(end - self.i).is_some_and(|c| c != '\'') {
            end += 1;
        }
        let literal = self.slice(start + 1, end);
        SoqlError::at(
            MALFORMED_QUERY,
            self.text,
            self.offset(start),
            &format!(
                "Invalid string literal '{literal}'. Illegal character sequence '\\{c}' in string literal."
            ),
        )
    }

    fn digits(&mut self) {
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn is_date_here(&self) -> bool {
        (0..10).all(|k| match (k, self.peek(k)) {
            (4 | 7, c) => c == Some('-'),
            (_, c) => c.is_some_and(|c| c.is_ascii_digit()),
        })
    }

    fn number(&mut self) -> Result<Tok, SoqlError> {
        let start = self.i;
        let tok = if self.is_date_here() {
            self.date()?
        } else {
            if matches!(self.peek(0), Some('-' | '+')) {
                self.i += 1;
            }
            self.digits();
            if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
                self.digits();
            }
            Tok::Number(
                self.slice(start, self.i)
                    .trim_start_matches('+')
                    .to_string(),
            )
        };
        match self.peek(0) {
            Some(c) if c.is_alphanumeric() || c == '_' || c == '.' => Err(self.bad_char(self.i, c)),
            _ => Ok(tok),
        }
    }

    fn date(&mut self) -> Result<Tok, SoqlError> {
        let start = self.i;
        self.i += 10;
        let is_datetime = matches!(self.peek(0), Some('T' | 't'))
            && self.peek(1).is_some_and(|c| c.is_ascii_digit());
        if is_datetime {
            self.i += 1;
            while self.peek(0).is_some_and(|c| {
                c.is_ascii_digit() || matches!(c, ':' | '.' | '+' | '-' | 'Z' | 'z')
            }) {
                self.i += 1;
            }
        }
        let text = self.slice(start, self.i);
        let parsed = if is_datetime {
            parse_datetime_literal(text).map(Tok::DateTime)
        } else {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .map(Tok::Date)
        };
        parsed.ok_or_else(|| {
            SoqlError::at(
                MALFORMED_QUERY,
                self.text,
                self.offset(start),
                &format!("unexpected token: '{text}'"),
            )
        })
    }
}

/// A SOQL datetime literal: a time zone (`Z`, `+hh:mm` or `+hhmm`) is required.
fn parse_datetime_literal(text: &str) -> Option<DateTime<Utc>> {
    let text = match text.strip_suffix(['Z', 'z']) {
        Some(rest) => format!("{rest}+00:00"),
        None => text.to_string(),
    };
    let text = text.replacen(['t'], "T", 1);
    DateTime::parse_from_rfc3339(&text)
        .or_else(|_| DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}
