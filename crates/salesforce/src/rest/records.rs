//! Records: create, get, update, upsert, delete and get by external id;
//! describe and global describe.

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use super::Record;
use super::client::{Call, SalesforceClient, api_name, record_id, segment};
use super::error::RestError;

/// What an upsert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertOutcome {
    /// The record's id.
    pub id: String,
    /// Whether the record was created (`false`: an existing one was updated).
    pub created: bool,
}

/// The JSON object of an answer.
pub(crate) fn object(value: Value, what: &str) -> Result<Record, RestError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(RestError::decode(format!(
            "{what}: expected a JSON object, got {}",
            kind(&other)
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `id` of a create or upsert answer.
fn id_of(body: &Value, what: &str) -> Result<String, RestError> {
    body.get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| RestError::decode(format!("{what}: the answer has no id")))
}

impl SalesforceClient {
    /// Creates a record of type `sobject` with `fields` (any value that
    /// serialises to a JSON object, such as `json!({...})` or a struct);
    /// returns its id.
    ///
    /// # Errors
    ///
    /// [`RestError::MalformedRequest`] for missing or invalid fields
    /// (`REQUIRED_FIELD_MISSING`, `INVALID_FIELD`, …), and as every call.
    pub async fn create(
        &self,
        sobject: &str,
        fields: &impl Serialize,
    ) -> Result<String, RestError> {
        let sobject = api_name("sobject", sobject)?;
        let call = Call::new(Method::POST, format!("sobjects/{sobject}")).json(fields)?;
        id_of(&self.json(&call).await?, "create")
    }

    /// A record by id, with all its fields, or only `fields` (plus `Id`).
    ///
    /// # Errors
    ///
    /// [`RestError::NotFound`] when there is no such record, and as every call.
    pub async fn get(
        &self,
        sobject: &str,
        id: &str,
        fields: Option<&[&str]>,
    ) -> Result<Record, RestError> {
        let sobject = api_name("sobject", sobject)?;
        let id = record_id(id)?;
        let mut call = Call::get(format!("sobjects/{sobject}/{id}"));
        if let Some(fields) = fields {
            for field in fields {
                api_name("field", field)?;
            }
            call = call.query("fields", fields.join(","));
        }
        object(self.json(&call).await?, "get")
    }

    /// Updates the given fields of a record.
    ///
    /// # Errors
    ///
    /// [`RestError::NotFound`], [`RestError::MalformedRequest`], and as every call.
    pub async fn update(
        &self,
        sobject: &str,
        id: &str,
        fields: &impl Serialize,
    ) -> Result<(), RestError> {
        let sobject = api_name("sobject", sobject)?;
        let id = record_id(id)?;
        let call = Call::new(Method::PATCH, format!("sobjects/{sobject}/{id}")).json(fields)?;
        self.call(&call).await.map(drop)
    }

    /// Creates or updates the record whose external id field `field` is
    /// `value`.
    ///
    /// # Errors
    ///
    /// [`RestError::MoreThanOneRecord`] when several records have that
    /// value, and as every call.
    pub async fn upsert(
        &self,
        sobject: &str,
        field: &str,
        value: &str,
        fields: &impl Serialize,
    ) -> Result<UpsertOutcome, RestError> {
        let sobject = api_name("sobject", sobject)?;
        let field = api_name("field", field)?;
        let value = segment(value)?;
        let call =
            Call::new(Method::PATCH, format!("sobjects/{sobject}/{field}/{value}")).json(fields)?;
        let reply = self.call(&call).await?;
        Ok(UpsertOutcome {
            id: id_of(&reply.body, "upsert")?,
            created: reply
                .body
                .get("created")
                .and_then(Value::as_bool)
                .unwrap_or(reply.status == 201),
        })
    }

    /// Deletes a record (to the recycle bin).
    ///
    /// # Errors
    ///
    /// [`RestError::NotFound`] when there is no such (live) record, and as
    /// every call.
    pub async fn delete(&self, sobject: &str, id: &str) -> Result<(), RestError> {
        let sobject = api_name("sobject", sobject)?;
        let id = record_id(id)?;
        let call = Call::new(Method::DELETE, format!("sobjects/{sobject}/{id}"));
        self.call(&call).await.map(drop)
    }

    /// The record whose external id field `field` is `value`.
    ///
    /// # Errors
    ///
    /// [`RestError::NotFound`], [`RestError::MoreThanOneRecord`], and as
    /// every call.
    pub async fn get_by_external_id(
        &self,
        sobject: &str,
        field: &str,
        value: &str,
    ) -> Result<Record, RestError> {
        let sobject = api_name("sobject", sobject)?;
        let field = api_name("field", field)?;
        let value = segment(value)?;
        let call = Call::get(format!("sobjects/{sobject}/{field}/{value}"));
        object(self.json(&call).await?, "get by external id")
    }

    /// The describe document of `sobject` (`fields`, `recordTypeInfos`, …).
    ///
    /// # Errors
    ///
    /// [`RestError::NotFound`] for an unknown type, and as every call.
    pub async fn describe(&self, sobject: &str) -> Result<Record, RestError> {
        let sobject = api_name("sobject", sobject)?;
        let call = Call::get(format!("sobjects/{sobject}/describe"));
        object(self.json(&call).await?, "describe")
    }

    /// The names of the fields of `sobject`, from its describe.
    ///
    /// # Errors
    ///
    /// As [`SalesforceClient::describe`].
    pub async fn field_names(&self, sobject: &str) -> Result<Vec<String>, RestError> {
        let describe = self.describe(sobject).await?;
        Ok(describe
            .get("fields")
            .and_then(Value::as_array)
            .map(|fields| {
                fields
                    .iter()
                    .filter_map(|f| f.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The global describe (`sobjects/`): `encoding`, `maxBatchSize` and
    /// the summary of every sobject type.
    ///
    /// # Errors
    ///
    /// As every call.
    pub async fn describe_global(&self) -> Result<Record, RestError> {
        object(self.json(&Call::get("sobjects")).await?, "global describe")
    }
}
