//! `sfstream rpc` against a Nameko RPC service on the real RabbitMQ.

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use sfstream_nameko::{Connection, RpcError, RpcServer, Signature};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sfstream");
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn rpc(args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("rpc")
        .args(args)
        .env("AMQP_URI", AMQP)
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("finishes")
        .expect("runs")
}

#[tokio::test]
async fn calls_a_nameko_service_and_reports_remote_errors() {
    let name = format!("cli-rpc-{}", uuid::Uuid::new_v4().simple());
    let connection = Connection::connect(AMQP)
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

    let output = rpc(&[&name, "add", "[2, 3]"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "5");
    let output = rpc(&[&name, "add", "--kwargs", r#"{"a": 1, "b": 41}"#]).await;
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "42");

    let output = rpc(&[&name, "add", "[1, 2, 3]"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("IncorrectSignature")
            && stderr.contains("takes 3 positional arguments but 4 were given"),
        "{stderr}"
    );

    let output = rpc(&[&name, "fail"]).await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("ValueError: no can do"));
    let output = rpc(&[&name, "nope"]).await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("MethodNotFound"));
    let output = rpc(&["no-such-service-xyz", "x"]).await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("no service named"));
    let output = rpc(&[&name, "add", "{not an array}"]).await;
    assert!(String::from_utf8_lossy(&output.stderr).contains("must be a JSON array"));

    server.shutdown(Duration::from_secs(5)).await;
    connection.close().await;
}
