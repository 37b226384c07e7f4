//! Fenced writes (cluster mode): a marker is written only while the lease
//! of its channel holds the value this replica got when it acquired it,
//! checked in the same script that writes. A replica that lost its lease
//! (paused past it, or stepped down) can no longer move a marker, even if
//! its in-flight events finish later.

use std::sync::Arc;

use super::RedisStore;

/// Says, for a channel, which Redis key holds its lease and the value it
/// must hold for this replica's writes to go through (an empty value
/// refuses every write: the replica does not lead the channel).
pub type Fence = Arc<dyn Fn(&str) -> (String, String) + Send + Sync>;

pub(super) fn of(fence: &Fence, channel: &str) -> (String, String) {
    fence(channel)
}

/// Logs the markers a fence refused (script result -2).
pub(super) fn log_refused<'a>(channels: impl Iterator<Item = &'a str>, results: &[i64]) {
    for (channel, result) in channels.zip(results) {
        if *result == -2 {
            tracing::info!(
                %channel,
                "replay marker not written: this replica no longer holds the channel's lease"
            );
        }
    }
}

/// Sets opaque markers whose lease holds: KEYS = n marker keys then n
/// lease keys; ARGV = [ttl ms or 0, n values, n lease values].
pub(super) const FENCED_PUT_LUA: &str = r#"
local n = #KEYS / 2
local ttl = tonumber(ARGV[1])
local results = {}
for i = 1, n do
  if redis.call('GET', KEYS[n + i]) == ARGV[1 + n + i] then
    if ttl > 0 then
      redis.call('SET', KEYS[i], ARGV[1 + i], 'PX', ttl)
    else
      redis.call('SET', KEYS[i], ARGV[1 + i])
    end
    results[i] = 1
  else
    results[i] = -2
  end
end
return results
"#;

impl RedisStore {
    /// Cluster mode: every write of a channel's marker checks, atomically,
    /// that `fence(channel)`'s lease key holds its value; writes that fail
    /// the check are skipped (logged), never applied. Reads are not fenced.
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Whether writes are fenced.
    pub fn is_fenced(&self) -> bool {
        self.fence.is_some()
    }
}
