//! Handlers: plain async functions whose arguments are extractors, in the
//! spirit of axum. No macros for users.
//!
//! A handler takes up to six extractors, in any order, and returns `()` or
//! `Result<(), E>` for any `E: Display`:
//!
//! ```
//! use sfstream_service::{Notification, RecordType, SobjectType};
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("bad contact")]
//! struct MyError;
//!
//! async fn handle_contact(
//!     SobjectType(sobject_type): SobjectType,
//!     RecordType(record_type): RecordType,
//!     Notification(notification): Notification,
//! ) -> Result<(), MyError> {
//!     println!("{sobject_type} {record_type:?}: {notification}");
//!     Ok(())
//! }
//! # let _ = sfstream_service::Service::new("s").handler(handle_contact, [sfstream_service::handle_sobject_notification("Contact")]);
//! ```
//!
//! | Extractor | Gives |
//! |---|---|
//! | [`Channel`] | the channel the event arrived on |
//! | [`Name`] | the topic, event or channel name of the entrypoint |
//! | [`SobjectType`] | the object of a sobject notification or change event |
//! | [`RecordType`] | the record type of a sobject notification, if any |
//! | [`Notification`] | the event's data as JSON |
//! | [`Json<T>`] | the event's data as `T` |
//! | [`PushTopic`], [`Change`], [`Platform`] | the typed payloads |
//! | [`ReplayId`] | the event's replay id |
//! | [`Dep<T>`] | a dependency given to [`Service::dependency`](crate::Service::dependency) |
//! | [`Salesforce`] | the REST client (the extension's `SalesforceAPI`) |
//! | [`Event`] | everything above |

use std::fmt::{self, Display};
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Map;
use serde_json::value::RawValue;
use sfstream_nameko::WorkerContext;
use sfstream_salesforce::rest::SalesforceClient;
use sfstream_salesforce::streaming::payload::{ChangeEvent, PlatformEvent, PushTopicEvent};

use crate::entrypoints::Binding;
use crate::received::Received;
use crate::runtime::ServiceContext;
use crate::worker::worker_context;

/// One event as a handler sees it: the message, the entrypoint it was
/// delivered through, and the service.
#[derive(Debug)]
pub struct EventContext {
    pub(crate) message: Arc<Received>,
    pub(crate) binding: Arc<Binding>,
    pub(crate) service: ServiceContext,
    /// The handler's method name, for its Nameko call id.
    pub(crate) method_name: Arc<str>,
    /// Made on first use: most handlers never dispatch.
    pub(crate) worker: OnceLock<WorkerContext>,
}

impl EventContext {
    /// The channel the event arrived on.
    pub fn channel(&self) -> &str {
        self.message.channel()
    }

    /// The event's data, as received.
    pub fn data(&self) -> &RawValue {
        self.message.data()
    }

    /// The replay id of a CometD event (Pub/Sub replay ids are opaque:
    /// see [`replay`](Self::replay)).
    pub fn replay_id(&self) -> Option<i64> {
        self.message.replay_id()
    }

    /// The replay id as text, whatever the transport: the number on
    /// CometD, the base64 of the bytes on the Pub/Sub API.
    pub fn replay(&self) -> Option<String> {
        self.message.replay_text()
    }

    /// The entrypoint the event was delivered through.
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// The service.
    pub fn service(&self) -> &ServiceContext {
        &self.service
    }

    /// The Nameko worker context of this handler call, as the Python
    /// extension's entrypoints have one: call id
    /// `<service>.<handler function>.<uuid>` (the entrypoint's name, e.g.
    /// `handle_sobject_notification`, for closures), no parent calls. The
    /// same for every retry of the call. Events dispatched through
    /// [`Dispatcher`](crate::nameko::Dispatcher) carry its call id stack.
    pub fn worker(&self) -> &WorkerContext {
        self.worker
            .get_or_init(|| worker_context(&self.service, &self.method_name, Map::new()))
    }
}

/// The name of handler function `F` (its last path segment, without
/// generic arguments); `None` for closures, which have none.
pub(crate) fn function_name<F>() -> Option<&'static str> {
    let full = std::any::type_name::<F>();
    if full.contains("{{closure}}") {
        return None;
    }
    let path = full.split('<').next().unwrap_or(full);
    let last = path.rsplit("::").next().unwrap_or(path);
    (!last.is_empty() && !last.contains('{')).then_some(last)
}

/// Why an extractor could not give its value (the handler does not run;
/// the event counts as failed, without retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractError(String);

impl ExtractError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExtractError {}

/// A value a handler can take as an argument.
///
/// Implement it for your own extractors:
///
/// ```
/// use std::sync::Arc;
/// use sfstream_service::{EventContext, ExtractError, FromEvent};
///
/// /// The `event.type` of a PushTopic notification.
/// struct ChangeType(String);
///
/// impl FromEvent for ChangeType {
///     fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
///         let data: serde_json::Value = serde_json::from_str(event.data().get())
///             .map_err(|e| ExtractError::new(e.to_string()))?;
///         data["event"]["type"].as_str().map(|t| ChangeType(t.into()))
///             .ok_or_else(|| ExtractError::new("no event.type"))
///     }
/// }
/// ```
pub trait FromEvent: Sized + Send + 'static {
    /// Extracts the value from the event.
    ///
    /// # Errors
    ///
    /// When the event does not have what the extractor needs.
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError>;
}

/// The channel the event arrived on (`subscribe`'s first argument in the
/// extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel(pub String);

impl FromEvent for Channel {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        Ok(Channel(event.channel().to_string()))
    }
}

/// The entrypoint's name: the topic name of `handle_notification` (its
/// first argument in the extension) and of sobject notifications, the
/// platform event's name, the channel of `subscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

impl FromEvent for Name {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        Ok(Name(event.binding.name.clone()))
    }
}

/// The sobject type of a sobject notification or change event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SobjectType(pub String);

impl FromEvent for SobjectType {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        if let Some(t) = &event.binding.sobject_type {
            return Ok(SobjectType(t.clone()));
        }
        if let Ok(change) = event.message.data_as::<ChangeEvent>() {
            return Ok(SobjectType(change.payload.header.entity_name));
        }
        Err(ExtractError::new(format!(
            "SobjectType is only known for handle_sobject_notification and change events, not {}",
            event.binding.entrypoint
        )))
    }
}

/// The record type (`DeveloperName`) of a sobject notification; `None`
/// when none was given, and for other entrypoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordType(pub Option<String>);

impl FromEvent for RecordType {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        Ok(RecordType(event.binding.record_type.clone()))
    }
}

/// The event's data as JSON (`{"event": {...}, "sobject": {...}}` for a
/// PushTopic notification): the extension's `notification`.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification(pub serde_json::Value);

impl FromEvent for Notification {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        serde_json::from_str(event.data().get())
            .map(Notification)
            .map_err(|e| ExtractError::new(format!("the event data is not JSON: {e}")))
    }
}

/// The event's data deserialized as `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> FromEvent for Json<T> {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        serde_json::from_str(event.data().get())
            .map(Json)
            .map_err(|e| {
                ExtractError::new(format!(
                    "the event data is not a {}: {e}",
                    std::any::type_name::<T>()
                ))
            })
    }
}

macro_rules! typed_payload {
    ($(#[$doc:meta] $name:ident($ty:ty)),*) => {$(
        #[$doc]
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(pub $ty);

        impl FromEvent for $name {
            fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
                Json::<$ty>::from_event(event).map(|Json(v)| $name(v))
            }
        }
    )*};
}

typed_payload!(
    /// A PushTopic notification, typed.
    PushTopic(PushTopicEvent),
    /// A Change Data Capture event, typed.
    Change(ChangeEvent),
    /// A platform event, typed.
    Platform(PlatformEvent)
);

/// The event's CometD replay id (`None` for events without one, and for
/// Pub/Sub events, whose replay ids are opaque: see [`Replay`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayId(pub Option<i64>);

impl FromEvent for ReplayId {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        Ok(ReplayId(event.replay_id()))
    }
}

/// The event's replay id as text on either transport: the number on
/// CometD, the base64 of the bytes on the Pub/Sub API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay(pub Option<String>);

impl FromEvent for Replay {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        Ok(Replay(event.replay()))
    }
}

/// A shared dependency, given to
/// [`Service::dependency`](crate::Service::dependency) (by type).
///
/// ```
/// use sfstream_service::{Dep, Notification, Service, subscribe};
///
/// struct Repository { table: String }
///
/// async fn store(Dep(repo): Dep<Repository>, Notification(n): Notification) {
///     println!("insert into {}: {n}", repo.table);
/// }
///
/// let service = Service::new("s")
///     .dependency(Repository { table: "events".into() })
///     .handler(store, [subscribe("/topic/X")]);
/// ```
pub struct Dep<T>(pub Arc<T>);

impl<T> Deref for Dep<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Clone for Dep<T> {
    fn clone(&self) -> Self {
        Dep(self.0.clone())
    }
}

impl<T> fmt::Debug for Dep<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dep<{}>", std::any::type_name::<T>())
    }
}

impl<T: Send + Sync + 'static> Dep<T> {
    /// The dependency of type `T` of a service (for other entrypoint kinds).
    ///
    /// # Errors
    ///
    /// When none was given.
    pub fn from_context(service: &ServiceContext) -> Result<Self, ExtractError> {
        service.dependency::<T>().map(Dep).ok_or_else(|| {
            ExtractError::new(format!(
                "no dependency of type {} was given to Service::dependency",
                std::any::type_name::<T>()
            ))
        })
    }
}

impl<T: Send + Sync + 'static> FromEvent for Dep<T> {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        Dep::from_context(&event.service)
    }
}

/// The Salesforce REST client, logged in with the service's credentials
/// (the session is shared with the streaming client): the extension's
/// `SalesforceAPI`.
///
/// ```no_run
/// use serde_json::json;
/// use sfstream_service::{Salesforce, SobjectType};
///
/// async fn create_task(SobjectType(t): SobjectType, Salesforce(sf): Salesforce) -> Result<(), sfstream_salesforce::RestError> {
///     sf.create("Task", &json!({"Subject": format!("{t} changed")})).await?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Salesforce(pub SalesforceClient);

impl Deref for Salesforce {
    type Target = SalesforceClient;
    fn deref(&self) -> &SalesforceClient {
        &self.0
    }
}

impl FromEvent for Salesforce {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        event
            .service
            .extension::<SalesforceClient>()
            .cloned()
            .map(Salesforce)
            .ok_or_else(|| ExtractError::new("the service has no SALESFORCE configuration"))
    }
}

/// The whole event context.
#[derive(Debug, Clone)]
pub struct Event(pub Arc<EventContext>);

impl Deref for Event {
    type Target = EventContext;
    fn deref(&self) -> &EventContext {
        &self.0
    }
}

/// What a handler returns: `()` or `Result<(), E: Display>`.
pub trait IntoHandlerResult: Send {
    /// `Err` with the failure's text when the handler failed.
    ///
    /// # Errors
    ///
    /// The handler's error, as text.
    fn into_handler_result(self) -> Result<(), String>;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display + Send> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// A failed handler call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// What went wrong.
    pub message: String,
    /// Whether calling again may succeed (false when an extractor failed).
    pub retryable: bool,
}

impl Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An async function usable as a handler: implemented for every
/// `Fn(A1, …, An) -> impl Future<Output = R>` with up to six
/// [`FromEvent`] arguments and `R:` [`IntoHandlerResult`].
pub trait Handler<Args>: Clone + Send + Sync + 'static {
    /// Extracts the arguments and calls the function.
    fn call(&self, event: Arc<EventContext>) -> BoxFuture<'static, Result<(), HandlerError>>;
}

fn extract<T: FromEvent>(event: &Arc<EventContext>) -> Result<T, HandlerError> {
    T::from_event(event).map_err(|e| HandlerError {
        message: format!(
            "cannot extract {}: {e}",
            std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("argument")
        ),
        retryable: false,
    })
}

impl FromEvent for Event {
    fn from_event(event: &Arc<EventContext>) -> Result<Self, ExtractError> {
        Ok(Event(event.clone()))
    }
}

macro_rules! impl_handler {
    ($($arg:ident),*) => {
        #[allow(non_snake_case, unused_variables)]
        impl<F, Fut, R, $($arg,)*> Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoHandlerResult,
            $($arg: FromEvent,)*
        {
            fn call(&self, event: Arc<EventContext>) -> BoxFuture<'static, Result<(), HandlerError>> {
                let function = self.clone();
                Box::pin(async move {
                    $(let $arg = extract::<$arg>(&event)?;)*
                    drop(event);
                    let outcome = std::panic::AssertUnwindSafe(function($($arg),*))
                        .catch_unwind()
                        .await;
                    match outcome {
                        Ok(result) => result.into_handler_result().map_err(|message| HandlerError {
                            message,
                            retryable: true,
                        }),
                        Err(panic) => Err(HandlerError {
                            message: format!("the handler panicked: {}", panic_text(&panic)),
                            retryable: true,
                        }),
                    }
                })
            }
        }
    };
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

impl_handler!();
impl_handler!(A1);
impl_handler!(A1, A2);
impl_handler!(A1, A2, A3);
impl_handler!(A1, A2, A3, A4);
impl_handler!(A1, A2, A3, A4, A5);
impl_handler!(A1, A2, A3, A4, A5, A6);

/// A handler with its argument types erased.
pub(crate) type BoxedHandler =
    Arc<dyn Fn(Arc<EventContext>) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;

pub(crate) fn boxed<H: Handler<Args>, Args>(handler: H) -> BoxedHandler {
    Arc::new(move |event| handler.call(event))
}
