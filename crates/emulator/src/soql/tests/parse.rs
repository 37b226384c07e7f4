//! Parsing: grammar, literals, syntax errors, robustness.

use super::super::{MALFORMED_QUERY, NUMBER_OUTSIDE_VALID_RANGE, SoqlError, parse};
use super::*;

fn err(text: &str) -> SoqlError {
    match parse(text) {
        Ok(q) => panic!("{text:?} parsed: {q:?}"),
        Err(e) => e,
    }
}

fn malformed(text: &str, needle: &str) {
    let e = err(text);
    assert_eq!(e.code, MALFORMED_QUERY, "{text:?}: {e}");
    assert!(e.message.contains(needle), "{text:?}: {}", e.message);
}

#[test]
fn select_from_with_any_keyword_case() {
    let q = parse("select Id, name FROM contact wHeRe Name = 'x'").unwrap();
    assert_eq!(q.fields, ["Id", "name"]);
    assert_eq!(q.from, "contact");
    assert!(!q.is_count());
    assert_eq!(q.where_fields(), ["Name"]);
}

#[test]
fn count_query() {
    let q = parse("SELECT COUNT() FROM Contact WHERE LastName = 'x' LIMIT 3").unwrap();
    assert!(q.is_count());
    assert!(q.fields.is_empty());
    assert_eq!(q.limit, Some(3));
    assert!(!parse("SELECT Id FROM Contact").unwrap().is_count());
    malformed("SELECT Id, COUNT() FROM Contact", "COUNT()");
}

#[test]
fn order_by_limit_offset() {
    let q = parse(
        "SELECT Id FROM Contact ORDER BY LastName DESC NULLS LAST, FirstName ASC, Email NULLS FIRST LIMIT 10 OFFSET 20",
    )
    .unwrap();
    let items: Vec<_> = q
        .order_by
        .iter()
        .map(|o| (o.field.as_str(), o.descending, o.nulls_last))
        .collect();
    assert_eq!(
        items,
        [
            ("LastName", true, true),
            ("FirstName", false, false),
            ("Email", false, false)
        ]
    );
    assert_eq!((q.limit, q.offset), (Some(10), Some(20)));
}

#[test]
fn offset_over_2000_is_out_of_range() {
    let e = err("SELECT Id FROM Contact OFFSET 2001");
    assert_eq!(e.code, NUMBER_OUTSIDE_VALID_RANGE);
    assert!(e.message.contains("Maximum SOQL offset allowed is 2000"));
    assert!(parse("SELECT Id FROM Contact OFFSET 2000").is_ok());
}

#[test]
fn bad_limits() {
    malformed("SELECT Id FROM Contact LIMIT -1", "unexpected token: '-1'");
    malformed(
        "SELECT Id FROM Contact LIMIT 1.5",
        "unexpected token: '1.5'",
    );
    malformed("SELECT Id FROM Contact LIMIT", "unexpected token: <EOF>");
    malformed(
        "SELECT Id FROM Contact OFFSET 5 LIMIT 1",
        "unexpected token: 'LIMIT'",
    );
}

#[test]
fn syntax_errors_name_the_token_and_point_at_it() {
    let e = err("SELECT Id FORM Contact");
    assert_eq!(e.code, MALFORMED_QUERY);
    assert_eq!(
        e.message,
        "\nSELECT Id FORM Contact\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'FORM'"
    );
    let e = err("SELECT Id\nFROM Contact\nWHERE Name == 'x'");
    assert!(
        e.message.contains("ERROR at Row:3:Column:13"),
        "{}",
        e.message
    );
    malformed("", "unexpected token: <EOF>");
    malformed("SELECT Id FROM", "unexpected token: <EOF>");
    malformed("SELECT FROM Contact", "unexpected token: 'FROM'");
    malformed("SELECT Id, FROM Contact", "unexpected token: 'FROM'");
    malformed("SELECT Id FROM Contact Foo", "unexpected token: 'Foo'");
    malformed("UPDATE Contact", "unexpected token: 'UPDATE'");
    malformed("SELECT Id FROM Contact WHERE", "unexpected token: <EOF>");
    malformed(
        "SELECT Id FROM Contact WHERE Name",
        "unexpected token: <EOF>",
    );
    malformed(
        "SELECT Id FROM Contact WHERE Name = ",
        "unexpected token: <EOF>",
    );
    malformed(
        "SELECT Id FROM Contact WHERE (Name = 'x'",
        "unexpected token: <EOF>",
    );
    malformed(
        "SELECT Id FROM Contact WHERE Name = 'x')",
        "unexpected token: ')'",
    );
    malformed(
        "SELECT Id FROM Contact WHERE Name = FirstName",
        "unexpected token: 'FirstName'",
    );
    malformed(
        "SELECT Id FROM Contact WHERE Name IN ()",
        "unexpected token: ')'",
    );
    malformed(
        "SELECT Id FROM Contact WHERE Name NOT 'x'",
        "unexpected token: 'NOT'",
    );
    malformed(
        "SELECT Id FROM Contact ORDER Name",
        "unexpected token: 'Name'",
    );
    malformed(
        "SELECT Id FROM Contact ORDER BY Name NULLS",
        "unexpected token: <EOF>",
    );
    malformed(
        "SELECT Id FROM Contact;",
        "no viable alternative at character ';'",
    );
    malformed(
        "SELECT Id FROM Account.Contacts",
        "unexpected token: 'Account.Contacts'",
    );
}

#[test]
fn and_or_need_parentheses_when_mixed() {
    malformed(
        "SELECT Id FROM Contact WHERE A = 1 AND B = 2 OR C = 3",
        "unexpected token: 'OR'",
    );
    malformed(
        "SELECT Id FROM Contact WHERE A = 1 OR B = 2 AND C = 3",
        "unexpected token: 'AND'",
    );
    assert!(parse("SELECT Id FROM Contact WHERE (A = 1 AND B = 2) OR C = 3").is_ok());
    assert!(parse("SELECT Id FROM Contact WHERE A = 1 AND (B = 2 OR C = 3) AND NOT D = 4").is_ok());
}

#[test]
fn bind_variables_are_apex_only() {
    malformed(
        "SELECT Id FROM Contact WHERE Name = :name",
        "Bind variables only allowed in Apex code",
    );
    malformed(
        "SELECT Id FROM Contact WHERE Id IN :ids",
        "Bind variables only allowed in Apex code",
    );
    malformed(
        "SELECT Id FROM Contact LIMIT :n",
        "Bind variables only allowed in Apex code",
    );
}

#[test]
fn string_literal_errors() {
    malformed(
        "SELECT Id FROM Contact WHERE Name = 'abc",
        "mismatched character '<EOF>' expecting '''",
    );
    malformed(
        "SELECT Id FROM Contact WHERE Name = 'abc\\",
        "mismatched character '<EOF>'",
    );
    malformed(
        "SELECT Id FROM Contact WHERE Name = 'a\\x'",
        "Invalid string literal 'a\\x'. Illegal character sequence '\\x' in string literal.",
    );
    malformed(
        "SELECT Id FROM Contact WHERE Name = \"abc\"",
        "line 1:36 no viable alternative at character '\"'",
    );
}

#[test]
fn number_literals() {
    for text in ["5", "-5", "+5", "2.5", "-0.25", "1000000000000"] {
        let q = format!("SELECT Id FROM Account WHERE NumberOfEmployees = {text}");
        assert!(parse(&q).is_ok(), "{q}");
    }
    malformed(
        "SELECT Id FROM Account WHERE NumberOfEmployees = 5x",
        "no viable alternative at character 'x'",
    );
}

#[test]
fn date_and_datetime_literals() {
    for text in [
        "2024-01-31",
        "2024-01-31T10:00:00Z",
        "2024-01-31T10:00:00.000Z",
        "2024-01-31T10:00:00.000+0000",
        "2024-01-31T10:00:00+01:00",
        "2024-01-31T10:00:00-0530",
    ] {
        let q = format!("SELECT Id FROM Account WHERE CreatedDate > {text}");
        assert!(parse(&q).is_ok(), "{q}");
    }
    malformed(
        "SELECT Id FROM Account WHERE CreatedDate > 2024-13-01",
        "unexpected token: '2024-13-01'",
    );
    malformed(
        "SELECT Id FROM Account WHERE CreatedDate > 2024-01-31T10:00:00",
        "unexpected token: '2024-01-31T10:00:00'",
    );
}

#[test]
fn named_date_literals() {
    for text in [
        "TODAY",
        "yesterday",
        "Tomorrow",
        "LAST_WEEK",
        "THIS_WEEK",
        "NEXT_WEEK",
        "LAST_MONTH",
        "THIS_MONTH",
        "NEXT_MONTH",
        "THIS_YEAR",
        "LAST_90_DAYS",
        "LAST_N_DAYS:7",
        "NEXT_N_DAYS:30",
        "N_DAYS_AGO:3",
    ] {
        let q = format!("SELECT Id FROM Account WHERE CreatedDate >= {text}");
        assert!(parse(&q).is_ok(), "{q}");
    }
    malformed(
        "SELECT Id FROM Account WHERE CreatedDate > LAST_N_DAYS",
        "unexpected token: <EOF>",
    );
    malformed(
        "SELECT Id FROM Account WHERE CreatedDate > LAST_N_DAYS:x",
        "unexpected token: 'x'",
    );
    malformed(
        "SELECT Id FROM Account WHERE CreatedDate > LAST_N_DAYS:-1",
        "unexpected token: '-1'",
    );
    malformed(
        "SELECT Id FROM Account WHERE CreatedDate > SOMEDAY",
        "unexpected token: 'SOMEDAY'",
    );
}

#[test]
fn constructs_the_emulator_does_not_run() {
    for text in [
        "SELECT COUNT(Id) FROM Contact",
        "SELECT MAX(Amount) total FROM Opportunity",
        "SELECT toLabel(Status) FROM Case",
        "SELECT AccountId FROM Contact GROUP BY AccountId",
        "SELECT TYPEOF What WHEN Account THEN Name END FROM Task",
        "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
        "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact)",
        "SELECT Id FROM Account, Contact",
    ] {
        let e = err(text);
        assert_eq!(e.code, MALFORMED_QUERY, "{text}");
        assert!(
            e.message.contains("not supported by the emulator"),
            "{text}: {e}"
        );
    }
}

#[test]
fn where_fields_are_deduplicated_in_order() {
    let q = parse(
        "SELECT Id FROM Contact WHERE (Name = 'a' OR name = 'b') AND Email != null AND NOT Title IN ('x')",
    )
    .unwrap();
    assert_eq!(q.where_fields(), ["Name", "Email", "Title"]);
    assert!(
        parse("SELECT Id FROM Contact")
            .unwrap()
            .where_fields()
            .is_empty()
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let open = "(".repeat(10_000);
    malformed(
        &format!("SELECT Id FROM Contact WHERE {open}Name = 'x'"),
        "nested too deeply",
    );
    let nots = "NOT ".repeat(10_000);
    malformed(
        &format!("SELECT Id FROM Contact WHERE {nots}Name = 'x'"),
        "nested too deeply",
    );
}

#[test]
fn no_input_makes_the_parser_panic() {
    let full = "SELECT Id, Name, COUNT(x), (SELECT Id FROM C) FROM Contact WHERE (Name LIKE 'a\\_%' OR \
                Amount >= -1.5) AND CreatedDate > 2024-01-31T10:00:00.000+0000 AND d = LAST_N_DAYS:3 \
                AND Id NOT IN ('a', null, true) AND é = 'ü' GROUP BY Name ORDER BY Name DESC NULLS LAST \
                LIMIT 5 OFFSET 2";
    for (i, _) in full.char_indices() {
        let _ = parse(&full[..i]);
        let _ = parse(&full[i..]);
        let _ = super::super::validate_pushtopic_query(&full[..i]);
    }
    for text in [
        "'",
        "\\",
        "(",
        ")",
        ":",
        "!",
        "<",
        ">",
        "<>",
        "-",
        "+",
        "2024-",
        "2024-01-01T",
        "9999-99-99",
        "SELECT Id FROM X WHERE A = 2024-01-01T25:00:00Z",
        "SELECT Id FROM X WHERE A = 99999999999999999999999999999999999999999999",
        "SELECT TYPEOF",
        "SELECT COUNT(",
        "SELECT Id FROM X WHERE A IN (SELECT",
        "\u{0}",
        "SELECT\u{3000}Id FROM X",
        "SELECT Id FROM X WHERE A = 1e400",
        "SELECT Id FROM X WHERE A > N_DAYS_AGO:4294967295",
    ] {
        let _ = parse(text);
    }
}

#[test]
fn random_token_soup_never_panics() {
    const PIECES: &[&str] = &[
        "SELECT",
        "Id",
        "Name",
        "COUNT()",
        "COUNT(Id)",
        "FROM",
        "Account",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "(",
        ")",
        ",",
        "=",
        "!=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "'a%'",
        "'\\_'",
        "'x",
        "5",
        "-2.5",
        "null",
        "TRUE",
        "2024-01-31",
        "2024-01-31T10:00:00Z",
        "TODAY",
        "LAST_N_DAYS:3",
        ":",
        "ORDER BY",
        "DESC",
        "NULLS LAST",
        "LIMIT",
        "OFFSET",
        "GROUP BY",
        "TYPEOF",
        "END",
        "Account.Name",
        "é",
        "\n",
        "\\",
        "\"",
    ];
    let account = account();
    let record = rec(json!({"Id": "001000000000001AAA", "Name": "a_", "IsDeleted": false}));
    let mut seed: u64 = 0x5eed;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize % n
    };
    for round in 0..20_000 {
        let len = 1 + next(16);
        let mut text = String::from(if round % 2 == 0 {
            "SELECT Id FROM Account WHERE "
        } else {
            ""
        });
        for _ in 0..len {
            text.push_str(PIECES[next(PIECES.len())]);
            text.push(' ');
        }
        let _ = super::super::validate_pushtopic_query(&text);
        if let Ok(mut q) = parse(&text) {
            let _ = q.where_fields();
            if q.resolve(&account).is_ok() {
                let _ = q.matches(&record);
                let _ = q.run(std::iter::once(&record));
            }
        }
    }
}
