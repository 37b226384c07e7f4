//! The defaults of the Salesforce clients, in one place. The CLI and the
//! service use these constants rather than repeating the values (the one
//! exception, the service config's API version `37.0`, is the Python
//! Nameko Salesforce extension's default, kept for its config files).

use std::time::Duration;

/// The API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "62.0";

/// Most received events buffered ahead of their consumer before polling
/// pauses. Smaller than the generic Bayeux client's
/// [`sfstream_bayeux::DEFAULT_MAX_PENDING`]: a Salesforce event carries a
/// whole record (change events, up to 1 MB platform events), so the cap
/// bounds memory more than throughput.
pub const DEFAULT_MAX_PENDING: usize = 1_000;

/// How long the streaming client keeps trying to re-establish a lost
/// connection before giving up.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(600);
