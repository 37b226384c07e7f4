//! Change Data Capture field bitmaps, against Salesforce's documented
//! example and schemas shaped like theirs.

mod common;

use proptest::prelude::*;
use serde_json::json;
use sfstream_pubsub::avro::{CodecError, Schema, decode, encode, parse_schema};
use sfstream_pubsub::bitmap::{encode_nested, encode_top, expand_change_event, field_names};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// 32 fields `F0`..`F31`; `F4` is a nullable record of 5 fields `A0`..,
/// `F7` a record of 3 fields `B0`...
fn wide_schema() -> Schema {
    let mut fields = Vec::new();
    for i in 0..32 {
        let ty = match i {
            4 => json!(["null", {"type": "record", "name": "A", "fields":
                (0..5).map(|j| json!({"name": format!("A{j}"), "type": ["null", "string"]})).collect::<Vec<_>>()}]),
            7 => json!({"type": "record", "name": "B", "fields":
                (0..3).map(|j| json!({"name": format!("B{j}"), "type": "long"})).collect::<Vec<_>>()}),
            _ => json!(["null", "string"]),
        };
        fields.push(json!({"name": format!("F{i}"), "type": ty}));
    }
    let schema = json!({"type": "record", "name": "Wide", "fields": fields});
    parse_schema(&schema.to_string()).unwrap()
}

#[test]
fn salesforces_documented_example() {
    // From "Event Deserialization Considerations" in the Pub/Sub API guide:
    // 'changedFields': ['0x650004E0','4-0x10','7-0x06'].
    let names = field_names(
        &wide_schema(),
        &strings(&["0x650004E0", "4-0x10", "7-0x06"]),
    )
    .unwrap();
    assert_eq!(
        names,
        [
            "F5", "F6", "F7", "F10", "F24", "F26", "F29", "F30", "F4.A4", "F7.B1", "F7.B2"
        ]
    );
    assert_eq!(encode_top(&[5, 6, 7, 10, 24, 26, 29, 30]), "0x650004E0");
    assert_eq!(encode_nested(4, &[4]), "4-0x10");
    assert_eq!(encode_nested(7, &[2, 1]), "7-0x06");
}

#[test]
fn encoding_uses_the_fewest_whole_bytes() {
    assert_eq!(encode_top(&[]), "0x00");
    assert_eq!(encode_top(&[0]), "0x01");
    assert_eq!(encode_top(&[7]), "0x80");
    assert_eq!(encode_top(&[8]), "0x0100");
    assert_eq!(encode_top(&[3, 3, 1]), "0x0A");
    assert_eq!(encode_top(&[0, 15]), "0x8001");
    assert_eq!(encode_nested(12, &[]), "12-0x00");
}

#[test]
fn compound_fields_are_named_parent_dot_child() {
    let schema = common::account();
    // 1 Name, 5 Phone; Name's field 2 LastName; ShippingAddress (4, a
    // reference to Address) field 1 City.
    let names = field_names(&schema, &strings(&["0x22", "1-0x04", "4-0x02"])).unwrap();
    assert_eq!(
        names,
        ["Name", "Phone", "Name.LastName", "ShippingAddress.City"]
    );
    // Lower case, odd lengths and entries that are already names.
    let names = field_names(&schema, &strings(&["0X4", "Rating__c", "3-0xc0"])).unwrap();
    assert_eq!(
        names,
        [
            "Type",
            "Rating__c",
            "BillingAddress.Longitude",
            "BillingAddress.GeocodeAccuracy"
        ]
    );
    assert!(field_names(&schema, &[]).unwrap().is_empty());
}

#[test]
fn bad_bitmaps_are_clear_errors() {
    let schema = common::account();
    let err = |entry: &str| match field_names(&schema, &strings(&[entry])) {
        Ok(names) => panic!("{entry} gave {names:?}"),
        Err(e) => {
            assert!(matches!(e, CodecError::Bitmap { .. }), "{e:?}");
            e.to_string()
        }
    };
    assert_eq!(
        err("0x8000"),
        "invalid field bitmap \"0x8000\": it names field 15, but AccountChangeEvent has 15 fields"
    );
    assert_eq!(
        err("0xZZ"),
        "invalid field bitmap \"0xZZ\": 'Z' is not a hex digit"
    );
    assert_eq!(err("0x"), "invalid field bitmap \"0x\": no hex digits");
    assert_eq!(
        err("20-0x01"),
        "invalid field bitmap \"20-0x01\": it names field 20, but AccountChangeEvent has 15 fields"
    );
    assert_eq!(
        err("2-0x01"),
        "invalid field bitmap \"2-0x01\": field 2 (Type) is not a compound field (a nested record)"
    );
    assert_eq!(
        err("1-0x10"),
        "invalid field bitmap \"1-0x10\": it names field 4, but Switchable_PersonName has 4 fields"
    );
    assert_eq!(
        err("1-01"),
        "invalid field bitmap \"1-01\": expected 0x and hex digits after the position"
    );
    assert_eq!(
        err("99999999999999999999999-0x01"),
        "invalid field bitmap \"99999999999999999999999-0x01\": the compound field position is too large"
    );
    let not_a_record = parse_schema(r#""string""#).unwrap();
    assert!(field_names(&not_a_record, &strings(&["0x01"])).is_err());
    assert_eq!(
        field_names(&not_a_record, &strings(&["Name"])).unwrap(),
        ["Name"]
    );
}

fn change_event(changed: &[&str], nulled: &[&str]) -> serde_json::Value {
    json!({
        "ChangeEventHeader": {
            "entityName": "Account", "recordIds": ["001xx000003DGb2AAG"], "changeType": "UPDATE",
            "changeOrigin": "", "transactionKey": "t", "sequenceNumber": 1,
            "commitTimestamp": 1, "commitNumber": 2, "commitUser": "005",
            "nulledFields": nulled, "diffFields": [], "changedFields": changed
        },
        "Name": {"LastName": "Lovelace"},
        "Phone": null
    })
}

#[test]
fn change_events_are_expanded_in_place() {
    let schema = common::account();
    let bytes = encode(&schema, &change_event(&["0x1022", "1-0x04"], &["0x20"])).unwrap();
    let mut event = decode(&schema, &bytes).unwrap();
    expand_change_event(&schema, &mut event).unwrap();
    let header = &event["ChangeEventHeader"];
    assert_eq!(
        header["changedFields"],
        json!(["Name", "Phone", "LastModifiedDate", "Name.LastName"])
    );
    assert_eq!(header["nulledFields"], json!(["Phone"]));
    assert_eq!(header["diffFields"], json!([]));
    // Expanding again changes nothing: names are kept.
    let before = event.clone();
    expand_change_event(&schema, &mut event).unwrap();
    assert_eq!(event, before);
}

#[test]
fn other_events_and_bad_bitmaps_leave_the_event_unchanged() {
    let order = common::order();
    let mut event = json!({"CreatedDate": 1, "CreatedById": "005", "changedFields": ["0x01"]});
    let before = event.clone();
    expand_change_event(&order, &mut event).unwrap();
    assert_eq!(event, before);

    let schema = common::account();
    let mut event = change_event(&["0x02"], &["0xFFFF"]);
    let before = event.clone();
    let e = expand_change_event(&schema, &mut event).unwrap_err();
    assert!(e.to_string().contains("\"0xFFFF\""), "{e}");
    assert_eq!(event, before);
    let mut event = change_event(&[], &[]);
    event["ChangeEventHeader"]["diffFields"] = json!([1]);
    assert!(expand_change_event(&schema, &mut event).is_err());
}

proptest! {
    #[test]
    fn bitmaps_round_trip(
        top in prop::collection::btree_set(0usize..32, 0..32),
        a in prop::collection::btree_set(0usize..5, 0..5),
        b in prop::collection::btree_set(0usize..3, 0..3),
    ) {
        let top: Vec<usize> = top.into_iter().collect();
        let a: Vec<usize> = a.into_iter().collect();
        let b: Vec<usize> = b.into_iter().collect();
        let entries = vec![encode_top(&top), encode_nested(4, &a), encode_nested(7, &b)];
        for e in &entries {
            prop_assert!(e.len() % 2 == 0 && !e.ends_with("0x"));
            prop_assert_eq!(e.to_uppercase().replace('X', "x"), e.clone());
        }
        let mut expected: Vec<String> = top.iter().map(|i| format!("F{i}")).collect();
        expected.extend(a.iter().map(|i| format!("F4.A{i}")));
        expected.extend(b.iter().map(|i| format!("F7.B{i}")));
        prop_assert_eq!(field_names(&wide_schema(), &entries).unwrap(), expected);
    }

    #[test]
    fn garbage_entries_never_panic(entries in prop::collection::vec("[0-9]{0,3}-?0?[xX]?[0-9a-fA-FzZ]{0,12}", 0..4)) {
        let _ = field_names(&common::account(), &entries);
    }
}
