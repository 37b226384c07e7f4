//! Platform event publishing and generic streaming pushes.

use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::client::{Call, SalesforceClient, api_name, record_id};
use super::error::RestError;
use super::soql::quote;

impl SalesforceClient {
    /// Publishes a platform event of type `event_type` (`Printer_Status__e`)
    /// with `fields`; returns the id Salesforce gave the publish.
    /// Subscribers receive it on `/event/<event_type>`.
    ///
    /// # Errors
    ///
    /// [`RestError::InvalidArgument`] when `event_type` does not end in
    /// `__e`, and as [`SalesforceClient::create`].
    pub async fn publish_event(
        &self,
        event_type: &str,
        fields: &impl Serialize,
    ) -> Result<String, RestError> {
        let event_type = api_name("platform event", event_type)?;
        if !event_type.to_ascii_lowercase().ends_with("__e") {
            return Err(RestError::invalid(format!(
                "{event_type} is not a platform event type (its name ends in __e)"
            )));
        }
        self.create(event_type, fields).await
    }

    /// Pushes generic streaming events, one per payload, to a
    /// StreamingChannel given by id (`0M6…`) or by name (`/u/Alerts`, looked
    /// up first). Returns how many subscribers they were delivered to (the
    /// sum of the `fanoutCount`s).
    ///
    /// # Errors
    ///
    /// [`RestError::NotFound`] when no channel has that name, and as every call.
    pub async fn push_generic<S: AsRef<str>>(
        &self,
        channel: &str,
        payloads: &[S],
    ) -> Result<u64, RestError> {
        if payloads.is_empty() {
            return Err(RestError::invalid("no payloads given"));
        }
        let id = if channel.starts_with('/') {
            let soql = format!(
                "SELECT Id FROM StreamingChannel WHERE Name = {}",
                quote(channel)
            );
            self.first_id(&soql)
                .await?
                .ok_or_else(|| RestError::NotFound {
                    code: "NOT_FOUND".into(),
                    message: format!("no StreamingChannel is named {channel}"),
                })?
        } else {
            record_id(channel)?.to_string()
        };
        let events: Vec<Value> = payloads
            .iter()
            .map(|p| json!({"payload": p.as_ref(), "userIds": []}))
            .collect();
        let call = Call::new(Method::POST, format!("sobjects/StreamingChannel/{id}/push"))
            .json(&json!({"pushEvents": events}))?;
        let body = self.json(&call).await?;
        let fanout = |v: &Value| v.get("fanoutCount").and_then(Value::as_u64).unwrap_or(0);
        Ok(match &body {
            Value::Array(items) => items.iter().map(fanout).sum(),
            other => fanout(other),
        })
    }
}
