//! The org's records: tables of sobjects with system fields maintained,
//! input checked the way Salesforce checks it, and every change reported
//! as a [`RecordChange`] so streaming can raise events.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::ids::{self, IdGenerator};
use crate::schema::{self, FieldType, ObjectKind, SObjectSchema};

/// A record as stored: canonical field name to JSON value.
pub type Record = Map<String, Value>;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Inserted.
    Created,
    /// Changed.
    Updated,
    /// Moved to the recycle bin.
    Deleted,
    /// Restored from the recycle bin.
    Undeleted,
}

impl ChangeKind {
    /// The PushTopic `event.type` word.
    pub fn pushtopic_type(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Undeleted => "undeleted",
        }
    }

    /// The Change Data Capture `changeType`.
    pub fn cdc_type(self) -> &'static str {
        match self {
            ChangeKind::Created => "CREATE",
            ChangeKind::Updated => "UPDATE",
            ChangeKind::Deleted => "DELETE",
            ChangeKind::Undeleted => "UNDELETE",
        }
    }
}

/// A change to one record, as streaming needs it.
#[derive(Debug, Clone)]
pub struct RecordChange {
    /// The sobject type (canonical name).
    pub sobject: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The record after the change (before it, for a delete).
    pub record: Record,
    /// Fields whose value changed (all set fields for a create).
    pub changed_fields: Vec<String>,
    /// The user who made the change.
    pub user_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A stored row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Field values, system fields included (`IsDeleted` mirrors `deleted`).
    pub fields: Record,
}

impl Row {
    /// Whether the row is in the recycle bin.
    pub fn is_deleted(&self) -> bool {
        self.fields.get("IsDeleted") == Some(&Value::Bool(true))
    }
}

/// One sobject type and its rows (ordered by id, so by creation).
#[derive(Debug, Clone)]
pub struct Table {
    /// The type's schema.
    pub schema: SObjectSchema,
    /// Rows by 18-character id.
    pub rows: BTreeMap<String, Row>,
}

/// Formats a timestamp as the REST API does: `2024-04-09T12:34:56.000+0000`.
pub fn rest_datetime(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Formats a timestamp as streaming events do: `2024-04-09T12:34:56.208Z`.
pub fn event_datetime(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// All records of the org.
#[derive(Debug)]
pub struct Store {
    tables: HashMap<String, Table>,
    ids: IdGenerator,
    next_custom_prefix: u32,
    auto_numbers: u64,
    /// The login user's id (`005...`).
    pub user_id: String,
    /// The org id (`00D...`).
    pub org_id: String,
}

impl Store {
    /// An org with the standard objects, the login user and a few record types.
    pub fn seeded(username: &str) -> Self {
        let mut store = Store {
            tables: HashMap::new(),
            ids: IdGenerator::new(),
            next_custom_prefix: 0,
            auto_numbers: 1000,
            user_id: String::new(),
            org_id: ids::make_id("00D", 1),
        };
        for schema in schema::standard_objects() {
            store.tables.insert(
                schema.name.to_ascii_lowercase(),
                Table {
                    schema,
                    rows: BTreeMap::new(),
                },
            );
        }
        let local = username.split('@').next().unwrap_or(username);
        let user = store
            .insert_system(
                "User",
                obj(json!({
                    "Username": username,
                    "FirstName": "Emulated",
                    "LastName": "User",
                    "Email": username,
                    "Alias": local.chars().take(8).collect::<String>(),
                    "IsActive": true,
                })),
            )
            .expect("seeding the login user");
        store.user_id = user.clone();
        if let Some(row) = store
            .tables
            .get_mut("user")
            .and_then(|t| t.rows.get_mut(&user))
        {
            row.fields.insert("CreatedById".into(), json!(user));
            row.fields.insert("LastModifiedById".into(), json!(user));
        }
        for (sobject, developer_name, name) in [
            ("Contact", "Student", "Student"),
            ("Contact", "Staff", "Staff"),
            ("Account", "Business", "Business Account"),
            ("Opportunity", "NewBusiness", "New Business"),
            ("Lead", "Inbound", "Inbound Lead"),
        ] {
            store
                .insert_system(
                    "RecordType",
                    obj(json!({
                        "Name": name,
                        "DeveloperName": developer_name,
                        "SobjectType": sobject,
                        "IsActive": true,
                    })),
                )
                .expect("seeding record types");
        }
        store
    }

    fn insert_system(&mut self, sobject: &str, fields: Record) -> Result<String, ApiError> {
        let user = self.user_id.clone();
        self.create(sobject, fields, &user).map(|change| {
            change
                .record
                .get("Id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
    }

    /// The table of a type, by any case of its name.
    pub fn table(&self, sobject: &str) -> Option<&Table> {
        self.tables.get(&sobject.to_ascii_lowercase())
    }

    /// The schema of a type; `INVALID_TYPE` when unknown.
    pub fn schema(&self, sobject: &str) -> Result<&SObjectSchema, ApiError> {
        self.table(sobject)
            .map(|t| &t.schema)
            .ok_or_else(|| ApiError::invalid_type(sobject))
    }

    /// All schemas, sorted by name.
    pub fn schemas(&self) -> Vec<&SObjectSchema> {
        let mut all: Vec<_> = self.tables.values().map(|t| &t.schema).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The table of a type, creating custom objects (`__c`) and platform
    /// events (`__e`) on first use.
    pub fn table_mut(&mut self, sobject: &str) -> Result<&mut Table, ApiError> {
        let key = sobject.to_ascii_lowercase();
        if !self.tables.contains_key(&key) {
            let schema = if let Some(stem) = sobject
                .strip_suffix("__c")
                .filter(|s| schema::valid_api_name(s))
            {
                let _ = stem;
                let n = self.next_custom_prefix;
                self.next_custom_prefix += 1;
                let prefix = format!(
                    "a{}{}",
                    (b'0' + (n / 36 % 10) as u8) as char,
                    base36(n % 36)
                );
                schema::custom_object(sobject, &prefix)
            } else if sobject
                .strip_suffix("__e")
                .is_some_and(schema::valid_api_name)
            {
                schema::platform_event(sobject)
            } else {
                return Err(ApiError::invalid_type(sobject));
            };
            self.tables.insert(
                key.clone(),
                Table {
                    schema,
                    rows: BTreeMap::new(),
                },
            );
        }
        self.tables
            .get_mut(&key)
            .ok_or_else(|| ApiError::invalid_type(sobject))
    }

    /// A record by id (15 or 18 characters); deleted ones only if asked.
    pub fn get(&self, sobject: &str, id: &str, include_deleted: bool) -> Option<&Record> {
        let id = ids::normalize(id)?;
        let row = self.table(sobject)?.rows.get(&id)?;
        (include_deleted || !row.is_deleted()).then_some(&row.fields)
    }

    /// Finds a record of any type by id.
    pub fn find_by_id(&self, id: &str) -> Option<(&SObjectSchema, &Record)> {
        let id = ids::normalize(id)?;
        let prefix = ids::prefix_of(&id);
        self.tables
            .values()
            .filter(|t| t.schema.key_prefix == prefix)
            .find_map(|t| t.rows.get(&id).map(|row| (&t.schema, &row.fields)))
    }

    /// Live rows of a type (deleted ones too if asked), in creation order.
    pub fn rows<'a>(
        &'a self,
        sobject: &str,
        include_deleted: bool,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        self.table(sobject)
            .into_iter()
            .flat_map(|t| t.rows.values())
            .filter(move |row| include_deleted || !row.is_deleted())
            .map(|row| &row.fields)
    }

    /// Ids of live records whose `field` equals `value` (external id lookups).
    pub fn find_by_field(&self, sobject: &str, field: &str, value: &Value) -> Vec<String> {
        self.rows(sobject, false)
            .filter(|r| r.get(field).is_some_and(|v| loosely_equal(v, value)))
            .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// Inserts a record after checking its fields.
    pub fn create(
        &mut self,
        sobject: &str,
        input: Record,
        user_id: &str,
    ) -> Result<RecordChange, ApiError> {
        let now = Utc::now();
        let id_prefix = self.table_mut(sobject)?.schema.key_prefix.clone();
        let id = self.ids.next_id(&id_prefix);
        let auto = self.auto_numbers;
        let table = self.table_mut(sobject)?;
        let mut fields = checked_input(&mut table.schema, input, true)?;
        let schema = &table.schema;
        let missing: Vec<String> = schema
            .fields
            .iter()
            .filter(|f| f.required && fields.get(&f.name).is_none_or(Value::is_null))
            .map(|f| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::bad_request(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
            )
            .with_fields(missing));
        }
        let stamp = rest_datetime(now);
        fields.insert("Id".into(), json!(id));
        fields.insert("IsDeleted".into(), json!(false));
        fields.insert("CreatedDate".into(), json!(stamp));
        fields.insert("CreatedById".into(), json!(user_id));
        fields.insert("LastModifiedDate".into(), json!(stamp));
        fields.insert("LastModifiedById".into(), json!(user_id));
        fields.insert("SystemModstamp".into(), json!(stamp));
        apply_defaults(schema, &mut fields, user_id, auto);
        let changed_fields = fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k.clone())
            .collect();
        // Fill every other known field with null so projections are complete.
        for f in &schema.fields {
            fields.entry(f.name.clone()).or_insert(Value::Null);
        }
        let uses_auto_number = schema.field("CaseNumber").is_some();
        let change = RecordChange {
            sobject: schema.name.clone(),
            kind: ChangeKind::Created,
            record: fields.clone(),
            changed_fields,
            user_id: user_id.to_string(),
            at: now,
        };
        if schema.kind == ObjectKind::Record {
            table.rows.insert(id, Row { fields });
        }
        if uses_auto_number {
            self.auto_numbers += 1;
        }
        Ok(change)
    }

    /// Updates a live record. Returns `None` in the change list when no
    /// value actually changed (Salesforce still bumps the modstamp).
    pub fn update(
        &mut self,
        sobject: &str,
        id: &str,
        input: Record,
        user_id: &str,
    ) -> Result<RecordChange, ApiError> {
        let now = Utc::now();
        let table = self.table_mut(sobject)?;
        let sobject_name = table.schema.name.clone();
        let input = checked_input(&mut table.schema, input, false)?;
        let norm = ids::normalize(id).ok_or_else(|| ApiError::malformed_id(&sobject_name, id))?;
        let row = table
            .rows
            .get_mut(&norm)
            .filter(|r| !r.is_deleted())
            .ok_or_else(|| entity_deleted_or_missing(&sobject_name))?;
        let mut changed_fields = Vec::new();
        for (k, v) in input {
            if row.fields.get(&k) != Some(&v) {
                changed_fields.push(k.clone());
                row.fields.insert(k, v);
            }
        }
        recompute_name(&table.schema, &mut row.fields);
        let stamp = rest_datetime(now);
        row.fields.insert("LastModifiedDate".into(), json!(stamp));
        row.fields.insert("LastModifiedById".into(), json!(user_id));
        row.fields.insert("SystemModstamp".into(), json!(stamp));
        Ok(RecordChange {
            sobject: sobject_name,
            kind: ChangeKind::Updated,
            record: row.fields.clone(),
            changed_fields,
            user_id: user_id.to_string(),
            at: now,
        })
    }

    /// Moves a record to the recycle bin.
    pub fn delete(
        &mut self,
        sobject: &str,
        id: &str,
        user_id: &str,
    ) -> Result<RecordChange, ApiError> {
        self.set_deleted(sobject, id, user_id, true)
    }

    /// Restores a record from the recycle bin.
    pub fn undelete(
        &mut self,
        sobject: &str,
        id: &str,
        user_id: &str,
    ) -> Result<RecordChange, ApiError> {
        self.set_deleted(sobject, id, user_id, false)
    }

    fn set_deleted(
        &mut self,
        sobject: &str,
        id: &str,
        user_id: &str,
        deleted: bool,
    ) -> Result<RecordChange, ApiError> {
        let now = Utc::now();
        let table = self.table_mut(sobject)?;
        let sobject_name = table.schema.name.clone();
        let norm = ids::normalize(id).ok_or_else(|| ApiError::malformed_id(&sobject_name, id))?;
        let row = table
            .rows
            .get_mut(&norm)
            .ok_or_else(|| entity_deleted_or_missing(&sobject_name))?;
        if row.is_deleted() == deleted {
            return Err(if deleted {
                entity_deleted_or_missing(&sobject_name)
            } else {
                ApiError::bad_request("UNDELETE_FAILED", "Entity is not in the recycle bin")
            });
        }
        let stamp = rest_datetime(now);
        row.fields.insert("IsDeleted".into(), json!(deleted));
        row.fields.insert("LastModifiedDate".into(), json!(stamp));
        row.fields.insert("LastModifiedById".into(), json!(user_id));
        row.fields.insert("SystemModstamp".into(), json!(stamp));
        Ok(RecordChange {
            sobject: sobject_name,
            kind: if deleted {
                ChangeKind::Deleted
            } else {
                ChangeKind::Undeleted
            },
            record: row.fields.clone(),
            changed_fields: Vec::new(),
            user_id: user_id.to_string(),
            at: now,
        })
    }
}

fn entity_deleted_or_missing(sobject: &str) -> ApiError {
    ApiError::not_found(format!("The requested resource does not exist: {sobject}"))
}

fn base36(n: u32) -> char {
    std::char::from_digit(n, 36)
        .unwrap_or('0')
        .to_ascii_uppercase()
}

fn obj(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        _ => Record::new(),
    }
}

/// Compares an external-id value given as text or number with a stored one.
pub fn loosely_equal(stored: &Value, given: &Value) -> bool {
    match (stored, given) {
        (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a)) => {
            a.to_string() == *b
        }
        (a, b) => a == b,
    }
}

/// Checks input fields against the schema: canonical names, writable,
/// values of the right JSON type. Custom `__c` fields are added on first use.
fn checked_input(
    schema: &mut SObjectSchema,
    input: Record,
    creating: bool,
) -> Result<Record, ApiError> {
    let mut out = Record::new();
    let mut read_only = Vec::new();
    for (name, value) in input {
        if name == "attributes" {
            continue;
        }
        let canonical = match schema.field(&name) {
            Some(f) => f.name.clone(),
            None => schema.ensure_custom_field(&name, &value).ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_FIELD",
                    format!("No such column '{name}' on sobject of type {}", schema.name),
                )
                .with_fields(vec![name.clone()])
            })?,
        };
        let field = schema
            .field(&canonical)
            .cloned()
            .ok_or_else(|| ApiError::invalid_type(&schema.name))?;
        if field.read_only {
            read_only.push(canonical);
            continue;
        }
        check_value_type(&schema.name, &field.name, field.kind, &value)?;
        out.insert(canonical, value);
    }
    if !read_only.is_empty() {
        let verb = if creating { "create" } else { "update" };
        return Err(ApiError::bad_request(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to {verb} fields: {}. Please check the security settings of this field and verify that it is read/write for your user profile or permission set.",
                read_only.join(", ")
            ),
        )
        .with_fields(read_only));
    }
    Ok(out)
}

fn check_value_type(
    sobject: &str,
    field: &str,
    kind: FieldType,
    value: &Value,
) -> Result<(), ApiError> {
    let ok = match (kind, value) {
        (_, Value::Null) => true,
        (FieldType::Boolean, Value::Bool(_)) => true,
        (FieldType::Int | FieldType::Double | FieldType::Currency, Value::Number(_)) => true,
        (FieldType::Date, Value::String(s)) => {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
        }
        (FieldType::DateTime, Value::String(s)) => parse_datetime(s).is_some(),
        (FieldType::Id | FieldType::Reference, Value::String(s)) => ids::normalize(s).is_some(),
        (k, Value::String(_)) if k.is_text() => true,
        // Salesforce also accepts numbers and booleans sent as strings.
        (FieldType::Int | FieldType::Double | FieldType::Currency, Value::String(s)) => {
            s.parse::<f64>().is_ok()
        }
        (FieldType::Boolean, Value::String(s)) => s == "true" || s == "false",
        _ => false,
    };
    if ok {
        Ok(())
    } else if matches!(kind, FieldType::Id | FieldType::Reference) {
        Err(ApiError::bad_request(
            "MALFORMED_ID",
            format!("{field}: id value of incorrect type: {}", value_text(value)),
        )
        .with_fields(vec![field.to_string()]))
    } else {
        Err(ApiError::bad_request(
            "JSON_PARSER_ERROR",
            format!(
                "Cannot deserialize instance of {} from {} value {} or request may be missing a required field ({sobject}.{field})",
                kind.describe_name(),
                json_kind(value),
                value_text(value)
            ),
        ))
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
        Value::Null => "VALUE_NULL",
    }
}

/// Parses the datetime forms Salesforce accepts and emits.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn apply_defaults(schema: &SObjectSchema, fields: &mut Record, user_id: &str, auto_number: u64) {
    for f in &schema.fields {
        if f.kind == FieldType::Boolean && !fields.contains_key(&f.name) {
            let default = matches!(f.name.as_str(), "IsActive")
                || f.name.starts_with("NotifyForOperation") && f.name != "NotifyForOperations";
            fields.insert(f.name.clone(), json!(default));
        }
    }
    if schema.field("OwnerId").is_some() && fields.get("OwnerId").is_none_or(Value::is_null) {
        fields.insert("OwnerId".into(), json!(user_id));
    }
    if schema.field("CaseNumber").is_some() {
        fields.insert("CaseNumber".into(), json!(format!("{auto_number:08}")));
    }
    if schema.name == "PushTopic" {
        if fields.get("NotifyForFields").is_none_or(Value::is_null) {
            fields.insert("NotifyForFields".into(), json!("Referenced"));
        }
        fields.insert("NotifyForOperations".into(), json!("All"));
    }
    if schema.name == "StreamingChannel" {
        fields.entry("IsDynamic").or_insert(json!(false));
    }
    recompute_name(schema, fields);
}

/// Keeps compound `Name` (Contact, Lead, User) in step with First/LastName.
fn recompute_name(schema: &SObjectSchema, fields: &mut Record) {
    let compound =
        schema.field("Name").is_some_and(|f| f.read_only) && schema.field("LastName").is_some();
    if !compound {
        return;
    }
    let part = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = format!("{} {}", part("FirstName"), part("LastName"))
        .trim()
        .to_string();
    fields.insert("Name".into(), json!(name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> Record {
        obj(v)
    }

    #[test]
    fn seeded_org_has_user_and_record_types() {
        let store = Store::seeded("me@example.com");
        assert!(store.user_id.starts_with("005"));
        let users: Vec<_> = store.rows("User", false).collect();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0]["Username"], "me@example.com");
        assert!(store.rows("recordtype", false).count() >= 3);
    }

    #[test]
    fn create_update_delete_undelete_cycle() {
        let mut store = Store::seeded("me@example.com");
        let user = store.user_id.clone();
        let change = store
            .create(
                "contact",
                input(json!({"lastname": "Doe", "FirstName": "Jane"})),
                &user,
            )
            .expect("create");
        assert_eq!(change.kind, ChangeKind::Created);
        let id = change.record["Id"].as_str().expect("id").to_string();
        assert!(id.starts_with("003"));
        assert_eq!(change.record["Name"], "Jane Doe");
        assert_eq!(change.record["LastName"], "Doe");

        let change = store
            .update(
                "Contact",
                &id[..15],
                input(json!({"Email": "j@d.com", "LastName": "Doe"})),
                &user,
            )
            .expect("update");
        assert_eq!(change.changed_fields, vec!["Email".to_string()]);

        store.delete("Contact", &id, &user).expect("delete");
        assert!(store.get("Contact", &id, false).is_none());
        assert!(store.get("Contact", &id, true).is_some());
        assert!(store.delete("Contact", &id, &user).is_err());
        store.undelete("Contact", &id, &user).expect("undelete");
        assert!(store.get("Contact", &id, false).is_some());
    }

    #[test]
    fn input_errors_match_salesforce() {
        let mut store = Store::seeded("me@example.com");
        let user = store.user_id.clone();
        let missing = store
            .create("Contact", input(json!({"FirstName": "x"})), &user)
            .unwrap_err();
        assert_eq!(missing.code, "REQUIRED_FIELD_MISSING");
        assert_eq!(missing.message, "Required fields are missing: [LastName]");
        let bad = store
            .create("Contact", input(json!({"LastName": "x", "Nope": 1})), &user)
            .unwrap_err();
        assert_eq!(bad.code, "INVALID_FIELD");
        assert_eq!(
            bad.message,
            "No such column 'Nope' on sobject of type Contact"
        );
        let ro = store
            .create(
                "Contact",
                input(json!({"LastName": "x", "Name": "y"})),
                &user,
            )
            .unwrap_err();
        assert_eq!(ro.code, "INVALID_FIELD_FOR_INSERT_UPDATE");
        let unknown = store.create("Nope", input(json!({})), &user).unwrap_err();
        assert_eq!(unknown.code, "INVALID_TYPE");
    }

    #[test]
    fn custom_objects_and_fields_appear_on_first_use() {
        let mut store = Store::seeded("me@example.com");
        let user = store.user_id.clone();
        let change = store
            .create(
                "Invoice__c",
                input(json!({"Name": "INV-1", "Ext__c": "A1"})),
                &user,
            )
            .expect("create custom");
        assert!(
            change.record["Id"]
                .as_str()
                .is_some_and(|id| id.starts_with('a'))
        );
        assert_eq!(
            store
                .find_by_field("Invoice__c", "Ext__c", &json!("a1"))
                .len(),
            1
        );
    }
}
