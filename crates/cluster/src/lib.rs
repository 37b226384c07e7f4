//! Replicas of one service that share the work safely.
//!
//! - [`Lease`]: who streams a channel, decided by a key in Redis (`SET NX
//!   PX` to acquire, a compare-and-extend script to renew, a
//!   compare-and-delete script to release), with a fencing token that grows
//!   with every acquisition so that a holder that was paused past its lease
//!   can be refused by whatever it writes to next.
//!
//! No consensus of our own: Redis decides, and the lease's time-to-live
//! bounds how long a vanished holder blocks the others.

#![warn(missing_docs)]

mod lease;

pub use lease::{Lease, LeaseError, LeaseKey, LeaseState};
