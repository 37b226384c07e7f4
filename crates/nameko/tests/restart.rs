//! RabbitMQ restart: the RPC server, RPC client and event handler reconnect,
//! redeclare and keep serving; a confirmed, persistent event that was being
//! handled when the broker stopped is redelivered (ack after handling).
//!
//! Uses `rabbitmqctl stop_app` / `start_app`; the guard starts the broker
//! application again even when the test fails.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{amqp_uri, delete_queues};
use serde_json::{Map, Value, json};
use sfstream_nameko::{
    Connection, EventDispatcher, EventHandler, HandlerError, RpcProxy, RpcServer,
};
use sfstream_testkit::unique;
use tokio::sync::Notify;

fn rabbitmqctl(args: &[&str]) -> bool {
    match Command::new("rabbitmqctl").args(args).output() {
        Ok(out) => out.status.success(),
        Err(_) => false,
    }
}

/// Starts the RabbitMQ application again on drop (also on test failure).
struct BrokerGuard;

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup", "--timeout", "60"]);
    }
}

async fn ctl(args: &'static [&'static str]) {
    let ok = tokio::task::spawn_blocking(move || rabbitmqctl(args))
        .await
        .unwrap_or(false);
    assert!(ok, "rabbitmqctl {args:?} failed");
}

async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_broker_restart_without_losing_messages() {
    let _guard = BrokerGuard;
    let test = async {
        let conn = Connection::connect(&amqp_uri()).await.expect("connect");
        let svc = unique("rust-restart");
        let src = unique("rust-restart-src");
        let server = RpcServer::new(svc.clone())
            .method("echo", |_ctx, args, _kw| async move {
                Ok(args.first().cloned().unwrap_or(Value::Null))
            })
            .start(&conn)
            .await
            .expect("server");
        let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let slow_started = Arc::new(Notify::new());
        let (s, n) = (seen.clone(), slow_started.clone());
        let handler = EventHandler::new(svc.clone(), "on_tick", src.clone(), "tick")
            .start(&conn, move |_ctx, payload| {
                let (s, n) = (s.clone(), n.clone());
                async move {
                    let name = payload.as_str().unwrap_or_default().to_owned();
                    let first = {
                        let mut g = s.lock().map_err(|_| HandlerError::from("poisoned"))?;
                        let first = !g.iter().any(|(p, _)| *p == name);
                        g.push((name.clone(), first));
                        first
                    };
                    if name == "slow" && first {
                        // Still handling (unacked) while the broker goes down.
                        n.notify_one();
                        tokio::time::sleep(Duration::from_secs(4)).await;
                    }
                    Ok(())
                }
            })
            .await
            .expect("handler");
        let events = EventDispatcher::new(&conn, src.clone());
        let rpc = RpcProxy::start(&conn).await.expect("proxy");
        let t = Duration::from_secs(30);
        let count = |name: &str| {
            seen.lock()
                .map(|v| v.iter().filter(|(p, _)| p == name).count())
                .unwrap_or(0)
        };

        assert_eq!(
            rpc.call(&svc, "echo", vec![json!("before")], Map::new(), t)
                .await
                .expect("echo"),
            json!("before")
        );
        events
            .dispatch("tick", &json!("before"))
            .await
            .expect("dispatch before");
        wait_until("event before", Duration::from_secs(10), || {
            count("before") == 1
        })
        .await;

        events
            .dispatch("tick", &json!("slow"))
            .await
            .expect("dispatch slow");
        tokio::time::timeout(Duration::from_secs(10), slow_started.notified())
            .await
            .expect("slow started");
        let generation = conn.generation();

        ctl(&["stop_app"]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        ctl(&["start_app"]).await;
        ctl(&["await_startup"]).await;

        // The unacked "slow" event survived in the durable queue and is redelivered.
        wait_until(
            "redelivery of the unacked event",
            Duration::from_secs(30),
            || count("slow") >= 2,
        )
        .await;
        // Publishing, RPC serving and reply consuming all work again.
        events
            .dispatch("tick", &json!("after"))
            .await
            .expect("dispatch after");
        wait_until("event after", Duration::from_secs(30), || {
            count("after") == 1
        })
        .await;
        assert_eq!(
            rpc.call(&svc, "echo", vec![json!("after")], Map::new(), t)
                .await
                .expect("echo after"),
            json!("after")
        );
        assert!(conn.generation() > generation, "reconnected");
        assert_eq!(count("before"), 1, "acked events are not redelivered");

        handler.shutdown(Duration::from_secs(5)).await;
        server.shutdown(Duration::from_secs(5)).await;
        rpc.stop().await;
        conn.close().await;
        delete_queues(&[
            format!("rpc-{svc}"),
            format!("evt-{src}-tick--{svc}.on_tick"),
        ])
        .await;
    };
    tokio::time::timeout(Duration::from_secs(120), test)
        .await
        .expect("restart test bounded in time");
}
