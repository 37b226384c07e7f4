//! A RabbitMQ virtual host per test on the shared broker, so that tests
//! running at the same time see none of each other's queues and exchanges,
//! and nothing a test declares outlives it.
//!
//! Made and removed with `rabbitmqctl` (the management API is not enabled
//! on the test broker), which needs the rights to administer the local
//! broker (root, or the `rabbitmq` user's Erlang cookie).

use std::process::Command;

/// A virtual host where `guest` may do everything; deleted on drop, with
/// all it holds (and any connection still open to it).
#[derive(Debug)]
pub struct Vhost {
    name: String,
}

impl Vhost {
    /// Creates one. Blocks for the one or two seconds `rabbitmqctl` takes.
    pub fn create() -> Self {
        let vhost = Self {
            name: crate::unique("sfstream-test"),
        };
        rabbitmqctl(&["add_vhost", &vhost.name]);
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &vhost.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
        vhost
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `amqp://` URI of the broker on 127.0.0.1:5672 as `guest`, in this
    /// virtual host (its name needs no escaping).
    pub fn amqp_uri(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }

    /// Closes every client connection to this virtual host, as a broker
    /// or network failure would (the clients see the connection end and
    /// must reconnect). Other virtual hosts are not touched.
    pub fn close_connections(&self) {
        rabbitmqctl(&[
            "close_all_connections",
            "--vhost",
            &self.name,
            "sfstream test: connection loss",
        ]);
    }

    /// The same as a Nameko user writes it (kombu's `pyamqp://` scheme).
    pub fn pyamqp_uri(&self) -> String {
        format!("pyamqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        // No panic while a failing test unwinds: a vhost left behind is
        // only clutter.
        let _ = ctl(&["delete_vhost", &self.name]);
    }
}

/// `rabbitmqctl args`, given at most 30 s (coreutils' `timeout`: it would
/// wait much longer for a broker that does not answer).
fn ctl(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("timeout")
        .args(["30", "rabbitmqctl"])
        .args(args)
        .output()
}

fn rabbitmqctl(args: &[&str]) {
    let out = ctl(args).expect("rabbitmqctl runs (scripts/test-deps.sh installs RabbitMQ)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vhosts() -> String {
        String::from_utf8_lossy(&ctl(&["list_vhosts"]).expect("rabbitmqctl").stdout).into_owned()
    }

    #[test]
    fn exists_until_dropped() {
        let vhost = Vhost::create();
        let name = vhost.name().to_owned();
        assert!(vhosts().lines().any(|l| l.trim() == name));
        assert!(vhost.amqp_uri().ends_with(&format!(":5672/{name}")));
        drop(vhost);
        assert!(!vhosts().lines().any(|l| l.trim() == name));
    }
}
