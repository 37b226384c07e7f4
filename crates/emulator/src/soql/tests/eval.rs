//! Evaluation: every operator and literal form, nulls, named dates, paging.

use chrono::NaiveDate;

use super::super::{Query, parse};
use super::*;

/// Wednesday 2024-04-10.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 4, 10).expect("a date")
}

/// The query `SELECT Id FROM Account WHERE <cond>`, resolved against Account.
fn query(cond: &str) -> Query {
    let mut q = parse(&format!("SELECT Id FROM Account WHERE {cond}")).expect("parses");
    q.resolve(&account()).expect("resolves");
    q
}

/// Whether `cond` holds for `record`.
fn holds(cond: &str, record: &Value) -> bool {
    query(cond).matches_on(&rec(record.clone()), today())
}

fn sample() -> Value {
    json!({
        "Id": "001000000000001AAA",
        "Name": "Acme Corp",
        "Industry": null,
        "NumberOfEmployees": 250,
        "AnnualRevenue": "1500.50",
        "Flag__c": true,
        "CreatedDate": "2024-04-09T12:34:56.000+0000",
        "Description": "50% off_today",
    })
}

#[test]
fn no_where_matches_everything() {
    let q = parse("SELECT Id FROM Account").unwrap();
    assert!(q.matches(&Record::new()));
}

#[test]
fn string_operators_ignore_case() {
    let r = sample();
    assert!(holds("Name = 'ACME corp'", &r));
    assert!(!holds("Name = 'Acme'", &r));
    assert!(holds("Name != 'Acme'", &r));
    assert!(holds("Name <> 'Acme'", &r));
    assert!(!holds("Name <> 'acme CORP'", &r));
    assert!(holds("Name < 'b'", &r));
    assert!(holds("Name <= 'ACME CORP'", &r));
    assert!(holds("Name > 'A'", &r));
    assert!(holds("Name >= 'acme corp'", &r));
    assert!(!holds("Name > 'z'", &r));
}

#[test]
fn like_wildcards_and_escapes() {
    let r = sample();
    assert!(holds("Name LIKE 'acme%'", &r));
    assert!(holds("Name LIKE '%CORP'", &r));
    assert!(holds("Name LIKE '%me%'", &r));
    assert!(holds("Name LIKE 'Acme_Corp'", &r));
    assert!(holds("Name LIKE '_cme Corp'", &r));
    assert!(holds("Name LIKE '%'", &r));
    assert!(!holds("Name LIKE 'Acme'", &r));
    assert!(!holds("Name LIKE '_Acme Corp'", &r));
    assert!(!holds("Industry LIKE '%'", &r));
    // \% and \_ match the characters themselves.
    assert!(holds("Description LIKE '50\\% off\\_today'", &r));
    assert!(!holds("Description LIKE '50\\% off\\_%x'", &r));
    assert!(holds("Description LIKE '%\\_%'", &r));
    let plain = json!({"Description": "100 percent"});
    assert!(!holds("Description LIKE '%\\%%'", &plain));
    assert!(!holds("Description LIKE '%\\_%'", &plain));
}

#[test]
fn string_escapes_decode() {
    let r = json!({"Description": "it's \"q\" \\ a\nb\rc\td\u{8}e\u{c}f"});
    assert!(holds(
        "Description = 'it\\'s \\\"q\\\" \\\\ a\\nb\\rc\\td\\be\\ff'",
        &r
    ));
    // Outside LIKE, \_ and \% keep their backslash.
    let r = json!({"Description": "a\\_b\\%"});
    assert!(holds("Description = 'a\\_b\\%'", &r));
    assert!(!holds("Description = 'a_b%'", &r));
}

#[test]
fn number_operators_accept_json_numbers_and_numeric_strings() {
    let r = sample();
    assert!(holds("NumberOfEmployees = 250", &r));
    assert!(holds("NumberOfEmployees = 250.0", &r));
    assert!(holds("NumberOfEmployees != 251", &r));
    assert!(holds("NumberOfEmployees > -1", &r));
    assert!(holds("NumberOfEmployees >= 250", &r));
    assert!(holds("NumberOfEmployees < 250.5", &r));
    assert!(holds("NumberOfEmployees <= 250", &r));
    assert!(!holds("NumberOfEmployees > 250", &r));
    assert!(holds("AnnualRevenue > 1500.25", &r));
    assert!(holds("AnnualRevenue = 1500.5", &r));
    assert!(holds("NumberOfEmployees IN (1, 250)", &r));
}

#[test]
fn boolean_operators_and_null_booleans() {
    let r = sample();
    assert!(holds("Flag__c = true", &r));
    assert!(holds("Flag__c = TRUE", &r));
    assert!(!holds("Flag__c = false", &r));
    assert!(holds("Flag__c != False", &r));
    assert!(holds("Flag__c != null", &r));
    // Salesforce: a null boolean is false, and `= null` means false.
    let unset = json!({"Id": "x"});
    assert!(holds("Flag__c = false", &unset));
    assert!(holds("Flag__c = null", &unset));
    assert!(!holds("Flag__c != null", &unset));
    assert!(holds("Flag__c = null", &json!({"Flag__c": false})));
    assert!(holds("Flag__c = true", &json!({"Flag__c": "true"})));
}

#[test]
fn null_comparisons() {
    let r = sample();
    assert!(holds("Industry = null", &r));
    assert!(holds("Phone = NULL", &r), "a missing field is null");
    assert!(!holds("Industry != null", &r));
    assert!(holds("Name != null", &r));
    assert!(!holds("Name = null", &r));
    // Comparing a null field with a value: only inequality holds.
    assert!(!holds("Industry = 'Tech'", &r));
    assert!(holds("Industry != 'Tech'", &r));
    assert!(!holds("Industry < 'Tech'", &r));
    assert!(!holds("Industry > 'Tech'", &r));
    assert!(!holds("Industry LIKE 'T%'", &r));
    assert!(!holds("Industry IN ('Tech')", &r));
    assert!(!holds("Industry NOT IN ('Tech')", &r));
    assert!(holds("Industry IN ('Tech', null)", &r));
    assert!(!holds("NumberOfEmployees < null", &r));
}

#[test]
fn in_and_not_in() {
    let r = sample();
    assert!(holds("Name IN ('x', 'acme corp')", &r));
    assert!(!holds("Name IN ('x', 'y')", &r));
    assert!(holds("Name NOT IN ('x', 'y')", &r));
    assert!(!holds("Name NOT IN ('ACME CORP')", &r));
}

#[test]
fn logical_operators() {
    let r = sample();
    assert!(holds("Name = 'Acme Corp' AND NumberOfEmployees = 250", &r));
    assert!(!holds("Name = 'Acme Corp' AND NumberOfEmployees = 1", &r));
    assert!(holds("Name = 'x' OR NumberOfEmployees = 250", &r));
    assert!(!holds("Name = 'x' OR NumberOfEmployees = 1", &r));
    assert!(holds("NOT Name = 'x'", &r));
    assert!(!holds("NOT (Name = 'x' OR Flag__c = true)", &r));
    assert!(holds(
        "(Name = 'x' OR Flag__c = true) AND NOT (Industry != null)",
        &r
    ));
    assert!(holds("NOT NOT Name = 'Acme Corp'", &r));
}

#[test]
fn id_comparisons_accept_15_character_ids() {
    let id18 = crate::ids::make_id("001", 7);
    let r = json!({"Id": id18, "OwnerId": null});
    let id15 = &id18[..15];
    assert!(holds(&format!("Id = '{id15}'"), &r));
    assert!(holds(&format!("Id = '{id18}'"), &r));
    assert!(holds(&format!("Id IN ('{id15}')"), &r));
    assert!(!holds(&format!("OwnerId = '{id15}'"), &r));
}

#[test]
fn datetime_literals_compare_chronologically() {
    let r = sample(); // CreatedDate 2024-04-09T12:34:56Z
    assert!(holds("CreatedDate = 2024-04-09T12:34:56Z", &r));
    assert!(holds("CreatedDate = 2024-04-09T12:34:56.000+0000", &r));
    assert!(holds("CreatedDate = 2024-04-09T14:34:56+02:00", &r));
    assert!(holds("CreatedDate = 2024-04-09T07:34:56-0500", &r));
    assert!(holds("CreatedDate > 2024-04-09T12:00:00Z", &r));
    assert!(holds("CreatedDate < 2024-04-09T13:00:00+00:00", &r));
    assert!(holds("CreatedDate >= 2024-04-09T13:00:00+01:00", &r));
    assert!(!holds("CreatedDate > 2024-04-09T14:00:00+01:00", &r));
    assert!(holds("CreatedDate <= 2024-04-09T12:34:56Z", &r));
    assert!(holds("CreatedDate != 2024-04-09T12:34:57Z", &r));
    // RFC 3339 stored values work too.
    let r = json!({"CreatedDate": "2024-04-09T12:34:56Z"});
    assert!(holds("CreatedDate = 2024-04-09T12:34:56.000+0000", &r));
}

fn contact_on(birthdate: &str, cond: &str) -> bool {
    let mut q = parse(&format!("SELECT Id FROM Contact WHERE {cond}")).unwrap();
    q.resolve(&schema("Contact")).unwrap();
    q.matches_on(&rec(json!({ "Birthdate": birthdate })), today())
}

#[test]
fn date_literals_compare_chronologically() {
    assert!(contact_on("2024-01-31", "Birthdate = 2024-01-31"));
    assert!(contact_on("2024-01-31", "Birthdate < 2024-02-01"));
    assert!(contact_on("2024-01-31", "Birthdate <= 2024-01-31"));
    assert!(contact_on("2024-01-31", "Birthdate > 2023-12-31"));
    assert!(contact_on("2024-01-31", "Birthdate >= 2024-01-31"));
    assert!(contact_on("2024-01-31", "Birthdate != 2024-01-30"));
    assert!(contact_on(
        "2024-01-31",
        "Birthdate IN (2024-01-30, 2024-01-31)"
    ));
    assert!(!contact_on("2024-01-31", "Birthdate > 2024-01-31"));
}

#[test]
fn named_dates_on_date_fields() {
    // Today is Wednesday 2024-04-10; the week began Sunday 2024-04-07.
    let cases = [
        ("2024-04-10", "TODAY", true),
        ("2024-04-09", "TODAY", false),
        ("2024-04-09", "YESTERDAY", true),
        ("2024-04-11", "TOMORROW", true),
        ("2024-04-07", "THIS_WEEK", true),
        ("2024-04-13", "THIS_WEEK", true),
        ("2024-04-14", "THIS_WEEK", false),
        ("2024-04-06", "THIS_WEEK", false),
        ("2024-03-31", "LAST_WEEK", true),
        ("2024-04-06", "LAST_WEEK", true),
        ("2024-04-07", "LAST_WEEK", false),
        ("2024-04-14", "NEXT_WEEK", true),
        ("2024-04-01", "THIS_MONTH", true),
        ("2024-04-30", "THIS_MONTH", true),
        ("2024-05-01", "THIS_MONTH", false),
        ("2024-03-01", "LAST_MONTH", true),
        ("2024-03-31", "LAST_MONTH", true),
        ("2024-04-01", "LAST_MONTH", false),
        ("2024-05-31", "NEXT_MONTH", true),
        ("2024-01-01", "THIS_YEAR", true),
        ("2023-12-31", "LAST_YEAR", true),
        ("2024-04-03", "LAST_N_DAYS:7", true),
        ("2024-04-10", "LAST_N_DAYS:7", true),
        ("2024-04-02", "LAST_N_DAYS:7", false),
        ("2024-04-11", "LAST_N_DAYS:7", false),
        ("2024-04-10", "NEXT_N_DAYS:3", false),
        ("2024-04-11", "NEXT_N_DAYS:3", true),
        ("2024-04-13", "NEXT_N_DAYS:3", true),
        ("2024-04-14", "NEXT_N_DAYS:3", false),
        ("2024-04-07", "N_DAYS_AGO:3", true),
    ];
    for (day, literal, expected) in cases {
        assert_eq!(
            contact_on(day, &format!("Birthdate = {literal}")),
            expected,
            "{day} = {literal}"
        );
        assert_eq!(
            contact_on(day, &format!("Birthdate != {literal}")),
            !expected,
            "{day} != {literal}"
        );
    }
}

#[test]
fn ordering_against_named_dates_uses_the_range() {
    assert!(contact_on("2024-04-09", "Birthdate < TODAY"));
    assert!(!contact_on("2024-04-10", "Birthdate < TODAY"));
    assert!(contact_on("2024-04-10", "Birthdate <= TODAY"));
    assert!(!contact_on("2024-04-11", "Birthdate <= TODAY"));
    assert!(contact_on("2024-04-11", "Birthdate > TODAY"));
    assert!(!contact_on("2024-04-10", "Birthdate > TODAY"));
    assert!(contact_on("2024-04-10", "Birthdate >= TODAY"));
    assert!(contact_on("2024-04-30", "Birthdate <= THIS_MONTH"));
    assert!(contact_on("2024-05-01", "Birthdate > THIS_MONTH"));
    assert!(contact_on("2024-04-01", "Birthdate >= THIS_MONTH"));
    assert!(!contact_on("2024-03-31", "Birthdate >= THIS_MONTH"));
}

#[test]
fn named_dates_on_datetime_fields_use_utc_days() {
    let at = |ts: &str, cond: &str| holds(cond, &json!({ "CreatedDate": ts }));
    assert!(at("2024-04-10T00:00:00.000+0000", "CreatedDate = TODAY"));
    assert!(at("2024-04-10T23:59:59.999+0000", "CreatedDate = TODAY"));
    assert!(!at("2024-04-11T00:00:00.000+0000", "CreatedDate = TODAY"));
    assert!(at(
        "2024-04-09T23:59:59.000+0000",
        "CreatedDate = YESTERDAY"
    ));
    assert!(at("2024-04-09T23:59:59.000+0000", "CreatedDate < TODAY"));
    assert!(at(
        "2024-04-04T08:00:00.000+0000",
        "CreatedDate = LAST_N_DAYS:7"
    ));
    assert!(at(
        "2024-04-12T08:00:00.000+0000",
        "CreatedDate = NEXT_N_DAYS:2"
    ));
    assert!(at("2024-04-12T08:00:00.000+0000", "CreatedDate > TODAY"));
}

fn rows() -> Vec<Record> {
    [
        json!({"Id": "1", "Name": "bravo", "NumberOfEmployees": 10, "Industry": "Tech"}),
        json!({"Id": "2", "Name": "Alpha", "NumberOfEmployees": 2, "Industry": null}),
        json!({"Id": "3", "Name": "charlie", "NumberOfEmployees": null, "Industry": "Tech"}),
        json!({"Id": "4", "Name": "delta", "NumberOfEmployees": 100, "Industry": "Bank"}),
        json!({"Id": "5", "Name": "Echo", "Industry": "Bank"}),
    ]
    .into_iter()
    .map(rec)
    .collect()
}

fn run(text: &str) -> Vec<Record> {
    let mut q = parse(text).expect("parses");
    q.resolve(&account()).expect("resolves");
    let data = rows();
    q.run_on(data.iter(), today()).expect("runs")
}

fn ids(out: &[Record]) -> Vec<&str> {
    out.iter()
        .map(|r| r.get("Id").and_then(Value::as_str).unwrap_or("?"))
        .collect()
}

#[test]
fn run_projects_to_the_selected_fields() {
    let out = run("SELECT name, Id, Phone FROM Account WHERE Name = 'BRAVO'");
    assert_eq!(out.len(), 1);
    // Key order follows `serde_json::Map` (sorted unless its `preserve_order`
    // feature is on); `Query::fields` gives the SELECT order.
    let mut keys: Vec<&str> = out[0].keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["Id", "Name", "Phone"]);
    assert_eq!(out[0]["Phone"], Value::Null);
    assert_eq!(out[0]["Name"], json!("bravo"));
}

#[test]
fn order_by_sorts_case_insensitively_and_stably() {
    let out = run("SELECT Id FROM Account ORDER BY Name");
    assert_eq!(ids(&out), ["2", "1", "3", "4", "5"]);
    let out = run("SELECT Id FROM Account ORDER BY Name DESC");
    assert_eq!(ids(&out), ["5", "4", "3", "1", "2"]);
    let out = run("SELECT Id FROM Account ORDER BY Industry DESC, Name");
    assert_eq!(ids(&out), ["2", "1", "3", "4", "5"]);
}

#[test]
fn order_by_puts_nulls_first_unless_told_otherwise() {
    let out = run("SELECT Id FROM Account ORDER BY NumberOfEmployees");
    assert_eq!(ids(&out), ["3", "5", "2", "1", "4"]);
    let out = run("SELECT Id FROM Account ORDER BY NumberOfEmployees DESC");
    assert_eq!(ids(&out), ["3", "5", "4", "1", "2"]);
    let out = run("SELECT Id FROM Account ORDER BY NumberOfEmployees NULLS LAST");
    assert_eq!(ids(&out), ["2", "1", "4", "3", "5"]);
    let out = run("SELECT Id FROM Account ORDER BY NumberOfEmployees DESC NULLS LAST");
    assert_eq!(ids(&out), ["4", "1", "2", "3", "5"]);
    let out = run("SELECT Id FROM Account ORDER BY NumberOfEmployees ASC NULLS FIRST");
    assert_eq!(ids(&out), ["3", "5", "2", "1", "4"]);
}

#[test]
fn numbers_sort_numerically() {
    let out =
        run("SELECT Id FROM Account WHERE NumberOfEmployees != null ORDER BY NumberOfEmployees");
    assert_eq!(ids(&out), ["2", "1", "4"]);
}

#[test]
fn offset_and_limit_page_after_sorting() {
    let out = run("SELECT Id FROM Account ORDER BY Name LIMIT 2");
    assert_eq!(ids(&out), ["2", "1"]);
    let out = run("SELECT Id FROM Account ORDER BY Name LIMIT 2 OFFSET 2");
    assert_eq!(ids(&out), ["3", "4"]);
    let out = run("SELECT Id FROM Account ORDER BY Name OFFSET 4");
    assert_eq!(ids(&out), ["5"]);
    assert!(run("SELECT Id FROM Account OFFSET 9").is_empty());
    assert!(run("SELECT Id FROM Account LIMIT 0").is_empty());
    let out = run("SELECT Id FROM Account WHERE Industry = 'tech' ORDER BY Name DESC LIMIT 1");
    assert_eq!(ids(&out), ["3"]);
}

#[test]
fn count_returns_filtered_rows_unprojected() {
    let out = run("SELECT COUNT() FROM Account WHERE Industry = 'Bank'");
    assert_eq!(out.len(), 2);
    assert!(out[0].contains_key("Name"), "rows are not projected");
    assert_eq!(run("SELECT COUNT() FROM Account").len(), 5);
    assert_eq!(run("SELECT COUNT() FROM Account LIMIT 3").len(), 3);
}

#[test]
fn matches_works_without_resolve() {
    let q =
        parse("SELECT Id FROM Account WHERE name = 'Acme Corp' AND numberofemployees > 5").unwrap();
    assert!(q.matches(&rec(sample())));
}
