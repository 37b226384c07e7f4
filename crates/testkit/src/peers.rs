//! Where the third-party peers are: Python (with Nameko 2.14.1 and the
//! Salesforce clients) and the `node_modules` holding Faye, the CometD
//! server and jsforce. `SFSTREAM_PYTHON` and `SFSTREAM_NODE_MODULES` say
//! where; without them, the places `scripts/test-deps.sh` installs to.

use std::path::PathBuf;

/// How to install the peers, for messages of tests that miss one.
pub const SETUP_HINT: &str = "run `bash scripts/test-deps.sh` at the repository root (or the whole suite with `bash scripts/test.sh`)";

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The Python with the peers installed: `$SFSTREAM_PYTHON`, else
/// `<repo>/.venv/bin/python`. Panics, saying how to install it, when it is
/// missing.
pub fn python() -> PathBuf {
    let path = std::env::var_os("SFSTREAM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "no Python for the peers at {} (set SFSTREAM_PYTHON): {SETUP_HINT}",
        path.display()
    );
    path
}

/// The `node_modules` holding `package`: `$SFSTREAM_NODE_MODULES`, else
/// `<repo>/tests/peers/node_modules`. Panics, saying how to install it,
/// when `package` is not there.
pub fn node_modules(package: &str) -> PathBuf {
    let dir = std::env::var_os("SFSTREAM_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/peers/node_modules"));
    assert!(
        dir.join(package).join("package.json").exists(),
        "{package} is not installed in {} (set SFSTREAM_NODE_MODULES): {SETUP_HINT}",
        dir.display()
    );
    dir
}

/// A third-party Bayeux server (Faye or the CometD Node server), started
/// by a peer script of `crates/bayeux/tests/peers` on `port` (0: a free
/// one) with `envs` set; returns the process (killed on drop) and its
/// Bayeux URL, once the script printed `listening on <url>` (at most 20 s).
pub async fn bayeux_server(
    script: &str,
    package: &str,
    port: u16,
    envs: &[(&str, String)],
) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new("node")
        .arg(repo_root().join("crates/bayeux/tests/peers").join(script))
        .env("NODE_PATH", node_modules(package))
        .env("PORT", port.to_string())
        .envs(envs.iter().cloned())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        BufReader::new(stdout).lines().next_line(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} starts within 20 s"))
    .expect("read")
    .expect("a line");
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{script} said {line:?}, not `listening on <url>`"))
        .to_string();
    (child, url)
}
