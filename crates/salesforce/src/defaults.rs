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

/// The last API version with the SOAP `login()` call: Salesforce removed it
/// from API 65.0 on, so SOAP logins go to this version (or the configured
/// one, when older) whatever version the REST calls use.
pub const SOAP_LOGIN_LAST_API_VERSION: &str = "64.0";

/// When Salesforce retires SOAP `login()` in every API version (Summer '27).
pub const SOAP_LOGIN_RETIREMENT: &str = "2027-06-01";

/// What a SOAP login user is told once per process: the date, and the
/// keys (config) or options (CLI) of the OAuth flows that replace it.
pub const SOAP_LOGIN_RETIREMENT_NOTICE: &str = "this login uses Salesforce's SOAP login() (username, password and security token without a consumer key), which Salesforce retires on 2027-06-01 (Summer '27) and has already removed from API 65.0 on; switch to an OAuth flow: JWT bearer (CONSUMER_KEY + JWT_KEY_FILE, CLI --consumer-key --jwt-key-file) or client credentials (CONSUMER_KEY + CONSUMER_SECRET + CLIENT_CREDENTIALS: True, CLI --client-credentials); see docs/logins.md";

/// The API version a SOAP login uses when `configured` is asked for: the
/// configured one while it still has `login()`, else
/// [`SOAP_LOGIN_LAST_API_VERSION`].
pub fn soap_login_api_version(configured: &str) -> &str {
    let last: f64 = SOAP_LOGIN_LAST_API_VERSION.parse().unwrap_or(64.0);
    match configured.parse::<f64>() {
        Ok(version) if version <= last => configured,
        _ => SOAP_LOGIN_LAST_API_VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soap_logins_go_to_a_version_that_has_login() {
        assert_eq!(soap_login_api_version("37.0"), "37.0");
        assert_eq!(soap_login_api_version("64.0"), "64.0");
        assert_eq!(soap_login_api_version("65.0"), "64.0");
        assert_eq!(soap_login_api_version("66.0"), "64.0");
        assert_eq!(soap_login_api_version("garbage"), "64.0");
    }
}
