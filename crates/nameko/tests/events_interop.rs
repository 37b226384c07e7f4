//! Event interoperability with Python Nameko 2.14.1 over a real RabbitMQ
//! (a virtual host per test).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::PyService;
use serde_json::{Map, Value, json};
use sfstream_nameko::{
    Connection, EventDispatcher, EventHandler, HandlerError, HandlerType, RpcProxy, RpcServer,
};
use sfstream_testkit::rabbitmq::Vhost;
use sfstream_testkit::unique;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_events_reach_python_handler_with_call_id_stack() {
    let vhost = Vhost::create();
    let rust_name = unique("rust-evt");
    let mut py = PyService::start(
        &vhost.amqp_uri(),
        &unique("py-listener"),
        &rust_name,
        "thing_happened",
    )
    .await;
    let conn = Connection::connect(&vhost.amqp_uri())
        .await
        .expect("connect");

    // A plain dispatch (no worker context): no call id stack.
    let events = Arc::new(EventDispatcher::new(&conn, rust_name.clone()));
    events
        .dispatch("thing_happened", &json!({"n": 1}))
        .await
        .expect("dispatch");
    let got = py.next(Duration::from_secs(15)).await;
    assert_eq!(got["event"], json!({"n": 1}), "{got}");
    assert_eq!(got["parent_call_id_stack"], json!([]));

    // Dispatched from inside a Rust RPC handler: the event carries the
    // handler's extended call id stack and the caller's context data.
    let ev = events.clone();
    let server = RpcServer::new(rust_name.clone())
        .method("do_thing", move |ctx, args, _kw| {
            let ev = ev.clone();
            async move {
                let payload = args.first().cloned().unwrap_or(Value::Null);
                ev.dispatch_with_context(&ctx, "thing_happened", &payload)
                    .await
                    .map_err(|e| sfstream_nameko::RpcError::new(e.to_string()))?;
                Ok(json!({"call_id": ctx.call_id, "stack": ctx.call_id_stack()}))
            }
        })
        .start(&conn)
        .await
        .expect("server");
    let rpc = RpcProxy::start(&conn).await.expect("proxy");
    let mut data = Map::new();
    data.insert("call_id_stack".into(), json!(["origin.svc.1"]));
    data.insert("language".into(), json!("de"));
    let reply = rpc
        .call_with_data(
            &rust_name,
            "do_thing",
            vec![json!({"n": 2})],
            Map::new(),
            &data,
            Duration::from_secs(10),
        )
        .await
        .expect("do_thing");
    let got = py.next(Duration::from_secs(15)).await;
    assert_eq!(got["event"], json!({"n": 2}), "{got}");
    assert_eq!(
        got["parent_call_id_stack"],
        json!(["origin.svc.1", reply["call_id"]]),
        "{got} {reply}"
    );
    assert_eq!(got["parent_call_id_stack"], reply["stack"]);
    assert!(
        reply["call_id"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("{rust_name}.do_thing."))
    );
    assert_eq!(got["data"]["language"], "de");

    server.shutdown(Duration::from_secs(5)).await;
    rpc.stop().await;
    conn.close().await;
    drop(py);
}

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

async fn recorder(
    conn: &Connection,
    handler: EventHandler,
    label: &str,
    seen: &Seen,
) -> sfstream_nameko::ConsumerHandle {
    let seen = seen.clone();
    let label = label.to_owned();
    handler
        .start(conn, move |_ctx, payload| {
            let seen = seen.clone();
            let label = label.clone();
            async move {
                seen.lock()
                    .map_err(|_| HandlerError::from("poisoned"))?
                    .push((label, payload));
                Ok(())
            }
        })
        .await
        .expect("handler")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_events_reach_rust_pool_and_broadcast_handlers() {
    let vhost = Vhost::create();
    let py_name = unique("py-src");
    let py = PyService::start(&vhost.amqp_uri(), &py_name, &unique("unused"), "nothing").await;
    let conn = Connection::connect(&vhost.amqp_uri())
        .await
        .expect("connect");
    let conn2 = Connection::connect(&vhost.amqp_uri())
        .await
        .expect("connect 2");
    let svc = unique("rust-sink");
    let seen: Seen = Arc::default();

    let pool = EventHandler::new(svc.clone(), "on_py", py_name.clone(), "py_happened");
    assert_eq!(
        pool.queue_declaration().expect("decl").name,
        format!("evt-{py_name}-py_happened--{svc}.on_py")
    );
    let p1 = recorder(&conn, pool.clone(), "pool-1", &seen).await;
    let p2 = recorder(&conn2, pool, "pool-2", &seen).await;
    let broadcast = EventHandler::new(svc.clone(), "on_py_all", py_name.clone(), "py_happened")
        .handler_type(HandlerType::Broadcast)
        .reliable_delivery(false);
    let b1 = recorder(&conn, broadcast.clone(), "bcast-1", &seen).await;
    let b2 = recorder(&conn2, broadcast, "bcast-2", &seen).await;
    assert_ne!(b1.queue_name(), b2.queue_name());
    assert!(
        b1.queue_name()
            .starts_with(&format!("evt-{py_name}-py_happened--{svc}.on_py_all-"))
    );

    let rpc = RpcProxy::start(&conn).await.expect("proxy");
    const N: usize = 6;
    for i in 0..N {
        rpc.call(
            &py_name,
            "emit_event",
            vec![json!("py_happened"), json!({"i": i})],
            Map::new(),
            Duration::from_secs(10),
        )
        .await
        .expect("emit_event");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let n = seen.lock().map(|v| v.len()).unwrap_or(0);
        if n >= 3 * N || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // no extra deliveries
    let seen = seen.lock().expect("lock").clone();
    let count = |prefix: &str| seen.iter().filter(|(l, _)| l.starts_with(prefix)).count();
    assert_eq!(count("bcast-1"), N, "{seen:?}");
    assert_eq!(count("bcast-2"), N, "{seen:?}");
    assert_eq!(count("pool-"), N, "service pool handlers compete: {seen:?}");
    let mut pool_payloads: Vec<i64> = seen
        .iter()
        .filter(|(l, _)| l.starts_with("pool-"))
        .filter_map(|(_, p)| p["i"].as_i64())
        .collect();
    pool_payloads.sort_unstable();
    assert_eq!(pool_payloads, (0..N as i64).collect::<Vec<_>>());

    for h in [p1, p2, b1, b2] {
        assert!(h.shutdown(Duration::from_secs(5)).await);
    }
    rpc.stop().await;
    conn.close().await;
    conn2.close().await;
    drop(py);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_are_acked_or_requeued() {
    let vhost = Vhost::create();
    let conn = Connection::connect(&vhost.amqp_uri())
        .await
        .expect("connect");
    let src = unique("rust-src");
    let svc = unique("rust-h");
    let (tx, mut rx) = mpsc::unbounded_channel::<(&'static str, Value)>();

    // Default: a failing handler's event is acked (not redelivered).
    let t1 = tx.clone();
    let failing = EventHandler::new(svc.clone(), "fails", src.clone(), "e")
        .start(&conn, move |_ctx, p| {
            let t1 = t1.clone();
            async move {
                let _ = t1.send(("fails", p));
                Err(HandlerError::from("always"))
            }
        })
        .await
        .expect("handler");
    // requeue_on_error: redelivered until it succeeds.
    let attempts = Arc::new(Mutex::new(0u32));
    let t2 = tx.clone();
    let a2 = attempts.clone();
    let requeueing = EventHandler::new(svc.clone(), "retries", src.clone(), "e")
        .requeue_on_error(true)
        .start(&conn, move |_ctx, p| {
            let t2 = t2.clone();
            let a2 = a2.clone();
            async move {
                let n = {
                    let mut g = a2.lock().map_err(|_| HandlerError::from("poisoned"))?;
                    *g += 1;
                    *g
                };
                let _ = t2.send(("retries", p));
                if n < 3 {
                    Err(HandlerError::from("not yet"))
                } else {
                    Ok(())
                }
            }
        })
        .await
        .expect("handler");

    EventDispatcher::new(&conn, src.clone())
        .dispatch("e", &json!("x"))
        .await
        .expect("dispatch");
    let mut fails = 0;
    let mut retries = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some((who, _))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        match who {
            "fails" => fails += 1,
            _ => retries += 1,
        }
    }
    assert_eq!(fails, 1);
    assert_eq!(retries, 3);
    failing.shutdown(Duration::from_secs(2)).await;
    requeueing.shutdown(Duration::from_secs(2)).await;

    // A reliable broadcast handler needs an explicit identifier, as in Nameko.
    let err = EventHandler::new(svc, "b", src, "e")
        .handler_type(HandlerType::Broadcast)
        .queue_declaration()
        .unwrap_err();
    assert!(err.to_string().contains("broadcast identifier"));
    conn.close().await;
}
