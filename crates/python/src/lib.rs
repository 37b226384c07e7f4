//! The native half of the Python package `sfstream`: aiosfstream's API on
//! the Rust streaming client of `sfstream-salesforce`.
//!
//! Python code imports `sfstream` (the pure-Python package in `python/`),
//! whose classes (`Client`, the authenticators, the replay storages, the
//! exceptions) call into this extension module, `sfstream._sfstream`:
//!
//! - [`login::Login`]: an [`Authenticator`](sfstream_salesforce::Authenticator)
//!   for any of the core's login flows;
//! - [`client::Core`]: a [`StreamingClient`](sfstream_salesforce::StreamingClient)
//!   and its message stream, driven from asyncio: every awaitable runs on
//!   the tokio runtime of `pyo3-async-runtimes`, beside the event loop,
//!   and the loop never blocks on Rust (messages cross through a
//!   [`feed::Feed`]);
//! - [`pubsub::PubSubCore`]: the same for a
//!   [`PubSubClient`](sfstream_salesforce::pubsub::PubSubClient) (the
//!   Pub/Sub API, gRPC), behind `sfstream.PubSubClient`;
//! - [`store::PyStorage`]: a [`ReplayStore`](sfstream_salesforce::replay::ReplayStore)
//!   over a Python `ReplayMarkerStorage`, whose coroutines run on the
//!   client's event loop (as aiosfstream runs them).
//!
//! Errors become the exceptions of `sfstream.exceptions` ([`errors`]).
//!
//! Built with maturin (`crates/python/pyproject.toml`), which turns on
//! `pyo3/extension-module`; the workspace builds it as a plain library.

#![warn(missing_docs)]

pub mod client;
pub mod errors;
pub mod feed;
pub mod login;
pub mod pubsub;
pub mod session;
pub mod store;

use pyo3::prelude::*;

/// `url` with its password replaced by `***` (the core's redaction).
#[pyfunction]
fn redact_url(url: &str) -> String {
    sfstream_salesforce::replay::redact_url(url)
}

/// The extension module `sfstream._sfstream`.
#[pymodule]
fn _sfstream(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<login::Login>()?;
    m.add_class::<client::Core>()?;
    m.add_class::<client::Handle>()?;
    m.add_class::<pubsub::PubSubCore>()?;
    m.add_class::<pubsub::PubSubHandle>()?;
    m.add(
        "DEFAULT_API_VERSION",
        sfstream_salesforce::DEFAULT_API_VERSION,
    )?;
    m.add("PUBSUB_URL", sfstream_salesforce::pubsub::DEFAULT_URL)?;
    m.add_function(wrap_pyfunction!(redact_url, m)?)?;
    Ok(())
}
