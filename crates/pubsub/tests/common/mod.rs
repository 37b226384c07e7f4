//! Schemas shaped like Salesforce's, shared by the codec tests.
#![allow(dead_code)]

use sfstream_pubsub::avro::{Schema, parse_schema};

/// A change event schema as `GetSchema` returns one for Account: the header
/// record first, compound fields (`Name`, two addresses sharing one record
/// type by reference) in unions with null, nullable plain fields.
pub const ACCOUNT_CHANGE_EVENT: &str = r#"{
  "type": "record", "name": "AccountChangeEvent", "namespace": "com.sforce.eventbus",
  "fields": [
    {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader", "fields": [
      {"name": "entityName", "type": "string"},
      {"name": "recordIds", "type": {"type": "array", "items": "string"}},
      {"name": "changeType", "type": {"type": "enum", "name": "ChangeType",
        "symbols": ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE",
                    "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW", "SNAPSHOT"]}},
      {"name": "changeOrigin", "type": "string"},
      {"name": "transactionKey", "type": "string"},
      {"name": "sequenceNumber", "type": "int"},
      {"name": "commitTimestamp", "type": "long"},
      {"name": "commitNumber", "type": "long"},
      {"name": "commitUser", "type": "string"},
      {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
      {"name": "diffFields", "type": {"type": "array", "items": "string"}},
      {"name": "changedFields", "type": {"type": "array", "items": "string"}}
    ]}},
    {"name": "Name", "type": ["null", {"type": "record", "name": "Switchable_PersonName", "fields": [
      {"name": "Salutation", "type": ["null", "string"], "default": null},
      {"name": "FirstName", "type": ["null", "string"], "default": null},
      {"name": "LastName", "type": ["null", "string"], "default": null},
      {"name": "MiddleName", "type": ["null", "string"], "default": null}
    ]}], "default": null},
    {"name": "Type", "type": ["null", "string"], "default": null},
    {"name": "BillingAddress", "type": ["null", {"type": "record", "name": "Address", "fields": [
      {"name": "Street", "type": ["null", "string"], "default": null},
      {"name": "City", "type": ["null", "string"], "default": null},
      {"name": "State", "type": ["null", "string"], "default": null},
      {"name": "PostalCode", "type": ["null", "string"], "default": null},
      {"name": "Country", "type": ["null", "string"], "default": null},
      {"name": "Latitude", "type": ["null", "double"], "default": null},
      {"name": "Longitude", "type": ["null", "double"], "default": null},
      {"name": "GeocodeAccuracy", "type": ["null", "string"], "default": null}
    ]}], "default": null},
    {"name": "ShippingAddress", "type": ["null", "Address"], "default": null},
    {"name": "Phone", "type": ["null", "string"], "default": null},
    {"name": "AnnualRevenue", "type": ["null", "double"], "default": null},
    {"name": "NumberOfEmployees", "type": ["null", "int"], "default": null},
    {"name": "IsPartner", "type": ["null", "boolean"], "default": null},
    {"name": "OwnerId", "type": ["null", "string"], "default": null},
    {"name": "CreatedDate", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
    {"name": "CreatedById", "type": ["null", "string"], "default": null},
    {"name": "LastModifiedDate", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
    {"name": "LastModifiedById", "type": ["null", "string"], "default": null},
    {"name": "Rating__c", "type": ["null", "string"], "default": null}
  ]
}"#;

/// A platform event schema as Salesforce generates one.
pub const ORDER_EVENT: &str = r#"{
  "type": "record", "name": "Order_Event__e", "namespace": "com.sforce.eventbus",
  "fields": [
    {"name": "CreatedDate", "type": "long", "doc": "CreatedDate:DateTime"},
    {"name": "CreatedById", "type": "string", "doc": "CreatedBy:EntityId"},
    {"name": "Order_Number__c", "type": ["null", "string"], "default": null},
    {"name": "Has_Shipped__c", "type": ["null", "boolean"], "default": null},
    {"name": "Amount__c", "type": ["null", "double"], "default": null}
  ]
}"#;

pub fn account() -> Schema {
    parse_schema(ACCOUNT_CHANGE_EVENT).expect("the Account schema parses")
}

pub fn order() -> Schema {
    parse_schema(ORDER_EVENT).expect("the platform event schema parses")
}
