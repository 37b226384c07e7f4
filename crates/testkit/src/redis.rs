//! A private `redis-server` for a test that must stop Redis: the shared
//! one on 6379 serves every other test and must never go down.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A `redis-server` on a free loopback port, without persistence (nothing
/// survives a restart) unless started with
/// [`start_persistent`](Self::start_persistent). Killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// With persistence: where its append-only file lives.
    data: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// Starts one; returns once it accepts connections (at most 5 s).
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            port,
            child: None,
            data: None,
        };
        server.restart().await;
        server
    }

    /// Starts one that keeps its data across [`restart`](Self::restart)s
    /// and kills, as a production Redis with `appendonly yes` and
    /// `appendfsync always` does.
    pub async fn start_persistent() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            port,
            child: None,
            data: Some(tempfile::tempdir().expect("a data directory")),
        };
        server.restart().await;
        server
    }

    /// Its URL, database 0.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops it with SIGKILL (as a crash would) and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port (empty, unless persistent);
    /// returns once it accepts connections (at most 5 s). Kills the
    /// running one first, if any.
    pub async fn restart(&mut self) {
        self.kill().await;
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()]);
        match &self.data {
            Some(dir) => command
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--dir")
                .arg(dir.path()),
            None => command.args(["--save", "", "--appendonly", "no"]),
        };
        let child = command
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (scripts/test-deps.sh installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answers(server: &RedisServer) -> bool {
        tokio::net::TcpStream::connect(("127.0.0.1", server.port))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn stops_and_starts_again_on_its_port() {
        let mut server = RedisServer::start().await;
        assert!(server.url().starts_with("redis://127.0.0.1:"));
        assert!(answers(&server).await);
        server.kill().await;
        assert!(!answers(&server).await);
        server.restart().await;
        assert!(answers(&server).await);
    }
}
