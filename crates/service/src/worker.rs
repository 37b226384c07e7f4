//! The Nameko worker context of a call of any entrypoint (Salesforce
//! handlers have one too, for the events they dispatch).

use serde_json::{Map, Value};
use sfstream_nameko::WorkerContext;

use crate::runtime::ServiceContext;

/// The config's `parent_calls_tracked` (Nameko's default 10): how many
/// parent call ids every worker of the service keeps.
pub(crate) fn parent_calls_tracked(service: &ServiceContext) -> usize {
    service
        .config()
        .raw
        .get("parent_calls_tracked")
        .and_then(|v| v.as_u64())
        .map_or(sfstream_nameko::DEFAULT_PARENT_CALLS_TRACKED, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        })
}

/// A worker context of the service for `method` (Nameko's
/// `WorkerContext`), with the config's `parent_calls_tracked`.
pub(crate) fn worker_context(
    service: &ServiceContext,
    method: &str,
    data: Map<String, Value>,
) -> WorkerContext {
    let mut worker = WorkerContext::new(service.name(), method, data);
    worker.parent_calls_tracked = parent_calls_tracked(service);
    worker
}
