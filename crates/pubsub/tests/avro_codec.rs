//! Avro ⇄ JSON round trips, against schemas shaped like Salesforce's and
//! against apache-avro's own reader and writer.

mod common;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as AvroValue;
use apache_avro::writer::datum::GenericDatumWriter;
use proptest::prelude::*;
use serde_json::{Value, json};
use sfstream_pubsub::avro::{decode, encode, parse_schema};

fn full_change_event() -> Value {
    json!({
        "ChangeEventHeader": {
            "entityName": "Account",
            "recordIds": ["001xx000003DGb2AAG"],
            "changeType": "UPDATE",
            "changeOrigin": "com/salesforce/api/rest/62.0",
            "transactionKey": "0002a3b4-c5d6-e7f8-0910-111213141516",
            "sequenceNumber": 1,
            "commitTimestamp": 1_717_171_717_000i64,
            "commitNumber": 11_917_128_012_345i64,
            "commitUser": "005xx000001X8UzAAK",
            "nulledFields": ["0x20"],
            "diffFields": [],
            "changedFields": ["0x650004E0", "1-0x06"]
        },
        "Name": {"Salutation": null, "FirstName": "Ada", "LastName": "Lovelace", "MiddleName": null},
        "Type": "Customer",
        "BillingAddress": {
            "Street": "1 Market St", "City": "San Francisco", "State": "CA",
            "PostalCode": "94105", "Country": "US", "Latitude": 37.7941, "Longitude": -122.3953,
            "GeocodeAccuracy": "Address"
        },
        "ShippingAddress": {
            "Street": null, "City": "Paris", "State": null, "PostalCode": "75001",
            "Country": "FR", "Latitude": null, "Longitude": null, "GeocodeAccuracy": null
        },
        "Phone": "+1 415 555 0100",
        "AnnualRevenue": 1.5e9,
        "NumberOfEmployees": 2500,
        "IsPartner": false,
        "OwnerId": "005xx000001X8UzAAK",
        "CreatedDate": 1_717_000_000_000i64,
        "CreatedById": "005xx000001X8UzAAK",
        "LastModifiedDate": 1_717_171_717_000i64,
        "LastModifiedById": "005xx000001X8UzAAK",
        "Rating__c": "Hot"
    })
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn a_full_change_event_round_trips_in_schema_order() {
    let schema = common::account();
    let event = full_change_event();
    let bytes = encode(&schema, &event).unwrap();
    let back = decode(&schema, &bytes).unwrap();
    assert_eq!(back, event);
    assert_eq!(keys(&back), keys(&event));
    assert_eq!(
        keys(&back["Name"]),
        ["Salutation", "FirstName", "LastName", "MiddleName"]
    );
    // Timestamps stay epoch-ms numbers.
    assert_eq!(back["CreatedDate"], json!(1_717_000_000_000i64));
}

#[test]
fn a_sparse_change_event_decodes_with_every_field_null() {
    let schema = common::account();
    let mut event = json!({
        "ChangeEventHeader": full_change_event()["ChangeEventHeader"].clone(),
        "Phone": "555",
        "Name": {"LastName": "Hopper"}
    });
    let bytes = encode(&schema, &event).unwrap();
    let back = decode(&schema, &bytes).unwrap();
    for field in [
        "Type",
        "BillingAddress",
        "ShippingAddress",
        "AnnualRevenue",
        "NumberOfEmployees",
        "IsPartner",
        "OwnerId",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "LastModifiedById",
        "Rating__c",
    ] {
        assert_eq!(back[field], Value::Null, "{field}");
        event[field] = Value::Null;
    }
    event["Name"] =
        json!({"Salutation": null, "FirstName": null, "LastName": "Hopper", "MiddleName": null});
    assert_eq!(back, event);
    assert_eq!(keys(&back), keys(&full_change_event()));
}

#[test]
fn a_platform_event_round_trips() {
    let schema = common::order();
    let event = json!({
        "CreatedDate": 1_717_000_000_123i64,
        "CreatedById": "005xx000001X8UzAAK",
        "Order_Number__c": "ORD-1",
        "Has_Shipped__c": true,
        "Amount__c": 12.5
    });
    let back = decode(&schema, &encode(&schema, &event).unwrap()).unwrap();
    assert_eq!(back, event);
    let minimal = json!({"CreatedDate": 0, "CreatedById": "005"});
    let back = decode(&schema, &encode(&schema, &minimal).unwrap()).unwrap();
    assert_eq!(
        back,
        json!({"CreatedDate": 0, "CreatedById": "005", "Order_Number__c": null,
               "Has_Shipped__c": null, "Amount__c": null})
    );
}

#[test]
fn agrees_with_apache_avro_both_ways() {
    let schema = common::account();
    let event = full_change_event();
    let ours = encode(&schema, &event).unwrap();
    let reader = GenericDatumReader::builder(&schema).build().unwrap();
    let theirs = reader.read_value(&mut &ours[..]).unwrap();
    let AvroValue::Record(fields) = &theirs else {
        panic!("not a record: {theirs:?}")
    };
    assert_eq!(fields[0].0, "ChangeEventHeader");
    assert_eq!(
        fields[2],
        (
            "Type".to_string(),
            AvroValue::Union(1, Box::new(AvroValue::String("Customer".into())))
        )
    );
    // apache-avro writes the same bytes for what it read.
    let writer = GenericDatumWriter::builder(&schema).build().unwrap();
    assert_eq!(writer.write_value_to_vec(theirs).unwrap(), ours);
}

#[test]
fn unions_take_null_or_the_first_branch_that_fits() {
    let schema = parse_schema(
        r#"{"type": "record", "name": "U", "fields": [
            {"name": "a", "type": ["null", "long"]},
            {"name": "b", "type": ["null", "string"]},
            {"name": "c", "type": ["int", "long", "string"]},
            {"name": "d", "type": ["null", {"type": "enum", "name": "E", "symbols": ["X"]}, "string"]}
        ]}"#,
    )
    .unwrap();
    let v = json!({"a": 5, "b": "x", "c": 1_099_511_627_776i64, "d": "Y"});
    let bytes = encode(&schema, &v).unwrap();
    // a: branch 1, 5 | b: branch 1, "x" | c: branch 1 (int overflows), 2^40 | d: branch 2
    let mut expected = vec![2, 10, 2, 2, b'x', 2];
    expected.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x40]);
    expected.extend_from_slice(&[4, 2, b'Y']);
    assert_eq!(bytes, expected);
    assert_eq!(decode(&schema, &bytes).unwrap(), v);
    let v = json!({"a": null, "b": null, "c": 7, "d": "X"});
    let bytes = encode(&schema, &v).unwrap();
    assert_eq!(bytes, [0, 0, 0, 14, 2, 0]);
    assert_eq!(decode(&schema, &bytes).unwrap(), v);
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
            {"name": "n", "type": "null"}
        ]}"#,
    )
    .unwrap();
    let v = json!({
        "b": true, "i": -2_147_483_648i64, "l": i64::MAX, "f": 0.1, "d": -2.5e-300,
        "s": "héllo ✓", "by": "AAEC/w==", "fx": "3q2+7w==", "e": "GREEN",
        "arr": [1, -1, 0], "m": {"x": 1.5, "y": null}, "date": 19_876, "tm": 3_600_000,
        "ts": 1_717_000_000_000i64, "tus": -1, "dec": "MDk=",
        "uuid": "550e8400-e29b-41d4-a716-446655440000", "again": "AAAAAA==", "n": null
    });
    let bytes = encode(&schema, &v).unwrap();
    assert_eq!(decode(&schema, &bytes).unwrap(), v);
    let reader = GenericDatumReader::builder(&schema).build().unwrap();
    assert!(reader.read_value(&mut &bytes[..]).is_ok());
    // An empty array and map are one zero byte each.
    let mut empty = v.clone();
    empty["arr"] = json!([]);
    empty["m"] = json!({});
    let small = encode(&schema, &empty).unwrap();
    // arr: count, 3 items, end = 5 bytes; m: count, "x" 1.5 (11), "y" null (3), end = 16.
    assert_eq!(bytes.len() - small.len(), (5 - 1) + (16 - 1));
    assert_eq!(decode(&schema, &small).unwrap(), empty);
}

#[test]
fn non_finite_doubles_decode_as_null() {
    let schema = parse_schema(r#"["null", "double", "float"]"#).unwrap();
    let mut nan = vec![2];
    nan.extend_from_slice(&f64::NAN.to_le_bytes());
    assert_eq!(decode(&schema, &nan).unwrap(), Value::Null);
    let mut inf = vec![4];
    inf.extend_from_slice(&f32::INFINITY.to_le_bytes());
    assert_eq!(decode(&schema, &inf).unwrap(), Value::Null);
}

#[test]
fn missing_fields_take_their_defaults() {
    let schema = parse_schema(
        r#"{"type": "record", "name": "D", "fields": [
            {"name": "s", "type": "string", "default": "dflt"},
            {"name": "n", "type": "int", "default": 42},
            {"name": "u", "type": ["string", "null"], "default": "first"},
            {"name": "by", "type": "bytes", "default": "\u00ff\u0000"},
            {"name": "r", "type": {"type": "record", "name": "In", "fields": [
                {"name": "x", "type": "long", "default": 1}]}, "default": {"x": 9}},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}, "default": "B"},
            {"name": "late", "type": ["string", "null"]}
        ]}"#,
    )
    .unwrap();
    let back = decode(&schema, &encode(&schema, &json!({})).unwrap()).unwrap();
    assert_eq!(
        back,
        json!({"s": "dflt", "n": 42, "u": "first", "by": "/wA=", "r": {"x": 9}, "e": "B", "late": null})
    );
    // A nested object missing a field takes that field's default.
    let back = decode(&schema, &encode(&schema, &json!({"r": {}})).unwrap()).unwrap();
    assert_eq!(back["r"], json!({"x": 1}));
}

#[test]
fn named_types_are_found_by_reference() {
    let schema = parse_schema(
        r#"{"type": "record", "name": "Node", "namespace": "n", "fields": [
            {"name": "v", "type": "int"},
            {"name": "next", "type": ["null", "Node"], "default": null}
        ]}"#,
    )
    .unwrap();
    let v = json!({"v": 1, "next": {"v": 2, "next": {"v": 3, "next": null}}});
    let bytes = encode(&schema, &v).unwrap();
    assert_eq!(bytes, [2, 2, 4, 2, 6, 0]);
    assert_eq!(decode(&schema, &bytes).unwrap(), v);
}

#[test]
fn arrays_in_blocks_with_sizes_decode() {
    // Writers may split arrays into blocks, and give negative counts
    // followed by the block's byte size.
    let schema = parse_schema(r#"{"type": "array", "items": "int"}"#).unwrap();
    // One item (1), then -2 items in 2 bytes (2, 3), then the end.
    let blocks = [2, 2, 3, 4, 4, 6, 0];
    assert_eq!(decode(&schema, &blocks).unwrap(), json!([1, 2, 3]));
}

fn nullable<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop::option::of(s).boxed()
}

proptest! {
    #[test]
    fn platform_events_round_trip(
        created in any::<i64>(),
        by in "[a-zA-Z0-9]{0,18}",
        number in nullable(".{0,40}"),
        shipped in nullable(any::<bool>()),
        amount in nullable(any::<f64>().prop_filter("finite", |f| f.is_finite())),
        omit_nulls in any::<bool>(),
    ) {
        let schema = common::order();
        let mut event = serde_json::Map::new();
        event.insert("CreatedDate".into(), json!(created));
        event.insert("CreatedById".into(), json!(by));
        for (k, v) in [
            ("Order_Number__c", number.map(Value::from)),
            ("Has_Shipped__c", shipped.map(Value::from)),
            ("Amount__c", amount.map(Value::from)),
        ] {
            if v.is_some() || !omit_nulls {
                event.insert(k.into(), v.unwrap_or(Value::Null));
            }
        }
        let bytes = encode(&schema, &Value::Object(event.clone())).unwrap();
        let back = decode(&schema, &bytes).unwrap();
        for k in ["Order_Number__c", "Has_Shipped__c", "Amount__c"] {
            event.entry(k).or_insert(Value::Null);
        }
        prop_assert_eq!(back, Value::Object(event));
    }

    #[test]
    fn change_events_round_trip(
        seq in any::<i32>(),
        first in nullable(".{0,20}"),
        last in ".{0,20}",
        employees in nullable(any::<i32>()),
        lat in nullable(-90.0f64..90.0),
        ids in prop::collection::vec("[0-9A-Za-z]{18}", 0..4),
        created in nullable(any::<i64>()),
    ) {
        let schema = common::account();
        let mut event = full_change_event();
        event["ChangeEventHeader"]["sequenceNumber"] = json!(seq);
        event["ChangeEventHeader"]["recordIds"] = json!(ids);
        event["Name"]["FirstName"] = json!(first);
        event["Name"]["LastName"] = json!(last);
        event["NumberOfEmployees"] = json!(employees);
        event["ShippingAddress"]["Latitude"] = json!(lat);
        event["CreatedDate"] = json!(created);
        let back = decode(&schema, &encode(&schema, &event).unwrap()).unwrap();
        prop_assert_eq!(back, event);
    }
}
