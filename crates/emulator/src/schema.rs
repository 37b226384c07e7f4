//! The sobject types the emulated org knows: their key prefixes, fields and
//! field types, and the describe documents built from them.
//!
//! The standard objects are seeded with the fields integrations use most.
//! Custom objects (`X__c`) and custom fields (`Y__c`) are accepted on the fly,
//! so tests can use external-id fields and objects of their own.

use serde_json::{Value, json};

/// The type of a field, as describe reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// The record id.
    Id,
    /// A lookup to another record.
    Reference,
    /// Short text.
    String,
    /// Long text.
    Textarea,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A URL.
    Url,
    /// One of a list of values.
    Picklist,
    /// true or false.
    Boolean,
    /// A whole number.
    Int,
    /// A floating point number.
    Double,
    /// Money.
    Currency,
    /// A calendar date (`YYYY-MM-DD`).
    Date,
    /// A timestamp (`YYYY-MM-DDThh:mm:ss.sss+0000`).
    DateTime,
    /// A number the server assigns (e.g. `CaseNumber`).
    AutoNumber,
}

impl FieldType {
    /// The name describe uses for this type.
    pub fn describe_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Picklist => "picklist",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::AutoNumber => "string",
        }
    }

    /// Whether values of this type are text (compared as strings, quoted in SOQL).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::Reference
                | FieldType::String
                | FieldType::Textarea
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Picklist
                | FieldType::AutoNumber
        )
    }
}

/// One field of an sobject type.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// API name with its canonical case, e.g. `LastName`.
    pub name: String,
    /// Its type.
    pub kind: FieldType,
    /// Set by the server only (system fields, formula-like fields).
    pub read_only: bool,
    /// Must be given on create.
    pub required: bool,
    /// Usable in upsert as an external id.
    pub external_id: bool,
    /// For references: the types it may point to.
    pub reference_to: Vec<String>,
}

impl FieldDef {
    fn new(name: &str, kind: FieldType) -> Self {
        Self {
            name: name.to_string(),
            kind,
            read_only: false,
            required: false,
            external_id: false,
            reference_to: Vec::new(),
        }
    }
    fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn to(mut self, target: &str) -> Self {
        self.reference_to.push(target.to_string());
        self
    }
}

/// How events are raised for records of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A stored record type (standard or custom object).
    Record,
    /// A platform event (`X__e`): "creating" one publishes it.
    PlatformEvent,
}

/// An sobject type.
#[derive(Debug, Clone)]
pub struct SObjectSchema {
    /// API name, e.g. `Contact`.
    pub name: String,
    /// Display label.
    pub label: String,
    /// The 3-character id prefix, e.g. `003`.
    pub key_prefix: String,
    /// Record or platform event.
    pub kind: ObjectKind,
    /// Whether custom (`__c`/`__e`).
    pub custom: bool,
    /// Whether Change Data Capture events are produced for it.
    pub cdc_enabled: bool,
    /// The fields, system fields included.
    pub fields: Vec<FieldDef>,
}

impl SObjectSchema {
    /// Looks a field up by name, ignoring case as Salesforce does.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Whether the type has a `Name` field (Case and Task do not).
    pub fn has_name(&self) -> bool {
        self.field("Name").is_some()
    }

    /// Adds a custom field (`X__c`) on first use; its type is guessed from
    /// the value. Returns the canonical name.
    pub fn ensure_custom_field(&mut self, name: &str, sample: &Value) -> Option<String> {
        if let Some(existing) = self.field(name) {
            return Some(existing.name.clone());
        }
        if !name.to_ascii_lowercase().ends_with("__c") || !valid_api_name(&name[..name.len() - 3]) {
            return None;
        }
        let kind = match sample {
            Value::Bool(_) => FieldType::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => FieldType::Int,
            Value::Number(_) => FieldType::Double,
            _ => FieldType::String,
        };
        let mut field = FieldDef::new(name, kind);
        // Text custom fields serve as external ids, like `External_Id__c`.
        field.external_id = kind == FieldType::String || kind == FieldType::Int;
        self.fields.push(field);
        Some(name.to_string())
    }

    /// Adds a custom field (`X__c`) of a given type, unless it exists.
    pub fn add_custom_field(
        &mut self,
        name: &str,
        kind: FieldType,
    ) -> Result<(), crate::error::ApiError> {
        if self.field(name).is_some() {
            return Ok(());
        }
        let valid = name.strip_suffix("__c").is_some_and(valid_api_name);
        if !valid {
            return Err(crate::error::ApiError::bad_request(
                "INVALID_FIELD",
                format!("No such column '{name}' on entity '{}'", self.name),
            ));
        }
        self.fields.push(FieldDef::new(name, kind));
        Ok(())
    }

    /// The `sobjects/<Type>/describe` document.
    pub fn describe(&self, version: &str) -> Value {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "label": f.name,
                    "type": f.kind.describe_name(),
                    "nillable": !f.required && f.kind != FieldType::Id && f.kind != FieldType::Boolean,
                    "createable": !f.read_only,
                    "updateable": !f.read_only,
                    "externalId": f.external_id,
                    "idLookup": f.kind == FieldType::Id || f.external_id,
                    "custom": f.name.ends_with("__c"),
                    "referenceTo": f.reference_to,
                    "filterable": true,
                    "sortable": f.kind != FieldType::Textarea,
                })
            })
            .collect();
        let mut doc = self.summary(version);
        if let Value::Object(map) = &mut doc {
            map.insert("fields".into(), Value::Array(fields));
            map.insert("recordTypeInfos".into(), json!([]));
            map.insert("childRelationships".into(), json!([]));
        }
        doc
    }

    /// The entry of this type in the global describe (`sobjects/`).
    pub fn summary(&self, version: &str) -> Value {
        let base = format!("/services/data/v{version}/sobjects/{}", self.name);
        let is_record = self.kind == ObjectKind::Record;
        json!({
            "name": self.name,
            "label": self.label,
            "labelPlural": format!("{}s", self.label),
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "createable": true,
            "updateable": is_record,
            "deletable": is_record,
            "undeletable": is_record,
            "queryable": is_record,
            "searchable": is_record,
            "retrieveable": is_record,
            "triggerable": true,
            "urls": {
                "sobject": base,
                "describe": format!("{base}/describe"),
                "rowTemplate": format!("{base}/{{ID}}"),
            },
        })
    }
}

/// Whether `name` is a valid API name stem: a letter, then letters, digits
/// and single underscores, not ending in an underscore.
pub fn valid_api_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__")
}

fn system_fields() -> Vec<FieldDef> {
    vec![
        FieldDef::new("Id", FieldType::Id).read_only(),
        FieldDef::new("IsDeleted", FieldType::Boolean).read_only(),
        FieldDef::new("CreatedDate", FieldType::DateTime).read_only(),
        FieldDef::new("CreatedById", FieldType::Reference)
            .read_only()
            .to("User"),
        FieldDef::new("LastModifiedDate", FieldType::DateTime).read_only(),
        FieldDef::new("LastModifiedById", FieldType::Reference)
            .read_only()
            .to("User"),
        FieldDef::new("SystemModstamp", FieldType::DateTime).read_only(),
    ]
}

fn object(name: &str, prefix: &str, cdc: bool, fields: Vec<FieldDef>) -> SObjectSchema {
    let mut all = system_fields();
    all.extend(fields);
    SObjectSchema {
        name: name.to_string(),
        label: name.to_string(),
        key_prefix: prefix.to_string(),
        kind: ObjectKind::Record,
        custom: false,
        cdc_enabled: cdc,
        fields: all,
    }
}

/// A custom object (`X__c`) created on first use, with a `Name` field.
pub fn custom_object(name: &str, prefix: &str) -> SObjectSchema {
    let mut schema = object(
        name,
        prefix,
        true,
        vec![FieldDef::new("Name", FieldType::String)],
    );
    schema.custom = true;
    schema.label = name.trim_end_matches("__c").replace('_', " ");
    schema
}

/// A platform event type (`X__e`) created on first publish.
pub fn platform_event(name: &str) -> SObjectSchema {
    SObjectSchema {
        name: name.to_string(),
        label: name.trim_end_matches("__e").replace('_', " "),
        key_prefix: "e00".to_string(),
        kind: ObjectKind::PlatformEvent,
        custom: true,
        cdc_enabled: false,
        fields: vec![
            FieldDef::new("ReplayId", FieldType::String).read_only(),
            FieldDef::new("CreatedDate", FieldType::DateTime).read_only(),
            FieldDef::new("CreatedById", FieldType::Reference)
                .read_only()
                .to("User"),
            FieldDef::new("EventUuid", FieldType::String).read_only(),
        ],
    }
}

/// The standard objects the org starts with.
pub fn standard_objects() -> Vec<SObjectSchema> {
    use FieldType::*;
    let f = FieldDef::new;
    let name = || f("Name", String).read_only();
    vec![
        object(
            "Account",
            "001",
            true,
            vec![
                f("Name", String).required(),
                f("Type", Picklist),
                f("Industry", Picklist),
                f("Phone", Phone),
                f("Website", Url),
                f("BillingCity", String),
                f("BillingCountry", String),
                f("AnnualRevenue", Currency),
                f("NumberOfEmployees", Int),
                f("Description", Textarea),
                f("OwnerId", Reference).to("User"),
                f("RecordTypeId", Reference).to("RecordType"),
            ],
        ),
        object(
            "Contact",
            "003",
            true,
            vec![
                f("FirstName", String),
                f("LastName", String).required(),
                name(),
                f("Email", Email),
                f("Phone", Phone),
                f("Title", String),
                f("Department", String),
                f("Birthdate", Date),
                f("AccountId", Reference).to("Account"),
                f("OwnerId", Reference).to("User"),
                f("RecordTypeId", Reference).to("RecordType"),
            ],
        ),
        object(
            "Lead",
            "00Q",
            true,
            vec![
                f("FirstName", String),
                f("LastName", String).required(),
                name(),
                f("Company", String).required(),
                f("Status", Picklist),
                f("Email", Email),
                f("Phone", Phone),
                f("IsConverted", Boolean),
                f("OwnerId", Reference).to("User"),
                f("RecordTypeId", Reference).to("RecordType"),
            ],
        ),
        object(
            "Opportunity",
            "006",
            true,
            vec![
                f("Name", String).required(),
                f("StageName", Picklist).required(),
                f("CloseDate", Date).required(),
                f("Amount", Currency),
                f("Probability", Double),
                f("IsClosed", Boolean),
                f("AccountId", Reference).to("Account"),
                f("OwnerId", Reference).to("User"),
                f("RecordTypeId", Reference).to("RecordType"),
            ],
        ),
        object(
            "Case",
            "500",
            true,
            vec![
                f("CaseNumber", AutoNumber).read_only(),
                f("Subject", String),
                f("Status", Picklist),
                f("Priority", Picklist),
                f("Origin", Picklist),
                f("Description", Textarea),
                f("IsClosed", Boolean),
                f("AccountId", Reference).to("Account"),
                f("ContactId", Reference).to("Contact"),
                f("OwnerId", Reference).to("User"),
                f("RecordTypeId", Reference).to("RecordType"),
            ],
        ),
        object(
            "Task",
            "00T",
            true,
            vec![
                f("Subject", String),
                f("Status", Picklist),
                f("Priority", Picklist),
                f("ActivityDate", Date),
                f("Description", Textarea),
                f("IsClosed", Boolean),
                f("WhoId", Reference).to("Contact").to("Lead"),
                f("WhatId", Reference).to("Account").to("Opportunity"),
                f("OwnerId", Reference).to("User"),
            ],
        ),
        object(
            "User",
            "005",
            true,
            vec![
                f("Username", String).required(),
                f("FirstName", String),
                f("LastName", String).required(),
                name(),
                f("Email", Email).required(),
                f("Alias", String),
                f("IsActive", Boolean),
            ],
        ),
        object(
            "RecordType",
            "012",
            false,
            vec![
                f("Name", String).required(),
                f("DeveloperName", String).required(),
                f("SobjectType", Picklist).required(),
                f("Description", String),
                f("IsActive", Boolean),
            ],
        ),
        object(
            "PushTopic",
            "0IF",
            false,
            vec![
                f("Name", String).required(),
                f("Query", Textarea).required(),
                f("ApiVersion", Double).required(),
                f("Description", String),
                f("IsActive", Boolean),
                f("NotifyForFields", Picklist),
                f("NotifyForOperationCreate", Boolean),
                f("NotifyForOperationUpdate", Boolean),
                f("NotifyForOperationDelete", Boolean),
                f("NotifyForOperationUndelete", Boolean),
                f("NotifyForOperations", Picklist).read_only(),
            ],
        ),
        object(
            "StreamingChannel",
            "0M6",
            false,
            vec![
                f("Name", String).required(),
                f("Description", String),
                f("IsDynamic", Boolean),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_objects_have_system_fields_and_prefixes() {
        let objects = standard_objects();
        let contact = objects
            .iter()
            .find(|o| o.name == "Contact")
            .expect("Contact");
        assert_eq!(contact.key_prefix, "003");
        assert!(contact.field("lastmodifiedbyid").is_some());
        assert!(contact.has_name());
        let task = objects.iter().find(|o| o.name == "Task").expect("Task");
        assert!(!task.has_name());
    }

    #[test]
    fn custom_fields_are_added_on_first_use_only_when_well_named() {
        let mut account = standard_objects().remove(0);
        assert_eq!(
            account
                .ensure_custom_field("External_Id__c", &json!("x"))
                .as_deref(),
            Some("External_Id__c")
        );
        assert!(
            account
                .field("external_id__C")
                .is_some_and(|f| f.external_id)
        );
        assert_eq!(account.ensure_custom_field("Bogus", &json!(1)), None);
        assert_eq!(account.ensure_custom_field("bad__name__c", &json!(1)), None);
    }
}
