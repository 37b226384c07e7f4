//! Composite resources: sObject collections (create, update, delete up to
//! 200 records per call) and composite batch (up to 25 subrequests).

use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::Record;
use super::client::{Call, SalesforceClient, api_name, record_id};
use super::error::RestError;

/// Most records (or ids) in one sObject collection call.
pub const MAX_COLLECTION_RECORDS: usize = 200;

/// Most subrequests in one composite batch.
pub const MAX_BATCH_REQUESTS: usize = 25;

/// The outcome of one record of an sObject collection call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionResult {
    /// The record's id (absent for a failed create).
    pub id: Option<String>,
    /// Whether the record was saved.
    pub success: bool,
    /// Why not.
    pub errors: Vec<RecordError>,
}

/// Why one record of a collection call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Salesforce's `statusCode`, e.g. `REQUIRED_FIELD_MISSING` or
    /// `ALL_OR_NONE_OPERATION_ROLLED_BACK`.
    pub status_code: String,
    /// The message.
    pub message: String,
    /// The fields concerned.
    pub fields: Vec<String>,
}

/// One subrequest of a composite batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    /// The HTTP method.
    pub method: Method,
    /// The resource, relative to `/services/data/vXX.X/`
    /// (`sobjects/Account/001…`, `query/?q=…`).
    pub url: String,
    /// The JSON body, if any.
    pub rich_input: Option<Value>,
}

impl BatchRequest {
    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            url: url.into(),
            rich_input: None,
        }
    }

    /// A `POST` of `body` to `url`.
    pub fn post(url: impl Into<String>, body: Value) -> Self {
        Self {
            method: Method::POST,
            url: url.into(),
            rich_input: Some(body),
        }
    }

    /// A `PATCH` of `body` to `url`.
    pub fn patch(url: impl Into<String>, body: Value) -> Self {
        Self {
            method: Method::PATCH,
            url: url.into(),
            rich_input: Some(body),
        }
    }

    /// A `DELETE` of `url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self {
            method: Method::DELETE,
            url: url.into(),
            rich_input: None,
        }
    }
}

/// The answer of a composite batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResponse {
    /// Whether any subrequest failed.
    pub has_errors: bool,
    /// One result per subrequest, in order.
    pub results: Vec<BatchResult>,
}

/// The answer of one subrequest.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    /// Its HTTP status.
    pub status_code: u16,
    /// Its body (`Null` when empty).
    pub result: Value,
}

fn parse_results(body: Value) -> Result<Vec<CollectionResult>, RestError> {
    let Value::Array(items) = body else {
        return Err(RestError::decode("sObject collection: expected an array"));
    };
    Ok(items
        .iter()
        .map(|item| CollectionResult {
            id: item.get("id").and_then(Value::as_str).map(str::to_string),
            success: item
                .get("success")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            errors: item
                .get("errors")
                .and_then(Value::as_array)
                .map(|errors| {
                    errors
                        .iter()
                        .map(|e| RecordError {
                            status_code: text(e, "statusCode"),
                            message: text(e, "message"),
                            fields: e
                                .get("fields")
                                .and_then(Value::as_array)
                                .map(|f| {
                                    f.iter()
                                        .filter_map(Value::as_str)
                                        .map(str::to_string)
                                        .collect()
                                })
                                .unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect())
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn check_count(n: usize) -> Result<(), RestError> {
    if n == 0 {
        return Err(RestError::invalid("no records given"));
    }
    if n > MAX_COLLECTION_RECORDS {
        return Err(RestError::invalid(format!(
            "{n} records given: an sObject collection call takes at most {MAX_COLLECTION_RECORDS}"
        )));
    }
    Ok(())
}

/// Serialises each record to a JSON object with `attributes.type` set.
fn typed_records<T: Serialize>(sobject: &str, records: &[T]) -> Result<Vec<Record>, RestError> {
    records
        .iter()
        .map(|record| {
            let value = serde_json::to_value(record)
                .map_err(|e| RestError::invalid(format!("a record cannot be serialised: {e}")))?;
            let Value::Object(fields) = value else {
                return Err(RestError::invalid(
                    "each record must serialise to a JSON object",
                ));
            };
            let mut out = Record::new();
            out.insert("attributes".into(), json!({"type": sobject}));
            out.extend(fields.into_iter().filter(|(k, _)| k != "attributes"));
            Ok(out)
        })
        .collect()
}

impl SalesforceClient {
    /// Creates up to 200 records of type `sobject` in one call
    /// (`POST composite/sobjects`). With `all_or_none`, either every
    /// record is saved or none is. Results come in the order of `records`.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use serde_json::json;
    /// use sfstream_salesforce::rest::SalesforceClient;
    /// # let org = sfstream_emulator::Emulator::start(Default::default()).await?;
    /// # let login = sfstream_testkit::emulator::authenticator(&org.url());
    /// let client = SalesforceClient::new(login);
    /// let accounts: Vec<_> = (0..3).map(|i| json!({"Name": format!("Account {i}")})).collect();
    /// let results = client.create_records("Account", &accounts, true).await?;
    /// let ids: Vec<String> = results.into_iter().filter_map(|r| r.id).collect();
    /// assert_eq!(ids.len(), 3);
    /// client.delete_records(&ids, false).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`RestError::InvalidArgument`] for no records or more than 200;
    /// per-record failures are in the results.
    pub async fn create_records<T: Serialize>(
        &self,
        sobject: &str,
        records: &[T],
        all_or_none: bool,
    ) -> Result<Vec<CollectionResult>, RestError> {
        let sobject = api_name("sobject", sobject)?;
        check_count(records.len())?;
        let records = typed_records(sobject, records)?;
        let call = Call::new(Method::POST, "composite/sobjects")
            .json(&json!({"allOrNone": all_or_none, "records": records}))?;
        parse_results(self.json(&call).await?)
    }

    /// Updates up to 200 records of type `sobject` in one call
    /// (`PATCH composite/sobjects`); each record carries its `Id`.
    ///
    /// # Errors
    ///
    /// [`RestError::InvalidArgument`] for no records, more than 200, or a
    /// record without `Id`; per-record failures are in the results.
    pub async fn update_records<T: Serialize>(
        &self,
        sobject: &str,
        records: &[T],
        all_or_none: bool,
    ) -> Result<Vec<CollectionResult>, RestError> {
        let sobject = api_name("sobject", sobject)?;
        check_count(records.len())?;
        let records = typed_records(sobject, records)?;
        if let Some(at) = records.iter().position(|r| {
            !r.iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("Id") && v.is_string())
        }) {
            return Err(RestError::invalid(format!("record {at} has no Id")));
        }
        let call = Call::new(Method::PATCH, "composite/sobjects")
            .json(&json!({"allOrNone": all_or_none, "records": records}))?;
        parse_results(self.json(&call).await?)
    }

    /// Deletes up to 200 records by id in one call
    /// (`DELETE composite/sobjects?ids=…`).
    ///
    /// # Errors
    ///
    /// [`RestError::InvalidArgument`] for no ids, more than 200 or a
    /// malformed id; per-record failures are in the results.
    pub async fn delete_records<S: AsRef<str>>(
        &self,
        ids: &[S],
        all_or_none: bool,
    ) -> Result<Vec<CollectionResult>, RestError> {
        check_count(ids.len())?;
        let ids = ids
            .iter()
            .map(|id| record_id(id.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let call = Call::new(Method::DELETE, "composite/sobjects")
            .query("ids", ids.join(","))
            .query("allOrNone", all_or_none.to_string());
        parse_results(self.json(&call).await?)
    }

    /// Runs up to 25 independent subrequests in one call
    /// (`POST composite/batch`). With `halt_on_error`, subrequests after
    /// the first failure are not run (status 412).
    ///
    /// # Errors
    ///
    /// [`RestError::InvalidArgument`] for no subrequests or more than 25;
    /// failures of subrequests are in the results.
    pub async fn batch(
        &self,
        requests: &[BatchRequest],
        halt_on_error: bool,
    ) -> Result<BatchResponse, RestError> {
        if requests.is_empty() || requests.len() > MAX_BATCH_REQUESTS {
            return Err(RestError::invalid(format!(
                "{} subrequests given: a composite batch takes 1 to {MAX_BATCH_REQUESTS}",
                requests.len()
            )));
        }
        let version = format!("v{}", self.api_version());
        let batch: Vec<Value> = requests
            .iter()
            .map(|r| {
                let url = r.url.trim_start_matches('/');
                let url = if let Some(rest) = url.strip_prefix("services/data/") {
                    rest.to_string()
                } else if url.starts_with(&format!("{version}/")) {
                    url.to_string()
                } else {
                    format!("{version}/{url}")
                };
                let mut sub = json!({"method": r.method.as_str(), "url": url});
                if let Some(input) = &r.rich_input {
                    sub["richInput"] = input.clone();
                }
                sub
            })
            .collect();
        let call = Call::new(Method::POST, "composite/batch")
            .json(&json!({"batchRequests": batch, "haltOnError": halt_on_error}))?;
        let body = self.json(&call).await?;
        let results = body
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| RestError::decode("composite batch: no results"))?
            .iter()
            .map(|r| BatchResult {
                status_code: r
                    .get("statusCode")
                    .and_then(Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(0),
                result: r.get("result").cloned().unwrap_or(Value::Null),
            })
            .collect();
        Ok(BatchResponse {
            has_errors: body
                .get("hasErrors")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            results,
        })
    }
}
