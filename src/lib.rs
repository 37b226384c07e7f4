//! sfstream: real-time Salesforce integration.
//!
//! The `sfstream` package is mainly the `sfstream` command line (see
//! `docs/cli.md`). The libraries live in their own crates:
//! `sfstream-salesforce` (logins, streaming, replay stores, REST),
//! `sfstream-bayeux` (a generic Bayeux client), `sfstream-service` (the
//! service runtime), `sfstream-nameko` (Nameko's AMQP protocol) and
//! `sfstream-emulator` (an emulated Salesforce org), re-exported here as
//! [`emulator`].

#![warn(missing_docs)]

pub use sfstream_emulator as emulator;
