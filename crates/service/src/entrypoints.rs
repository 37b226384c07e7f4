//! Salesforce entrypoints: what a handler is bound to.
//!
//! | Builder | Channel | Declares | The handler's first arguments |
//! |---|---|---|---|
//! | [`subscribe`]`("/topic/X")` | as given | nothing | [`Channel`](crate::Channel) |
//! | [`handle_notification`]`("Name")` | `/topic/Name` | the PushTopic, when a query is given | [`Name`](crate::Name) |
//! | [`handle_sobject_notification`]`("Contact")` | `/topic/Contact<RecordType>` | the PushTopic (unless `declare(false)`) | [`SobjectType`](crate::SobjectType), [`RecordType`](crate::RecordType) |
//! | [`change_events`]`("Account")` | `/data/AccountChangeEvent` | nothing (enable CDC in Setup) | [`SobjectType`](crate::SobjectType) |
//! | [`change_events_all`]`()` | `/data/ChangeEvents` | nothing | [`SobjectType`](crate::SobjectType) (from the event) |
//! | [`platform_event`]`("Order__e")` | `/event/Order__e` | nothing | [`Name`](crate::Name) |
//!
//! Handlers take whichever extractors they need, in any order; the table
//! says what [`Name`](crate::Name), [`SobjectType`](crate::SobjectType) and
//! [`RecordType`](crate::RecordType) mean for each entrypoint. One handler
//! bound to several entrypoints is *stacked*; several entrypoints on one
//! channel share one subscription and each event goes to every handler
//! bound to it.

use std::fmt;

use sfstream_salesforce::Transport;
use sfstream_salesforce::rest::{
    NotifyForFields, NotifyForOperations, PushTopicSpec, SobjectTopic,
};

/// A Salesforce entrypoint: one of the builders of this module, converted.
///
/// Arrays given to [`Service::handler`](crate::Service::handler) hold one
/// builder type; to stack different kinds, convert each with `.into()`:
///
/// ```
/// use sfstream_service::{Entrypoint, handle_notification, subscribe};
///
/// let stacked: [Entrypoint; 2] = [
///     subscribe("/topic/InvoiceStatementUpdates").into(),
///     handle_notification("ContactUpdates").query("SELECT Id, Name FROM Contact").into(),
/// ];
/// assert_eq!(stacked[1].channel(), "/topic/ContactUpdates");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entrypoint {
    /// See [`subscribe`].
    Subscribe(Subscribe),
    /// See [`handle_notification`].
    Notification(HandleNotification),
    /// See [`handle_sobject_notification`].
    Sobject(HandleSobjectNotification),
    /// See [`change_events`] and [`change_events_all`].
    ChangeEvents(ChangeEvents),
    /// See [`platform_event`].
    PlatformEvent(PlatformEvent),
}

impl Entrypoint {
    /// The Python extension's name of this kind of entrypoint
    /// (`handle_sobject_notification`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Entrypoint::Subscribe(_) => "subscribe",
            Entrypoint::Notification(_) => "handle_notification",
            Entrypoint::Sobject(_) => "handle_sobject_notification",
            Entrypoint::ChangeEvents(_) => "change_events",
            Entrypoint::PlatformEvent(_) => "platform_event",
        }
    }

    /// The channel subscribed to.
    pub fn channel(&self) -> String {
        match self {
            Entrypoint::Subscribe(s) => s.channel.clone(),
            Entrypoint::Notification(n) => format!("/topic/{}", n.name),
            Entrypoint::Sobject(s) => format!("/topic/{}", s.topic.topic_name()),
            Entrypoint::ChangeEvents(c) => c.channel(),
            Entrypoint::PlatformEvent(p) => format!("/event/{}", p.name),
        }
    }

    /// The transport this entrypoint asks for, if it chose one (else the
    /// config's `TRANSPORT` applies to change and platform events).
    pub fn transport(&self) -> Option<Transport> {
        match self {
            Entrypoint::ChangeEvents(c) => c.transport,
            Entrypoint::PlatformEvent(p) => p.transport,
            _ => None,
        }
    }

    /// The PushTopic this entrypoint declares at start, if any.
    pub fn push_topic(&self) -> Option<PushTopicSpec> {
        match self {
            Entrypoint::Notification(n) => n.spec(),
            _ => None,
        }
    }
}

impl fmt::Display for Entrypoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entrypoint::Subscribe(s) => write!(f, "subscribe({:?})", s.channel),
            Entrypoint::Notification(n) => write!(f, "handle_notification({:?})", n.name),
            Entrypoint::Sobject(s) => {
                write!(f, "handle_sobject_notification({:?}", s.topic.sobject_type)?;
                if let Some(record_type) = &s.topic.record_type {
                    write!(f, ", record_type={record_type:?}")?;
                }
                f.write_str(")")
            }
            Entrypoint::ChangeEvents(c) => match &c.sobject_type {
                Some(t) => write!(f, "change_events({t:?})"),
                None => f.write_str("change_events_all()"),
            },
            Entrypoint::PlatformEvent(p) => write!(f, "platform_event({:?})", p.name),
        }
    }
}

/// Subscribes to an existing channel (`/topic/X`, `/event/X__e`,
/// `/data/…`, `/u/X`): the extension's `subscribe`. The handler's
/// [`Channel`](crate::Channel) and [`Name`](crate::Name) are the channel.
///
/// ```
/// use sfstream_service::subscribe;
/// let entrypoint = subscribe("/topic/InvoiceStatementUpdates");
/// ```
pub fn subscribe(channel: impl Into<String>) -> Subscribe {
    Subscribe {
        channel: channel.into(),
    }
}

/// Built by [`subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The channel.
    pub channel: String,
}

/// Handles the notifications of the PushTopic `name` (channel
/// `/topic/<name>`), declaring it at start when a query is given: the
/// extension's `handle_notification`. If a topic of that name exists, it is
/// updated only when something differs. The handler's [`Name`](crate::Name)
/// is `name`.
///
/// ```
/// use sfstream_service::handle_notification;
/// use sfstream_salesforce::rest::NotifyForFields;
///
/// let entrypoint = handle_notification("ContactNameUpdated")
///     .query("SELECT Id, FirstName, LastName FROM Contact")
///     .notify_for_fields(NotifyForFields::Select)
///     .notify_for_operation_update(true)
///     .notify_for_operation_create(false)
///     .notify_for_operation_undelete(false)
///     .notify_for_operation_delete(false);
/// ```
pub fn handle_notification(name: impl Into<String>) -> HandleNotification {
    HandleNotification {
        name: name.into(),
        query: None,
        notify_for_fields: NotifyForFields::default(),
        notify_for_operations: NotifyForOperations::default(),
    }
}

/// Built by [`handle_notification`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleNotification {
    /// The topic's name.
    pub name: String,
    /// The query to declare the topic with (none: the topic must exist).
    pub query: Option<String>,
    /// Which field changes notify (default `Referenced`, Salesforce's).
    pub notify_for_fields: NotifyForFields,
    /// Which operations notify (default all).
    pub notify_for_operations: NotifyForOperations,
}

impl HandleNotification {
    /// Declares the topic with this query at start.
    #[must_use]
    pub fn query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// Which field changes notify.
    #[must_use]
    pub fn notify_for_fields(mut self, value: NotifyForFields) -> Self {
        self.notify_for_fields = value;
        self
    }

    /// Whether record creations notify (default true).
    #[must_use]
    pub fn notify_for_operation_create(mut self, value: bool) -> Self {
        self.notify_for_operations.create = value;
        self
    }

    /// Whether record updates notify (default true).
    #[must_use]
    pub fn notify_for_operation_update(mut self, value: bool) -> Self {
        self.notify_for_operations.update = value;
        self
    }

    /// Whether record deletions notify (default true).
    #[must_use]
    pub fn notify_for_operation_delete(mut self, value: bool) -> Self {
        self.notify_for_operations.delete = value;
        self
    }

    /// Whether record undeletions notify (default true).
    #[must_use]
    pub fn notify_for_operation_undelete(mut self, value: bool) -> Self {
        self.notify_for_operations.undelete = value;
        self
    }

    fn spec(&self) -> Option<PushTopicSpec> {
        let query = self.query.as_ref()?;
        Some(
            PushTopicSpec::new(self.name.clone(), query.clone())
                .notify_for_fields(self.notify_for_fields)
                .notify_for_operations(self.notify_for_operations),
        )
    }
}

/// Handles changes to records of `sobject_type`, declaring the topic
/// `<SObject><RecordType>` at start with the query the extension builds
/// (`SELECT Id[, Name], LastModifiedById, LastModifiedDate[, extra…] FROM
/// <SObject> [WHERE RecordTypeId = … AND LastModifiedById != <current user>]`,
/// `Name` only for objects that have one): the extension's
/// `handle_sobject_notification`. Defaults as the extension's: no record
/// type, changes by the current user excluded, `NotifyForFields` `All`,
/// every operation. The handler's [`SobjectType`](crate::SobjectType) and
/// [`RecordType`](crate::RecordType) are the ones given.
///
/// ```
/// use sfstream_service::handle_sobject_notification;
///
/// let students = handle_sobject_notification("Contact")
///     .record_type("Student")
///     .exclude_current_user(false)
///     .extra_fields(["Email"]);
/// ```
pub fn handle_sobject_notification(sobject_type: impl Into<String>) -> HandleSobjectNotification {
    HandleSobjectNotification {
        topic: SobjectTopic::new(sobject_type),
        declare: true,
    }
}

/// Built by [`handle_sobject_notification`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleSobjectNotification {
    /// The topic to declare.
    pub topic: SobjectTopic,
    /// Whether to declare it at start (default true).
    pub declare: bool,
}

impl HandleSobjectNotification {
    /// Only records of this record type (its `DeveloperName`).
    #[must_use]
    pub fn record_type(mut self, developer_name: impl Into<String>) -> Self {
        self.topic = self.topic.record_type(developer_name);
        self
    }

    /// Whether to leave out changes made by the user the service logs in
    /// as (default true, as in the extension).
    #[must_use]
    pub fn exclude_current_user(mut self, exclude: bool) -> Self {
        self.topic = self.topic.exclude_current_user(exclude);
        self
    }

    /// Whether to declare the topic at start (default true); when false,
    /// it must exist.
    #[must_use]
    pub fn declare(mut self, declare: bool) -> Self {
        self.declare = declare;
        self
    }

    /// Selects more fields.
    #[must_use]
    pub fn extra_fields<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.topic = self.topic.extra_fields(fields);
        self
    }

    /// Which field changes notify (default `All`).
    #[must_use]
    pub fn notify_for_fields(mut self, value: NotifyForFields) -> Self {
        self.topic = self.topic.notify_for_fields(value);
        self
    }

    /// Whether record creations notify (default true).
    #[must_use]
    pub fn notify_for_operation_create(mut self, value: bool) -> Self {
        self.topic.notify_for_operations.create = value;
        self
    }

    /// Whether record updates notify (default true).
    #[must_use]
    pub fn notify_for_operation_update(mut self, value: bool) -> Self {
        self.topic.notify_for_operations.update = value;
        self
    }

    /// Whether record deletions notify (default true).
    #[must_use]
    pub fn notify_for_operation_delete(mut self, value: bool) -> Self {
        self.topic.notify_for_operations.delete = value;
        self
    }

    /// Whether record undeletions notify (default true).
    #[must_use]
    pub fn notify_for_operation_undelete(mut self, value: bool) -> Self {
        self.topic.notify_for_operations.undelete = value;
        self
    }

    /// Names the topic `name` instead of `<SObject><RecordType>`.
    #[must_use]
    pub fn topic_name(mut self, name: impl Into<String>) -> Self {
        self.topic = self.topic.name(name);
        self
    }
}

/// Handles Change Data Capture events of one object:
/// `/data/<Object>ChangeEvent` (`/data/<Name>__ChangeEvent` for a custom
/// `<Name>__c`). Beyond the extension. Enable the object for CDC in
/// Setup. The handler's [`SobjectType`](crate::SobjectType) is the object.
///
/// ```
/// use sfstream_service::{change_events, Entrypoint};
/// let accounts: Entrypoint = change_events("Account").into();
/// assert_eq!(accounts.channel(), "/data/AccountChangeEvent");
/// let invoices: Entrypoint = change_events("Invoice__c").into();
/// assert_eq!(invoices.channel(), "/data/Invoice__ChangeEvent");
/// ```
pub fn change_events(sobject_type: impl Into<String>) -> ChangeEvents {
    ChangeEvents {
        sobject_type: Some(sobject_type.into()),
        transport: None,
    }
}

/// Handles every Change Data Capture event: `/data/ChangeEvents`. The
/// handler's [`SobjectType`](crate::SobjectType) is each event's
/// `entityName`.
pub fn change_events_all() -> ChangeEvents {
    ChangeEvents {
        sobject_type: None,
        transport: None,
    }
}

/// Built by [`change_events`] and [`change_events_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvents {
    /// The object, or `None` for every one.
    pub sobject_type: Option<String>,
    /// The transport, when this entrypoint chooses its own.
    pub transport: Option<Transport>,
}

impl ChangeEvents {
    /// Streams these events over `transport` whatever the config's
    /// `TRANSPORT` says.
    ///
    /// ```
    /// use sfstream_service::{change_events, Entrypoint};
    /// use sfstream_salesforce::Transport;
    /// let accounts: Entrypoint = change_events("Account").transport(Transport::PubSub).into();
    /// assert_eq!(accounts.transport(), Some(Transport::PubSub));
    /// ```
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    fn channel(&self) -> String {
        match &self.sobject_type {
            None => "/data/ChangeEvents".into(),
            Some(t) => match t.strip_suffix("__c") {
                Some(custom) => format!("/data/{custom}__ChangeEvent"),
                None => format!("/data/{t}ChangeEvent"),
            },
        }
    }
}

/// Handles the platform event `name` (`Order__e`): `/event/<name>`.
/// Beyond the extension. The handler's [`Name`](crate::Name) is `name`.
///
/// ```
/// use sfstream_service::platform_event;
/// let orders = platform_event("Order__e");
/// ```
pub fn platform_event(name: impl Into<String>) -> PlatformEvent {
    PlatformEvent {
        name: name.into(),
        transport: None,
    }
}

/// Built by [`platform_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformEvent {
    /// The event's API name.
    pub name: String,
    /// The transport, when this entrypoint chooses its own.
    pub transport: Option<Transport>,
}

impl PlatformEvent {
    /// Streams these events over `transport` whatever the config's
    /// `TRANSPORT` says.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }
}

macro_rules! into_entrypoint {
    ($($ty:ident => $variant:ident),*) => {$(
        impl From<$ty> for Entrypoint {
            fn from(value: $ty) -> Self {
                Entrypoint::$variant(value)
            }
        }
    )*};
}

into_entrypoint!(
    Subscribe => Subscribe,
    HandleNotification => Notification,
    HandleSobjectNotification => Sobject,
    ChangeEvents => ChangeEvents,
    PlatformEvent => PlatformEvent
);

/// An entrypoint resolved at start: its channel and what the extractors
/// give the handler.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Binding {
    /// The entrypoint.
    pub entrypoint: Entrypoint,
    /// The channel subscribed to.
    pub channel: String,
    /// What [`Name`](crate::Name) gives: the topic, event or channel name.
    pub name: String,
    /// What [`SobjectType`](crate::SobjectType) gives, when fixed.
    pub sobject_type: Option<String>,
    /// What [`RecordType`](crate::RecordType) gives.
    pub record_type: Option<String>,
}

impl Binding {
    /// The binding of `entrypoint`, on `channel`.
    pub(crate) fn new(entrypoint: Entrypoint, channel: String) -> Self {
        let (name, sobject_type, record_type) = match &entrypoint {
            Entrypoint::Subscribe(s) => (s.channel.clone(), None, None),
            Entrypoint::Notification(n) => (n.name.clone(), None, None),
            Entrypoint::Sobject(s) => (
                s.topic.topic_name(),
                Some(s.topic.sobject_type.clone()),
                s.topic.record_type.clone(),
            ),
            Entrypoint::ChangeEvents(c) => (
                channel.trim_start_matches("/data/").to_string(),
                c.sobject_type.clone(),
                None,
            ),
            Entrypoint::PlatformEvent(p) => (p.name.clone(), None, None),
        };
        Self {
            entrypoint,
            channel,
            name,
            sobject_type,
            record_type,
        }
    }
}
