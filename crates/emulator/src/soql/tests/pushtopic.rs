//! PushTopic query rules: one test per rejected construct.

use super::super::{INVALID_FIELD, MALFORMED_QUERY, STRING_TOO_LONG, validate_pushtopic_query};

fn rejected(text: &str, message: &str) {
    match validate_pushtopic_query(text) {
        Ok(_) => panic!("{text:?} accepted"),
        Err(e) => {
            assert_eq!(e.code, INVALID_FIELD, "{text}: {e}");
            assert_eq!(e.message, message, "{text}");
        }
    }
}

#[test]
fn valid_queries_are_accepted() {
    for text in [
        "SELECT Id FROM Account",
        "select id, Name FROM Contact WHERE RecordTypeId = '012000000000001' AND LastModifiedById != '005000000000001'",
        "SELECT Id, Name FROM Account WHERE NumberOfEmployees > 1000",
        "SELECT Id FROM Account WHERE Name NOT IN ('a', 'b')",
        "SELECT Id, Name, Amount FROM Opportunity WHERE CloseDate < 2011-06-14",
        "SELECT Id FROM Case WHERE (Status = 'New' OR Status = 'Working') AND IsClosed = false",
    ] {
        let q = validate_pushtopic_query(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(q.fields.iter().any(|f| f.eq_ignore_ascii_case("Id")));
    }
}

#[test]
fn id_must_be_selected() {
    rejected(
        "SELECT Name FROM Account",
        "The PushTopic query SELECT clause must include Id",
    );
}

#[test]
fn semi_and_anti_joins() {
    let message = "semi/anti join sub-selects are not supported";
    rejected(
        "SELECT Id, Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Title = 'CEO')",
        message,
    );
    rejected(
        "SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact)",
        message,
    );
}

#[test]
fn aggregate_functions() {
    rejected(
        "SELECT Id, AVG(AnnualRevenue) FROM Account",
        "Aggregate queries are not supported",
    );
}

#[test]
fn count() {
    rejected(
        "SELECT Id, Industry, Count(Name) FROM Account",
        "Aggregate queries are not supported",
    );
    rejected(
        "SELECT COUNT() FROM Account",
        "Aggregate queries are not supported",
    );
}

#[test]
fn group_by() {
    rejected(
        "SELECT Id, AccountId FROM Contact GROUP BY AccountId",
        "Aggregate queries are not supported",
    );
}

#[test]
fn limit() {
    rejected(
        "SELECT Id, Name FROM Contact LIMIT 10",
        "'LIMIT' is not allowed",
    );
}

#[test]
fn order_by() {
    rejected(
        "SELECT Id, Name FROM Account ORDER BY Name",
        "'ORDER BY' clause is not allowed",
    );
}

#[test]
fn offset() {
    rejected(
        "SELECT Id, Name FROM Account OFFSET 5",
        "'OFFSET' is not allowed",
    );
}

#[test]
fn typeof_() {
    rejected(
        "SELECT Id, TYPEOF What WHEN Account THEN Phone ELSE Name END FROM Task",
        "'TYPEOF' is not allowed",
    );
}

#[test]
fn relationships() {
    let message = "relationships are not supported";
    rejected("SELECT Id, Contact.Account.Name FROM Contact", message);
    rejected("SELECT Id FROM Contact WHERE Account.Name = 'x'", message);
    rejected("SELECT Id, (SELECT Id FROM Contacts) FROM Account", message);
}

#[test]
fn several_objects() {
    rejected(
        "SELECT Id FROM Account, Contact",
        "only one entity per query is supported",
    );
}

#[test]
fn not_operator() {
    rejected(
        "SELECT Id FROM Account WHERE NOT Name = 'Salesforce.com'",
        "'NOT' is not supported",
    );
    rejected(
        "SELECT Id FROM Account WHERE Name = 'a' AND (NOT Name = 'b')",
        "'NOT' is not supported",
    );
}

#[test]
fn query_length() {
    let pad = "a".repeat(1300);
    let base = "SELECT Id FROM Account WHERE Name = ''";
    let fits = format!(
        "SELECT Id FROM Account WHERE Name = '{}'",
        &pad[..1300 - base.len()]
    );
    assert_eq!(fits.len(), 1300);
    assert!(validate_pushtopic_query(&fits).is_ok());
    let too_long = format!(
        "SELECT Id FROM Account WHERE Name = '{}'",
        &pad[..1301 - base.len()]
    );
    let e = validate_pushtopic_query(&too_long).unwrap_err();
    assert_eq!(e.code, STRING_TOO_LONG);
    assert!(e.message.starts_with("Query: data value too large: SELECT"));
    assert!(e.message.ends_with("(max length=1300)"));
}

#[test]
fn syntax_errors_stay_malformed() {
    let e = validate_pushtopic_query("SELECT Id FORM Account").unwrap_err();
    assert_eq!(e.code, MALFORMED_QUERY);
    assert!(e.message.contains("unexpected token: 'FORM'"));
}
