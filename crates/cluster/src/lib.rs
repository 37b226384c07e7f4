//! Replicas of one service that share the work safely.
//!
//! - [`Lease`]: who streams a channel, decided by a key in Redis (`SET NX
//!   PX` to acquire, a compare-and-extend script to renew, a
//!   compare-and-delete script to release), with a fencing token that grows
//!   with every acquisition so that a holder that was paused past its lease
//!   can be refused by whatever it writes to next.
//! - [`Elector`]: spreads channels over the live replicas of a group, one
//!   leader per channel, handing over on a graceful stop within a
//!   [`TICK`](elector::TICK) and after a crash within the lease's TTL.
//! - [`queue`]: handlers spread over RabbitMQ: the streamer publishes each
//!   event to a durable work queue per entrypoint (publisher confirms, so
//!   the replay marker moves only past queued events), every replica
//!   consumes with a prefetch and acks after its handler; skipped events are
//!   dead-lettered; optional order, strict or per record.
//!
//! No consensus of our own: Redis decides, and the lease's time-to-live
//! bounds how long a vanished holder blocks the others.

#![warn(missing_docs)]

pub mod elector;
mod lease;
pub mod queue;

pub use elector::{Election, Elector, ElectorConfig, ElectorHandle, Role, StepDownReason};

pub use lease::{Lease, LeaseError, LeaseKey, LeaseState};
