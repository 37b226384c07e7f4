//! The Salesforce REST API: what simple-salesforce gives Python users, as
//! an async client shared by many tasks, plus PushTopic declarations.
//!
//! - [`SalesforceClient`]: one client (connection pool, per-request
//!   timeout, a bound on concurrent requests, a fresh login and one retry
//!   on 401 `INVALID_SESSION_ID`), sharing its [`Authenticator`](crate::Authenticator)
//!   with the streaming client;
//! - records: [`create`](SalesforceClient::create), [`get`](SalesforceClient::get),
//!   [`update`](SalesforceClient::update), [`upsert`](SalesforceClient::upsert),
//!   [`delete`](SalesforceClient::delete),
//!   [`get_by_external_id`](SalesforceClient::get_by_external_id),
//!   [`describe`](SalesforceClient::describe), [`describe_global`](SalesforceClient::describe_global);
//! - queries: [`query`](SalesforceClient::query) (a stream following
//!   `nextRecordsUrl`), [`query_all`](SalesforceClient::query_all),
//!   [`query_collect`](SalesforceClient::query_collect),
//!   [`query_as`](SalesforceClient::query_as), [`count`](SalesforceClient::count),
//!   SOSL [`search`](SalesforceClient::search); SOQL built with
//!   [`format_soql`], which escapes every value;
//! - composite: sObject collections ([`create_records`](SalesforceClient::create_records),
//!   [`update_records`](SalesforceClient::update_records),
//!   [`delete_records`](SalesforceClient::delete_records)) and
//!   [`batch`](SalesforceClient::batch);
//! - [`publish_event`](SalesforceClient::publish_event) (platform events),
//!   [`push_generic`](SalesforceClient::push_generic) (generic streaming);
//! - [`limits`](SalesforceClient::limits), [`last_api_usage`](SalesforceClient::last_api_usage),
//!   and [`request`](SalesforceClient::request) for any other path (Apex REST included);
//! - PushTopics: [`declare_topic`](SalesforceClient::declare_topic),
//!   [`declare_sobject_topic`](SalesforceClient::declare_sobject_topic),
//!   [`list_topics`](SalesforceClient::list_topics),
//!   [`delete_topic`](SalesforceClient::delete_topic).
//!
//! Errors are [`RestError`]s carrying the HTTP status, Salesforce's
//! `errorCode`, message and fields; never a token.

mod client;
mod composite;
mod error;
mod events;
mod limits;
mod pushtopics;
mod query;
mod records;
mod soql;

pub use client::{
    ClientBuilder, DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_TIMEOUT, SalesforceClient,
};
pub use composite::{
    BatchRequest, BatchResponse, BatchResult, CollectionResult, MAX_BATCH_REQUESTS,
    MAX_COLLECTION_RECORDS, RecordError,
};
pub use error::RestError;
pub use limits::{ApiUsage, Limit, parse_limit_info};
pub use pushtopics::{
    DeclareOutcome, DeclaredTopic, MAX_TOPIC_NAME_LEN, MAX_TOPIC_QUERY_LEN, NotifyForFields,
    NotifyForOperations, PushTopic, PushTopicSpec, SobjectTopic,
};
pub use query::{QueryPage, escape_sosl};
pub use records::UpsertOutcome;
pub use reqwest::Method;
pub use soql::{Like, SoqlValue, ToSoql, escape, escape_like, format_soql, quote};

/// A record: field name to JSON value (`attributes` included when the
/// server sends it), in the server's order.
pub type Record = serde_json::Map<String, serde_json::Value>;
