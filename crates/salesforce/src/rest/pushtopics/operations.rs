//! The PushTopic calls: declaring (create, or update only what differs),
//! declaring from an sobject type, reading, listing, deleting.

use serde_json::{Map, Value, json};

use super::analysis::{check_topic_name, parse_version};
use super::types::{
    DeclareOutcome, DeclaredTopic, NotifyForOperations, PushTopic, PushTopicSpec, SobjectTopic,
};
use crate::Credentials;
use crate::rest::client::{SalesforceClient, api_name, record_id};
use crate::rest::error::RestError;
use crate::rest::soql::{format_soql, quote};

impl SalesforceClient {
    /// Creates the topic, or updates it only when its query, notification
    /// rules (or, when given, API version or description) differ, or it is
    /// inactive. Safe when several replicas declare the same topic at
    /// once: a create that loses the race (`DUPLICATE_VALUE`) turns into an
    /// update-if-different of the winner's topic.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sfstream_salesforce::rest::{DeclareOutcome, NotifyForFields, PushTopicSpec, SalesforceClient};
    /// # let org = sfstream_emulator::Emulator::start(Default::default()).await?;
    /// # let login = sfstream_testkit::emulator::authenticator(&org.url());
    /// let client = SalesforceClient::new(login);
    /// let spec = PushTopicSpec::new("ContactNames", "SELECT Id, FirstName, LastName FROM Contact")
    ///     .notify_for_fields(NotifyForFields::Select);
    /// assert!(matches!(client.declare_topic(&spec).await?, DeclareOutcome::Created(_)));
    /// assert!(matches!(client.declare_topic(&spec).await?, DeclareOutcome::Unchanged(_)));
    /// // Subscribe to spec.channel() ("/topic/ContactNames") with the streaming client.
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`RestError::InvalidArgument`] for a bad name or query (checked
    /// before any call), [`RestError::MalformedRequest`] when Salesforce
    /// refuses the query, and as every call.
    pub async fn declare_topic(&self, spec: &PushTopicSpec) -> Result<DeclareOutcome, RestError> {
        spec.validate()?;
        if let Some(existing) = self.get_topic(&spec.name).await? {
            return self.update_if_different(spec, &existing).await;
        }
        let version = parse_version(spec.api_version.as_deref().unwrap_or(self.api_version()))?;
        let mut fields = json!({
            "Name": spec.name,
            "Query": spec.query,
            "ApiVersion": version,
            "IsActive": true,
        });
        if let Value::Object(map) = &mut fields {
            map.extend(rules(spec));
            if let Some(description) = &spec.description {
                map.insert("Description".into(), json!(description));
            }
        }
        match self.create("PushTopic", &fields).await {
            Ok(id) => {
                tracing::info!(topic = %spec.name, %id, "PushTopic created");
                Ok(DeclareOutcome::Created(id))
            }
            Err(error) if error.code() == Some("DUPLICATE_VALUE") => {
                // Another replica created it first.
                tracing::debug!(topic = %spec.name, "PushTopic created concurrently");
                match self.get_topic(&spec.name).await? {
                    Some(existing) => self.update_if_different(spec, &existing).await,
                    None => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn update_if_different(
        &self,
        spec: &PushTopicSpec,
        existing: &PushTopic,
    ) -> Result<DeclareOutcome, RestError> {
        let mut changes = Map::new();
        if existing.query != spec.query {
            changes.insert("Query".into(), json!(spec.query));
        }
        if existing.notify_for_fields != Some(spec.notify_for_fields) {
            changes.insert(
                "NotifyForFields".into(),
                json!(spec.notify_for_fields.as_str()),
            );
        }
        let have = existing.notify_for_operations.flags();
        for ((field, wanted), current) in spec.notify_for_operations.fields().zip(have) {
            if wanted != current {
                changes.insert(field.into(), json!(wanted));
            }
        }
        if let Some(version) = &spec.api_version {
            let version = parse_version(version)?;
            if existing
                .api_version
                .is_none_or(|v| (v - version).abs() > 1e-9)
            {
                changes.insert("ApiVersion".into(), json!(version));
            }
        }
        if let Some(description) = &spec.description
            && existing.description.as_deref() != Some(description.as_str())
        {
            changes.insert("Description".into(), json!(description));
        }
        if !existing.is_active {
            changes.insert("IsActive".into(), json!(true));
        }
        if changes.is_empty() {
            return Ok(DeclareOutcome::Unchanged(existing.id.clone()));
        }
        let changed: Vec<&String> = changes.keys().collect();
        tracing::info!(topic = %spec.name, ?changed, "PushTopic updated");
        self.update("PushTopic", &existing.id, &Value::Object(changes.clone()))
            .await?;
        Ok(DeclareOutcome::Updated(existing.id.clone()))
    }

    /// Declares a topic on changes to records of one sobject type, as the
    /// Nameko extension does (see [`SobjectTopic`]): describes the object
    /// (to select `Name` only when it has one and to check the extra
    /// fields), looks the record type and the current user up, then
    /// [declares](SalesforceClient::declare_topic) the topic.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sfstream_salesforce::rest::{SalesforceClient, SobjectTopic};
    /// # let org = sfstream_emulator::Emulator::start(Default::default()).await?;
    /// # let login = sfstream_testkit::emulator::authenticator(&org.url());
    /// let client = SalesforceClient::new(login);
    /// let topic = client
    ///     .declare_sobject_topic(&SobjectTopic::new("Contact").record_type("Student").extra_fields(["Email"]))
    ///     .await?;
    /// assert_eq!(topic.channel, "/topic/ContactStudent");
    /// assert!(topic.query.starts_with("SELECT Id, Name, LastModifiedById, LastModifiedDate, Email FROM Contact WHERE RecordTypeId = '012"));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`RestError::InvalidArgument`] for bad names, a name over 25
    /// characters, unknown extra fields, a missing record type or an
    /// unknown current user; and as [`SalesforceClient::declare_topic`].
    pub async fn declare_sobject_topic(
        &self,
        topic: &SobjectTopic,
    ) -> Result<DeclaredTopic, RestError> {
        let sobject = api_name("sobject", &topic.sobject_type)?;
        if let Some(record_type) = &topic.record_type {
            api_name("record type", record_type)?;
        }
        for field in &topic.extra_fields {
            api_name("field", field)?;
        }
        let name = topic.topic_name();
        check_topic_name(&name)?;

        let fields = self.field_names(sobject).await?;
        let has = |name: &str| fields.iter().any(|f| f.eq_ignore_ascii_case(name));
        let unknown: Vec<&String> = topic.extra_fields.iter().filter(|f| !has(f)).collect();
        if !unknown.is_empty() {
            return Err(RestError::invalid(format!(
                "{sobject} has no field {}",
                unknown
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut select: Vec<String> = vec!["Id".into()];
        if has("Name") {
            select.push("Name".into());
        }
        select.extend(["LastModifiedById".into(), "LastModifiedDate".into()]);
        for field in &topic.extra_fields {
            if !select.iter().any(|s| s.eq_ignore_ascii_case(field)) {
                select.push(field.clone());
            }
        }

        let mut conditions = Vec::new();
        if let Some(record_type) = &topic.record_type {
            if !has("RecordTypeId") {
                return Err(RestError::invalid(format!(
                    "{sobject} has no record types (no RecordTypeId field)"
                )));
            }
            let id = self.record_type_id(sobject, record_type).await?;
            conditions.push(format_soql("RecordTypeId = {}", &[&id])?);
        }
        if topic.exclude_current_user {
            let user = self.current_user_id().await?;
            conditions.push(format_soql("LastModifiedById != {}", &[&user])?);
        }
        let mut query = format!("SELECT {} FROM {sobject}", select.join(", "));
        if !conditions.is_empty() {
            query.push_str(" WHERE ");
            query.push_str(&conditions.join(" AND "));
        }
        let spec = PushTopicSpec::new(name.clone(), query.clone())
            .notify_for_fields(topic.notify_for_fields)
            .notify_for_operations(topic.notify_for_operations);
        let outcome = self.declare_topic(&spec).await?;
        Ok(DeclaredTopic {
            channel: spec.channel(),
            name,
            query,
            outcome,
        })
    }

    /// The id of the record type `developer_name` of `sobject`.
    async fn record_type_id(
        &self,
        sobject: &str,
        developer_name: &str,
    ) -> Result<String, RestError> {
        let soql = format_soql(
            "SELECT Id FROM RecordType WHERE SobjectType = {} AND DeveloperName = {}",
            &[&sobject, &developer_name],
        )?;
        self.first_id(&soql).await?.ok_or_else(|| {
            RestError::invalid(format!(
                "{sobject} has no record type whose DeveloperName is {developer_name}"
            ))
        })
    }

    /// The id of the user the client logs in as: from the session, or
    /// looked up by username.
    async fn current_user_id(&self) -> Result<String, RestError> {
        let session = self.session().await?;
        if let Some(id) = session.user_id.filter(|id| record_id(id).is_ok()) {
            return Ok(id);
        }
        let username = match self.authenticator().credentials() {
            Credentials::Password { username, .. }
            | Credentials::Soap { username, .. }
            | Credentials::JwtBearer { username, .. } => username.clone(),
            _ => {
                return Err(RestError::invalid(
                    "the current user is unknown (no user id in the session, no username in the credentials)",
                ));
            }
        };
        let soql = format_soql("SELECT Id FROM User WHERE Username = {}", &[&username])?;
        self.first_id(&soql)
            .await?
            .ok_or_else(|| RestError::invalid(format!("no user has the username {username}")))
    }

    /// The topic named `name` (names are case-sensitive), if any.
    ///
    /// # Errors
    ///
    /// As every call.
    pub async fn get_topic(&self, name: &str) -> Result<Option<PushTopic>, RestError> {
        let soql = format!(
            "SELECT {} FROM PushTopic WHERE Name = {}",
            topic_fields(),
            quote(name)
        );
        let records = self.query_collect(&soql).await?;
        Ok(records
            .iter()
            .filter_map(PushTopic::parse)
            .find(|t| t.name == name))
    }

    /// Every PushTopic, by name.
    ///
    /// # Errors
    ///
    /// As every call.
    pub async fn list_topics(&self) -> Result<Vec<PushTopic>, RestError> {
        let soql = format!("SELECT {} FROM PushTopic ORDER BY Name", topic_fields());
        let records = self.query_collect(&soql).await?;
        Ok(records.iter().filter_map(PushTopic::parse).collect())
    }

    /// Deletes the topic named `name`; returns whether there was one.
    ///
    /// # Errors
    ///
    /// As every call.
    pub async fn delete_topic(&self, name: &str) -> Result<bool, RestError> {
        match self.get_topic(name).await? {
            Some(topic) => match self.delete("PushTopic", &topic.id).await {
                Ok(()) => Ok(true),
                // Deleted concurrently.
                Err(RestError::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            },
            None => Ok(false),
        }
    }
}

/// The fields read from PushTopic records.
fn topic_fields() -> String {
    format!(
        "Id, Name, Query, ApiVersion, Description, IsActive, NotifyForFields, {}",
        NotifyForOperations::FIELDS.join(", ")
    )
}

/// The notification rule fields of a spec.
fn rules(spec: &PushTopicSpec) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(
        "NotifyForFields".into(),
        json!(spec.notify_for_fields.as_str()),
    );
    for (field, on) in spec.notify_for_operations.fields() {
        map.insert(field.into(), json!(on));
    }
    map
}
