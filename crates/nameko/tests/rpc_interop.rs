//! RPC interoperability with Python Nameko 2.14.1 over a real RabbitMQ (a
//! virtual host per test).

mod common;

use std::time::{Duration, Instant};

use common::{PyService, python_rpc_calls};
use serde_json::{Map, Value, json};
use sfstream_nameko::{Connection, RpcCallError, RpcError, RpcProxy, RpcServer, Signature};
use sfstream_testkit::rabbitmq::Vhost;
use sfstream_testkit::unique;

fn kwargs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn arg<'a>(args: &'a [Value], kwargs: &'a Map<String, Value>, i: usize, name: &str) -> &'a Value {
    args.get(i)
        .or_else(|| kwargs.get(name))
        .unwrap_or(&Value::Null)
}

fn rust_service(name: &str) -> RpcServer {
    RpcServer::new(name)
        .method_with_signature("add", Signature::new().param("a").param("b"), |_ctx, args, kw| async move {
            let a = arg(&args, &kw, 0, "a").as_i64().unwrap_or(0);
            let b = arg(&args, &kw, 1, "b").as_i64().unwrap_or(0);
            Ok(json!(a + b))
        })
        .method_with_signature(
            "create_contact",
            Signature::new().param("last_name").param("email_address"),
            |_ctx, args, kw| async move {
                Ok(json!({"LastName": arg(&args, &kw, 0, "last_name"), "Email": arg(&args, &kw, 1, "email_address")}))
            },
        )
        .method("boom", |_ctx, _args, _kw| async move {
            Err(RpcError::typed("ValueError", "builtins.ValueError", "kaboom"))
        })
        .method("slow", |_ctx, _args, _kw| async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            Ok(json!("done"))
        })
        .method("plain_fail", |_ctx, _args, _kw| async move { Err(RpcError::new("oops")) })
        .method("whoami", |ctx, _args, _kw| async move {
            Ok(json!({
                "call_id": ctx.call_id,
                "parent_call_id_stack": ctx.parent_call_id_stack,
                "call_id_stack": ctx.call_id_stack(),
                "data": ctx.data,
            }))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cluster_proxy_calls_rust_server() {
    let vhost = Vhost::create();
    let conn = Connection::connect(&vhost.amqp_uri())
        .await
        .expect("connect");
    let name = unique("rust-rpc");
    let server = rust_service(&name).start(&conn).await.expect("start");
    assert_eq!(server.queue_name(), format!("rpc-{name}"));

    let calls = json!({
        "timeout": 20,
        "context_data": {"language": "fr", "user_id": "u-7"},
        "calls": [
            {"service": name, "method": "add", "args": [1, 2]},
            {"service": name, "method": "add", "args": [40], "kwargs": {"b": 2}},
            {"service": name, "method": "missing", "args": []},
            {"service": name, "method": "create_contact", "args": ["Yo"]},
            {"service": name, "method": "add", "args": [1, 2, 3]},
            {"service": name, "method": "create_contact", "args": ["Yo", "yo@yo.yo"]},
            {"service": name, "method": "boom"},
            {"service": name, "method": "plain_fail"},
            {"service": name, "method": "whoami"},
        ]
    });
    let r = python_rpc_calls(&vhost.amqp_uri(), calls).await;
    assert_eq!(r[0], json!({"ok": 3}));
    assert_eq!(r[1], json!({"ok": 42}));
    // Nameko re-raises registered exceptions as themselves.
    assert_eq!(r[2]["error"]["class"], "MethodNotFound", "{}", r[2]);
    assert_eq!(r[2]["error"]["module"], "nameko.exceptions");
    assert_eq!(r[2]["error"]["args"], json!(["missing"]));
    assert_eq!(r[3]["error"]["class"], "IncorrectSignature", "{}", r[3]);
    assert_eq!(
        r[3]["error"]["str"],
        "create_contact() missing 1 required positional argument: 'email_address'"
    );
    assert_eq!(r[4]["error"]["class"], "IncorrectSignature");
    assert_eq!(
        r[4]["error"]["str"],
        "add() takes 3 positional arguments but 4 were given"
    );
    assert_eq!(r[5], json!({"ok": {"LastName": "Yo", "Email": "yo@yo.yo"}}));
    // Other exceptions become RemoteError(exc_type, value).
    assert_eq!(r[6]["error"]["class"], "RemoteError", "{}", r[6]);
    assert_eq!(r[6]["error"]["exc_type"], "ValueError");
    assert_eq!(r[6]["error"]["value"], "kaboom");
    assert_eq!(r[6]["error"]["str"], "ValueError kaboom");
    assert_eq!(r[7]["error"]["exc_type"], "Exception");
    assert_eq!(r[7]["error"]["value"], "oops");
    // Context headers: the standalone proxy's call id stack and context data.
    let who = &r[8]["ok"];
    let parents = who["parent_call_id_stack"].as_array().expect("stack");
    assert_eq!(parents.len(), 1, "{who}");
    assert!(
        parents[0]
            .as_str()
            .unwrap_or("")
            .starts_with("standalone_rpc_proxy.call."),
        "{who}"
    );
    assert!(
        who["call_id"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("{name}.whoami."))
    );
    assert_eq!(who["call_id_stack"][1], who["call_id"]);
    assert_eq!(who["data"]["language"], "fr");
    assert_eq!(who["data"]["user_id"], "u-7");

    assert!(server.shutdown(Duration::from_secs(5)).await);
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_proxy_calls_python_service() {
    let vhost = Vhost::create();
    let name = unique("py-rpc");
    let py = PyService::start(&vhost.amqp_uri(), &name, &unique("unused"), "nothing").await;
    let conn = Connection::connect(&vhost.amqp_uri())
        .await
        .expect("connect");
    let rpc = RpcProxy::start(&conn).await.expect("proxy");
    assert!(
        rpc.reply_queue()
            .starts_with("rpc.reply-standalone_rpc_proxy-")
    );
    let t = Duration::from_secs(10);

    let v = rpc
        .call(&name, "add", vec![json!(2), json!(3)], Map::new(), t)
        .await
        .expect("add");
    assert_eq!(v, json!(5));
    let v = rpc
        .call(&name, "add", vec![], kwargs(json!({"a": "x", "b": "y"})), t)
        .await
        .expect("add kwargs");
    assert_eq!(v, json!("xy"));

    match rpc
        .call(&name, "fail", vec![json!("bad input")], Map::new(), t)
        .await
    {
        Err(RpcCallError::Remote {
            exc_type,
            exc_path,
            value,
            exc_args,
        }) => {
            assert_eq!(exc_type, "ValueError");
            assert_eq!(exc_path, "builtins.ValueError");
            assert_eq!(value, "bad input");
            assert_eq!(exc_args, vec![json!("bad input")]);
        }
        other => panic!("expected a remote ValueError, got {other:?}"),
    }
    match rpc.call(&name, "nope", vec![], Map::new(), t).await {
        Err(RpcCallError::Remote {
            exc_type,
            exc_path,
            value,
            ..
        }) => {
            assert_eq!(
                (exc_type.as_str(), exc_path.as_str(), value.as_str()),
                ("MethodNotFound", "nameko.exceptions.MethodNotFound", "nope")
            );
        }
        other => panic!("expected MethodNotFound, got {other:?}"),
    }
    match rpc.call(&name, "add", vec![json!(1)], Map::new(), t).await {
        Err(RpcCallError::Remote {
            exc_type, value, ..
        }) => {
            assert_eq!(exc_type, "IncorrectSignature");
            assert_eq!(value, "add() missing 1 required positional argument: 'b'");
        }
        other => panic!("expected IncorrectSignature, got {other:?}"),
    }

    let started = Instant::now();
    let ghost = unique("nobody");
    match rpc.call(&ghost, "anything", vec![], Map::new(), t).await {
        Err(RpcCallError::UnknownService(s)) => assert_eq!(s, ghost),
        other => panic!("expected UnknownService, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    match rpc
        .call(
            &name,
            "sleep",
            vec![json!(3)],
            Map::new(),
            Duration::from_millis(500),
        )
        .await
    {
        Err(RpcCallError::Timeout(d)) => assert_eq!(d, Duration::from_millis(500)),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));

    // Concurrent calls on one proxy are matched by correlation id.
    let calls = (0..20).map(|i| rpc.call(&name, "add", vec![json!(i), json!(1000)], Map::new(), t));
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.expect("concurrent call"), json!(i as i64 + 1000));
    }
    // Our declaration of `rpc-<service>` is identical to Nameko's: the broker
    // accepts it for the queue the Python service declared.
    let twin = RpcServer::new(name.clone())
        .start(&conn)
        .await
        .expect("same declaration as Nameko");
    twin.shutdown(Duration::from_secs(2)).await;
    rpc.stop().await;
    conn.close().await;
    drop(py);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_proxy_calls_rust_server_concurrently() {
    // Nameko's `pyamqp://` scheme is accepted.
    let vhost = Vhost::create();
    let conn = Connection::connect(&vhost.pyamqp_uri())
        .await
        .expect("connect");
    let name = unique("rust-rr");
    let server = rust_service(&name)
        .max_workers(4)
        .start(&conn)
        .await
        .expect("start");
    let rpc = RpcProxy::start(&conn).await.expect("proxy");
    let t = Duration::from_secs(10);
    let calls = (0..30).map(|i| rpc.call(&name, "add", vec![json!(i)], kwargs(json!({"b": 1})), t));
    for (i, r) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(r.expect("call"), json!(i as i64 + 1));
    }
    match rpc
        .call(
            &name,
            "create_contact",
            vec![],
            kwargs(json!({"last_name": "x", "bogus": 1})),
            t,
        )
        .await
    {
        Err(RpcCallError::Remote {
            exc_type, value, ..
        }) => {
            assert_eq!(exc_type, "IncorrectSignature");
            assert_eq!(
                value,
                "create_contact() got an unexpected keyword argument 'bogus'"
            );
        }
        other => panic!("{other:?}"),
    }
    // Redeclaring the queue with Nameko's arguments is accepted by the broker
    // (a second server instance of the same service competes for calls).
    let second = rust_service(&name)
        .start(&conn)
        .await
        .expect("same declaration accepted");
    assert_eq!(
        rpc.call(&name, "add", vec![json!(1), json!(1)], Map::new(), t)
            .await
            .expect("call"),
        json!(2)
    );
    assert!(second.shutdown(Duration::from_secs(5)).await);
    // A clean shutdown waits for the in-flight call, which still gets its reply.
    let slow = rpc.call(&name, "slow", vec![], Map::new(), t);
    let stop = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.shutdown(Duration::from_secs(5)).await
    };
    let (slow, all_done) = tokio::join!(slow, stop);
    assert_eq!(slow.expect("in-flight call answered"), json!("done"));
    assert!(all_done);
    rpc.stop().await;
    conn.close().await;
}
