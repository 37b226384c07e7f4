//! The PushTopic types: what to declare ([`PushTopicSpec`],
//! [`SobjectTopic`]), its notification rules, and what is stored or was done.

use std::fmt;

use serde_json::Value;

use super::analysis::{check_topic_name, check_topic_query, parse_version};
use crate::rest::Record;
use crate::rest::error::RestError;

/// The longest PushTopic name.
pub const MAX_TOPIC_NAME_LEN: usize = 25;

/// The longest PushTopic query.
pub const MAX_TOPIC_QUERY_LEN: usize = 1300;

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

impl NotifyForOperations {
    /// The PushTopic fields that hold the flags, in the order of
    /// [`flags`](Self::flags): the one place their names are spelled.
    pub(super) const FIELDS: [&'static str; 4] = [
        "NotifyForOperationCreate",
        "NotifyForOperationUpdate",
        "NotifyForOperationDelete",
        "NotifyForOperationUndelete",
    ];

    /// The flags, in the order of [`FIELDS`](Self::FIELDS).
    pub(super) fn flags(self) -> [bool; 4] {
        [self.create, self.update, self.delete, self.undelete]
    }

    /// The operations whose flags, in the order of [`FIELDS`](Self::FIELDS), are `flags`.
    pub(super) fn from_flags([create, update, delete, undelete]: [bool; 4]) -> Self {
        Self {
            create,
            update,
            delete,
            undelete,
        }
    }

    /// Each `NotifyForOperation*` field with its value.
    pub(super) fn fields(self) -> impl Iterator<Item = (&'static str, bool)> {
        Self::FIELDS.into_iter().zip(self.flags())
    }
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
    /// Reads a PushTopic record; `None` without an `Id` or `Name`.
    pub(super) fn parse(record: &Record) -> Option<Self> {
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
            notify_for_operations: NotifyForOperations::from_flags(
                NotifyForOperations::FIELDS.map(flag),
            ),
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
