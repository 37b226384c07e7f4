//! The RPC client: Nameko's `ClusterRpcProxy` / `RpcProxy`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::consumer::{ConsumerHandle, DeliveryFn, spawn_consumer};
use crate::headers::encode_context_headers;
use crate::publisher::{Outcome, Outgoing, Publisher, json_properties};
use crate::topology::{DEFAULT_RPC_EXCHANGE, ExchangeDeclaration, QueueDeclaration};
use crate::{Connection, Error, RpcCallError, RpcError, WorkerContext};

/// The service name Nameko's standalone proxies use in reply queue names and
/// call ids.
pub const STANDALONE_PROXY_NAME: &str = "standalone_rpc_proxy";

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// An RPC client to any service of the cluster, like Nameko's
/// `ClusterRpcProxy`: one reply queue
/// (`rpc.reply-standalone_rpc_proxy-<uuid>`), any number of concurrent calls
/// matched by correlation id.
///
/// ```no_run
/// use std::time::Duration;
/// use serde_json::json;
/// use sfstream_nameko::{Connection, RpcCallError, RpcProxy};
///
/// # async fn demo() -> Result<(), RpcCallError> {
/// let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
/// let rpc = RpcProxy::start(&conn).await?;
/// let sum = rpc
///     .call("calculator", "add", vec![json!(1), json!(2)], Default::default(), Duration::from_secs(5))
///     .await?;
/// assert_eq!(sum, json!(3));
/// rpc.stop().await;
/// # Ok(()) }
/// ```
pub struct RpcProxy {
    reply_to: String,
    exchange: ExchangeDeclaration,
    publisher: Publisher,
    pending: Pending,
    consumer: ConsumerHandle,
    caller_name: String,
}

impl std::fmt::Debug for RpcProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcProxy")
            .field("reply_queue", &self.consumer.queue_name())
            .finish()
    }
}

/// Alias matching Nameko's standalone `ClusterRpcProxy`.
pub type ClusterRpc = RpcProxy;

impl RpcProxy {
    /// Declares the reply queue on the `nameko-rpc` exchange and starts
    /// consuming replies.
    pub async fn start(conn: &Connection) -> Result<Self, Error> {
        Self::start_with(conn, STANDALONE_PROXY_NAME, DEFAULT_RPC_EXCHANGE).await
    }

    /// Like [`start`](Self::start) with the caller's service name (used in
    /// the reply queue name and in call ids of calls made without a context)
    /// and the RPC exchange name.
    pub async fn start_with(
        conn: &Connection,
        caller_name: &str,
        rpc_exchange: &str,
    ) -> Result<Self, Error> {
        let id = uuid::Uuid::new_v4().to_string();
        let queue = QueueDeclaration::rpc_reply(caller_name, &id, rpc_exchange);
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let handler_pending = pending.clone();
        let handler: DeliveryFn = Arc::new(move |delivery: Delivery| {
            let pending = handler_pending.clone();
            Box::pin(async move { on_reply(&pending, delivery).await })
        });
        let consumer = spawn_consumer(conn.clone(), queue, 0, handler).await?;
        Ok(Self {
            reply_to: id,
            exchange: ExchangeDeclaration::topic(rpc_exchange),
            publisher: Publisher::new(conn.clone()),
            pending,
            consumer,
            caller_name: caller_name.to_owned(),
        })
    }

    /// The reply queue's name.
    pub fn reply_queue(&self) -> &str {
        self.consumer.queue_name()
    }

    /// Calls `service.method(*args, **kwargs)` and waits up to `timeout` for
    /// the reply. The request carries `nameko.call_id_stack` =
    /// `["standalone_rpc_proxy.call.<uuid>"]` like Nameko's standalone proxy.
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, RpcCallError> {
        let ctx = WorkerContext::new(&self.caller_name, "call", Map::new());
        let mut data = ctx.context_data();
        // The standalone proxy's stack is just its own call id.
        data.insert("call_id_stack".into(), json!([ctx.call_id]));
        self.call_with_data(service, method, args, kwargs, &data, timeout)
            .await
    }

    /// Calls on behalf of a worker (e.g. from inside an RPC handler or event
    /// handler): the request carries the worker's context data, including
    /// its extended call id stack.
    pub async fn call_with_context(
        &self,
        ctx: &WorkerContext,
        service: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, RpcCallError> {
        self.call_with_data(service, method, args, kwargs, &ctx.context_data(), timeout)
            .await
    }

    /// Calls with explicit context data (sent as `nameko.<key>` headers).
    pub async fn call_with_data(
        &self,
        service: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        context_data: &Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, RpcCallError> {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(correlation_id.clone(), tx);
        let guard = PendingGuard {
            pending: &self.pending,
            id: &correlation_id,
        };
        let body = json!({"args": args, "kwargs": kwargs})
            .to_string()
            .into_bytes();
        let props = json_properties()
            .with_reply_to(self.reply_to.as_str().into())
            .with_correlation_id(correlation_id.as_str().into())
            .with_headers(encode_context_headers(context_data));
        let routing_key = format!("{service}.{method}");
        let work = async {
            let outcome = self
                .publisher
                .publish(Outgoing {
                    exchange: &self.exchange,
                    routing_key: &routing_key,
                    body: &body,
                    properties: props,
                    mandatory: true,
                })
                .await?;
            if let Outcome::Returned { .. } = outcome {
                return Err(RpcCallError::UnknownService(service.to_owned()));
            }
            let reply = rx.await.map_err(|_| Error::Closed)?;
            decode_reply(&reply)
        };
        let result = match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(RpcCallError::Timeout(timeout)),
        };
        drop(guard);
        result
    }

    /// Stops consuming replies and closes the channels. The reply queue
    /// expires on the broker 5 minutes later, as Nameko's do.
    pub async fn stop(self) {
        self.consumer.shutdown(Duration::from_secs(1)).await;
        self.publisher.close().await;
    }
}

struct PendingGuard<'a> {
    pending: &'a Pending,
    id: &'a str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(self.id);
    }
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
    p.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn on_reply(pending: &Pending, delivery: Delivery) {
    let _ = delivery.acker.ack(BasicAckOptions::default()).await;
    let Some(cid) = delivery
        .properties
        .correlation_id()
        .as_ref()
        .map(|c| c.as_str().to_owned())
    else {
        tracing::debug!("rpc reply without correlation id");
        return;
    };
    let body: Value = match serde_json::from_slice(&delivery.data) {
        Ok(v) => v,
        Err(e) => Value::String(format!("\u{0}undecodable reply: {e}")),
    };
    match lock(pending).remove(&cid) {
        Some(tx) => {
            let _ = tx.send(body);
        }
        None => tracing::debug!(correlation_id = %cid, "unknown correlation id"),
    }
}

/// Decodes a reply body `{"result":…,"error":…}`.
pub(crate) fn decode_reply(body: &Value) -> Result<Value, RpcCallError> {
    let Value::Object(map) = body else {
        return Err(RpcCallError::MalformedReply(match body {
            Value::String(s) => s.trim_start_matches('\u{0}').to_owned(),
            other => other.to_string(),
        }));
    };
    match map.get("error") {
        Some(err) if !err.is_null() && err != &Value::Bool(false) => {
            Err(RpcError::from_json(err).into())
        }
        _ => Ok(map.get("result").cloned().unwrap_or(Value::Null)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_decoding() {
        assert_eq!(
            decode_reply(&json!({"result": 5, "error": null})).unwrap(),
            json!(5)
        );
        let err = decode_reply(&json!({"result": null, "error": {
            "exc_type": "ValueError", "exc_path": "builtins.ValueError", "exc_args": ["bad"], "value": "bad"}}))
        .unwrap_err();
        match err {
            RpcCallError::Remote {
                exc_type,
                exc_path,
                value,
                exc_args,
            } => {
                assert_eq!(
                    (exc_type.as_str(), exc_path.as_str(), value.as_str()),
                    ("ValueError", "builtins.ValueError", "bad")
                );
                assert_eq!(exc_args, vec![json!("bad")]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            decode_reply(&json!([1])),
            Err(RpcCallError::MalformedReply(_))
        ));
    }
}
