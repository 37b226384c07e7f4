//! Unit tests of the SOQL subset.

mod eval;
mod parse;
mod pushtopic;
mod resolve;

use serde_json::{Value, json};

use super::Record;
use crate::schema::{SObjectSchema, standard_objects};

/// A record from a JSON object literal.
fn rec(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        _ => Record::new(),
    }
}

/// A standard object's schema.
fn schema(name: &str) -> SObjectSchema {
    standard_objects()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a standard object")
}

/// An Account schema with a few custom fields.
fn account() -> SObjectSchema {
    let mut s = schema("Account");
    s.ensure_custom_field("Score__c", &json!(1.5));
    s.ensure_custom_field("Flag__c", &json!(true));
    s
}
