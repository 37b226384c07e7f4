//! `decode_json` and `decode_event_json` against the value decoder: the
//! same text byte for byte (and the same errors) over Salesforce-shaped
//! schemas, every Avro type, maps with repeated keys, Change Data Capture
//! bitmaps and bad input.

mod common;

use proptest::prelude::*;
use serde_json::{Value, json};
use sfstream_pubsub::avro::{
    CodecError, Schema, decode, decode_event_json, decode_json, encode, parse_schema,
};
use sfstream_pubsub::bitmap::{created_millis, expand_change_event};

const PREFIX: &[u8] = b"[prefix]";

/// `decode_json`, checked to append to what `out` held (and to leave it
/// as it was on error).
fn text(schema: &Schema, bytes: &[u8]) -> Result<String, CodecError> {
    let mut out = PREFIX.to_vec();
    match decode_json(schema, bytes, &mut out) {
        Ok(()) => {
            assert!(out.starts_with(PREFIX));
            Ok(String::from_utf8(out[PREFIX.len()..].to_vec()).expect("UTF-8"))
        }
        Err(e) => {
            assert_eq!(out, PREFIX, "left as it was on error");
            Err(e)
        }
    }
}

/// `decode_event_json`, checked the same way.
fn event_text(schema: &Schema, bytes: &[u8]) -> Result<(String, Option<i64>), CodecError> {
    let mut out = PREFIX.to_vec();
    match decode_event_json(schema, bytes, &mut out) {
        Ok(created) => {
            assert!(out.starts_with(PREFIX));
            let json = String::from_utf8(out[PREFIX.len()..].to_vec()).expect("UTF-8");
            Ok((json, created))
        }
        Err(e) => {
            assert_eq!(out, PREFIX, "left as it was on error");
            Err(e)
        }
    }
}

/// What the value path gives.
fn reference(schema: &Schema, bytes: &[u8]) -> Result<String, CodecError> {
    decode(schema, bytes).map(|v| v.to_string())
}

fn event_reference(schema: &Schema, bytes: &[u8]) -> Result<(String, Option<i64>), CodecError> {
    let mut v = decode(schema, bytes)?;
    expand_change_event(schema, &mut v)?;
    Ok((v.to_string(), created_millis(&v)))
}

/// Both decoders agree on `bytes`, in both modes; returns the plain text.
#[track_caller]
fn same(schema: &Schema, bytes: &[u8]) -> Result<String, CodecError> {
    let plain = text(schema, bytes);
    assert_eq!(plain, reference(schema, bytes));
    assert_eq!(event_text(schema, bytes), event_reference(schema, bytes));
    plain
}

fn change_event(changed: Value, nulled: Value, diff: Value) -> Value {
    json!({
        "ChangeEventHeader": {
            "entityName": "Account", "recordIds": ["001xx000003DGb2AAG", "001\"q\"\n"],
            "changeType": "UPDATE", "changeOrigin": "com/salesforce/api/rest/62.0",
            "transactionKey": "0002a3b4", "sequenceNumber": 1,
            "commitTimestamp": 1_717_171_717_000i64, "commitNumber": 11_917_128_012_345i64,
            "commitUser": "005xx000001X8UzAAK",
            "nulledFields": nulled, "diffFields": diff, "changedFields": changed
        },
        "Name": {"Salutation": null, "FirstName": "Ada ✓", "LastName": "Lovelace", "MiddleName": null},
        "BillingAddress": {"City": "San Francisco", "Latitude": 37.7941, "Longitude": -122.3953},
        "ShippingAddress": null,
        "AnnualRevenue": 1.5e9, "NumberOfEmployees": 2500, "IsPartner": false,
        "CreatedDate": 1_717_000_000_000i64, "Rating__c": "Hot\u{0001}\\"
    })
}

#[test]
fn change_events_are_the_value_paths_text_with_bitmaps_expanded() {
    let schema = common::account();
    let event = change_event(json!(["0x4122", "1-0x06"]), json!(["0x04"]), json!([]));
    let bytes = encode(&schema, &event).unwrap();
    let plain = same(&schema, &bytes).unwrap();
    assert!(
        plain.contains(r#""changedFields":["0x4122","1-0x06"]"#),
        "{plain}"
    );
    let (expanded, created) = event_text(&schema, &bytes).unwrap();
    assert!(
        expanded.contains(r#""nulledFields":["Type"],"diffFields":[],"changedFields":["Name","Phone","IsPartner","Rating__c","Name.FirstName","Name.LastName"]"#),
        "{expanded}"
    );
    assert_eq!(created, Some(1_717_171_717_000));
    // Names already expanded stay as they are.
    let named = change_event(json!(["Name", "Phone"]), json!([]), json!(["Phone"]));
    same(&schema, &encode(&schema, &named).unwrap()).unwrap();
    // A sparse event: every nullable field null.
    let sparse = change_event(json!([]), json!([]), json!([]));
    let mut sparse = sparse;
    for key in ["Name", "BillingAddress", "CreatedDate", "Rating__c"] {
        sparse[key] = Value::Null;
    }
    same(&schema, &encode(&schema, &sparse).unwrap()).unwrap();
}

#[test]
fn bad_bitmaps_are_the_same_errors_after_the_whole_payload() {
    let schema = common::account();
    // Bad in two fields: the value path reports changedFields first
    // (BITMAP_FIELDS order), though nulledFields comes first in the schema.
    let event = change_event(json!(["0xFFFFFF"]), json!(["0xFFFF"]), json!(["9-0x01"]));
    let bytes = encode(&schema, &event).unwrap();
    assert!(same(&schema, &bytes).is_ok());
    let e = event_text(&schema, &bytes).unwrap_err();
    assert!(e.to_string().contains("\"0xFFFFFF\""), "{e}");
    let event = change_event(json!(["0x02"]), json!(["0xFFFF"]), json!(["9-0x01"]));
    let bytes = encode(&schema, &event).unwrap();
    assert!(same(&schema, &bytes).is_ok());
    // A payload error after a bad bitmap wins, as in the value path.
    let mut cut = bytes.clone();
    cut.pop();
    let e = event_text(&schema, &cut).unwrap_err();
    assert!(matches!(e, CodecError::Decode { .. }), "{e}");
    assert!(same(&schema, &cut).is_err());
}

#[test]
fn platform_events_and_their_created_date() {
    let schema = common::order();
    for event in [
        json!({"CreatedDate": 1_717_000_000_000i64, "CreatedById": "005", "Order_Number__c": "n°1",
               "Has_Shipped__c": true, "Amount__c": 12.5}),
        json!({"CreatedDate": -5, "CreatedById": "", "Amount__c": 1e300}),
    ] {
        let bytes = encode(&schema, &event).unwrap();
        same(&schema, &bytes).unwrap();
        let (_, created) = event_text(&schema, &bytes).unwrap();
        assert_eq!(created, event["CreatedDate"].as_i64());
    }
}

#[test]
fn every_type_and_logical_type() {
    let schema = parse_schema(
        r#"{"type": "record", "name": "All", "namespace": "t", "fields": [
            {"name": "b", "type": "boolean"},
            {"name": "i", "type": "int"},
            {"name": "l", "type": "long"},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "s", "type": "string"},
            {"name": "by", "type": "bytes"},
            {"name": "fx", "type": {"type": "fixed", "name": "F4", "size": 4}},
            {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
            {"name": "arr", "type": {"type": "array", "items": "long"}},
            {"name": "m", "type": {"type": "map", "values": ["null", "double"]}},
            {"name": "date", "type": {"type": "int", "logicalType": "date"}},
            {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "tus", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
            {"name": "uuid", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "again", "type": "F4"},
            {"name": "n", "type": "null"},
            {"name": "nested", "type": {"type": "array", "items": {"type": "map", "values": {"type": "array", "items": "F4"}}}},
            {"name": "floats", "type": {"type": "array", "items": "float"}},
            {"name": "doubles", "type": {"type": "array", "items": "double"}}
        ]}"#,
    )
    .unwrap();
    let v = json!({
        "b": true, "i": -2_147_483_648i64, "l": i64::MAX, "f": 0.1, "d": -2.5e-300,
        "s": "héllo ✓ \"\\\u{7f}\u{1f}\t", "by": "AAEC/w==", "fx": "3q2+7w==", "e": "GREEN",
        "arr": [1, -1, 0, i64::MIN], "m": {"x": 1.5, "y": null, "z\"": -0.0}, "date": 19_876,
        "tm": 3_600_000, "ts": 1_717_000_000_000i64, "tus": -1, "dec": "MDk=",
        "uuid": "550e8400-e29b-41d4-a716-446655440000", "again": "AAAAAA==", "n": null,
        "nested": [{}, {"a": [], "b": ["AAAAAA==", "/////w=="]}],
        "floats": [0.0, -0.0, 1.0, 1e38, 1e-45, 0.3, 16777217.0],
        "doubles": [0.0, -0.0, 1.0, 5e-324, 1.7976931348623157e308, 0.1]
    });
    let bytes = encode(&schema, &v).unwrap();
    let out = same(&schema, &bytes).unwrap();
    // Valid JSON (read back, a subnormal such as 1e-45 may come back an ulp
    // off: serde_json's parser is not exact for those).
    assert!(serde_json::from_str::<Value>(&out).is_ok(), "{out}");
    // Non-finite floats and doubles are null in both.
    let s = parse_schema(r#"{"type": "array", "items": ["double", "float"]}"#).unwrap();
    let mut raw = vec![6];
    for x in [f64::NAN, f64::NEG_INFINITY] {
        raw.push(0);
        raw.extend_from_slice(&x.to_le_bytes());
    }
    raw.push(2);
    raw.extend_from_slice(&f32::INFINITY.to_le_bytes());
    raw.push(0);
    assert_eq!(same(&s, &raw).unwrap(), "[null,null,null]");
}

#[test]
fn maps_with_repeated_keys_keep_the_first_place_and_the_last_value() {
    let schema = parse_schema(r#"{"type": "map", "values": "int"}"#).unwrap();
    // {"a": 1, "b": 2, "a": 3} in two blocks.
    let bytes = [4, 2, b'a', 2, 2, b'b', 4, 2, 2, b'a', 6, 0];
    assert_eq!(same(&schema, &bytes).unwrap(), r#"{"a":3,"b":2}"#);
}

#[test]
fn change_events_shaped_as_maps_go_through_the_value_path() {
    // The whole event a map: a header in it is expanded as the value path
    // does (here an error: the event schema is not a record).
    let schema = parse_schema(
        r#"{"type": "map", "values": {"type": "map", "values": ["long", {"type": "array", "items": "string"}]}}"#,
    )
    .unwrap();
    let v =
        json!({"ChangeEventHeader": {"commitTimestamp": 7, "changedFields": ["Name"]}, "x": {}});
    let bytes = encode(&schema, &v).unwrap();
    assert_eq!(event_text(&schema, &bytes).unwrap().1, Some(7));
    same(&schema, &bytes).unwrap();
    let bad = json!({"ChangeEventHeader": {"changedFields": ["0x01"]}});
    let bytes = encode(&schema, &bad).unwrap();
    assert!(same(&schema, &bytes).is_ok());
    assert!(event_text(&schema, &bytes).is_err());

    // A record event whose header is a map, and one whose header is null.
    let schema = parse_schema(
        r#"{"type": "record", "name": "E", "fields": [
            {"name": "ChangeEventHeader", "type": ["null", {"type": "map", "values": ["long", {"type": "array", "items": "string"}]}]},
            {"name": "Name", "type": ["null", "string"]},
            {"name": "CreatedDate", "type": ["null", "long", "string"]}
        ]}"#,
    )
    .unwrap();
    for (v, created) in [
        (
            json!({"ChangeEventHeader": {"changedFields": ["0x03", "Name"], "commitTimestamp": 9}, "CreatedDate": 4}),
            Some(9),
        ),
        (
            json!({"ChangeEventHeader": {"changedFields": []}, "CreatedDate": 4}),
            Some(4),
        ),
        (
            json!({"ChangeEventHeader": null, "CreatedDate": 4}),
            Some(4),
        ),
        (json!({"ChangeEventHeader": null, "CreatedDate": "4"}), None),
        (
            json!({"ChangeEventHeader": {"commitTimestamp": 9}, "CreatedDate": null}),
            Some(9),
        ),
    ] {
        let bytes = encode(&schema, &v).unwrap();
        same(&schema, &bytes).unwrap();
        assert_eq!(event_text(&schema, &bytes).unwrap().1, created, "{v}");
    }
    let v = json!({"ChangeEventHeader": {"changedFields": ["0x03"]}});
    let (text, _) = event_text(&schema, &encode(&schema, &v).unwrap()).unwrap();
    assert!(text.contains(r#"["ChangeEventHeader","Name"]"#), "{text}");
}

#[test]
fn headers_and_bitmaps_of_other_shapes_are_left_as_the_value_path_leaves_them() {
    let schema = parse_schema(
        r#"{"type": "record", "name": "E", "fields": [
            {"name": "ChangeEventHeader", "type": ["string", {"type": "record", "name": "H", "fields": [
                {"name": "changedFields", "type": ["null", {"type": "array", "items": ["string", "int"]}]},
                {"name": "nulledFields", "type": "string"},
                {"name": "commitTimestamp", "type": ["double", "long", "null"]}
            ]}]},
            {"name": "Name", "type": "string"},
            {"name": "CreatedDate", "type": "long"}
        ]}"#,
    )
    .unwrap();
    for (v, created, ok) in [
        (
            json!({"ChangeEventHeader": "h", "Name": "n", "CreatedDate": 3}),
            Some(3),
            true,
        ),
        (
            json!({"ChangeEventHeader": {"changedFields": null, "nulledFields": "0x01", "commitTimestamp": 1.5}, "Name": "n", "CreatedDate": 3}),
            None,
            true,
        ),
        (
            json!({"ChangeEventHeader": {"changedFields": ["0x02"], "nulledFields": "", "commitTimestamp": null}, "Name": "n", "CreatedDate": 3}),
            None,
            true,
        ),
        (
            json!({"ChangeEventHeader": {"changedFields": ["0x02", 1], "nulledFields": "", "commitTimestamp": 8}, "Name": "n", "CreatedDate": 3}),
            Some(8),
            false,
        ),
    ] {
        let bytes = encode(&schema, &v).unwrap();
        same(&schema, &bytes).unwrap();
        let got = event_text(&schema, &bytes);
        assert_eq!(got.is_ok(), ok, "{v}: {got:?}");
        if let Ok((_, c)) = got {
            assert_eq!(c, created, "{v}");
        }
    }
}

#[test]
fn truncated_and_extended_payloads_fail_alike() {
    let schema = common::account();
    let bytes = encode(
        &schema,
        &change_event(json!(["0x4122", "1-0x06"]), json!(["0x04"]), json!([])),
    )
    .unwrap();
    for cut in 0..bytes.len() {
        assert!(same(&schema, &bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(same(&schema, &longer).is_err());
}

#[test]
fn deep_values_of_recursive_schemas_are_refused_alike() {
    let schema = parse_schema(
        r#"{"type": "record", "name": "Node", "fields": [
            {"name": "next", "type": ["null", "Node"]},
            {"name": "items", "type": {"type": "array", "items": ["null", "Node"]}}
        ]}"#,
    )
    .unwrap();
    // 100 nested records, then the ends of the 100 item arrays.
    let mut deep = vec![2u8; 100];
    deep.push(0);
    deep.extend(std::iter::repeat_n(0u8, 101));
    let e = same(&schema, &deep).unwrap_err();
    assert!(
        e.to_string().contains("nested deeper than 64 levels"),
        "{e}"
    );
    // Many items that take no bytes: bounded per payload.
    let nulls =
        parse_schema(r#"{"type": "array", "items": {"type": "array", "items": "null"}}"#).unwrap();
    let mut many = long(2);
    many.extend(long(50_000));
    many.push(0);
    many.extend(long(50_000));
    many.extend([0, 0]);
    assert!(same(&nulls, &many).is_ok());
    let mut too_many = long(2);
    too_many.extend(long(50_000));
    too_many.push(0);
    too_many.extend(long(50_001));
    too_many.extend([0, 0]);
    let e = same(&nulls, &too_many).unwrap_err();
    assert!(e.to_string().contains("empty array items"), "{e}");
}

/// An Avro long (zigzag varint).
fn long(n: i64) -> Vec<u8> {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn kitchen_sink() -> Schema {
    parse_schema(
        r#"{"type": "record", "name": "K", "fields": [
            {"name": "m", "type": {"type": "map", "values": ["null", "bytes", "float"]}},
            {"name": "a", "type": {"type": "array", "items": {"type": "array", "items": "long"}}},
            {"name": "f", "type": {"type": "fixed", "name": "F3", "size": 3}},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
            {"name": "ChangeEventHeader", "type": ["null", {"type": "record", "name": "H", "fields": [
                {"name": "changedFields", "type": {"type": "array", "items": "string"}},
                {"name": "commitTimestamp", "type": "long"}]}]},
            {"name": "r", "type": ["null", {"type": "record", "name": "R", "fields": [
                {"name": "s", "type": "string"}, {"name": "next", "type": ["null", "R"]}]}]},
            {"name": "CreatedDate", "type": ["null", "long"]}
        ]}"#,
    )
    .unwrap()
}

static SCHEMAS: std::sync::LazyLock<[Schema; 3]> =
    std::sync::LazyLock::new(|| [common::account(), common::order(), kitchen_sink()]);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn garbage_decodes_alike(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        for schema in SCHEMAS.iter() {
            let _ = same(schema, &bytes);
        }
    }

    #[test]
    fn mutated_change_events_decode_alike(i in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
        let schema = &SCHEMAS[0];
        let event = change_event(json!(["0x4122", "1-0x06", "3-0x80"]), json!(["0x04"]), json!(["Phone"]));
        let mut bytes = encode(schema, &event).unwrap();
        let i = i % bytes.len();
        bytes[i] = byte;
        bytes.truncate(cut.max(i + 1));
        let _ = same(schema, &bytes);
    }
}
