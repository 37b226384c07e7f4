//! Policies every sfstream crate shares, each written once: how long to
//! wait before retrying ([`Backoff`]) and how a URL or URI with a password
//! is shown in logs, errors and `Debug` output ([`redact_url`]).

#![warn(missing_docs)]

mod backoff;
mod redact;

pub use backoff::Backoff;
pub use redact::redact_url;
