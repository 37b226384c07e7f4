//! A recursive-descent parser for the SOQL subset. It also recognises the
//! constructs the emulator cannot run (aggregates, subqueries, TYPEOF,
//! GROUP BY) so that PushTopic validation can name them.

use super::Query;
use super::ast::{CmpOp, Cond, Extras, FieldRef, Literal};
use super::dates::NamedDate;
use super::error::{MALFORMED_QUERY, NUMBER_OUTSIDE_VALID_RANGE, SoqlError};
use super::lexer::{Tok, Token, lex};
use super::{OrderBy, SelectItem};

/// Deepest nesting of parentheses, NOTs and subqueries accepted.
const MAX_DEPTH: usize = 64;
/// Salesforce's largest OFFSET.
const MAX_OFFSET: u64 = 2000;

/// Words that cannot name a field or object.
const RESERVED: &[&str] = &[
    "AND", "ASC", "BY", "DESC", "ELSE", "END", "EXCLUDES", "FALSE", "FIRST", "FROM", "GROUP",
    "HAVING", "IN", "INCLUDES", "LAST", "LIKE", "LIMIT", "NOT", "NULL", "NULLS", "OFFSET", "OR",
    "ORDER", "SELECT", "THEN", "TRUE", "TYPEOF", "USING", "WHEN", "WHERE", "WITH",
];

const AGGREGATES: &[&str] = &["AVG", "COUNT", "COUNT_DISTINCT", "MAX", "MIN", "SUM"];

/// Parses the full grammar, unsupported constructs recorded in `extras`.
pub(crate) fn parse_any(text: &str) -> Result<Query, SoqlError> {
    let toks = lex(text)?;
    let eof = Token {
        tok: Tok::Eof,
        start: text.len(),
        end: text.len(),
    };
    let mut parser = Parser {
        text,
        toks,
        i: 0,
        depth: 0,
        eof,
        extras: Extras::default(),
    };
    let mut query = parser.query()?;
    if parser.peek().tok != Tok::Eof {
        return Err(parser.unexpected());
    }
    query.text = text.to_string();
    query.extras = parser.extras;
    Ok(query)
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    i: usize,
    depth: usize,
    eof: Token,
    extras: Extras,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.toks.get(self.i).unwrap_or(&self.eof)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        self.toks.get(self.i + ahead).unwrap_or(&self.eof)
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        self.i += 1;
        token
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.is_kw(kw);
        if found {
            self.i += 1;
        }
        found
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect(&mut self, tok: &Tok) -> Result<(), SoqlError> {
        if &self.peek().tok == tok {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn error_at(&self, offset: usize, message: &str) -> SoqlError {
        SoqlError::at(MALFORMED_QUERY, self.text, offset, message)
    }

    /// `unexpected token: 'X'` pointing at the next token.
    fn unexpected(&self) -> SoqlError {
        let token = self.peek();
        let message = match token.tok {
            Tok::Eof => "unexpected token: <EOF>".to_string(),
            _ => format!(
                "unexpected token: '{}'",
                self.text.get(token.start..token.end).unwrap_or("")
            ),
        };
        self.error_at(token.start, &message)
    }

    fn enter(&mut self) -> Result<(), SoqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(self.peek().start, "query is nested too deeply"));
        }
        Ok(())
    }

    /// A name (not a reserved word): its text and offset.
    fn name(&mut self) -> Result<(String, usize), SoqlError> {
        match &self.peek().tok {
            Tok::Ident(s) if !is_reserved(s) => {
                let found = (s.clone(), self.peek().start);
                self.i += 1;
                Ok(found)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("SELECT")?;
        let mut query = Query::empty();
        self.select_list(&mut query)?;
        self.expect_kw("FROM")?;
        let (from, from_pos) = self.name()?;
        if from.contains('.') {
            return Err(self.error_at(from_pos, &format!("unexpected token: '{from}'")));
        }
        query.from = from;
        while self.peek().tok == Tok::Comma {
            self.i += 1;
            self.name()?;
            self.extras.extra_objects = true;
        }
        if self.eat_kw("WHERE") {
            query.cond = Some(self.condition()?);
        }
        if self.eat_kw("GROUP") {
            self.expect_kw("BY")?;
            self.extras.group_by = true;
            self.name_list()?;
            if self.eat_kw("HAVING") {
                self.condition()?;
            }
        }
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            query.order_by = self.order_list()?;
        }
        if self.eat_kw("LIMIT") {
            query.limit = Some(self.count_value()?);
        }
        if self.eat_kw("OFFSET") {
            let pos = self.peek().start;
            let offset = self.count_value()?;
            if offset > MAX_OFFSET {
                return Err(SoqlError::at(
                    NUMBER_OUTSIDE_VALID_RANGE,
                    self.text,
                    pos,
                    &format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
                ));
            }
            query.offset = Some(offset);
        }
        Ok(query)
    }

    fn select_list(&mut self, query: &mut Query) -> Result<(), SoqlError> {
        let start = self.peek().start;
        loop {
            self.select_item(query)?;
            if self.peek().tok != Tok::Comma {
                break;
            }
            self.i += 1;
        }
        let has_count = query.select.contains(&SelectItem::Count);
        if has_count && query.select.len() > 1 {
            // Not Salesforce's wording (not found); same code.
            return Err(self.error_at(start, "COUNT() must be the only element in the SELECT list"));
        }
        Ok(())
    }

    fn select_item(&mut self, query: &mut Query) -> Result<(), SoqlError> {
        if self.peek().tok == Tok::LParen {
            self.enter()?;
            self.i += 1;
            self.query()?;
            self.expect(&Tok::RParen)?;
            self.depth -= 1;
            self.extras.child_query = true;
            query.select.push(SelectItem::Other);
            return Ok(());
        }
        if self.eat_kw("TYPEOF") {
            while !self.eat_kw("END") {
                if self.bump().tok == Tok::Eof {
                    return Err(self.unexpected());
                }
            }
            self.extras.typeof_ = true;
            query.select.push(SelectItem::Other);
            return Ok(());
        }
        let (name, pos) = self.name()?;
        if self.peek().tok != Tok::LParen {
            query.fields.push(name.clone());
            query.select.push(SelectItem::Field(pos));
            return Ok(());
        }
        self.i += 1;
        let empty_args = self.peek().tok == Tok::RParen;
        self.skip_balanced()?;
        let upper = name.to_ascii_uppercase();
        if upper == "COUNT" && empty_args {
            query.select.push(SelectItem::Count);
            return Ok(());
        }
        if AGGREGATES.contains(&upper.as_str()) {
            self.extras.aggregate = true;
        } else {
            self.extras.function = true;
        }
        if matches!(&self.peek().tok, Tok::Ident(s) if !is_reserved(s)) {
            self.i += 1; // an alias
        }
        query.select.push(SelectItem::Other);
        Ok(())
    }

    /// Skips to the `)` closing an already opened `(`, and past it.
    fn skip_balanced(&mut self) -> Result<(), SoqlError> {
        let mut open = 1usize;
        while open > 0 {
            match self.bump().tok {
                Tok::LParen => open += 1,
                Tok::RParen => open -= 1,
                Tok::Eof => return Err(self.unexpected()),
                _ => {}
            }
        }
        Ok(())
    }

    fn name_list(&mut self) -> Result<Vec<(String, usize)>, SoqlError> {
        let mut names = vec![self.name()?];
        while self.peek().tok == Tok::Comma {
            self.i += 1;
            names.push(self.name()?);
        }
        Ok(names)
    }

    fn order_list(&mut self) -> Result<Vec<OrderBy>, SoqlError> {
        let mut items = Vec::new();
        loop {
            let (field, pos) = self.name()?;
            let descending = if self.eat_kw("DESC") {
                true
            } else {
                self.eat_kw("ASC");
                false
            };
            let nulls_last = if self.eat_kw("NULLS") {
                if self.eat_kw("LAST") {
                    true
                } else {
                    self.expect_kw("FIRST")?;
                    false
                }
            } else {
                false
            };
            items.push(OrderBy {
                field,
                descending,
                nulls_last,
                pos,
                kind: None,
            });
            if self.peek().tok != Tok::Comma {
                return Ok(items);
            }
            self.i += 1;
        }
    }

    /// A non-negative integer (LIMIT, OFFSET).
    fn count_value(&mut self) -> Result<u64, SoqlError> {
        match &self.peek().tok {
            Tok::Number(n) => match n.parse::<u64>() {
                Ok(v) if v <= i32::MAX as u64 => {
                    self.i += 1;
                    Ok(v)
                }
                _ => Err(self.unexpected()),
            },
            Tok::Colon => Err(self.bind_error()),
            _ => Err(self.unexpected()),
        }
    }

    fn bind_error(&self) -> SoqlError {
        self.error_at(
            self.peek().start,
            "Bind variables only allowed in Apex code",
        )
    }

    /// Conditions joined by AND or by OR; mixing them needs parentheses.
    fn condition(&mut self) -> Result<Cond, SoqlError> {
        let first = self.unary()?;
        let joiner = if self.is_kw("AND") {
            "AND"
        } else if self.is_kw("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let mut list = vec![first];
        while self.eat_kw(joiner) {
            list.push(self.unary()?);
        }
        if self.is_kw("AND") || self.is_kw("OR") {
            return Err(self.unexpected());
        }
        Ok(if joiner == "AND" {
            Cond::And(list)
        } else {
            Cond::Or(list)
        })
    }

    fn unary(&mut self) -> Result<Cond, SoqlError> {
        if self.eat_kw("NOT") {
            self.enter()?;
            self.extras.not_operator = true;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Cond::Not(Box::new(inner)));
        }
        if self.peek().tok == Tok::LParen {
            self.enter()?;
            self.i += 1;
            let inner = self.condition()?;
            self.expect(&Tok::RParen)?;
            self.depth -= 1;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Cond, SoqlError> {
        let (name, pos) = self.name()?;
        let field = FieldRef {
            name,
            pos,
            kind: None,
        };
        let op = match self.peek().tok {
            Tok::Op(op) => op,
            _ if self.is_kw("LIKE") => CmpOp::Like,
            _ if self.is_kw("IN") => {
                self.i += 1;
                return self.in_list(field, false);
            }
            _ if self.is_kw("NOT")
                && matches!(&self.peek_at(1).tok, Tok::Ident(s) if s.eq_ignore_ascii_case("IN")) =>
            {
                self.i += 2;
                return self.in_list(field, true);
            }
            _ => return Err(self.unexpected()),
        };
        self.i += 1;
        let pos = self.peek().start;
        let value = self.literal()?;
        Ok(Cond::Cmp {
            field,
            op,
            value,
            pos,
        })
    }

    fn in_list(&mut self, field: FieldRef, negated: bool) -> Result<Cond, SoqlError> {
        if self.peek().tok == Tok::Colon {
            return Err(self.bind_error());
        }
        self.expect(&Tok::LParen)?;
        if self.is_kw("SELECT") {
            self.enter()?;
            self.query()?;
            self.expect(&Tok::RParen)?;
            self.depth -= 1;
            self.extras.semi_join = true;
            return Ok(Cond::SubQuery { field, negated });
        }
        let mut values = Vec::new();
        loop {
            let pos = self.peek().start;
            values.push((self.literal()?, pos));
            if self.peek().tok != Tok::Comma {
                break;
            }
            self.i += 1;
        }
        self.expect(&Tok::RParen)?;
        Ok(Cond::In {
            field,
            negated,
            values,
        })
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let value = match &self.peek().tok {
            Tok::Str(chars) => Literal::Str(chars.clone()),
            Tok::Date(d) => Literal::Date(*d),
            Tok::DateTime(d) => Literal::DateTime(*d),
            Tok::Number(n) => match n.parse::<f64>() {
                Ok(v) if v.is_finite() => Literal::Number(v),
                _ => return Err(self.unexpected()),
            },
            Tok::Colon => return Err(self.bind_error()),
            Tok::Ident(word) => {
                let upper = word.to_ascii_uppercase();
                match upper.as_str() {
                    "NULL" => Literal::Null,
                    "TRUE" => Literal::Bool(true),
                    "FALSE" => Literal::Bool(false),
                    _ if NamedDate::takes_n(&upper) => {
                        self.i += 1;
                        return self.named_with_n(&upper);
                    }
                    _ => match NamedDate::fixed(&upper) {
                        Some(named) => Literal::Named(named),
                        None => return Err(self.unexpected()),
                    },
                }
            }
            _ => return Err(self.unexpected()),
        };
        self.i += 1;
        Ok(value)
    }

    /// The `:n` of `LAST_N_DAYS:n` and friends (the name already consumed).
    fn named_with_n(&mut self, name: &str) -> Result<Literal, SoqlError> {
        self.expect(&Tok::Colon)?;
        let n = match &self.peek().tok {
            Tok::Number(n) => n.parse::<u32>().ok(),
            _ => None,
        };
        match n.and_then(|n| NamedDate::with_n(name, n)) {
            Some(named) => {
                self.i += 1;
                Ok(Literal::Named(named))
            }
            None => Err(self.unexpected()),
        }
    }
}

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}
