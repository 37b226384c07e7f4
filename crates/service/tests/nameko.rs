//! Nameko entrypoints of the service runtime on the real RabbitMQ (a
//! virtual host per test): RPC methods with dependencies and dispatching,
//! event handlers, graceful stop, and the start-up error without `AMQP_URI`.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use sfstream_nameko::{Connection, RpcCallError, RpcProxy};
use sfstream_service::config::{Config, env_from};
use sfstream_service::nameko::{Amqp, HandlerType, NamekoEvent, RpcCall, RpcError, Signature};
use sfstream_service::{Service, ServiceError};
use sfstream_testkit::rabbitmq::Vhost;
use sfstream_testkit::unique;

fn config(yaml: &str) -> Config {
    Config::from_yaml_with_env(yaml, env_from::<&str, &str>([])).expect("config")
}

struct Greeting(String);

type Seen = Arc<Mutex<Vec<Value>>>;

async fn greet(
    call: RpcCall,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
) -> Result<Value, RpcError> {
    let name = call.arg(&args, &kwargs, 0, "name")?;
    let greeting = call.dependency::<Greeting>()?;
    call.dispatch("greeted", &json!({"name": name})).await?;
    Ok(json!(format!(
        "{} {}",
        greeting.0,
        name.as_str().unwrap_or("?")
    )))
}

#[tokio::test]
async fn rpc_methods_and_event_handlers_run_in_the_service() {
    let vhost = Vhost::create();
    let name = unique("svc-nameko");
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let running = Service::new(&name)
        .config(config(&format!(
            "AMQP_URI: '{}'\nSHUTDOWN_TIMEOUT: 5\n",
            vhost.pyamqp_uri()
        )))
        .dependency(Greeting("Hello".into()))
        .dependency_arc(seen.clone())
        .rpc("greet", Signature::new().param("name"), greet)
        .rpc_method(
            "echo",
            |_call, args, _kwargs| async move { Ok(json!(args)) },
        )
        .event_handler(
            &name,
            "greeted",
            HandlerType::ServicePool,
            move |event: NamekoEvent, payload: Value| {
                let sink = sink.clone();
                async move {
                    let parent = event.worker().immediate_parent_call_id().map(str::to_owned);
                    sink.lock()
                        .push(json!({"payload": payload, "parent": parent}));
                }
            },
        )
        .start()
        .await
        .expect("starts");

    let connection = Connection::connect(&vhost.pyamqp_uri())
        .await
        .expect("RabbitMQ");
    let proxy = RpcProxy::start(&connection).await.expect("proxy");
    let timeout = Duration::from_secs(10);
    let reply = proxy
        .call(&name, "greet", vec![json!("Ann")], Map::new(), timeout)
        .await
        .expect("greet");
    assert_eq!(reply, json!("Hello Ann"));
    let echoed = proxy
        .call(&name, "echo", vec![json!(1), json!(2)], Map::new(), timeout)
        .await
        .expect("echo");
    assert_eq!(echoed, json!([1, 2]));
    match proxy
        .call(&name, "greet", vec![], Map::new(), timeout)
        .await
    {
        Err(RpcCallError::Remote { exc_type, .. }) => assert_eq!(exc_type, "IncorrectSignature"),
        other => panic!("{other:?}"),
    }
    match proxy.call(&name, "nope", vec![], Map::new(), timeout).await {
        Err(RpcCallError::Remote { exc_type, .. }) => assert_eq!(exc_type, "MethodNotFound"),
        other => panic!("{other:?}"),
    }

    // The event dispatched by the RPC method reaches the handler, with the
    // call's id as parent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = seen.lock().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"], json!({"name": "Ann"}));
    assert!(
        got[0]["parent"]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("{name}.greet."))),
        "{got:?}"
    );

    // An event from outside, through the running service's own dispatcher.
    let dispatcher = running
        .context()
        .extension::<Amqp>()
        .expect("an AMQP connection")
        .dispatcher()
        .clone();
    dispatcher
        .dispatch("greeted", &json!({"name": "Bob"}))
        .await
        .expect("dispatch");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.lock().len(), 2);

    tokio::time::timeout(Duration::from_secs(15), running.stop())
        .await
        .expect("stops within the shutdown timeout")
        .expect("stops cleanly");
    // Stopped: nobody consumes rpc-<name> any more.
    match proxy
        .call(&name, "echo", vec![], Map::new(), Duration::from_secs(2))
        .await
    {
        Err(RpcCallError::Remote { .. }) => panic!("still answering after stop"),
        Err(_) => {}
        Ok(v) => panic!("still answering after stop: {v}"),
    }
    proxy.stop().await;
    connection.close().await;
}

#[tokio::test]
async fn nameko_entrypoints_without_amqp_uri_fail_to_start() {
    let error = Service::new("no-amqp")
        .config(config("max_workers: 2\n"))
        .rpc_method("x", |_c, _a, _k| async { Ok(Value::Null) })
        .start()
        .await
        .expect_err("no AMQP_URI");
    assert!(matches!(error, ServiceError::Entrypoints { .. }), "{error}");
    assert!(error.to_string().contains("AMQP_URI"), "{error}");
}

#[tokio::test]
async fn event_handlers_keep_the_configured_parent_calls_tracked() {
    let vhost = Vhost::create();
    let name = unique("svc-tracked");
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let running = Service::new(&name)
        .config(config(&format!(
            "AMQP_URI: '{}'\nSHUTDOWN_TIMEOUT: 5\nparent_calls_tracked: 2\n",
            vhost.pyamqp_uri()
        )))
        .event_handler(
            &name,
            "deep",
            HandlerType::ServicePool,
            move |event: NamekoEvent, _payload: Value| {
                let sink = sink.clone();
                async move {
                    sink.lock().push(json!(event.worker().call_id_stack()));
                }
            },
        )
        .start()
        .await
        .expect("starts");
    let mut data = Map::new();
    data.insert(
        "call_id_stack".into(),
        json!(["a.m.0", "a.m.1", "a.m.2", "a.m.3", "a.m.4"]),
    );
    running
        .context()
        .extension::<Amqp>()
        .expect("an AMQP connection")
        .dispatcher()
        .dispatch_with_data("deep", &json!({}), &data)
        .await
        .expect("dispatch");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = seen.lock().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let stack = got[0].as_array().expect("a stack");
    // Nameko's deque(maxlen=parent_calls_tracked + 1).
    assert_eq!(stack.len(), 3, "{got:?}");
    assert_eq!(stack[0], "a.m.3");
    assert_eq!(stack[1], "a.m.4");
    assert!(
        stack[2]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("{name}.handle_"))),
        "{got:?}"
    );
    tokio::time::timeout(Duration::from_secs(15), running.stop())
        .await
        .expect("stops within the shutdown timeout")
        .expect("stops cleanly");
}

#[tokio::test]
async fn a_service_with_only_an_event_dispatcher_keeps_its_connection_until_stopped() {
    let vhost = Vhost::create();
    let name = unique("svc-dispatch-only");
    let running = Service::new(&name)
        .config(config(&format!(
            "AMQP_URI: '{}'\nSHUTDOWN_TIMEOUT: 5\n",
            vhost.pyamqp_uri()
        )))
        .event_dispatcher()
        .start()
        .await
        .expect("starts");
    // Long enough for a service that had nothing to run to have stopped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let amqp = running
        .context()
        .extension::<Amqp>()
        .expect("an AMQP connection")
        .clone();
    tokio::time::timeout(
        Duration::from_secs(10),
        amqp.dispatcher().dispatch("ping", &json!({"n": 1})),
    )
    .await
    .expect("within 10 s")
    .expect("dispatched: the connection is open while the service runs");
    tokio::time::timeout(Duration::from_secs(15), running.stop())
        .await
        .expect("stops within the shutdown timeout")
        .expect("stops cleanly");
}
