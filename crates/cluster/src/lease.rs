//! [`Lease`]: exclusive, expiring ownership of one resource (a channel)
//! among replicas, kept in Redis.
//!
//! The key holds `"<holder> <token>"`. Acquiring is `SET key value NX PX
//! ttl` inside a script that also increments the resource's fence counter
//! (so every acquisition gets a larger token); renewing and releasing are
//! compare-and-extend and compare-and-delete scripts, so a holder whose
//! lease expired and was taken can neither extend nor delete the new
//! holder's lease. Writes that must only come from the holder (replay
//! markers) check the key's value in the same script that writes
//! ([`Lease::value`]).
//!
//! A holder also keeps a local, conservative bound of its lease
//! ([`Lease::is_valid`]): the time a successful request was *sent* plus
//! the TTL, which is never later than when Redis expires the key. A
//! process paused past that bound (a long GC-like stall, `SIGSTOP`) finds
//! its lease invalid the moment it runs again, before asking Redis.

use std::fmt;
use std::time::{Duration, Instant};

use redis::Script;
use redis::aio::ConnectionManager;

/// Acquires when free: KEYS = [lease, fence]; ARGV = [holder, ttl ms].
/// Returns the new token, or 0 when the lease is held.
const ACQUIRE_LUA: &str = r#"
local token = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. ' ' .. token
if redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[2]) then
  return token
end
redis.call('DECR', KEYS[2])
return 0
"#;

/// Extends the lease if it still holds ARGV[1]: KEYS = [lease];
/// ARGV = [value, ttl ms]. 1 when extended.
const RENEW_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// Deletes the lease if it still holds ARGV[1]. 1 when deleted.
const RELEASE_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// Names one lease: the Redis keys of a resource of a group of replicas
/// (e.g. a service and one of its channels).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    group: String,
    resource: String,
}

impl LeaseKey {
    /// The lease of `resource` among the replicas of `group`.
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
        }
    }

    /// The group (the service).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The resource (the channel).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The key holding `"<holder> <token>"` while the lease is held.
    pub fn lease_key(&self) -> String {
        format!("sfstream:lease:{}:{}", self.group, self.resource)
    }

    /// The counter the fencing tokens come from (never expires, so tokens
    /// only grow).
    pub fn fence_key(&self) -> String {
        format!("sfstream:fence:{}:{}", self.group, self.resource)
    }
}

impl fmt::Display for LeaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.resource)
    }
}

/// Who holds a lease, as Redis says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// Nobody.
    Free,
    /// `holder`, with fencing token `token`, for `ttl` more at most.
    Held {
        /// The holder's id.
        holder: String,
        /// Its fencing token.
        token: u64,
        /// How long the lease lasts unless renewed.
        ttl: Duration,
    },
}

/// Errors of lease operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Redis failed or could not be reached.
    #[error("lease {key}: redis: {source}")]
    Redis {
        /// The lease.
        key: String,
        /// The error.
        #[source]
        source: redis::RedisError,
    },
    /// A holder id that cannot be stored (empty or with a space).
    #[error("lease holder id `{0}` must be non-empty and have no spaces")]
    InvalidHolder(String),
}

/// A lease this replica holds.
pub struct Lease {
    conn: ConnectionManager,
    key: LeaseKey,
    value: String,
    token: u64,
    ttl: Duration,
    valid_until: Instant,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("value", &self.value)
            .field("ttl", &self.ttl)
            .field("valid", &self.is_valid())
            .finish()
    }
}

impl Lease {
    /// Acquires the lease `key` for `holder` if nobody holds it; `None`
    /// when somebody does.
    pub async fn try_acquire(
        conn: &ConnectionManager,
        key: LeaseKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, LeaseError> {
        if holder.is_empty() || holder.contains(char::is_whitespace) {
            return Err(LeaseError::InvalidHolder(holder.to_string()));
        }
        let mut conn = conn.clone();
        let sent = Instant::now();
        let token: u64 = Script::new(ACQUIRE_LUA)
            .key(key.lease_key())
            .key(key.fence_key())
            .arg(holder)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|source| redis_error(&key, source))?;
        if token == 0 {
            return Ok(None);
        }
        Ok(Some(Lease {
            conn,
            value: format!("{holder} {token}"),
            key,
            token,
            ttl,
            valid_until: sent + ttl,
        }))
    }

    /// Extends the lease by its TTL if this replica still holds it.
    /// `false` when it was lost (expired and perhaps taken): the holder
    /// must stop acting on it. A Redis error leaves the lease as it was
    /// (it may still expire: check [`Lease::is_valid`]).
    pub async fn renew(&mut self) -> Result<bool, LeaseError> {
        let sent = Instant::now();
        let renewed: i64 = Script::new(RENEW_LUA)
            .key(self.key.lease_key())
            .arg(&self.value)
            .arg(millis(self.ttl))
            .invoke_async(&mut self.conn)
            .await
            .map_err(|source| redis_error(&self.key, source))?;
        if renewed == 1 {
            self.valid_until = sent + self.ttl;
            Ok(true)
        } else {
            self.valid_until = sent;
            Ok(false)
        }
    }

    /// Gives the lease up at once (a graceful stop: another replica can
    /// take it without waiting for the TTL). `false` when it was no longer
    /// held.
    pub async fn release(mut self) -> Result<bool, LeaseError> {
        let released: i64 = Script::new(RELEASE_LUA)
            .key(self.key.lease_key())
            .arg(&self.value)
            .invoke_async(&mut self.conn)
            .await
            .map_err(|source| redis_error(&self.key, source))?;
        Ok(released == 1)
    }

    /// Whether the lease is certainly still held: no later than the last
    /// successful acquire or renew was sent plus the TTL. Checked before
    /// every action taken as the holder.
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }

    /// How long the lease is certainly still held.
    pub fn remaining(&self) -> Duration {
        self.valid_until.saturating_duration_since(Instant::now())
    }

    /// The fencing token: larger for every new acquisition of this lease.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// What the lease key holds while this lease is held: a write that
    /// must come from the holder compares the key with this in the same
    /// script.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Which lease this is.
    pub fn key(&self) -> &LeaseKey {
        &self.key
    }

    /// The lease's time-to-live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Who holds `key` now.
    pub async fn state(conn: &ConnectionManager, key: &LeaseKey) -> Result<LeaseState, LeaseError> {
        let mut conn = conn.clone();
        let (value, ttl_ms): (Option<String>, i64) = redis::pipe()
            .get(key.lease_key())
            .pttl(key.lease_key())
            .query_async(&mut conn)
            .await
            .map_err(|source| redis_error(key, source))?;
        let Some(value) = value else {
            return Ok(LeaseState::Free);
        };
        let (holder, token) = value.rsplit_once(' ').unwrap_or((value.as_str(), "0"));
        Ok(LeaseState::Held {
            holder: holder.to_string(),
            token: token.parse().unwrap_or(0),
            ttl: Duration::from_millis(ttl_ms.max(0) as u64),
        })
    }
}

fn millis(duration: Duration) -> u64 {
    (duration.as_millis() as u64).max(1)
}

fn redis_error(key: &LeaseKey, source: redis::RedisError) -> LeaseError {
    LeaseError::Redis {
        key: key.to_string(),
        source,
    }
}
