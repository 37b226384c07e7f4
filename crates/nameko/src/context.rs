//! The per-call worker context: Nameko's `WorkerContext` (call ids and the
//! context data carried in `nameko.*` headers).

use serde_json::{Map, Value};

/// Context key of the call id stack (`nameko.call_id_stack` on the wire).
pub const CALL_ID_STACK_KEY: &str = "call_id_stack";

/// Nameko's default `parent_calls_tracked`: how many parent call ids are kept
/// in a call id stack (plus the current call's).
pub const DEFAULT_PARENT_CALLS_TRACKED: usize = 10;

/// The context of one handled RPC request or event, like Nameko's
/// `WorkerContext`.
///
/// Its [`context_data`](Self::context_data) is what outgoing calls and events
/// made on behalf of this worker carry as `nameko.*` headers: the incoming
/// context data plus `call_id_stack` = the parent stack with
/// [`call_id`](Self::call_id) appended (bounded to `parent_calls_tracked + 1`
/// entries).
///
/// ```
/// use serde_json::{Map, json};
/// use sfstream_nameko::WorkerContext;
///
/// let mut headers = Map::new();
/// headers.insert("call_id_stack".into(), json!(["standalone_rpc_proxy.call.1"]));
/// headers.insert("language".into(), json!("en"));
/// let ctx = WorkerContext::new("contacts", "create", headers);
/// assert!(ctx.call_id.starts_with("contacts.create."));
/// assert_eq!(ctx.parent_call_id_stack, vec!["standalone_rpc_proxy.call.1"]);
/// assert_eq!(ctx.call_id_stack().len(), 2);
/// assert_eq!(ctx.context_data()["language"], "en");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerContext {
    /// Name of the service handling the call or event.
    pub service_name: String,
    /// Name of the RPC method or event handler method.
    pub method_name: String,
    /// `"<service>.<method>.<uuid4>"`.
    pub call_id: String,
    /// The caller's `call_id_stack` (empty if none was sent).
    pub parent_call_id_stack: Vec<String>,
    /// The other context data received (`nameko.` prefix stripped), e.g.
    /// `language`, `user_id`, `auth_token`, `user_agent`.
    pub data: Map<String, Value>,
    /// How many parent call ids [`call_id_stack`](Self::call_id_stack) keeps.
    pub parent_calls_tracked: usize,
}

/// The context of an RPC request handled by an [`RpcServer`](crate::RpcServer).
pub type RpcContext = WorkerContext;

/// The context of an event handled by an [`EventHandler`](crate::EventHandler).
pub type EventContext = WorkerContext;

impl WorkerContext {
    /// Builds a context from the unpacked message headers (see
    /// [`unpack_context_headers`](crate::headers::unpack_context_headers)),
    /// with a fresh call id.
    pub fn new(service_name: &str, method_name: &str, mut data: Map<String, Value>) -> Self {
        let parent = match data.remove(CALL_ID_STACK_KEY) {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
            Some(Value::String(s)) => vec![s],
            _ => Vec::new(),
        };
        Self {
            service_name: service_name.to_owned(),
            method_name: method_name.to_owned(),
            call_id: format!("{service_name}.{method_name}.{}", uuid::Uuid::new_v4()),
            parent_call_id_stack: parent,
            data,
            parent_calls_tracked: DEFAULT_PARENT_CALLS_TRACKED,
        }
    }

    /// The parent stack with this call's id appended, keeping at most the last
    /// `parent_calls_tracked + 1` entries (Nameko's bounded deque).
    pub fn call_id_stack(&self) -> Vec<String> {
        let mut stack: Vec<String> = self.parent_call_id_stack.clone();
        stack.push(self.call_id.clone());
        let max = self.parent_calls_tracked + 1;
        if stack.len() > max {
            stack.drain(..stack.len() - max);
        }
        stack
    }

    /// The first call id of the chain, if this call has parents.
    pub fn origin_call_id(&self) -> Option<&str> {
        self.parent_call_id_stack.first().map(String::as_str)
    }

    /// The immediate parent's call id, if any.
    pub fn immediate_parent_call_id(&self) -> Option<&str> {
        self.parent_call_id_stack.last().map(String::as_str)
    }

    /// The context data to propagate: [`data`](Self::data) plus
    /// `call_id_stack`.
    pub fn context_data(&self) -> Map<String, Value> {
        let mut data = self.data.clone();
        data.insert(
            CALL_ID_STACK_KEY.to_owned(),
            Value::Array(
                self.call_id_stack()
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            ),
        );
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stack_is_bounded_like_nameko() {
        let mut data = Map::new();
        let parents: Vec<String> = (0..15).map(|i| format!("p.m.{i}")).collect();
        data.insert(CALL_ID_STACK_KEY.into(), json!(parents));
        let ctx = WorkerContext::new("s", "m", data);
        let stack = ctx.call_id_stack();
        assert_eq!(stack.len(), 11);
        assert_eq!(stack[0], "p.m.5");
        assert_eq!(stack[10], ctx.call_id);
        assert_eq!(ctx.origin_call_id(), Some("p.m.0"));
        assert_eq!(ctx.immediate_parent_call_id(), Some("p.m.14"));
    }
}
