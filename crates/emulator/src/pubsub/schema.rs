//! Avro schemas of the org's events, generated from the sobject schemas as
//! Salesforce generates them: Change Data Capture events (`AccountChangeEvent`:
//! a `ChangeEventHeader` record, then every field nullable, compound fields as
//! nested records, date-times as epoch-ms longs) and platform events
//! (`CreatedDate`, `CreatedById`, then the custom fields).

use serde_json::{Value, json};

use crate::schema::{FieldType, ObjectKind, SObjectSchema};
use crate::store::Store;

/// Avro namespace of every event schema.
pub const NAMESPACE: &str = "com.sforce.eventbus";

/// `changeType` symbols, in Salesforce's order.
pub const CHANGE_TYPES: [&str; 10] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
    "SNAPSHOT",
];

const ADDRESS_PREFIXES: [&str; 4] = ["Billing", "Shipping", "Mailing", "Other"];
const ADDRESS_PARTS: [&str; 10] = [
    "Street",
    "City",
    "State",
    "PostalCode",
    "Country",
    "StateCode",
    "CountryCode",
    "Latitude",
    "Longitude",
    "GeocodeAccuracy",
];
const NAME_PARTS: [&str; 3] = ["Salutation", "FirstName", "LastName"];

/// One child of a compound field.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    /// Its name inside the compound record (`City`).
    pub name: String,
    /// The flat sobject field it comes from (`BillingCity`).
    pub source: String,
    /// Its type.
    pub kind: FieldType,
}

/// A top-level field of an event schema (after the CDC header).
#[derive(Debug, Clone, PartialEq)]
pub enum Slot {
    /// A plain field, named as on the sobject.
    Plain {
        /// Field name.
        name: String,
        /// Its type.
        kind: FieldType,
    },
    /// A compound field (`Name`, `BillingAddress`) as a nested record.
    Compound {
        /// Field name.
        name: String,
        /// The Avro record type name (`Address`, `Switchable_PersonName`).
        record: String,
        /// Its children, in order.
        children: Vec<Child>,
    },
}

impl Slot {
    /// The field's name.
    pub fn name(&self) -> &str {
        match self {
            Slot::Plain { name, .. } | Slot::Compound { name, .. } => name,
        }
    }
}

/// What an event schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A Change Data Capture event (has a `ChangeEventHeader`).
    ChangeEvent,
    /// A platform event (`CreatedDate`, `CreatedById`, custom fields).
    PlatformEvent,
}

/// The Avro schema of one event type.
#[derive(Debug, Clone)]
pub struct EventSchema {
    /// CDC or platform event.
    pub kind: EventKind,
    /// The record name (`AccountChangeEvent`, `Order_Event__e`).
    pub name: String,
    /// The fields after the header (CDC) or after `CreatedDate` and
    /// `CreatedById` (platform events).
    pub slots: Vec<Slot>,
    /// The schema as JSON text.
    pub json: String,
    /// A stable fingerprint of `json`.
    pub id: String,
}

impl EventSchema {
    /// Index of a top-level field in the Avro record (the CDC header is 0;
    /// a platform event's `CreatedDate` is 0, `CreatedById` 1).
    pub fn first_slot_index(&self) -> usize {
        match self.kind {
            EventKind::ChangeEvent => 1,
            EventKind::PlatformEvent => 2,
        }
    }

    /// Where a flat sobject field lives: its top-level index and, for a
    /// child of a compound field, its index among the children.
    pub fn locate(&self, field: &str) -> Option<(usize, Option<usize>)> {
        let base = self.first_slot_index();
        self.slots
            .iter()
            .enumerate()
            .find_map(|(i, slot)| match slot {
                Slot::Plain { name, .. } => {
                    name.eq_ignore_ascii_case(field).then_some((base + i, None))
                }
                Slot::Compound { children, .. } => children
                    .iter()
                    .position(|c| c.source.eq_ignore_ascii_case(field))
                    .map(|j| (base + i, Some(j))),
            })
    }
}

/// The change event name of an sobject: `AccountChangeEvent`, `Foo__ChangeEvent`.
pub fn change_event_name(schema: &SObjectSchema) -> String {
    match schema.name.strip_suffix("__c") {
        Some(stem) if schema.custom => format!("{stem}__ChangeEvent"),
        _ => format!("{}ChangeEvent", schema.name),
    }
}

/// The Avro type of a field type.
fn avro_type(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Boolean => "boolean",
        FieldType::Int => "int",
        FieldType::Double | FieldType::Currency => "double",
        // Days since the epoch, as Salesforce sends dates.
        FieldType::Date => "int",
        FieldType::DateTime => "long",
        _ => "string",
    }
}

/// The CDC schema of a record type.
pub fn change_event(schema: &SObjectSchema) -> EventSchema {
    let has = |name: &str| schema.field(name).is_some();
    let person_name = has("FirstName") || has("LastName");
    let mut slots: Vec<Slot> = Vec::new();
    for field in &schema.fields {
        let name = field.name.as_str();
        if matches!(name, "Id" | "IsDeleted" | "SystemModstamp") {
            continue;
        }
        if person_name && (name == "Name" || NAME_PARTS.contains(&name)) {
            if !slots.iter().any(|s| s.name() == "Name") {
                slots.push(Slot::Compound {
                    name: "Name".into(),
                    record: "Switchable_PersonName".into(),
                    children: NAME_PARTS
                        .iter()
                        .map(|part| Child {
                            name: (*part).into(),
                            source: (*part).into(),
                            kind: FieldType::String,
                        })
                        .collect(),
                });
            }
            continue;
        }
        let address = ADDRESS_PREFIXES.iter().find(|prefix| {
            name.strip_prefix(**prefix)
                .is_some_and(|part| ADDRESS_PARTS.contains(&part))
        });
        if let Some(prefix) = address {
            let compound = format!("{prefix}Address");
            if !slots.iter().any(|s| s.name() == compound) {
                slots.push(Slot::Compound {
                    name: compound,
                    record: "Address".into(),
                    children: ADDRESS_PARTS
                        .iter()
                        .map(|part| Child {
                            name: (*part).into(),
                            source: format!("{prefix}{part}"),
                            kind: if matches!(*part, "Latitude" | "Longitude") {
                                FieldType::Double
                            } else {
                                FieldType::String
                            },
                        })
                        .collect(),
                });
            }
            continue;
        }
        slots.push(Slot::Plain {
            name: name.to_string(),
            kind: field.kind,
        });
    }
    let array = json!({"type": "array", "items": "string"});
    let header = json!({
        "type": "record",
        "name": "ChangeEventHeader",
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": array},
            {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "symbols": CHANGE_TYPES}},
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": array},
            {"name": "diffFields", "type": array},
            {"name": "changedFields", "type": array},
        ],
    });
    let mut fields = vec![json!({"name": "ChangeEventHeader", "type": header})];
    fields.extend(slot_fields(&slots));
    finish(
        EventKind::ChangeEvent,
        change_event_name(schema),
        slots,
        fields,
    )
}

/// The schema of a platform event type.
pub fn platform_event(schema: &SObjectSchema) -> EventSchema {
    let slots: Vec<Slot> = schema
        .fields
        .iter()
        .filter(|f| {
            !matches!(
                f.name.as_str(),
                "Id" | "ReplayId" | "CreatedDate" | "CreatedById" | "EventUuid" | "IsDeleted"
            )
        })
        .map(|f| Slot::Plain {
            name: f.name.clone(),
            kind: f.kind,
        })
        .collect();
    let mut fields = vec![
        json!({"name": "CreatedDate", "type": "long"}),
        json!({"name": "CreatedById", "type": "string"}),
    ];
    fields.extend(slot_fields(&slots));
    finish(EventKind::PlatformEvent, schema.name.clone(), slots, fields)
}

fn slot_fields(slots: &[Slot]) -> Vec<Value> {
    let mut defined: Vec<&str> = Vec::new();
    slots
        .iter()
        .map(|slot| match slot {
            Slot::Plain { name, kind } => {
                json!({"name": name, "type": ["null", avro_type(*kind)], "default": null})
            }
            Slot::Compound {
                name,
                record,
                children,
            } => {
                // A named type is defined once, then referred to by name.
                let record_type = if defined.contains(&record.as_str()) {
                    json!(record)
                } else {
                    defined.push(record);
                    let children: Vec<Value> = children
                        .iter()
                        .map(|c| json!({"name": c.name, "type": ["null", avro_type(c.kind)], "default": null}))
                        .collect();
                    json!({"type": "record", "name": record, "fields": children})
                };
                json!({"name": name, "type": ["null", record_type], "default": null})
            }
        })
        .collect()
}

fn finish(kind: EventKind, name: String, slots: Vec<Slot>, fields: Vec<Value>) -> EventSchema {
    let json = json!({"type": "record", "name": name, "namespace": NAMESPACE, "fields": fields})
        .to_string();
    let id = fingerprint(&json);
    EventSchema {
        kind,
        name,
        slots,
        json,
        id,
    }
}

/// A short, stable hex fingerprint of a schema's JSON (FNV-1a, 64 bits).
pub fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The schema of a record type or platform event type by sobject name.
pub fn of_sobject(schema: &SObjectSchema) -> Option<EventSchema> {
    match schema.kind {
        ObjectKind::PlatformEvent => Some(platform_event(schema)),
        ObjectKind::Record if schema.cdc_enabled => Some(change_event(schema)),
        ObjectKind::Record => None,
    }
}

/// Every event schema the org has now.
pub fn all(store: &Store) -> Vec<EventSchema> {
    store.schemas().into_iter().filter_map(of_sobject).collect()
}

/// The sobject type of a CDC entity or platform event topic, if the org has it.
pub fn sobject_of_topic<'a>(store: &'a Store, topic: &str) -> Option<&'a SObjectSchema> {
    if let Some(name) = topic.strip_prefix("/event/") {
        return store
            .schema(name)
            .ok()
            .filter(|s| s.kind == ObjectKind::PlatformEvent);
    }
    let entity = topic.strip_prefix("/data/")?;
    store
        .schemas()
        .into_iter()
        .find(|s| s.cdc_enabled && s.kind == ObjectKind::Record && change_event_name(s) == entity)
}

/// Whether the org has a topic: `/data/ChangeEvents`, `/data/<Entity>`, or
/// a defined platform event `/event/<Name>__e`.
pub fn topic_exists(store: &Store, topic: &str) -> bool {
    topic == "/data/ChangeEvents" || sobject_of_topic(store, topic).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard(name: &str) -> SObjectSchema {
        crate::schema::standard_objects()
            .into_iter()
            .find(|s| s.name == name)
            .expect(name)
    }

    #[test]
    fn contact_has_header_then_compound_name() {
        let schema = change_event(&standard("Contact"));
        assert_eq!(schema.name, "ContactChangeEvent");
        let names: Vec<&str> = schema.slots.iter().map(Slot::name).collect();
        assert!(names.contains(&"Name") && !names.contains(&"FirstName"));
        assert!(!names.contains(&"Id") && !names.contains(&"IsDeleted"));
        let (top, child) = schema.locate("FirstName").expect("FirstName");
        assert_eq!(child, Some(1));
        assert_eq!(schema.slots[top - 1].name(), "Name");
        let value: Value = serde_json::from_str(&schema.json).expect("json");
        assert_eq!(value["fields"][0]["name"], "ChangeEventHeader");
        assert_eq!(
            value["fields"][0]["type"]["fields"][2]["type"]["type"],
            "enum"
        );
        assert_eq!(schema.id, change_event(&standard("Contact")).id);
        assert_ne!(schema.id, change_event(&standard("Lead")).id);
    }

    #[test]
    fn account_billing_fields_form_an_address() {
        let schema = change_event(&standard("Account"));
        let (top, child) = schema.locate("BillingCountry").expect("BillingCountry");
        assert_eq!(schema.slots[top - 1].name(), "BillingAddress");
        assert_eq!(child, Some(4));
        assert_eq!(schema.locate("Name").map(|l| l.1), Some(None));
    }
}
