//! Resolution against a schema: canonical names, unknown fields, literal types.

use super::super::{INVALID_FIELD, INVALID_QUERY_FILTER_OPERATOR, SoqlError, parse};
use super::*;

fn resolve_err(text: &str, on: &SObjectSchema) -> SoqlError {
    let mut q = parse(text).expect("parses");
    match q.resolve(on) {
        Ok(()) => panic!("{text:?} resolved"),
        Err(e) => e,
    }
}

#[test]
fn names_become_canonical_everywhere() {
    let mut q = parse(
        "SELECT id, LASTNAME, email FROM contact WHERE lastname = 'x' AND ACCOUNTID != null ORDER BY firstname",
    )
    .unwrap();
    q.resolve(&schema("Contact")).unwrap();
    assert_eq!(q.fields, ["Id", "LastName", "Email"]);
    assert_eq!(q.where_fields(), ["LastName", "AccountId"]);
    assert_eq!(q.order_by[0].field, "FirstName");
    assert_eq!(q.from, "contact", "FROM stays as written");
}

#[test]
fn unknown_field_is_invalid_field_with_a_pointer() {
    let e = resolve_err("SELECT Id, Foo FROM Contact", &schema("Contact"));
    assert_eq!(e.code, INVALID_FIELD);
    assert_eq!(
        e.message,
        "\nSELECT Id, Foo FROM Contact\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity 'Contact'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
    );
    let e = resolve_err(
        "SELECT Id FROM contact WHERE Bar__c = 1",
        &schema("Contact"),
    );
    assert!(
        e.message
            .contains("No such column 'Bar__c' on entity 'Contact'")
    );
    assert!(e.message.contains("ERROR at Row:1:Column:30"));
    let e = resolve_err("SELECT Id FROM Contact ORDER BY Baz", &schema("Contact"));
    assert!(e.message.contains("No such column 'Baz'"));
}

#[test]
fn relationship_paths_are_not_understood() {
    let e = resolve_err("SELECT Id, Account.Name FROM Contact", &schema("Contact"));
    assert_eq!(e.code, INVALID_FIELD);
    assert!(
        e.message
            .contains("Didn't understand relationship 'Account' in field path")
    );
}

#[test]
fn literal_types_must_fit_the_field() {
    let user = schema("User");
    let cases = [
        (
            "SELECT Id FROM User WHERE IsActive = 1",
            "value of filter criterion for field 'IsActive' must be of type boolean and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM User WHERE IsActive = 'true'",
            "field 'IsActive' must be of type boolean",
        ),
        (
            "SELECT Id FROM User WHERE Username = 5",
            "value of filter criterion for field 'Username' must be of type string and should be enclosed in quotes",
        ),
        (
            "SELECT Id FROM User WHERE CreatedDate > 2024-01-01",
            "field 'CreatedDate' must be of type dateTime and should not be enclosed in quotes",
        ),
        (
            "SELECT Id FROM User WHERE CreatedDate > '2024-01-01T00:00:00Z'",
            "must be of type dateTime",
        ),
        (
            "SELECT Id FROM User WHERE Id = 5",
            "field 'Id' must be of type id and should be enclosed in quotes",
        ),
        (
            "SELECT Id FROM User WHERE Email IN ('a', 1)",
            "field 'Email' must be of type string",
        ),
    ];
    for (text, needle) in cases {
        let e = resolve_err(text, &user);
        assert_eq!(e.code, INVALID_FIELD, "{text}");
        assert!(e.message.contains(needle), "{text}: {}", e.message);
    }
    let e = resolve_err(
        "SELECT Id FROM Account WHERE NumberOfEmployees = '5'",
        &account(),
    );
    assert!(e.message.contains("must be of type int"), "{}", e.message);
    let e = resolve_err(
        "SELECT Id FROM Contact WHERE Birthdate = TRUE",
        &schema("Contact"),
    );
    assert!(e.message.contains("must be of type date "), "{}", e.message);
    let e = resolve_err(
        "SELECT Id FROM Contact WHERE Name = TODAY",
        &schema("Contact"),
    );
    assert!(
        e.message.contains("must be of type string"),
        "{}",
        e.message
    );
    for ok in [
        "SELECT Id FROM User WHERE IsActive = null",
        "SELECT Id FROM User WHERE CreatedDate > 2024-01-01T00:00:00Z AND CreatedDate < TODAY",
        "SELECT Id FROM User WHERE Username LIKE 'a%'",
    ] {
        parse(ok).unwrap().resolve(&user).unwrap();
    }
}

#[test]
fn malformed_ids_are_rejected_and_short_ids_normalised() {
    let e = resolve_err(
        "SELECT Id FROM Contact WHERE AccountId = 'nope'",
        &schema("Contact"),
    );
    assert_eq!(e.code, INVALID_QUERY_FILTER_OPERATOR);
    assert!(
        e.message.ends_with("invalid ID field: nope"),
        "{}",
        e.message
    );
    let id = crate::ids::make_id("001", 3);
    let mut q = parse(&format!(
        "SELECT Id FROM Contact WHERE AccountId IN ('{}')",
        &id[..15]
    ))
    .unwrap();
    q.resolve(&schema("Contact")).unwrap();
    assert!(q.matches(&rec(json!({ "AccountId": id }))));
}
