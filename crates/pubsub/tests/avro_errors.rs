//! Every way a schema, a payload or a JSON value can be refused, and that
//! garbage never panics nor allocates without bound.

mod common;

use proptest::prelude::*;
use serde_json::{Value, json};
use sfstream_pubsub::avro::{CodecError, Schema, decode, encode, parse_schema};

fn encode_err(schema: &Schema, v: Value) -> String {
    match encode(schema, &v) {
        Ok(bytes) => panic!("{v} encoded to {bytes:?}"),
        Err(e) => {
            assert!(matches!(e, CodecError::Encode { .. }), "{e:?}");
            e.to_string()
        }
    }
}

fn decode_err(schema: &Schema, bytes: &[u8]) -> CodecError {
    match decode(schema, bytes) {
        Ok(v) => panic!("{bytes:?} decoded to {v}"),
        Err(e) => {
            assert!(matches!(e, CodecError::Decode { .. }), "{e:?}");
            e
        }
    }
}

fn platform_event() -> Value {
    json!({"CreatedDate": 1, "CreatedById": "005", "Order_Number__c": "O-1"})
}

#[test]
fn bad_schemas() {
    for text in [
        "not json",
        r#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "Nope"}]}"#,
        r#"{"type": "enum", "name": "E", "symbols": ["A", "A"]}"#,
        r#"{"type": "fixed", "name": "F"}"#,
    ] {
        let e = parse_schema(text).unwrap_err();
        assert!(matches!(e, CodecError::Schema(_)), "{text}: {e:?}");
        assert!(e.to_string().starts_with("invalid Avro schema: "), "{e}");
    }
}

#[test]
fn type_mismatches_name_the_field_path() {
    let schema = common::account();
    let mut event = json!({"ChangeEventHeader": {
        "entityName": "Account", "recordIds": [], "changeType": "CREATE", "changeOrigin": "",
        "transactionKey": "", "sequenceNumber": 1, "commitTimestamp": 0, "commitNumber": 0,
        "commitUser": "", "nulledFields": [], "diffFields": [], "changedFields": []}});
    assert!(encode(&schema, &event).is_ok());

    event["Name"] = json!({"FirstName": 5});
    assert_eq!(
        encode_err(&schema, event.clone()),
        "Name.FirstName: expected null or a string, got 5"
    );
    event["Name"] = json!({"Frist": "Ada"});
    let msg = encode_err(&schema, event.clone());
    assert!(
        msg.starts_with(
            "Name.Frist: not a field of Switchable_PersonName (fields: Salutation, FirstName"
        ),
        "{msg}"
    );
    event["Name"] = json!("Ada");
    assert_eq!(
        encode_err(&schema, event.clone()),
        "Name: expected null or an object, got \"Ada\""
    );
    event["Name"] = Value::Null;

    event["ChangeEventHeader"]["recordIds"] = json!(["a", 7]);
    assert_eq!(
        encode_err(&schema, event.clone()),
        "ChangeEventHeader.recordIds[1]: expected a string, got 7"
    );
    event["ChangeEventHeader"]["recordIds"] = json!([]);
    event["ChangeEventHeader"]["changeType"] = json!("MODIFY");
    assert_eq!(
        encode_err(&schema, event.clone()),
        "ChangeEventHeader.changeType: \"MODIFY\" is not one of CREATE, UPDATE, DELETE, UNDELETE, \
         GAP_CREATE, GAP_UPDATE, GAP_DELETE, GAP_UNDELETE, GAP_OVERFLOW, SNAPSHOT"
    );
    event["ChangeEventHeader"]["changeType"] = json!("CREATE");
    event["ChangeEventHeader"]["sequenceNumber"] = json!(3_000_000_000i64);
    assert_eq!(
        encode_err(&schema, event.clone()),
        "ChangeEventHeader.sequenceNumber: 3000000000 is out of range for an int"
    );
    event["ChangeEventHeader"]["sequenceNumber"] = json!(1);
    event["CreatedDate"] = json!("2024-06-01T00:00:00Z");
    assert_eq!(
        encode_err(&schema, event.clone()),
        "CreatedDate: expected null or a long (timestamp-millis, ms since the epoch), got \"2024-06-01T00:00:00Z\""
    );
    event["CreatedDate"] = json!(1.5);
    assert_eq!(
        encode_err(&schema, event.clone()),
        "CreatedDate: expected a long (timestamp-millis, ms since the epoch), got 1.5"
    );
    event["CreatedDate"] = Value::Null;
    event["IsPartner"] = json!("yes");
    assert_eq!(
        encode_err(&schema, event.clone()),
        "IsPartner: expected null or a boolean, got \"yes\""
    );
    event["IsPartner"] = json!(true);
    event["ChangeEventHeader"] = json!([]);
    assert_eq!(
        encode_err(&schema, event),
        "ChangeEventHeader: expected an object (record ChangeEventHeader), got an array"
    );
}

#[test]
fn required_and_unknown_fields() {
    let schema = common::order();
    assert!(encode(&schema, &platform_event()).is_ok());
    let mut e = platform_event();
    e.as_object_mut().unwrap().remove("CreatedById");
    assert_eq!(
        encode_err(&schema, e),
        "CreatedById: missing (the field has no default and is not nullable)"
    );
    let mut e = platform_event();
    e["Order_Numbr__c"] = json!("typo");
    assert!(encode_err(&schema, e).starts_with("Order_Numbr__c: not a field of Order_Event__e"),);
    assert_eq!(
        encode_err(&schema, json!([1])),
        "expected an object (record Order_Event__e), got an array"
    );
    let long_string = "x".repeat(100);
    let mut e = platform_event();
    e["Amount__c"] = json!(long_string);
    assert_eq!(
        encode_err(&schema, e),
        format!(
            "Amount__c: expected null or a double, got \"{}\"…",
            "x".repeat(40)
        )
    );
}

#[test]
fn numbers_bytes_and_fixed_out_of_range() {
    let long = parse_schema(r#""long""#).unwrap();
    assert_eq!(
        encode_err(&long, json!(u64::MAX)),
        "18446744073709551615 is out of range for a long"
    );
    assert_eq!(encode_err(&long, json!(null)), "expected a long, got null");
    let float = parse_schema(r#""float""#).unwrap();
    assert_eq!(
        encode_err(&float, json!(1e300)),
        "1e+300 is out of range for a float"
    );
    let bytes = parse_schema(r#""bytes""#).unwrap();
    assert_eq!(
        encode_err(&bytes, json!("not base64!")),
        "expected a base64 string, got \"not base64!\""
    );
    let fixed = parse_schema(r#"{"type": "fixed", "name": "F2", "size": 2}"#).unwrap();
    assert_eq!(
        encode_err(&fixed, json!("AAAA")),
        "expected 2 bytes for F2, got 3"
    );
    let map = parse_schema(r#"{"type": "map", "values": "int"}"#).unwrap();
    assert_eq!(
        encode_err(&map, json!({"k\"": "1"})),
        r#"["k\""]: expected an int, got "1""#
    );
    let union = parse_schema(r#"["int", "long"]"#).unwrap();
    assert_eq!(
        encode_err(&union, json!(u64::MAX)),
        "18446744073709551615 is out of range for an int"
    );
}

#[test]
fn deep_values_of_recursive_schemas_are_refused() {
    let schema = parse_schema(
        r#"{"type": "record", "name": "Node", "fields": [
            {"name": "next", "type": ["null", "Node"]}]}"#,
    )
    .unwrap();
    let mut v = json!({"next": null});
    for _ in 0..100 {
        v = json!({ "next": v });
    }
    let msg = encode_err(&schema, v);
    assert!(msg.ends_with("nested deeper than 64 levels"), "{msg}");
    // The same depth as bytes: union branch 1 a hundred times.
    let e = decode_err(&schema, &[2; 100]);
    assert!(
        e.to_string().contains("nested deeper than 64 levels"),
        "{e}"
    );
    // A record that holds itself takes no bytes at all.
    let endless = parse_schema(
        r#"{"type": "record", "name": "Loop", "fields": [{"name": "me", "type": "Loop"}]}"#,
    );
    let endless = endless.expect("apache-avro accepts a record that holds itself");
    let e = decode_err(&endless, &[]);
    assert!(
        e.to_string().contains("nested deeper than 64 levels"),
        "{e}"
    );
}

#[test]
fn truncated_payloads_fail_at_every_length() {
    let schema = common::order();
    let bytes = encode(&schema, &platform_event()).unwrap();
    for n in 0..bytes.len() {
        let e = decode_err(&schema, &bytes[..n]);
        assert!(e.to_string().contains("truncated"), "{n}: {e}");
    }
    let mut long = bytes.clone();
    long.extend_from_slice(&[0, 0]);
    let e = decode_err(&schema, &long);
    assert_eq!(
        e.to_string(),
        format!(
            "invalid Avro payload at byte {}: 2 trailing bytes after the datum",
            bytes.len()
        )
    );
}

#[test]
fn malformed_payloads() {
    let schema = common::order();
    // CreatedDate: a varint longer than 64 bits.
    let e = decode_err(&schema, &[0xff; 11]);
    assert_eq!(
        e.to_string(),
        "invalid Avro payload at byte 9 (in CreatedDate): a number longer than 64 bits"
    );
    // CreatedById: a negative length.
    let e = decode_err(&schema, &[0, 1]);
    assert_eq!(
        e.to_string(),
        "invalid Avro payload at byte 1 (in CreatedById): negative length -1"
    );
    // CreatedById: longer than what is left.
    let e = decode_err(&schema, &[0, 0x80, 0x80, 0x80, 0x80, 0x10]);
    assert!(
        e.to_string()
            .contains("truncated: 2147483648 bytes announced"),
        "{e}"
    );
    // CreatedById: not UTF-8.
    let e = decode_err(&schema, &[0, 2, 0xff]);
    assert_eq!(
        e.to_string(),
        "invalid Avro payload at byte 2 (in CreatedById): a string that is not UTF-8"
    );
    // Order_Number__c: union branch 2 of 2.
    let e = decode_err(&schema, &[0, 0, 4]);
    assert_eq!(
        e.to_string(),
        "invalid Avro payload at byte 2 (in Order_Number__c): union branch 2, but the union has 2"
    );
    // Has_Shipped__c: a boolean byte of 2.
    let e = decode_err(&schema, &[0, 0, 0, 2, 2]);
    assert_eq!(
        e.to_string(),
        "invalid Avro payload at byte 4 (in Has_Shipped__c): a boolean byte of 2"
    );

    let account = common::account();
    // entityName "", recordIds: a block of 2^40 items.
    let e = decode_err(&account, &[0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    assert!(
        e.to_string()
            .contains("(in ChangeEventHeader.recordIds): truncated"),
        "{e}"
    );
    // changeType: index 10 of 10 symbols.
    let e = decode_err(&account, &[0, 0, 20]);
    assert_eq!(
        e.to_string(),
        "invalid Avro payload at byte 2 (in ChangeEventHeader.changeType): enum index 10, but ChangeType has 10 symbols"
    );
    // sequenceNumber out of int range.
    let e = decode_err(&account, &[0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10]);
    assert_eq!(
        e.to_string(),
        "invalid Avro payload at byte 5 (in ChangeEventHeader.sequenceNumber): 2147483648 is out of range for an int"
    );
    // A map value's error names its key.
    let map = parse_schema(r#"{"type": "map", "values": "boolean"}"#).unwrap();
    let e = decode_err(&map, &[2, 2, b'k', 7]);
    assert_eq!(
        e.to_string(),
        r#"invalid Avro payload at byte 3 (in ["k"]): a boolean byte of 7"#
    );
}

#[test]
fn counts_of_empty_items_are_bounded() {
    let nulls = parse_schema(r#"{"type": "array", "items": "null"}"#).unwrap();
    // 2^40 nulls take no bytes: refused rather than allocated.
    let e = decode_err(&nulls, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    assert!(
        e.to_string().contains("more than 100000 empty array items"),
        "{e}"
    );
    assert_eq!(decode(&nulls, &[6, 0]).unwrap(), json!([null, null, null]));
    // Nested, the bound is per payload.
    let nested =
        parse_schema(r#"{"type": "array", "items": {"type": "array", "items": "null"}}"#).unwrap();
    let mut bytes = vec![200, 1]; // 100 inner arrays
    for _ in 0..100 {
        bytes.extend_from_slice(&[0xd0, 0x0f, 0]); // 1000 nulls each
    }
    bytes.push(0);
    assert!(decode(&nested, &bytes).is_ok());
    bytes[0] = 202; // 101 inner arrays, the last with 1000 more
    bytes.pop();
    bytes.extend_from_slice(&[0xd0, 0x0f, 0, 0]);
    let e = decode_err(&nested, &bytes);
    assert!(e.to_string().contains("empty array items"), "{e}");
}

fn kitchen_sink() -> Schema {
    parse_schema(
        r#"{"type": "record", "name": "K", "fields": [
            {"name": "m", "type": {"type": "map", "values": ["null", "bytes", "float"]}},
            {"name": "a", "type": {"type": "array", "items": {"type": "array", "items": "long"}}},
            {"name": "f", "type": {"type": "fixed", "name": "F3", "size": 3}},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
            {"name": "r", "type": ["null", {"type": "record", "name": "R", "fields": [
                {"name": "s", "type": "string"}, {"name": "next", "type": ["null", "R"]}]}]}
        ]}"#,
    )
    .unwrap()
}

static SCHEMAS: std::sync::LazyLock<[Schema; 3]> =
    std::sync::LazyLock::new(|| [common::account(), common::order(), kitchen_sink()]);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        for schema in SCHEMAS.iter() {
            if let Ok(v) = decode(schema, &bytes) {
                // What decodes re-encodes (NaN aside) and decodes the same.
                if let Ok(again) = encode(schema, &v) {
                    prop_assert_eq!(decode(schema, &again).unwrap(), v);
                }
            }
        }
    }

    #[test]
    fn mutated_events_never_panic(i in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
        let schema = &SCHEMAS[0];
        let event = json!({"ChangeEventHeader": {
            "entityName": "Account", "recordIds": ["001"], "changeType": "UPDATE",
            "changeOrigin": "x", "transactionKey": "t", "sequenceNumber": 1,
            "commitTimestamp": 5, "commitNumber": 6, "commitUser": "005",
            "nulledFields": [], "diffFields": [], "changedFields": ["0x02"]},
            "Name": {"LastName": "L"}, "BillingAddress": {"City": "C"}, "ShippingAddress": {"City": "D"}});
        let mut bytes = encode(schema, &event).unwrap();
        let i = i % bytes.len();
        bytes[i] = byte;
        bytes.truncate(cut.max(i));
        let _ = decode(schema, &bytes);
    }
}
