//! `sfstream rpc` against a Nameko RPC service on the real RabbitMQ (a
//! virtual host of its own).

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use sfstream_nameko::{Connection, RpcError, RpcServer, Signature};
use sfstream_testkit::rabbitmq::Vhost;
use sfstream_testkit::unique;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");

async fn rpc(vhost: &Vhost, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("rpc")
        .args(args)
        .env("AMQP_URI", vhost.amqp_uri())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("finishes")
        .expect("runs")
}

#[tokio::test]
async fn calls_a_nameko_service_and_reports_remote_errors() {
    let vhost = Vhost::create();
    let name = unique("cli-rpc");
    let connection = Connection::connect(&vhost.amqp_uri())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672");
    let server = RpcServer::new(&name)
        .method_with_signature(
            "add",
            Signature::new().param("a").param("b"),
            |_ctx, args, kwargs| async move {
                let get = |i: usize, key: &str| {
                    args.get(i)
                        .or_else(|| kwargs.get(key))
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                };
                Ok(json!(get(0, "a") + get(1, "b")))
            },
        )
        .method("fail", |_ctx, _args, _kwargs| async move {
            Err(RpcError::typed(
                "ValueError",
                "builtins.ValueError",
                "no can do",
            ))
        })
        .start(&connection)
        .await
        .expect("server");

    let output = rpc(&vhost, &[&name, "add", "[2, 3]"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "5");
    let output = rpc(&vhost, &[&name, "add", "--kwargs", r#"{"a": 1, "b": 41}"#]).await;
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "42");

    let output = rpc(&vhost, &[&name, "add", "[1, 2, 3]"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("IncorrectSignature")
            && stderr.contains("takes 3 positional arguments but 4 were given"),
        "{stderr}"
    );

    let output = rpc(&vhost, &[&name, "fail"]).await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("ValueError: no can do"));
    let output = rpc(&vhost, &[&name, "nope"]).await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("MethodNotFound"));
    let output = rpc(&vhost, &["no-such-service-xyz", "x"]).await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("no service named"));
    let output = rpc(&vhost, &[&name, "add", "{not an array}"]).await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("must be a JSON array"));

    server.shutdown(Duration::from_secs(5)).await;
    connection.close().await;
}
