//! PushTopic declarations, as the Python Nameko extension makes them at
//! start-up, done safely: names and queries checked before any call, every
//! value escaped, a topic updated only when something differs, and two
//! replicas declaring the same topic at once ending with one topic.

use std::fmt;

use serde_json::{Map, Value, json};

use super::Record;
use super::client::{SalesforceClient, api_name, record_id};
use super::error::RestError;
use super::soql::format_soql;
use crate::Credentials;

/// The longest PushTopic name.
pub const MAX_TOPIC_NAME_LEN: usize = 25;

/// The longest PushTopic query.
pub const MAX_TOPIC_QUERY_LEN: usize = 1300;

/// The fields read from PushTopic records.
const TOPIC_FIELDS: &str = "Id, Name, Query, ApiVersion, Description, IsActive, NotifyForFields, \
    NotifyForOperationCreate, NotifyForOperationUpdate, NotifyForOperationDelete, \
    NotifyForOperationUndelete";

/// Which field changes of an updated record notify a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum NotifyForFields {
    /// Any change (when the WHERE clause matches).
    All,
    /// A change to a field of the SELECT or WHERE clause (Salesforce's default).
    #[default]
    Referenced,
    /// A change to a field of the SELECT clause.
    Select,
    /// A change to a field of the WHERE clause.
    Where,
}

impl NotifyForFields {
    /// The picklist value: `All`, `Referenced`, `Select` or `Where`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyForFields::All => "All",
            NotifyForFields::Referenced => "Referenced",
            NotifyForFields::Select => "Select",
            NotifyForFields::Where => "Where",
        }
    }

    /// Parses a picklist value (any case).
    pub fn parse(text: &str) -> Option<Self> {
        [Self::All, Self::Referenced, Self::Select, Self::Where]
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for NotifyForFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which operations notify a topic (`NotifyForOperation*`); all by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotifyForOperations {
    /// Record creations.
    pub create: bool,
    /// Record updates.
    pub update: bool,
    /// Record deletions.
    pub delete: bool,
    /// Record undeletions.
    pub undelete: bool,
}

impl Default for NotifyForOperations {
    fn default() -> Self {
        Self {
            create: true,
            update: true,
            delete: true,
            undelete: true,
        }
    }
}

/// A PushTopic to declare: its name, query and notification rules.
///
/// Defaults: `NotifyForFields` `Referenced` (Salesforce's default), every
/// operation notifies, the client's API version, no description.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushTopicSpec {
    /// The name (≤ 25 letters, digits, underscores); the channel is
    /// `/topic/<name>`.
    pub name: String,
    /// The SOQL query (`SELECT Id, … FROM …`).
    pub query: String,
    /// Which field changes notify.
    pub notify_for_fields: NotifyForFields,
    /// Which operations notify.
    pub notify_for_operations: NotifyForOperations,
    /// The API version of the topic (`62.0`); the client's when `None`. An
    /// existing topic's version is only compared when this is set.
    pub api_version: Option<String>,
    /// The description; an existing topic's is only compared when set.
    pub description: Option<String>,
}

impl PushTopicSpec {
    /// A topic `name` for `query`, with the defaults.
    pub fn new(name: impl Into<String>, query: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            query: query.into(),
            notify_for_fields: NotifyForFields::default(),
            notify_for_operations: NotifyForOperations::default(),
            api_version: None,
            description: None,
        }
    }

    /// Sets which field changes notify.
    #[must_use]
    pub fn notify_for_fields(mut self, value: NotifyForFields) -> Self {
        self.notify_for_fields = value;
        self
    }

    /// Sets which operations notify.
    #[must_use]
    pub fn notify_for_operations(mut self, value: NotifyForOperations) -> Self {
        self.notify_for_operations = value;
        self
    }

    /// Sets the topic's API version.
    #[must_use]
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The streaming channel, `/topic/<name>`.
    pub fn channel(&self) -> String {
        format!("/topic/{}", self.name)
    }

    /// Checks the name, the query's basic shape and the API version
    /// without calling Salesforce (which checks the query fully).
    ///
    /// # Errors
    ///
    /// [`RestError::InvalidArgument`] saying what is wrong.
    pub fn validate(&self) -> Result<(), RestError> {
        check_topic_name(&self.name)?;
        check_topic_query(&self.query)?;
        if let Some(version) = &self.api_version {
            parse_version(version)?;
        }
        Ok(())
    }
}

/// What declaring a topic did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclareOutcome {
    /// The topic did not exist and was created; its id.
    Created(String),
    /// The topic existed with other settings and was updated; its id.
    Updated(String),
    /// The topic existed as declared; its id.
    Unchanged(String),
}

impl DeclareOutcome {
    /// The topic's id.
    pub fn id(&self) -> &str {
        match self {
            DeclareOutcome::Created(id)
            | DeclareOutcome::Updated(id)
            | DeclareOutcome::Unchanged(id) => id,
        }
    }
}

/// A PushTopic as stored.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PushTopic {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its query.
    pub query: String,
    /// Its API version.
    pub api_version: Option<f64>,
    /// Its description.
    pub description: Option<String>,
    /// Whether it is active.
    pub is_active: bool,
    /// Which field changes notify (`None` if unrecognised).
    pub notify_for_fields: Option<NotifyForFields>,
    /// Which operations notify.
    pub notify_for_operations: NotifyForOperations,
}

impl PushTopic {
    fn parse(record: &Record) -> Option<Self> {
        let text = |k: &str| record.get(k).and_then(Value::as_str).map(str::to_string);
        let flag = |k: &str| record.get(k).and_then(Value::as_bool).unwrap_or(true);
        Some(Self {
            id: text("Id")?,
            name: text("Name")?,
            query: text("Query").unwrap_or_default(),
            api_version: record.get("ApiVersion").and_then(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }),
            description: text("Description"),
            is_active: flag("IsActive"),
            notify_for_fields: text("NotifyForFields").and_then(|t| NotifyForFields::parse(&t)),
            notify_for_operations: NotifyForOperations {
                create: flag("NotifyForOperationCreate"),
                update: flag("NotifyForOperationUpdate"),
                delete: flag("NotifyForOperationDelete"),
                undelete: flag("NotifyForOperationUndelete"),
            },
        })
    }

    /// The streaming channel, `/topic/<name>`.
    pub fn channel(&self) -> String {
        format!("/topic/{}", self.name)
    }
}

/// A topic on changes to records of one sobject type, as the Nameko
/// extension's `handle_sobject_notification` declares it:
/// `SELECT Id[, Name], LastModifiedById, LastModifiedDate[, extra…] FROM
/// <SObject> [WHERE RecordTypeId = '<id>' AND LastModifiedById != '<user id>']`,
/// named `<SObject><RecordType>`.
///
/// `Name` is selected only when the object has one (Task and Case do
/// not). Defaults, as in the Nameko extension: no record type, changes by
/// the current user excluded, `NotifyForFields` `All`, every operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SobjectTopic {
    /// The sobject type, e.g. `Contact`.
    pub sobject_type: String,
    /// The record type's `DeveloperName`, e.g. `Student`.
    pub record_type: Option<String>,
    /// Leave out changes made by the user the client logs in as (to avoid
    /// handling one's own writes).
    pub exclude_current_user: bool,
    /// More fields to select.
    pub extra_fields: Vec<String>,
    /// Which field changes notify.
    pub notify_for_fields: NotifyForFields,
    /// Which operations notify.
    pub notify_for_operations: NotifyForOperations,
    /// A name instead of `<SObject><RecordType>`.
    pub name: Option<String>,
}

impl SobjectTopic {
    /// A topic on `sobject_type`, with the defaults.
    pub fn new(sobject_type: impl Into<String>) -> Self {
        Self {
            sobject_type: sobject_type.into(),
            record_type: None,
            exclude_current_user: true,
            extra_fields: Vec::new(),
            notify_for_fields: NotifyForFields::All,
            notify_for_operations: NotifyForOperations::default(),
            name: None,
        }
    }

    /// Only records of this record type (its `DeveloperName`).
    #[must_use]
    pub fn record_type(mut self, developer_name: impl Into<String>) -> Self {
        self.record_type = Some(developer_name.into());
        self
    }

    /// Whether to leave out changes by the current user (default true).
    #[must_use]
    pub fn exclude_current_user(mut self, exclude: bool) -> Self {
        self.exclude_current_user = exclude;
        self
    }

    /// Selects more fields.
    #[must_use]
    pub fn extra_fields<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.extra_fields.extend(fields.into_iter().map(Into::into));
        self
    }

    /// Sets which field changes notify.
    #[must_use]
    pub fn notify_for_fields(mut self, value: NotifyForFields) -> Self {
        self.notify_for_fields = value;
        self
    }

    /// Sets which operations notify.
    #[must_use]
    pub fn notify_for_operations(mut self, value: NotifyForOperations) -> Self {
        self.notify_for_operations = value;
        self
    }

    /// Names the topic `name` instead of `<SObject><RecordType>`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The topic's name: the one given, or `<SObject><RecordType>`.
    pub fn topic_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            format!(
                "{}{}",
                self.sobject_type,
                self.record_type.as_deref().unwrap_or("")
            )
        })
    }
}

/// A declared sobject topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeclaredTopic {
    /// The topic's name.
    pub name: String,
    /// Its channel, `/topic/<name>`.
    pub channel: String,
    /// The query it was declared with.
    pub query: String,
    /// What declaring it did.
    pub outcome: DeclareOutcome,
}

/// Checks a topic name: 1 to 25 letters, digits and underscores.
fn check_topic_name(name: &str) -> Result<(), RestError> {
    if name.is_empty() {
        return Err(RestError::invalid("a PushTopic name cannot be empty"));
    }
    let len = name.chars().count();
    if len > MAX_TOPIC_NAME_LEN {
        return Err(RestError::invalid(format!(
            "PushTopic name {name:?} is {len} characters long; at most {MAX_TOPIC_NAME_LEN} are allowed"
        )));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(RestError::invalid(format!(
            "PushTopic name {name:?} may only contain letters, digits and underscores"
        )));
    }
    Ok(())
}

/// The words of a query outside string literals, upper-cased, and whether
/// each is followed by a comma.
fn query_words(query: &str) -> Result<Vec<String>, RestError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut chars = query.chars();
    let flush = |current: &mut String, words: &mut Vec<String>| {
        if !current.is_empty() {
            words.push(std::mem::take(current).to_ascii_uppercase());
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                flush(&mut current, &mut words);
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '\'' => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                if !closed {
                    return Err(RestError::invalid(
                        "the PushTopic query has an unterminated string literal",
                    ));
                }
                words.push("'".into());
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => current.push(c),
            ',' => {
                flush(&mut current, &mut words);
                words.push(",".into());
            }
            _ => flush(&mut current, &mut words),
        }
    }
    flush(&mut current, &mut words);
    Ok(words)
}

/// Checks a topic query's basic shape: `SELECT … Id … FROM Object`, no
/// `LIMIT`, `ORDER BY`, `OFFSET` or `GROUP BY`, at most 1,300 characters.
fn check_topic_query(query: &str) -> Result<(), RestError> {
    let len = query.chars().count();
    if len > MAX_TOPIC_QUERY_LEN {
        return Err(RestError::invalid(format!(
            "the PushTopic query is {len} characters long; at most {MAX_TOPIC_QUERY_LEN} are allowed"
        )));
    }
    let words = query_words(query)?;
    if words.first().map(String::as_str) != Some("SELECT") {
        return Err(RestError::invalid(
            "a PushTopic query must start with SELECT",
        ));
    }
    let from = words
        .iter()
        .position(|w| w == "FROM")
        .ok_or_else(|| RestError::invalid("a PushTopic query needs a FROM clause"))?;
    if !words[1..from].iter().any(|w| w == "ID") {
        return Err(RestError::invalid(
            "a PushTopic query must select Id (SELECT Id, … FROM …)",
        ));
    }
    if !words
        .get(from + 1)
        .is_some_and(|w| w.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
    {
        return Err(RestError::invalid(
            "a PushTopic query must name one object after FROM",
        ));
    }
    for (at, word) in words.iter().enumerate() {
        let next_is_by = words.get(at + 1).is_some_and(|w| w == "BY");
        let refused = match word.as_str() {
            "LIMIT" => Some("LIMIT"),
            "OFFSET" => Some("OFFSET"),
            "ORDER" if next_is_by => Some("ORDER BY"),
            "GROUP" if next_is_by => Some("GROUP BY"),
            _ => None,
        };
        if let Some(clause) = refused {
            return Err(RestError::invalid(format!(
                "PushTopic queries cannot use {clause}"
            )));
        }
    }
    Ok(())
}

/// An API version as the number `ApiVersion` holds.
fn parse_version(version: &str) -> Result<f64, RestError> {
    let trimmed = version.trim().trim_start_matches(['v', 'V']);
    trimmed
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && trimmed.contains('.'))
        .ok_or_else(|| {
            RestError::invalid(format!(
                "{version:?} is not an API version such as \"62.0\""
            ))
        })
}

impl SalesforceClient {
    /// Creates the topic, or updates it only when its query, notification
    /// rules (or, when given, API version or description) differ, or it is
    /// inactive. Safe when several replicas declare the same topic at
    /// once: a create that loses the race (`DUPLICATE_VALUE`) turns into an
    /// update-if-different of the winner's topic.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use sfstream_salesforce::{Authenticator, Credentials, LoginUrl, Secret};
    /// use sfstream_salesforce::rest::{DeclareOutcome, NotifyForFields, PushTopicSpec, SalesforceClient};
    /// # let org = sfstream_emulator::Emulator::start(Default::default()).await?;
    /// # let login = Authenticator::new(Credentials::password("emulator@example.com", "password",
    /// #     Some(Secret::new("token")), "emulator-consumer-key", "emulator-consumer-secret"))
    /// #     .with_login_url(LoginUrl::parse(&org.url())?);
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
        let ops = spec.notify_for_operations;
        let have = existing.notify_for_operations;
        for (field, wanted, current) in [
            ("NotifyForOperationCreate", ops.create, have.create),
            ("NotifyForOperationUpdate", ops.update, have.update),
            ("NotifyForOperationDelete", ops.delete, have.delete),
            ("NotifyForOperationUndelete", ops.undelete, have.undelete),
        ] {
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
    /// # use sfstream_salesforce::{Authenticator, Credentials, LoginUrl, Secret};
    /// use sfstream_salesforce::rest::{SalesforceClient, SobjectTopic};
    /// # let org = sfstream_emulator::Emulator::start(Default::default()).await?;
    /// # let login = Authenticator::new(Credentials::password("emulator@example.com", "password",
    /// #     Some(Secret::new("token")), "emulator-consumer-key", "emulator-consumer-secret"))
    /// #     .with_login_url(LoginUrl::parse(&org.url())?);
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
        let page = self.query_page(&soql).await?;
        page.records
            .first()
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
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
        let page = self.query_page(&soql).await?;
        page.records
            .first()
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| RestError::invalid(format!("no user has the username {username}")))
    }

    /// The topic named `name` (names are case-sensitive), if any.
    ///
    /// # Errors
    ///
    /// As every call.
    pub async fn get_topic(&self, name: &str) -> Result<Option<PushTopic>, RestError> {
        let soql = format!(
            "SELECT {TOPIC_FIELDS} FROM PushTopic WHERE Name = {}",
            super::soql::quote(name)
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
        let soql = format!("SELECT {TOPIC_FIELDS} FROM PushTopic ORDER BY Name");
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

/// The notification rule fields of a spec.
fn rules(spec: &PushTopicSpec) -> Map<String, Value> {
    let ops = spec.notify_for_operations;
    let mut map = Map::new();
    map.insert(
        "NotifyForFields".into(),
        json!(spec.notify_for_fields.as_str()),
    );
    map.insert("NotifyForOperationCreate".into(), json!(ops.create));
    map.insert("NotifyForOperationUpdate".into(), json!(ops.update));
    map.insert("NotifyForOperationDelete".into(), json!(ops.delete));
    map.insert("NotifyForOperationUndelete".into(), json!(ops.undelete));
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_topic_name("ContactStudent").is_ok());
        assert!(check_topic_name(&"x".repeat(25)).is_ok());
        for bad in ["", "has space", "dash-ed", "quote'", &"x".repeat(26)] {
            assert!(check_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queries() {
        for ok in [
            "SELECT Id FROM Contact",
            "select id, Name from Contact where Name = 'limit order by'",
            "SELECT Id, Email FROM Contact WHERE Email LIKE '%\\'x'",
        ] {
            assert!(check_topic_query(ok).is_ok(), "{ok}");
        }
        for bad in [
            "DELETE FROM Contact",
            "SELECT Name FROM Contact",
            "SELECT Id Contact",
            "SELECT Id FROM Contact LIMIT 5",
            "SELECT Id FROM Contact ORDER BY Name",
            "SELECT Id FROM Contact OFFSET 1",
            "SELECT Id FROM Contact WHERE Name = 'open",
            "SELECT Id FROM ",
        ] {
            assert!(check_topic_query(bad).is_err(), "{bad}");
        }
        assert!(
            check_topic_query(&format!(
                "SELECT Id FROM Contact WHERE Name = '{}'",
                "x".repeat(1300)
            ))
            .is_err()
        );
    }

    #[test]
    fn versions_and_defaults() {
        assert_eq!(parse_version("62.0").ok(), Some(62.0));
        assert_eq!(parse_version("v61.0").ok(), Some(61.0));
        assert!(parse_version("62").is_err());
        assert!(parse_version("abc").is_err());
        let spec = PushTopicSpec::new("A", "SELECT Id FROM Contact");
        assert_eq!(spec.notify_for_fields, NotifyForFields::Referenced);
        assert_eq!(spec.channel(), "/topic/A");
        let topic = SobjectTopic::new("Contact").record_type("Student");
        assert_eq!(topic.topic_name(), "ContactStudent");
        assert!(topic.exclude_current_user);
        assert_eq!(
            NotifyForFields::parse("where"),
            Some(NotifyForFields::Where)
        );
    }
}
