//! Event payloads between the JSON the org stores (what CometD delivers)
//! and the JSON shape of their Avro records (what Pub/Sub delivers once
//! encoded): date-times become epoch-ms longs, compound fields nested
//! records, and the CDC header's field lists bitmaps.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::codec;
use super::schema::{EventSchema, Slot};
use crate::schema::FieldType;
use crate::store::{Record, parse_datetime, rest_datetime};

/// The Avro-shaped record of a stored CDC payload
/// (`{"ChangeEventHeader":{…},"Name":…}`).
pub fn change_event(schema: &EventSchema, payload: &Value) -> Value {
    let h = &payload["ChangeEventHeader"];
    let header = json!({
        "entityName": text(&h["entityName"]),
        "recordIds": h["recordIds"].as_array().cloned().unwrap_or_default(),
        "changeType": text(&h["changeType"]),
        "changeOrigin": text(&h["changeOrigin"]),
        "transactionKey": text(&h["transactionKey"]),
        "sequenceNumber": h["sequenceNumber"].as_i64().unwrap_or(1),
        "commitTimestamp": h["commitTimestamp"].as_i64().unwrap_or(0),
        "commitNumber": h["commitNumber"].as_i64().unwrap_or(0),
        "commitUser": text(&h["commitUser"]),
        "nulledFields": bitmaps(schema, &h["nulledFields"]),
        "diffFields": bitmaps(schema, &h["diffFields"]),
        "changedFields": bitmaps(schema, &h["changedFields"]),
    });
    let mut record = Map::new();
    record.insert("ChangeEventHeader".into(), header);
    fill_slots(schema, payload, &mut record);
    Value::Object(record)
}

/// The Avro-shaped record of a stored platform event payload
/// (`{"CreatedDate":"…","CreatedById":"005…",…}`).
pub fn platform_event(schema: &EventSchema, payload: &Value) -> Value {
    let mut record = Map::new();
    let created = to_avro(FieldType::DateTime, &payload["CreatedDate"]);
    record.insert(
        "CreatedDate".into(),
        if created.is_null() { json!(0) } else { created },
    );
    record.insert("CreatedById".into(), json!(text(&payload["CreatedById"])));
    fill_slots(schema, payload, &mut record);
    Value::Object(record)
}

/// The record fields of a published platform event, from its decoded Avro
/// record (`CreatedDate` and `CreatedById` are the server's to set).
pub fn platform_fields(schema: &EventSchema, decoded: &Value) -> Record {
    let mut fields = Record::new();
    for slot in &schema.slots {
        if let Slot::Plain { name, kind } = slot {
            let value = from_avro(*kind, &decoded[name.as_str()]);
            if !value.is_null() {
                fields.insert(name.clone(), value);
            }
        }
    }
    fields
}

fn fill_slots(schema: &EventSchema, payload: &Value, record: &mut Map<String, Value>) {
    for slot in &schema.slots {
        let value = match slot {
            Slot::Plain { name, kind } => to_avro(*kind, &payload[name.as_str()]),
            Slot::Compound { children, .. } => {
                let nested: Map<String, Value> = children
                    .iter()
                    .map(|c| (c.name.clone(), to_avro(c.kind, &payload[c.source.as_str()])))
                    .collect();
                if nested.values().all(Value::is_null) {
                    Value::Null
                } else {
                    Value::Object(nested)
                }
            }
        };
        record.insert(slot.name().to_string(), value);
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Field names as Salesforce's bitmaps: one over the top-level fields,
/// then one `P-0x…` per compound field with changed children.
pub fn bitmaps(schema: &EventSchema, names: &Value) -> Vec<String> {
    let mut top = Vec::new();
    let mut nested: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for name in names
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let Some((index, child)) = schema.locate(name) else {
            continue;
        };
        if !top.contains(&index) {
            top.push(index);
        }
        if let Some(child) = child {
            nested.entry(index).or_default().push(child);
        }
    }
    if top.is_empty() {
        return Vec::new();
    }
    top.sort_unstable();
    let mut out = vec![codec::encode_top(&top)];
    for (parent, mut children) in nested {
        children.sort_unstable();
        children.dedup();
        out.push(codec::encode_nested(parent, &children));
    }
    out
}

/// A stored JSON value as its Avro-shaped value.
pub fn to_avro(kind: FieldType, value: &Value) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    match kind {
        FieldType::DateTime => match value {
            Value::String(s) => {
                parse_datetime(s).map_or(Value::Null, |t| json!(t.timestamp_millis()))
            }
            Value::Number(_) => value.clone(),
            _ => Value::Null,
        },
        FieldType::Date => match value {
            Value::String(s) => NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
                .map_or(Value::Null, |d| json!(days_since_epoch(d))),
            Value::Number(_) => value.clone(),
            _ => Value::Null,
        },
        FieldType::Int => value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f as i64))
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
            .map_or(Value::Null, |n| json!(n)),
        FieldType::Double | FieldType::Currency => value
            .as_f64()
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
            .map_or(Value::Null, |n| json!(n)),
        FieldType::Boolean => value
            .as_bool()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .map_or(Value::Null, Value::Bool),
        _ => json!(text(value)),
    }
}

/// An Avro-shaped value as the org stores it.
pub fn from_avro(kind: FieldType, value: &Value) -> Value {
    match (kind, value) {
        (FieldType::DateTime, Value::Number(n)) => n
            .as_i64()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .map_or(Value::Null, |t| json!(rest_datetime(t))),
        (FieldType::Date, Value::Number(n)) => n
            .as_i64()
            .and_then(|days| epoch().checked_add_signed(chrono::Duration::days(days)))
            .map_or(Value::Null, |d| json!(d.format("%Y-%m-%d").to_string())),
        _ => value.clone(),
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

fn days_since_epoch(date: NaiveDate) -> i64 {
    (date - epoch()).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::schema;

    fn contact() -> EventSchema {
        let sobject = crate::schema::standard_objects()
            .into_iter()
            .find(|s| s.name == "Contact")
            .expect("Contact");
        schema::change_event(&sobject)
    }

    #[test]
    fn compound_fields_nest_and_bitmaps_name_parents() {
        let schema = contact();
        let payload = json!({
            "ChangeEventHeader": {"entityName": "Contact", "recordIds": ["003x"], "changeType": "UPDATE",
                "changedFields": ["FirstName", "LastModifiedDate"], "commitTimestamp": 5},
            "FirstName": "Ada", "LastModifiedDate": "2024-04-09T12:34:56.000+0000", "Birthdate": "1970-01-03",
        });
        let value = change_event(&schema, &payload);
        assert_eq!(
            value["Name"],
            json!({"Salutation": null, "FirstName": "Ada", "LastName": null})
        );
        assert_eq!(value["LastModifiedDate"], json!(1_712_666_096_000_i64));
        assert_eq!(value["Birthdate"], json!(2));
        assert_eq!(value["Email"], Value::Null);
        let (name_index, _) = schema.locate("FirstName").expect("Name");
        let changed = value["ChangeEventHeader"]["changedFields"]
            .as_array()
            .expect("array")
            .clone();
        assert_eq!(changed.len(), 2);
        assert_eq!(changed[1], json!(format!("{name_index}-0x02")));
        assert_eq!(from_avro(FieldType::Date, &json!(2)), json!("1970-01-03"));
    }
}
