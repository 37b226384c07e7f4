//! [`Elector`]: spreads the channels of a group of replicas over its live
//! members, one leader per channel, through [`Lease`]s.
//!
//! Every replica runs the same loop (every [`TICK`]):
//! 1. heartbeat: its id in the group's member set (a sorted set scored by
//!    Redis's clock; members silent for a TTL are dropped);
//! 2. keep: every held lease is renewed once a third of its TTL has
//!    passed; a lease that is no longer valid locally (the process was
//!    paused past it) or whose renewal is refused is stepped down from at
//!    once;
//! 3. balance: its fair share is `ceil(channels / live members)`; above
//!    it, it releases leases (a graceful handover); below it, it takes
//!    free ones, trying channels in an order of its own so that replicas
//!    starting together do not all race for the same one.
//!
//! What it decides comes out as [`Election`] events, and
//! [`ElectorHandle::roles`] tells who leads what (for `/health`).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

use crate::lease::{Lease, LeaseError, LeaseKey, LeaseState};

/// How often the loop runs: what bounds a handover after a release.
pub const TICK: Duration = Duration::from_millis(200);

/// Most election events buffered; the loop waits (and renews nothing)
/// while the consumer lags, and the leases' local validity covers that.
const EVENTS: usize = 256;

/// Heartbeat: KEYS = [members]; ARGV = [replica, ttl ms]. Returns the
/// number of live members (this one included).
const HEARTBEAT_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZCARD', KEYS[1])
"#;

/// Leaves the member set: KEYS = [members]; ARGV = [replica].
const LEAVE_LUA: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"#;

/// What an elector is asked to share.
#[derive(Debug, Clone)]
pub struct ElectorConfig {
    /// The group of replicas (the service's name).
    pub group: String,
    /// This replica's id (unique in the group; no spaces).
    pub replica: String,
    /// The lease time-to-live: how long a vanished leader blocks a channel.
    pub ttl: Duration,
    /// The channels to share.
    pub channels: Vec<String>,
}

/// A decision of the elector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Election {
    /// This replica now leads `channel`: start streaming it. `fence` is
    /// what the lease key holds while this lasts (for fenced writes).
    Lead {
        /// The channel.
        channel: String,
        /// The lease's fencing token.
        token: u64,
        /// The lease key's value while held.
        fence: String,
    },
    /// This replica no longer leads `channel`: stop streaming it now.
    StepDown {
        /// The channel.
        channel: String,
        /// Why.
        reason: StepDownReason,
    },
}

/// Why a replica stopped leading a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDownReason {
    /// It holds more than its share (a replica joined): handed over.
    Rebalance,
    /// Its lease expired before it could renew it (a stall, or Redis out
    /// of reach for a TTL).
    Expired,
    /// Its renewal was refused: another replica holds the lease.
    Taken,
    /// The elector stops (graceful stop).
    Stopping,
}

/// Who leads a channel, as this replica knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// This replica leads it.
    Leading {
        /// The fencing token of its lease.
        token: u64,
    },
    /// Another replica (or nobody yet) leads it.
    Standby {
        /// The lease holder, when known.
        holder: Option<String>,
    },
}

/// Runs an elector; see the module documentation.
#[derive(Debug)]
pub struct Elector;

/// Controls a running elector.
#[derive(Debug, Clone)]
pub struct ElectorHandle {
    roles: Arc<Mutex<BTreeMap<String, Role>>>,
    stop: Arc<Mutex<Option<oneshot::Sender<oneshot::Sender<()>>>>>,
}

impl ElectorHandle {
    /// Every channel and who leads it.
    pub fn roles(&self) -> BTreeMap<String, Role> {
        self.roles.lock().clone()
    }

    /// Releases every lease (so other replicas take over within a
    /// [`TICK`]) and stops; waits at most `timeout`.
    pub async fn stop(&self, timeout: Duration) {
        let Some(stop) = self.stop.lock().take() else {
            return;
        };
        let (done, stopped) = oneshot::channel();
        if stop.send(done).is_ok() {
            let _ = tokio::time::timeout(timeout, stopped).await;
        }
    }
}

impl Elector {
    /// Starts sharing `config.channels` with the other replicas of
    /// `config.group`; decisions come out of the receiver.
    pub fn start(
        conn: ConnectionManager,
        config: ElectorConfig,
    ) -> (ElectorHandle, mpsc::Receiver<Election>) {
        let roles: BTreeMap<String, Role> = config
            .channels
            .iter()
            .map(|c| (c.clone(), Role::Standby { holder: None }))
            .collect();
        let roles = Arc::new(Mutex::new(roles));
        let (events, receiver) = mpsc::channel(EVENTS);
        let (stop, stopped) = oneshot::channel();
        let handle = ElectorHandle {
            roles: roles.clone(),
            stop: Arc::new(Mutex::new(Some(stop))),
        };
        let state = Loop {
            conn,
            order: preference_order(&config.channels, &config.replica),
            config,
            held: HashMap::new(),
            roles,
            events,
        };
        tokio::spawn(state.run(stopped));
        (handle, receiver)
    }
}

/// A held lease and when it was last renewed.
struct Held {
    lease: Lease,
    renewed: Instant,
}

struct Loop {
    conn: ConnectionManager,
    config: ElectorConfig,
    /// The channels in this replica's order of preference.
    order: Vec<String>,
    held: HashMap<String, Held>,
    roles: Arc<Mutex<BTreeMap<String, Role>>>,
    events: mpsc::Sender<Election>,
}

impl Loop {
    async fn run(mut self, mut stop: oneshot::Receiver<oneshot::Sender<()>>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let done = loop {
            tokio::select! {
                biased;
                done = &mut stop => break done.ok(),
                _ = tick.tick() => {}
            }
            if let Err(error) = self.round().await {
                tracing::warn!(%error, group = %self.config.group, "cluster: lease round failed; retrying");
            }
            if self.events.is_closed() {
                break None;
            }
        };
        self.stop_all().await;
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn members_key(&self) -> String {
        format!("sfstream:members:{}", self.config.group)
    }

    fn key(&self, channel: &str) -> LeaseKey {
        LeaseKey::new(self.config.group.clone(), channel)
    }

    async fn round(&mut self) -> Result<(), LeaseError> {
        // 1. Leases that lapsed while we were not looking (a stall) first:
        // no action as leader after the lease's bound.
        let lapsed: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| !h.lease.is_valid())
            .map(|(c, _)| c.clone())
            .collect();
        for channel in lapsed {
            self.step_down(&channel, StepDownReason::Expired).await;
        }

        // 2. Heartbeat.
        let mut conn = self.conn.clone();
        let members: u64 = Script::new(HEARTBEAT_LUA)
            .key(self.members_key())
            .arg(&self.config.replica)
            .arg(self.config.ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(|source| LeaseError::Redis {
                key: self.members_key(),
                source,
            })?;

        // 3. Renew what is due.
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.renewed.elapsed() >= self.config.ttl / 3)
            .map(|(c, _)| c.clone())
            .collect();
        for channel in due {
            let Some(held) = self.held.get_mut(&channel) else {
                continue;
            };
            match held.lease.renew().await {
                Ok(true) => held.renewed = Instant::now(),
                Ok(false) => self.step_down(&channel, StepDownReason::Taken).await,
                Err(error) => {
                    tracing::warn!(%error, %channel, "cluster: cannot renew the lease; still leading until it lapses");
                }
            }
        }

        // 4. Balance.
        let share = fair_share(self.config.channels.len(), members.max(1) as usize);
        if self.held.len() > share {
            let extra: Vec<String> = self
                .order
                .iter()
                .rev()
                .filter(|c| self.held.contains_key(*c))
                .take(self.held.len() - share)
                .cloned()
                .collect();
            for channel in extra {
                self.step_down(&channel, StepDownReason::Rebalance).await;
            }
        }
        let mut holders: HashMap<String, Option<String>> = HashMap::new();
        for channel in self.order.clone() {
            if self.held.contains_key(&channel) {
                continue;
            }
            if self.held.len() < share {
                let key = self.key(&channel);
                if let Some(lease) =
                    Lease::try_acquire(&self.conn, key, &self.config.replica, self.config.ttl)
                        .await?
                {
                    self.lead(channel, lease).await;
                    continue;
                }
            }
            let holder = match Lease::state(&self.conn, &self.key(&channel)).await? {
                LeaseState::Held { holder, .. } => Some(holder),
                LeaseState::Free => None,
            };
            holders.insert(channel, holder);
        }
        let mut roles = self.roles.lock();
        for (channel, holder) in holders {
            roles.insert(channel, Role::Standby { holder });
        }
        Ok(())
    }

    async fn lead(&mut self, channel: String, lease: Lease) {
        let token = lease.token();
        let fence = lease.value().to_string();
        tracing::info!(%channel, token, group = %self.config.group, "cluster: leading");
        self.roles
            .lock()
            .insert(channel.clone(), Role::Leading { token });
        self.held.insert(
            channel.clone(),
            Held {
                lease,
                renewed: Instant::now(),
            },
        );
        let _ = self
            .events
            .send(Election::Lead {
                channel,
                token,
                fence,
            })
            .await;
    }

    async fn step_down(&mut self, channel: &str, reason: StepDownReason) {
        let Some(held) = self.held.remove(channel) else {
            return;
        };
        tracing::info!(%channel, ?reason, group = %self.config.group, "cluster: stepping down");
        self.roles
            .lock()
            .insert(channel.to_string(), Role::Standby { holder: None });
        // Tell the streamer first (it stops writing), then hand over.
        let _ = self
            .events
            .send(Election::StepDown {
                channel: channel.to_string(),
                reason,
            })
            .await;
        if matches!(reason, StepDownReason::Rebalance | StepDownReason::Stopping)
            && let Err(error) = held.lease.release().await
        {
            tracing::warn!(%error, %channel, "cluster: cannot release the lease; it lapses by its TTL");
        }
    }

    async fn stop_all(&mut self) {
        let channels: Vec<String> = self.held.keys().cloned().collect();
        for channel in channels {
            self.step_down(&channel, StepDownReason::Stopping).await;
        }
        let mut conn = self.conn.clone();
        let left: Result<i64, _> = Script::new(LEAVE_LUA)
            .key(self.members_key())
            .arg(&self.config.replica)
            .invoke_async(&mut conn)
            .await;
        if let Err(error) = left {
            tracing::debug!(%error, "cluster: cannot leave the member set; it expires");
        }
    }
}

/// How many channels one of `members` replicas should lead.
pub fn fair_share(channels: usize, members: usize) -> usize {
    channels.div_ceil(members.max(1))
}

/// The channels rotated by a hash of the replica id, so that replicas try
/// different channels first.
fn preference_order(channels: &[String], replica: &str) -> Vec<String> {
    let mut sorted: Vec<String> = channels.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return sorted;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    replica.hash(&mut hasher);
    let start = (hasher.finish() % sorted.len() as u64) as usize;
    sorted.rotate_left(start);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_channel() {
        for channels in 0..12 {
            for members in 1..6 {
                assert!(fair_share(channels, members) * members >= channels);
                assert!(fair_share(channels, members) <= channels.max(1));
            }
        }
        assert_eq!(fair_share(3, 2), 2);
        assert_eq!(fair_share(4, 2), 2);
        assert_eq!(fair_share(1, 3), 1);
    }

    #[test]
    fn preference_orders_are_rotations_of_one_order() {
        let channels: Vec<String> = ["/topic/C", "/topic/A", "/topic/B", "/topic/A"]
            .map(String::from)
            .to_vec();
        let a = preference_order(&channels, "replica-a");
        let b = preference_order(&channels, "replica-b");
        let mut sorted_a = a.clone();
        sorted_a.sort();
        assert_eq!(sorted_a, ["/topic/A", "/topic/B", "/topic/C"]);
        let mut sorted_b = b.clone();
        sorted_b.sort();
        assert_eq!(sorted_a, sorted_b);
    }
}
