//! `rpc-server NAME [MAX_WORKERS] [LIFETIME_S]`: a Nameko RPC service NAME
//! with one method, `echo(x)` returning x, on the RabbitMQ at
//! `$SFSTREAM_AMQP_URI` (default amqp://guest:guest@127.0.0.1:5672/%2f).
//! Prints `{"ready":true}` once consuming; exits when stdin closes or after
//! LIFETIME_S seconds (default 900).
//!
//! `rpc-client NAME CALLS CONCURRENCY`: CONCURRENCY callers, each with its
//! own `RpcProxy` (own reply queue, like one `ClusterRpcProxy` per Python
//! caller), together make CALLS calls of `NAME.echo(i)` and check each
//! answer. Prints one JSON line: calls, seconds (calls only, proxies
//! started before the clock starts) and calls/s.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, json};
use sfstream_nameko::{Connection, RpcProxy, RpcServer, Signature};

use crate::Result;

fn amqp_uri() -> String {
    std::env::var("SFSTREAM_AMQP_URI")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

pub async fn server(name: &str, max_workers: &str, lifetime: &str) -> Result<()> {
    let max_workers: u16 = max_workers.parse()?;
    let lifetime = Duration::from_secs(lifetime.parse()?);
    let conn = Connection::connect(&amqp_uri()).await?;
    let handle = RpcServer::new(name)
        .max_workers(max_workers)
        .method_with_signature(
            "echo",
            Signature::new().param("x"),
            |_ctx, args, kw| async move {
                Ok(args
                    .into_iter()
                    .next()
                    .or_else(|| kw.get("x").cloned())
                    .unwrap_or_default())
            },
        )
        .start(&conn)
        .await?;
    println!(
        "{}",
        json!({"ready": true, "queue": handle.queue_name(), "max_workers": max_workers})
    );
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while let Ok(n) = std::io::stdin().read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        let _ = closed_tx.send(());
    });
    let stdin_closed = closed_rx;
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::time::sleep(lifetime) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    handle.shutdown(Duration::from_secs(5)).await;
    conn.close().await;
    Ok(())
}

pub async fn client(name: &str, calls: &str, concurrency: &str) -> Result<()> {
    let calls: usize = calls.parse()?;
    let concurrency: usize = concurrency.parse()?;
    let conn = Connection::connect(&amqp_uri()).await?;
    let mut proxies = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        proxies.push(RpcProxy::start(&conn).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let timeout = Duration::from_secs(30);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for proxy in proxies {
        let next = next.clone();
        let name = name.to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    break;
                }
                let v = proxy
                    .call(&name, "echo", vec![json!(i)], Map::new(), timeout)
                    .await
                    .map_err(|e| format!("call {i}: {e}"))?;
                if v != json!(i) {
                    return Err(format!("call {i}: got {v}"));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"calls": calls, "concurrency": concurrency, "seconds": secs, "calls_per_s": calls as f64 / secs})
    );
    conn.close().await;
    Ok(())
}
