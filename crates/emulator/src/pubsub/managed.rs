//! Managed subscriptions (`ManagedEventSubscription` records): a named
//! subscription to a topic whose committed replay id the org keeps, so a
//! new stream resumes after the last commit.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sfstream_pubsub::proto::{CommitReplayResponse, Error, ErrorCode};

use super::replay_number;

/// The most managed subscriptions an org has (Salesforce's limit).
pub const MAX_MANAGED: usize = 200;

/// Where a managed subscription starts without a usable commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Replay {
    /// New events only.
    Latest,
    /// Every retained event.
    Earliest,
}

impl Replay {
    /// The `ReplayPreset` number.
    pub fn preset(self) -> i32 {
        match self {
            Replay::Latest => 0,
            Replay::Earliest => 1,
        }
    }
}

/// Whether a managed subscription may stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Streams may run.
    Run,
    /// Streams are refused.
    Stop,
}

/// What a new managed subscription is made of (the fields of a
/// `ManagedEventSubscription` record).
#[derive(Debug, Clone, Deserialize)]
pub struct NewManaged {
    /// Its unique developer name.
    pub developer_name: String,
    /// The topic, e.g. `/data/AccountChangeEvent`.
    pub topic_name: String,
    /// Where a stream starts with no commit.
    #[serde(default = "latest")]
    pub default_replay: Replay,
    /// Where a stream starts when the committed replay id has expired.
    #[serde(default = "latest")]
    pub error_recovery_replay: Replay,
    /// RUN or STOP.
    #[serde(default = "run")]
    pub state: State,
}

fn latest() -> Replay {
    Replay::Latest
}

fn run() -> State {
    State::Run
}

/// A managed subscription and its last commit.
#[derive(Debug, Clone, Serialize)]
pub struct Managed {
    /// Its record id.
    pub id: String,
    /// Its developer name.
    pub developer_name: String,
    /// The topic.
    pub topic_name: String,
    /// Where a stream starts with no commit.
    pub default_replay: Replay,
    /// Where a stream starts when the commit has expired.
    pub error_recovery_replay: Replay,
    /// RUN or STOP.
    pub state: State,
    /// The last committed (CometD) replay id.
    pub committed: Option<i64>,
}

/// The org's managed subscriptions, by id.
#[derive(Debug, Default)]
pub struct Registry {
    subscriptions: Mutex<BTreeMap<String, Managed>>,
}

impl Registry {
    /// Creates one; the caller checked the topic exists.
    pub fn create(&self, new: NewManaged) -> Result<Managed, String> {
        if !crate::schema::valid_api_name(&new.developer_name) {
            return Err(format!("invalid developer name: {}", new.developer_name));
        }
        let mut all = self.subscriptions.lock();
        if all.values().any(|m| m.developer_name == new.developer_name) {
            return Err(format!("duplicate developer name: {}", new.developer_name));
        }
        if all.len() >= MAX_MANAGED {
            return Err(format!(
                "an org has at most {MAX_MANAGED} managed subscriptions"
            ));
        }
        let id = crate::ids::make_id("18x", all.len() as u64 + 1);
        let managed = Managed {
            id: id.clone(),
            developer_name: new.developer_name,
            topic_name: new.topic_name,
            default_replay: new.default_replay,
            error_recovery_replay: new.error_recovery_replay,
            state: new.state,
            committed: None,
        };
        all.insert(id, managed.clone());
        Ok(managed)
    }

    /// One by id (15 or 18 characters) or developer name.
    pub fn find(&self, id: &str, developer_name: &str) -> Option<Managed> {
        let all = self.subscriptions.lock();
        all.values()
            .find(|m| {
                (!id.is_empty() && m.id.starts_with(id) && id.len() >= 15)
                    || (!developer_name.is_empty() && m.developer_name == developer_name)
            })
            .cloned()
    }

    /// Every managed subscription.
    pub fn list(&self) -> Vec<Managed> {
        self.subscriptions.lock().values().cloned().collect()
    }

    /// Sets RUN or STOP.
    pub fn set_state(&self, id: &str, state: State) -> bool {
        self.subscriptions
            .lock()
            .get_mut(id)
            .map(|m| m.state = state)
            .is_some()
    }

    /// Commits a replay id for subscription `id`, if it is one of ours and
    /// not beyond what the topic has raised (`latest`).
    pub fn commit(
        &self,
        id: &str,
        request_id: &str,
        replay_id: &[u8],
        latest: i64,
    ) -> CommitReplayResponse {
        let process_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let error = |msg: &str| CommitReplayResponse {
            commit_request_id: request_id.to_string(),
            replay_id: replay_id.to_vec(),
            error: Some(Error {
                code: ErrorCode::Commit as i32,
                msg: msg.to_string(),
            }),
            process_time,
        };
        let Some(number) = replay_number(replay_id).filter(|n| *n <= latest) else {
            return error("The replay ID is not valid for this subscription.");
        };
        let mut all = self.subscriptions.lock();
        let Some(managed) = all.get_mut(id) else {
            return error("The managed subscription no longer exists.");
        };
        managed.committed = Some(number);
        CommitReplayResponse {
            commit_request_id: request_id.to_string(),
            replay_id: replay_id.to_vec(),
            error: None,
            process_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::replay_bytes;

    fn new(name: &str) -> NewManaged {
        NewManaged {
            developer_name: name.into(),
            topic_name: "/data/AccountChangeEvent".into(),
            default_replay: Replay::Earliest,
            error_recovery_replay: Replay::Latest,
            state: State::Run,
        }
    }

    #[test]
    fn commits_are_kept_and_checked() {
        let registry = Registry::default();
        let m = registry.create(new("Accounts")).expect("created");
        assert!(registry.create(new("Accounts")).is_err());
        assert!(registry.create(new("bad name")).is_err());
        assert!(
            registry
                .commit(&m.id, "c1", &replay_bytes(5), 9)
                .error
                .is_none()
        );
        assert!(
            registry
                .commit(&m.id, "c2", &replay_bytes(50), 9)
                .error
                .is_some()
        );
        assert!(registry.commit(&m.id, "c3", b"junk", 9).error.is_some());
        let found = registry.find("", "Accounts").expect("by name");
        assert_eq!(found.committed, Some(5));
        assert_eq!(registry.find(&m.id[..15], "").map(|m| m.id), Some(m.id));
    }
}
