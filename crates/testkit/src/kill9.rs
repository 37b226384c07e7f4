//! kill -9 tests: a child process (often this test binary again, running
//! one test as the consumer) reads events and reports each one it handled
//! on stdout; the test reads the reports, kills the child with SIGKILL
//! mid-stream, restarts it, and checks that no event was lost.
//!
//! The report is a `replay:<id>` line ([`report_replay_id`]); a child that
//! is not a test binary (the `sfstream` CLI) is read line by line.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long, after the kill, to wait for each line still in the pipe.
const DRAIN: Duration = Duration::from_secs(5);

/// The child side: reports that the event with replay id `id` was handled
/// (a `replay:<id>` line, flushed at once so a kill cannot lose it).
pub fn report_replay_id(id: i64) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "replay:{id}")?;
    out.flush()
}

/// The id of a `replay:<id>` line (the test harness may print before it on
/// the same line).
pub fn replay_id_in(line: &str) -> Option<i64> {
    line.rsplit_once("replay:")
        .and_then(|(_, id)| id.trim().parse().ok())
}

/// A child process whose stdout is read line by line until it is killed.
#[derive(Debug)]
pub struct Victim {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Victim {
    /// Takes over `child`, which must have been spawned with stdout piped.
    pub fn new(mut child: Child) -> Self {
        let stdout = child.stdout.take().expect("the child's stdout is piped");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// This test binary again, running only the test `test` with `envs`
    /// set (the test finds them and acts as the child); stdout piped,
    /// stderr discarded, killed on drop.
    pub fn rerun_test<I, K, V>(test: &str, envs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .envs(envs)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the test binary runs again");
        Self::new(child)
    }

    /// Gives each line the child writes to `more` while `more` returns
    /// true, for at most `within` in all and `quiet` between two lines (a
    /// child that went quiet has caught up), or until the child exits.
    pub async fn read(
        &mut self,
        within: Duration,
        quiet: Duration,
        mut more: impl FnMut(&str) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout(quiet, self.lines.next_line());
            match tokio::time::timeout_at(deadline, next).await {
                Ok(Ok(Ok(Some(line)))) if more(&line) => {}
                _ => return,
            }
        }
    }

    /// Kills the child with SIGKILL, waits for it to die, and returns the
    /// lines it wrote before (they count as handled).
    pub async fn kill(mut self) -> Vec<String> {
        // A child that died already is as good as killed.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let mut rest = Vec::new();
        while let Ok(Ok(Some(line))) = tokio::time::timeout(DRAIN, self.lines.next_line()).await {
            rest.push(line);
        }
        rest
    }

    /// Stops the child with SIGTERM and waits at most `within` for it to
    /// exit; returns how it exited.
    pub async fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().expect("the child runs").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the child exits after SIGTERM")
            .expect("its exit status")
    }

    /// Adds the replay ids the child reports to `seen` until it holds
    /// `target` ids or `within` passed, then kills the child and adds
    /// those it reported before dying.
    pub async fn collect_then_kill(
        mut self,
        seen: &mut BTreeSet<i64>,
        target: usize,
        within: Duration,
    ) {
        if seen.len() < target {
            self.read(within, within, |line| {
                seen.extend(replay_id_in(line));
                seen.len() < target
            })
            .await;
        }
        for line in self.kill().await {
            seen.extend(replay_id_in(&line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_ids_are_found_after_harness_output() {
        assert_eq!(replay_id_in("replay:42"), Some(42));
        assert_eq!(replay_id_in("running 1 test\treplay:7 "), Some(7));
        assert_eq!(replay_id_in("replay:"), None);
        assert_eq!(replay_id_in("nothing"), None);
    }

    #[tokio::test]
    async fn reads_until_told_then_kills_and_drains() {
        let child = Command::new("sh")
            .args([
                "-c",
                "i=1; while true; do echo replay:$i; i=$((i+1)); sleep 0.01; done",
            ])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sh");
        let mut seen = BTreeSet::new();
        Victim::new(child)
            .collect_then_kill(&mut seen, 5, Duration::from_secs(10))
            .await;
        assert!(seen.len() >= 5, "{seen:?}");
        assert_eq!(seen.first(), Some(&1));
    }

    #[tokio::test]
    async fn a_quiet_child_ends_the_read() {
        let child = Command::new("sh")
            .args(["-c", "echo one; exec sleep 30"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sh");
        let mut victim = Victim::new(child);
        let started = std::time::Instant::now();
        let mut lines = Vec::new();
        victim
            .read(Duration::from_secs(20), Duration::from_millis(300), |l| {
                lines.push(l.to_owned());
                true
            })
            .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(lines, ["one"]);
        assert!(victim.kill().await.is_empty());
    }
}
