//! The RPC server: Nameko's `@rpc` entrypoint.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use serde_json::{Map, Value, json};

use crate::consumer::{ConsumerHandle, DeliveryFn, spawn_consumer};
use crate::headers::unpack_context_headers;
use crate::publisher::{Outgoing, Publisher, json_properties};
use crate::topology::{DEFAULT_RPC_EXCHANGE, ExchangeDeclaration, QueueDeclaration};
use crate::{Connection, Error, RpcContext, RpcError, Signature};

/// Nameko's default `max_workers`, used as the consumer prefetch count.
pub const DEFAULT_MAX_WORKERS: u16 = 10;

/// The future an RPC method returns.
pub type RpcFuture = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'static>>;

type Method =
    Arc<dyn Fn(RpcContext, Vec<Value>, Map<String, Value>) -> RpcFuture + Send + Sync + 'static>;

struct Entry {
    signature: Option<Signature>,
    method: Method,
}

/// A Nameko RPC service: consumes `rpc-<service>` and answers on the RPC
/// exchange exactly as a Python Nameko service does.
///
/// ```no_run
/// use serde_json::{Value, json};
/// use sfstream_nameko::{Connection, RpcError, RpcServer, Signature};
///
/// # async fn demo() -> Result<(), sfstream_nameko::Error> {
/// let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
/// let server = RpcServer::new("greeter")
///     .method_with_signature("hello", Signature::new().param("name"), |_ctx, args, kwargs| async move {
///         let name = args.first().or_else(|| kwargs.get("name")).cloned().unwrap_or(Value::Null);
///         match name {
///             Value::String(n) => Ok(json!(format!("Hello, {n}!"))),
///             _ => Err(RpcError::typed("TypeError", "builtins.TypeError", "name must be a string")),
///         }
///     });
/// let running = server.start(&conn).await?;
/// // … Python: n.rpc.greeter.hello("Ann") == "Hello, Ann!"
/// running.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
pub struct RpcServer {
    service_name: String,
    methods: HashMap<String, Entry>,
    max_workers: u16,
    rpc_exchange: String,
    parent_calls_tracked: usize,
}

impl std::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut methods: Vec<&String> = self.methods.keys().collect();
        methods.sort();
        f.debug_struct("RpcServer")
            .field("service_name", &self.service_name)
            .field("methods", &methods)
            .field("max_workers", &self.max_workers)
            .field("rpc_exchange", &self.rpc_exchange)
            .finish()
    }
}

impl RpcServer {
    /// A service named `service_name` without methods.
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            methods: HashMap::new(),
            max_workers: DEFAULT_MAX_WORKERS,
            rpc_exchange: DEFAULT_RPC_EXCHANGE.to_owned(),
            parent_calls_tracked: crate::context::DEFAULT_PARENT_CALLS_TRACKED,
        }
    }

    /// The service name.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// Maximum concurrent workers (the prefetch count); default 10.
    pub fn max_workers(mut self, max_workers: u16) -> Self {
        self.max_workers = max_workers.max(1);
        self
    }

    /// The RPC exchange (Nameko's `rpc_exchange` setting); default `nameko-rpc`.
    pub fn rpc_exchange(mut self, name: impl Into<String>) -> Self {
        self.rpc_exchange = name.into();
        self
    }

    /// Nameko's `parent_calls_tracked`; default 10.
    pub fn parent_calls_tracked(mut self, n: usize) -> Self {
        self.parent_calls_tracked = n;
        self
    }

    /// Registers a method accepting any arguments.
    pub fn method<F, Fut>(self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(RpcContext, Vec<Value>, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        self.register(name.into(), None, handler)
    }

    /// Registers a method with a declared Python signature: calls whose
    /// arguments do not bind are answered with `IncorrectSignature` and the
    /// text CPython's `inspect.getcallargs` would give.
    pub fn method_with_signature<F, Fut>(
        self,
        name: impl Into<String>,
        signature: Signature,
        handler: F,
    ) -> Self
    where
        F: Fn(RpcContext, Vec<Value>, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        self.register(name.into(), Some(signature), handler)
    }

    fn register<F, Fut>(mut self, name: String, signature: Option<Signature>, handler: F) -> Self
    where
        F: Fn(RpcContext, Vec<Value>, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let method: Method =
            Arc::new(move |ctx, args, kwargs| Box::pin(handler(ctx, args, kwargs)));
        self.methods.insert(name, Entry { signature, method });
        self
    }

    /// The service queue's declaration (`rpc-<service>`).
    pub fn queue_declaration(&self) -> QueueDeclaration {
        QueueDeclaration::rpc_service(&self.service_name, &self.rpc_exchange)
    }

    /// Declares the exchange and queue and starts consuming. Returns when the
    /// service is ready to receive calls.
    pub async fn start(self, conn: &Connection) -> Result<ConsumerHandle, Error> {
        let queue = self.queue_declaration();
        let prefetch = self.max_workers;
        let shared = Arc::new(Shared {
            exchange: ExchangeDeclaration::topic(&self.rpc_exchange),
            publisher: Publisher::new(conn.clone()),
            server: self,
        });
        let handler: DeliveryFn = Arc::new(move |delivery| {
            let shared = shared.clone();
            Box::pin(async move { shared.handle(delivery).await })
        });
        spawn_consumer(conn.clone(), queue, prefetch, handler).await
    }
}

struct Shared {
    server: RpcServer,
    exchange: ExchangeDeclaration,
    publisher: Publisher,
}

/// Decodes a request body: `{"args": [...], "kwargs": {...}}`.
pub(crate) fn decode_request(body: &[u8]) -> Result<(Vec<Value>, Map<String, Value>), RpcError> {
    let malformed = || RpcError::malformed_request("Message missing `args` or `kwargs`");
    let value: Value = serde_json::from_slice(body).map_err(|_| malformed())?;
    let (Some(args), Some(kwargs)) = (value.get("args"), value.get("kwargs")) else {
        return Err(malformed());
    };
    let args = match args {
        Value::Array(a) => a.clone(),
        _ => return Err(malformed()),
    };
    let kwargs = match kwargs {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(malformed()),
    };
    Ok((args, kwargs))
}

/// Encodes a reply body as `nameko.rpc.Responder` does.
pub(crate) fn encode_reply(result: &Result<Value, RpcError>) -> Vec<u8> {
    let body = match result {
        Ok(v) => json!({"result": v, "error": null}),
        Err(e) => json!({"result": null, "error": e.to_json()}),
    };
    body.to_string().into_bytes()
}

impl Shared {
    async fn handle(&self, delivery: Delivery) {
        let routing_key = delivery.routing_key.as_str();
        let method_name = routing_key
            .rsplit('.')
            .next()
            .unwrap_or(routing_key)
            .to_owned();
        let expected = format!("{}.{}", self.server.service_name, method_name);
        let outcome = match self.server.methods.get(&method_name) {
            Some(entry) if routing_key == expected => {
                self.invoke(entry, &method_name, &delivery).await
            }
            _ => Err(RpcError::method_not_found(&method_name)),
        };
        if let Err(e) = &outcome {
            tracing::debug!(service = %self.server.service_name, method = %method_name, error = %e, "rpc call failed");
        }
        let reply_to = delivery
            .properties
            .reply_to()
            .as_ref()
            .map(|s| s.as_str().to_owned());
        match reply_to {
            Some(reply_to) => {
                let mut props = json_properties().with_headers(Default::default());
                if let Some(cid) = delivery.properties.correlation_id() {
                    props = props.with_correlation_id(cid.clone());
                }
                let body = encode_reply(&outcome);
                let sent = self
                    .publisher
                    .publish(Outgoing {
                        exchange: &self.exchange,
                        routing_key: &reply_to,
                        body: &body,
                        properties: props,
                        mandatory: false,
                    })
                    .await;
                if let Err(e) = sent {
                    // Leave the request unacked: the broker redelivers it.
                    tracing::warn!(service = %self.server.service_name, method = %method_name, error = %e, "could not publish rpc reply");
                    return;
                }
            }
            None => {
                tracing::warn!(service = %self.server.service_name, method = %method_name, "rpc request without reply_to")
            }
        }
        if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
            tracing::warn!(service = %self.server.service_name, error = %e, "could not ack rpc request");
        }
    }

    async fn invoke(
        &self,
        entry: &Entry,
        method_name: &str,
        delivery: &Delivery,
    ) -> Result<Value, RpcError> {
        let (args, kwargs) = decode_request(&delivery.data)?;
        if let Some(sig) = &entry.signature {
            sig.check(method_name, args.len(), &kwargs)
                .map_err(RpcError::incorrect_signature)?;
        }
        let data = unpack_context_headers(delivery.properties.headers().as_ref());
        let mut ctx = RpcContext::new(&self.server.service_name, method_name, data);
        ctx.parent_calls_tracked = self.server.parent_calls_tracked;
        let fut = (entry.method)(ctx, args, kwargs);
        // A panicking handler becomes an error reply instead of killing the worker.
        match tokio::spawn(fut).await {
            Ok(r) => r,
            Err(e) => Err(RpcError::new(format!("handler failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_decoding() {
        let (a, k) = decode_request(br#"{"args": [1, "x"], "kwargs": {"k": true}}"#).unwrap();
        assert_eq!(a, vec![json!(1), json!("x")]);
        assert_eq!(k["k"], json!(true));
        for bad in [
            &br#"{"args": []}"#[..],
            br#"{"kwargs": {}}"#,
            b"not json",
            b"[1]",
            br#"{"args": 1, "kwargs": {}}"#,
        ] {
            let e = decode_request(bad).unwrap_err();
            assert_eq!(e.exc_path, "nameko.exceptions.MalformedRequest");
            assert_eq!(e.value, "Message missing `args` or `kwargs`");
        }
    }

    #[test]
    fn reply_encoding() {
        let ok: Value = serde_json::from_slice(&encode_reply(&Ok(json!({"a": 1})))).unwrap();
        assert_eq!(ok, json!({"result": {"a": 1}, "error": null}));
        let err: Value =
            serde_json::from_slice(&encode_reply(&Err(RpcError::method_not_found("m")))).unwrap();
        assert_eq!(err["result"], Value::Null);
        assert_eq!(err["error"]["exc_type"], "MethodNotFound");
        assert_eq!(err["error"]["exc_args"], json!(["m"]));
    }
}
