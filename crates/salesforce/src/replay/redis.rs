//! [`RedisStore`]: markers in Redis, readable and writable by the Python
//! Nameko Salesforce extension.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Script};
use async_trait::async_trait;
use chrono::DateTime;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::marker::ReplayMarker;
use super::opaque::OpaqueMarker;
use super::store::{ReplayStore, StoreError};
use super::{MIN_RETENTION, channel_key, retention};
use sfstream_common::redact_url;

/// The key prefix of replay ids, as the Python Nameko extension writes them.
pub const DEFAULT_ID_PREFIX: &str = "salesforce:replay_id:";

/// The key prefix of the companion creation times.
pub const DEFAULT_CREATED_PREFIX: &str = "salesforce:replay_created:";

mod fence;
mod opaque;

pub use fence::Fence;

/// The key prefix of opaque (Pub/Sub API) replay markers: a namespace of
/// sfstream's own, which the Python extension never reads, so a topic that
/// is also a CometD channel (`/data/AccountChangeEvent`) keeps its
/// integer marker for Python and its opaque one for Pub/Sub side by side.
pub const DEFAULT_OPAQUE_PREFIX: &str = "salesforce:pubsub_replay:";

/// Compares and sets one or more markers atomically (scripts run alone).
///
/// KEYS: id key and created key per marker. ARGV[1]: TTL in ms (0 for
/// none); ARGV[2]: "1" to replace unconditionally; then per marker its
/// replay id and creation ms ("" for none). Returns per marker 1 (moved),
/// 0 (kept, its TTL renewed) or -1 (the stored id is not an integer: left
/// alone).
///
/// Integers are compared as decimal strings, so replay ids above 2^53 (past
/// Lua's exact doubles) still compare right. The created key holds
/// `<ms>:<replay id>` and counts only while its replay id matches the id
/// key: a writer that sets only the id key (the Python extension) leaves a
/// stale time that must not be believed.
const ADVANCE_LUA: &str = r#"
local function norm(s)
  local neg = string.sub(s, 1, 1) == '-'
  if neg then s = string.sub(s, 2) end
  s = string.gsub(s, '^0+', '')
  if s == '' then neg = false end
  return neg, s
end
local function cmp(a, b)
  local na, da = norm(a)
  local nb, db = norm(b)
  if na ~= nb then
    if na then return -1 else return 1 end
  end
  local c = 0
  if #da ~= #db then
    if #da < #db then c = -1 else c = 1 end
  elseif da ~= db then
    if da < db then c = -1 else c = 1 end
  end
  if na then c = -c end
  return c
end
local function isint(s)
  return type(s) == 'string' and string.match(s, '^%s*%-?%d+%s*$') ~= nil
end
local ttl = tonumber(ARGV[1])
local force = ARGV[2] == '1'
-- Fenced (cluster mode): KEYS end with one lease key per marker, ARGV
-- with the value each lease must hold for its marker to be written.
local fenced = ARGV[3] == '1'
local n = #KEYS / 2
if fenced then n = #KEYS / 3 end
local results = {}
for i = 1, n do
  local id_key, created_key = KEYS[2 * i - 1], KEYS[2 * i]
  local new_id, new_created = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local result = 1
  if fenced and redis.call('GET', KEYS[2 * n + i]) ~= ARGV[3 + 2 * n + i] then
    result = -2
  elseif not force then
    local cur_id = redis.call('GET', id_key)
    if cur_id then
      if not isint(cur_id) then
        result = -1
      else
        cur_id = string.match(cur_id, '%-?%d+')
        local cur_created = nil
        local c = redis.call('GET', created_key)
        if c then
          local ms, cid = string.match(c, '^(%-?%d+):(%-?%d+)$')
          if ms and cmp(cid, cur_id) == 0 then cur_created = ms end
        end
        local t = 0
        if new_created ~= '' and cur_created then t = cmp(new_created, cur_created) end
        if t == 0 then t = cmp(new_id, cur_id) end
        if t <= 0 then result = 0 end
      end
    end
  end
  if result == 0 and ttl > 0 then
    -- A commit that keeps the stored marker still proves the consumer
    -- alive: renew the TTL, or an idle-looking channel's marker expires.
    redis.call('PEXPIRE', id_key, ttl)
    redis.call('PEXPIRE', created_key, ttl)
  end
  if result == 1 then
    if ttl > 0 then
      redis.call('SET', id_key, new_id, 'PX', ttl)
    else
      redis.call('SET', id_key, new_id)
    end
    if new_created ~= '' then
      local v = new_created .. ':' .. new_id
      if ttl > 0 then
        redis.call('SET', created_key, v, 'PX', ttl)
      else
        redis.call('SET', created_key, v)
      end
    else
      redis.call('DEL', created_key)
    end
  end
  results[i] = result
end
return results
"#;

/// Markers in Redis, compatible with the Python Nameko Salesforce extension.
///
/// The replay id of a channel is an integer under
/// `salesforce:replay_id:<channel>`, exactly as the Python extension keeps
/// it, so either side reads what the other wrote. Its creation time goes
/// to a companion key `salesforce:replay_created:<channel>` as
/// `<epoch ms>:<replay id>`; the time counts only while that replay id
/// matches the id key (a marker the Python side wrote has no time). Both keys
/// get the TTL, if one is set, on every commit: when the marker moves, and
/// also when an advance keeps it (an older or equal marker), so a consumer
/// that keeps committing never sees its marker expire.
///
/// # Pub/Sub API markers
///
/// Opaque markers ([`OpaqueMarker`], of Pub/Sub API topics) go under a
/// namespace of their own, `salesforce:pubsub_replay:<topic>` (see
/// [`DEFAULT_OPAQUE_PREFIX`]), which the Python extension never reads: the
/// value is the replay id in standard base64, followed by a space and the
/// creation time in epoch ms when known (`AAAAAAAAEjQAAA== 1712694387000`).
/// Every write sets the TTL, like the integer keys.
///
/// # TTL and retention
///
/// A TTL shorter than the channel's [`retention`] (24 h for PushTopics and
/// generic channels, 72 h for Change Data Capture and platform events) lets
/// the marker of a consumer stopped for longer than the TTL, but shorter
/// than the retention, expire: it then resumes from its default replay
/// option instead of its marker, and with `NEW` misses the events in
/// between. A TTL at least as long as the retention is harmless (a marker
/// older than the retention is refused by Salesforce anyway). Such a TTL is
/// **warned about, not refused**, because the Python extension accepts any
/// `PUSHTOPIC_REPLAY_TTL` (seconds) and a configuration shared with it must
/// keep working: [`RedisStore::connect`] logs a warning when the TTL is
/// shorter than 24 h, and the first write to a 72 h channel logs one when
/// the TTL is shorter than 72 h.
///
/// Advances run as one Lua script (per call or per batch), so concurrent
/// advancers, in this process or others, never move a marker backwards. The
/// connection is a [`ConnectionManager`], which reconnects by itself.
///
/// ```no_run
/// use std::time::Duration;
/// use sfstream_salesforce::replay::{RedisStore, ReplayMarker, ReplayStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sfstream_salesforce::replay::StoreError> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/11", Some(Duration::from_secs(3600))).await?;
/// store.advance("/topic/InvoiceStatementUpdates", ReplayMarker::new(13, None)).await?;
/// // `GET salesforce:replay_id:/topic/InvoiceStatementUpdates` now gives "13".
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    name: String,
    ttl: Option<Duration>,
    id_prefix: String,
    created_prefix: String,
    opaque_prefix: String,
    script: Script,
    /// Cluster mode: the lease each channel's writes must hold.
    fence: Option<Fence>,
    /// Whether the TTL's shortfall against a channel's retention was
    /// logged (once per store and its clones).
    ttl_warned: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.name)
            .field("ttl", &self.ttl)
            .field("id_prefix", &self.id_prefix)
            .field("created_prefix", &self.created_prefix)
            .field("opaque_prefix", &self.opaque_prefix)
            .field("fenced", &self.fence.is_some())
            .finish()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[USER:PASSWORD@]HOST[:PORT][/DB]`, or
    /// `rediss://…` when the redis crate is built with TLS) and checks the
    /// connection. `ttl` sets the expiry of every key written, like the
    /// Python extension's `PUSHTOPIC_REPLAY_TTL`; `None` keeps keys forever.
    /// A TTL shorter than a channel's retention is accepted with a logged
    /// warning (see [TTL and retention](RedisStore#ttl-and-retention)).
    pub async fn connect(url: &str, ttl: Option<Duration>) -> Result<Self, StoreError> {
        let name = redact_url(url);
        let redis_err = |source| StoreError::Redis {
            store: name.clone(),
            source,
        };
        let client = Client::open(url).map_err(redis_err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(redis_err)?;
        let mut store = Self {
            conn,
            name: name.clone(),
            ttl,
            id_prefix: DEFAULT_ID_PREFIX.to_string(),
            created_prefix: DEFAULT_CREATED_PREFIX.to_string(),
            opaque_prefix: DEFAULT_OPAQUE_PREFIX.to_string(),
            script: Script::new(ADVANCE_LUA),
            fence: None,
            ttl_warned: Arc::new(AtomicBool::new(false)),
        };
        let _: String = ::redis::cmd("PING")
            .query_async(&mut store.conn)
            .await
            .map_err(redis_err)?;
        if let Some(ttl) = ttl
            && ttl < MIN_RETENTION
        {
            store.ttl_warned.store(true, Ordering::Relaxed);
            tracing::warn!(
                store = %store.name,
                ?ttl,
                "the replay marker TTL is shorter than the retention of every channel (24 h for PushTopics and generic channels, 72 h for Change Data Capture and platform events): a consumer stopped for longer than the TTL loses its markers and resumes from its default replay option (missing events with NEW); use a TTL of at least 72 h, or none"
            );
        }
        Ok(store)
    }

    /// Logs, once, that the TTL is shorter than the retention of a channel
    /// being written (see the type's documentation).
    fn check_ttl<'a>(&self, channels: impl IntoIterator<Item = &'a str>) {
        let Some(ttl) = self.ttl else { return };
        if self.ttl_warned.load(Ordering::Relaxed) {
            return;
        }
        for channel in channels {
            let retention = retention(channel);
            if ttl < retention && !self.ttl_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    store = %self.name,
                    channel = channel_key(channel),
                    ?ttl,
                    retention_hours = retention.as_secs() / 3600,
                    "the replay marker TTL is shorter than this channel's retention: a consumer stopped for longer than the TTL loses its marker and resumes from its default replay option (missing events with NEW); use a TTL of at least 72 h, or none"
                );
                return;
            }
        }
    }

    /// Uses `id_prefix` instead of `salesforce:replay_id:` for replay ids,
    /// and `created_prefix` instead of `salesforce:replay_created:` for
    /// creation times. The two must differ, and neither may be a prefix of
    /// the other followed by `/` (channel names start with `/`).
    pub fn with_key_prefixes(
        mut self,
        id_prefix: impl Into<String>,
        created_prefix: impl Into<String>,
    ) -> Self {
        self.id_prefix = id_prefix.into();
        self.created_prefix = created_prefix.into();
        self
    }

    /// Uses `prefix` for replay ids; the creation times go under the same
    /// prefix with a final `replay_id:` replaced by `replay_created:`, or
    /// with `created:` appended when it does not end that way, and opaque
    /// markers likewise under `pubsub_replay:` (or `pubsub:` appended).
    pub fn with_key_prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let (created, opaque) = match prefix.strip_suffix("replay_id:") {
            Some(base) => (
                format!("{base}replay_created:"),
                format!("{base}pubsub_replay:"),
            ),
            None => (format!("{prefix}created:"), format!("{prefix}pubsub:")),
        };
        self.with_key_prefixes(prefix, created)
            .with_opaque_prefix(opaque)
    }

    /// Uses `prefix` instead of `salesforce:pubsub_replay:` for opaque
    /// (Pub/Sub API) markers. It must not be a prefix of the other two
    /// followed by `/`.
    pub fn with_opaque_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.opaque_prefix = prefix.into();
        self
    }

    /// The key prefix of opaque (Pub/Sub API) markers.
    pub fn opaque_prefix(&self) -> &str {
        &self.opaque_prefix
    }

    /// The key prefix of replay ids.
    pub fn id_prefix(&self) -> &str {
        &self.id_prefix
    }

    /// The key prefix of creation times.
    pub fn created_prefix(&self) -> &str {
        &self.created_prefix
    }

    /// The TTL given to written keys.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    fn id_key(&self, channel: &str) -> String {
        format!("{}{}", self.id_prefix, channel)
    }

    fn created_key(&self, channel: &str) -> String {
        format!("{}{}", self.created_prefix, channel)
    }

    fn redis_err(&self, source: ::redis::RedisError) -> StoreError {
        StoreError::Redis {
            store: self.name.clone(),
            source,
        }
    }

    /// Runs the advance script on `markers`; returns per marker whether it
    /// moved.
    async fn run_script(
        &self,
        markers: &[(&str, ReplayMarker)],
        force: bool,
    ) -> Result<Vec<bool>, StoreError> {
        self.check_ttl(markers.iter().map(|(channel, _)| *channel));
        let mut invocation = self.script.prepare_invoke();
        let ttl_ms = self
            .ttl
            .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .unwrap_or(0);
        invocation
            .arg(ttl_ms)
            .arg(if force { "1" } else { "0" })
            .arg(if self.fence.is_some() { "1" } else { "0" });
        for (channel, marker) in markers {
            invocation
                .key(self.id_key(channel))
                .key(self.created_key(channel))
                .arg(marker.replay_id)
                .arg(
                    marker
                        .created_millis()
                        .map(|ms| ms.to_string())
                        .unwrap_or_default(),
                );
        }
        if let Some(fence) = &self.fence {
            for (channel, _) in markers {
                let (key, value) = fence::of(fence, channel);
                invocation.key(key).arg(value);
            }
        }
        let mut conn = self.conn.clone();
        let results: Vec<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        if results.len() != markers.len() {
            return Err(StoreError::Corrupt {
                store: self.name.clone(),
                detail: format!(
                    "the advance script answered {} results for {} markers",
                    results.len(),
                    markers.len()
                ),
            });
        }
        fence::log_refused(markers.iter().map(|(c, _)| *c), &results);
        if let Some(i) = results.iter().position(|r| *r == -1) {
            return Err(StoreError::Corrupt {
                store: self.name.clone(),
                detail: format!(
                    "{} does not hold an integer replay id",
                    self.id_key(markers[i].0)
                ),
            });
        }
        Ok(results.into_iter().map(|r| r == 1).collect())
    }

    /// The marker from the values of an id key and its created key.
    fn decode(
        &self,
        channel: &str,
        id: Option<String>,
        created: Option<String>,
    ) -> Result<Option<ReplayMarker>, StoreError> {
        let Some(id) = id else {
            return Ok(None);
        };
        let replay_id: i64 = id.trim().parse().map_err(|_| StoreError::Corrupt {
            store: self.name.clone(),
            detail: format!(
                "{} does not hold an integer replay id",
                self.id_key(channel)
            ),
        })?;
        let created = created.and_then(|value| {
            let (ms, for_id) = value.split_once(':')?;
            if for_id.parse::<i64>().ok()? != replay_id {
                return None;
            }
            DateTime::from_timestamp_millis(ms.parse().ok()?)
        });
        Ok(Some(ReplayMarker { replay_id, created }))
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl ReplayStore for RedisStore {
    async fn get(&self, channel: &str) -> Result<Option<ReplayMarker>, StoreError> {
        let mut conn = self.conn.clone();
        let (id, created): (Option<String>, Option<String>) = ::redis::cmd("MGET")
            .arg(self.id_key(channel))
            .arg(self.created_key(channel))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        self.decode(channel, id, created)
    }

    async fn advance(&self, channel: &str, marker: ReplayMarker) -> Result<bool, StoreError> {
        let moved = self.run_script(&[(channel, marker)], false).await?;
        Ok(moved.first().copied().unwrap_or(false))
    }

    async fn advance_many(&self, markers: &[(String, ReplayMarker)]) -> Result<usize, StoreError> {
        if markers.is_empty() {
            return Ok(0);
        }
        let batch: Vec<(&str, ReplayMarker)> =
            markers.iter().map(|(c, m)| (c.as_str(), *m)).collect();
        let moved = self.run_script(&batch, false).await?;
        Ok(moved.into_iter().filter(|m| *m).count())
    }

    async fn replace(&self, channel: &str, marker: ReplayMarker) -> Result<(), StoreError> {
        self.run_script(&[(channel, marker)], true).await?;
        Ok(())
    }

    async fn remove(&self, channel: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = ::redis::cmd("DEL")
            .arg(self.id_key(channel))
            .arg(self.created_key(channel))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<(String, ReplayMarker)>, StoreError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", glob_escape(&self.id_prefix));
        let mut channels = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.redis_err(e))?;
            for key in keys {
                // A created prefix that extends the id prefix matches too.
                if key.starts_with(&self.created_prefix) && self.created_prefix != self.id_prefix {
                    continue;
                }
                // So does an opaque prefix extending it.
                if key.starts_with(&self.opaque_prefix) && self.opaque_prefix != self.id_prefix {
                    continue;
                }
                if let Some(channel) = key.strip_prefix(&self.id_prefix) {
                    channels.push(channel.to_string());
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        channels.sort();
        channels.dedup();
        let mut all = Vec::with_capacity(channels.len());
        for chunk in channels.chunks(500) {
            let mut cmd = ::redis::cmd("MGET");
            for channel in chunk {
                cmd.arg(self.id_key(channel)).arg(self.created_key(channel));
            }
            let values: Vec<Option<String>> = cmd
                .query_async(&mut conn)
                .await
                .map_err(|e| self.redis_err(e))?;
            let mut values = values.into_iter();
            for channel in chunk {
                let id = values.next().flatten();
                let created = values.next().flatten();
                // A key that expired between SCAN and MGET is simply gone.
                if let Some(marker) = self.decode(channel, id, created)? {
                    all.push((channel.clone(), marker));
                }
            }
        }
        Ok(all)
    }

    async fn get_opaque(&self, topic: &str) -> Result<Option<OpaqueMarker>, StoreError> {
        self.get_opaque_impl(topic).await
    }

    async fn put_opaque(&self, topic: &str, marker: &OpaqueMarker) -> Result<(), StoreError> {
        self.put_opaque_impl(&[(topic.to_string(), marker.clone())])
            .await
    }

    async fn put_opaque_many(&self, markers: &[(String, OpaqueMarker)]) -> Result<(), StoreError> {
        self.put_opaque_impl(markers).await
    }

    async fn remove_opaque(&self, topic: &str) -> Result<(), StoreError> {
        self.remove_opaque_impl(topic).await
    }

    async fn list_opaque(&self) -> Result<Vec<(String, OpaqueMarker)>, StoreError> {
        self.list_opaque_impl().await
    }
}
