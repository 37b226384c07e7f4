//! Handlers spread over RabbitMQ: the replica that streams a channel
//! publishes each event to a durable work queue of its entrypoint, and every
//! replica consumes those queues and acks after its handler succeeded.
//!
//! - [`WorkQueues::declare`]: per entrypoint a durable queue
//!   `sfstream.work.<service>.<entrypoint>` (or `….<i>` per partition), bound
//!   to the direct exchange `sfstream.work.<service>`, dead-lettering to the
//!   exchange `sfstream.dlx.<service>` and from there to the durable queue
//!   `sfstream.dead.<service>.<entrypoint>`.
//! - [`WorkPublisher`]: persistent, mandatory publishing with publisher
//!   confirms, pipelined in a bounded window; returns once RabbitMQ confirmed,
//!   which is when the streamer may commit its replay marker.
//! - [`WorkConsumer`]: consumes an entrypoint's queue(s) with a prefetch and
//!   turns the handler's [`Outcome`] into ack, in-place retry, requeue,
//!   dead-lettering, or stopping.
//! - [`Ordering`]: competing consumers, one strict order, or an order per
//!   record over partitions (see the crate's README for the trade-offs).
//!
//! Delivery is at least once: a message is handled again after a replica
//! died or lost its connection before acking, and a publish retried after a
//! connection loss may enqueue a message twice. Handlers should be
//! idempotent, or deduplicate by [`WorkMessage::replay_id`].

mod consumer;
mod headers;
mod publisher;
mod sequencer;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use sfstream_nameko::amqp::lapin::ExchangeKind;
use sfstream_nameko::amqp::lapin::types::{AMQPValue, LongString};
use sfstream_nameko::amqp::{Connection, ExchangeDeclaration, QueueDeclaration};

pub use consumer::{ConsumerOptions, Outcome, StopCause, WorkConsumer, WorkMessage};
pub use headers::{
    EventMeta, HEADER_CHANNEL, HEADER_CREATED_AT, HEADER_ENTRYPOINT, HEADER_PUBLISHED_AT,
    HEADER_RECORD_KEY, HEADER_REPLAY_ID,
};
pub use publisher::{Confirm, DEFAULT_WINDOW, PublisherOptions, WorkPublisher};

/// Errors of the work queues.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkError {
    /// An AMQP error (declaration refused, channel or connection lost).
    #[error(transparent)]
    Amqp(#[from] sfstream_nameko::Error),
    /// The entrypoint was not declared with [`WorkQueues::declare`].
    #[error("no work queue for entrypoint `{0}`")]
    UnknownEntrypoint(String),
    /// Invalid names or partition count.
    #[error("work queue configuration: {0}")]
    Configuration(String),
    /// RabbitMQ refused (nacked) the message: it is not queued.
    #[error("RabbitMQ refused (nacked) the message")]
    Nacked,
    /// RabbitMQ could not route the message to a queue (returned as
    /// mandatory): the queue does not exist.
    #[error("RabbitMQ could not route the message to `{routing_key}`: {reply_text}")]
    Unroutable {
        /// The routing key (the queue's name).
        routing_key: String,
        /// RabbitMQ's reply text (`NO_ROUTE`).
        reply_text: String,
    },
    /// No confirmation within the publisher's time limit; the message may
    /// or may not be queued.
    #[error("no confirmation from RabbitMQ within the time limit")]
    Timeout,
    /// The publisher or its connection was closed.
    #[error("the work publisher or its connection is closed")]
    Closed,
}

/// How an entrypoint's events are ordered among its consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// Competing consumers: every replica handles events at the same time,
    /// up to its prefetch; no order.
    #[default]
    None,
    /// One queue with `x-single-active-consumer`: one replica at a time
    /// handles the entrypoint's events, one after the other, in publishing
    /// order; another replica takes over when it stops.
    Strict,
    /// `partitions` queues `….<i>`, each with `x-single-active-consumer`;
    /// the publisher picks the partition from a hash of the record key, so
    /// the events of one record are handled in order while different
    /// records are handled at the same time.
    ByRecord {
        /// Number of partitions (1 to [`MAX_PARTITIONS`]).
        partitions: u16,
    },
}

impl Ordering {
    /// Whether each queue has one active consumer handling in order.
    pub fn is_ordered(&self) -> bool {
        !matches!(self, Ordering::None)
    }
}

/// The largest partition count of [`Ordering::ByRecord`].
pub const MAX_PARTITIONS: u16 = 1024;

/// `sfstream.work.<service>`: the direct exchange of a service's work queues.
pub fn work_exchange_name(service: &str) -> String {
    format!("sfstream.work.{service}")
}

/// `sfstream.work.<service>.<entrypoint>`, with `.<partition>` for
/// [`Ordering::ByRecord`].
///
/// ```
/// use sfstream_cluster::queue::work_queue_name;
/// assert_eq!(work_queue_name("svc", "on_order", None), "sfstream.work.svc.on_order");
/// assert_eq!(work_queue_name("svc", "on_order", Some(3)), "sfstream.work.svc.on_order.3");
/// ```
pub fn work_queue_name(service: &str, entrypoint: &str, partition: Option<u16>) -> String {
    match partition {
        Some(i) => format!("sfstream.work.{service}.{entrypoint}.{i}"),
        None => format!("sfstream.work.{service}.{entrypoint}"),
    }
}

/// `sfstream.dlx.<service>`: the dead-letter exchange of a service.
pub fn dead_letter_exchange_name(service: &str) -> String {
    format!("sfstream.dlx.{service}")
}

/// `sfstream.dead.<service>.<entrypoint>`: where skipped events end.
pub fn dead_letter_queue_name(service: &str, entrypoint: &str) -> String {
    format!("sfstream.dead.{service}.{entrypoint}")
}

/// The partition of `record_key` among `partitions`: FNV-1a (64 bits) of
/// its UTF-8 bytes, modulo `partitions`. Fixed here (not `std`'s hasher,
/// which may change between Rust releases) so that every version of the
/// publisher routes a record to the same partition.
///
/// ```
/// use sfstream_cluster::queue::partition_of;
/// assert_eq!(partition_of("001xx000003DGb2AAG", 8), partition_of("001xx000003DGb2AAG", 8));
/// assert!(partition_of("anything", 8) < 8);
/// ```
pub fn partition_of(record_key: &str, partitions: u16) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in record_key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The remainder is below `partitions`, a u16.
    (hash % u64::from(partitions.max(1))) as u16
}

/// The declared work queues of one service: what publishers and consumers
/// of its entrypoints need. Every replica declares them (idempotent as long
/// as the names and the [`Ordering`] are the same everywhere: RabbitMQ
/// refuses to redeclare a queue with other arguments).
#[derive(Debug, Clone)]
pub struct WorkQueues {
    conn: Connection,
    topology: Arc<Topology>,
}

/// The names and declarations, checked.
#[derive(Debug)]
pub(crate) struct Topology {
    service: String,
    ordering: Ordering,
    /// Entrypoint → its queues (one, or one per partition).
    queues: BTreeMap<String, Vec<QueueDeclaration>>,
    dead: Vec<QueueDeclaration>,
}

impl WorkQueues {
    /// Declares the exchanges and queues of `entrypoints` (see the
    /// [module](self) documentation) on `conn`.
    pub async fn declare(
        conn: &Connection,
        service: &str,
        entrypoints: &[String],
        ordering: Ordering,
    ) -> Result<Self, WorkError> {
        let topology = Topology::plan(service, entrypoints, ordering)?;
        let channel = conn.channel().await?;
        let declared = topology.declare_on(&channel).await;
        if channel.status().connected() {
            let _ = channel.close(200, "OK".into()).await;
        }
        declared?;
        Ok(Self {
            conn: conn.clone(),
            topology: Arc::new(topology),
        })
    }

    /// The connection the queues were declared on.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.topology.service
    }

    /// The ordering the queues were declared with.
    pub fn ordering(&self) -> Ordering {
        self.topology.ordering
    }

    /// The declared entrypoints.
    pub fn entrypoints(&self) -> impl Iterator<Item = &str> {
        self.topology.queues.keys().map(String::as_str)
    }

    /// The work queue names of `entrypoint` (one per partition).
    pub fn queue_names(&self, entrypoint: &str) -> Option<Vec<String>> {
        self.topology
            .queues
            .get(entrypoint)
            .map(|qs| qs.iter().map(|q| q.name.clone()).collect())
    }

    /// The dead-letter queue name of `entrypoint`.
    pub fn dead_letter_queue(&self, entrypoint: &str) -> Option<String> {
        self.topology
            .queues
            .contains_key(entrypoint)
            .then(|| dead_letter_queue_name(&self.topology.service, entrypoint))
    }

    pub(crate) fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }
}

impl Topology {
    fn plan(service: &str, entrypoints: &[String], ordering: Ordering) -> Result<Self, WorkError> {
        let bad = |what: String| Err(WorkError::Configuration(what));
        // Without dots in service names, `sfstream.work.<service>.` cannot
        // be the prefix of another service's queues.
        if service.is_empty() || service.contains('.') {
            return bad(format!(
                "invalid service name `{service}` (empty or with a dot)"
            ));
        }
        let partitions = match ordering {
            Ordering::ByRecord { partitions } if partitions == 0 || partitions > MAX_PARTITIONS => {
                return bad(format!(
                    "{partitions} partitions (1 to {MAX_PARTITIONS} allowed)"
                ));
            }
            Ordering::ByRecord { partitions } => Some(partitions),
            _ => None,
        };
        let work_exchange =
            ExchangeDeclaration::new(work_exchange_name(service), ExchangeKind::Direct);
        let dlx =
            ExchangeDeclaration::new(dead_letter_exchange_name(service), ExchangeKind::Direct);
        let mut names = HashSet::new();
        let mut queues = BTreeMap::new();
        let mut dead = Vec::new();
        for entrypoint in entrypoints {
            if entrypoint.is_empty() {
                return bad("an entrypoint name is empty".into());
            }
            let mut list = Vec::new();
            let parts: Vec<Option<u16>> = match partitions {
                Some(n) => (0..n).map(Some).collect(),
                None => vec![None],
            };
            for partition in parts {
                let name = work_queue_name(service, entrypoint, partition);
                let mut q =
                    QueueDeclaration::new(name.clone(), work_exchange.clone(), name.clone())
                        .argument("x-dead-letter-exchange", long_string(&dlx.name))
                        .argument("x-dead-letter-routing-key", long_string(entrypoint));
                if ordering.is_ordered() {
                    q = q.argument("x-single-active-consumer", AMQPValue::Boolean(true));
                }
                list.push(q);
            }
            let dead_name = dead_letter_queue_name(service, entrypoint);
            for name in list.iter().map(|q| &q.name).chain([&dead_name]) {
                // AMQP names are short strings; a clash would mix two
                // entrypoints' events.
                if name.len() > 255 {
                    return bad(format!("queue name `{name}` is longer than 255 bytes"));
                }
                if !names.insert(name.clone()) {
                    return bad(format!("queue name `{name}` is used twice"));
                }
            }
            dead.push(QueueDeclaration::new(
                dead_name,
                dlx.clone(),
                entrypoint.clone(),
            ));
            queues.insert(entrypoint.clone(), list);
        }
        Ok(Self {
            service: service.to_owned(),
            ordering,
            queues,
            dead,
        })
    }

    /// Declares everything on `channel`: dead-letter side first, so that no
    /// message is dead-lettered to a missing queue.
    pub(crate) async fn declare_on(
        &self,
        channel: &sfstream_nameko::amqp::lapin::Channel,
    ) -> Result<(), WorkError> {
        for q in self.dead.iter().chain(self.queues.values().flatten()) {
            q.declare(channel).await?;
        }
        Ok(())
    }

    pub(crate) fn ordering(&self) -> Ordering {
        self.ordering
    }

    pub(crate) fn declarations(&self, entrypoint: &str) -> Result<&[QueueDeclaration], WorkError> {
        self.queues
            .get(entrypoint)
            .map(Vec::as_slice)
            .ok_or_else(|| WorkError::UnknownEntrypoint(entrypoint.to_owned()))
    }
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_fixed() {
        // FNV-1a 64 test vectors: "" = cbf29ce484222325, "a" = af63dc4c8601ec8c.
        assert_eq!(
            partition_of("", 1024),
            (0xcbf2_9ce4_8422_2325u64 % 1024) as u16
        );
        assert_eq!(
            partition_of("a", 1000),
            (0xaf63_dc4c_8601_ec8cu64 % 1000) as u16
        );
        assert_eq!(partition_of("x", 1), 0);
    }

    #[test]
    fn names_are_checked() {
        let eps = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let by_record = Ordering::ByRecord { partitions: 2 };
        let t = Topology::plan("svc", &eps(&["a", "b"]), by_record).expect("valid");
        let names: Vec<_> = t
            .declarations("a")
            .expect("a")
            .iter()
            .map(|q| q.name.as_str())
            .collect();
        assert_eq!(names, ["sfstream.work.svc.a.0", "sfstream.work.svc.a.1"]);
        let q = &t.declarations("b").expect("b")[1];
        assert_eq!(q.routing_key, q.name);
        assert_eq!(q.exchange.name, "sfstream.work.svc");
        assert_eq!(
            q.arguments.inner().get("x-single-active-consumer"),
            Some(&AMQPValue::Boolean(true))
        );
        assert_eq!(
            q.arguments.inner().get("x-dead-letter-routing-key"),
            Some(&long_string("b"))
        );
        assert!(matches!(
            t.declarations("c"),
            Err(WorkError::UnknownEntrypoint(_))
        ));
        let plain = Topology::plan("svc", &eps(&["a"]), Ordering::None).expect("valid");
        let q = &plain.declarations("a").expect("a")[0];
        assert!(!q.arguments.inner().contains_key("x-single-active-consumer"));
        assert!(matches!(
            Topology::plan("s.v", &eps(&["a"]), Ordering::None),
            Err(WorkError::Configuration(_))
        ));
        for (entrypoints, ordering) in [
            (eps(&["a", "a"]), by_record),
            (eps(&[""]), Ordering::None),
            (eps(&[&"x".repeat(250)]), Ordering::None),
            (eps(&["a"]), Ordering::ByRecord { partitions: 0 }),
        ] {
            let r = Topology::plan("svc", &entrypoints, ordering);
            assert!(
                matches!(r, Err(WorkError::Configuration(_))),
                "{entrypoints:?}"
            );
        }
    }

    #[test]
    fn keys_spread_over_partitions() {
        let mut seen = [0usize; 8];
        for i in 0..800 {
            seen[usize::from(partition_of(&format!("001xx{i:013}"), 8))] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }
}
