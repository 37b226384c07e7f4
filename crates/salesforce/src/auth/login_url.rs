//! Login URLs: production, sandbox, My Domain.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use reqwest::Url;

use super::error::{AuthError, truncate};

/// The production login URL.
const PRODUCTION: &str = "https://login.salesforce.com";
/// The sandbox login URL.
const SANDBOX: &str = "https://test.salesforce.com";

/// Where logins are sent: `https://login.salesforce.com` (the default),
/// `https://test.salesforce.com` for sandboxes, or an org's My Domain URL
/// such as `https://acme.my.salesforce.com`.
///
/// A login URL is an `http` or `https` URL with a host and nothing after
/// its path (no user name, password, query or fragment); a trailing `/` is
/// dropped. Plain `http://` parses, but an [`Authenticator`](super::Authenticator)
/// only uses it for loopback hosts unless told otherwise with
/// [`Authenticator::allow_insecure_http`](super::Authenticator::allow_insecure_http).
///
/// ```
/// use sfstream_salesforce::auth::LoginUrl;
///
/// assert_eq!(LoginUrl::default().as_str(), "https://login.salesforce.com");
/// assert_eq!(LoginUrl::sandbox().as_str(), "https://test.salesforce.com");
/// let my_domain: LoginUrl = "https://acme.my.salesforce.com/".parse()?;
/// assert_eq!(my_domain.as_str(), "https://acme.my.salesforce.com");
/// assert!("not a url".parse::<LoginUrl>().is_err());
/// # Ok::<(), sfstream_salesforce::auth::AuthError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LoginUrl {
    /// The normalised URL, without a trailing `/`.
    url: String,
    /// Whether the scheme is `https`.
    secure: bool,
    /// Whether the host is a loopback address or `localhost`.
    loopback: bool,
}

impl LoginUrl {
    /// `https://login.salesforce.com`, for production orgs and developer
    /// editions.
    pub fn production() -> Self {
        Self {
            url: PRODUCTION.to_string(),
            secure: true,
            loopback: false,
        }
    }

    /// `https://test.salesforce.com`, for sandboxes.
    pub fn sandbox() -> Self {
        Self {
            url: SANDBOX.to_string(),
            secure: true,
            loopback: false,
        }
    }

    /// Parses and checks a login URL (see the type's documentation for
    /// what is accepted).
    ///
    /// # Errors
    ///
    /// [`AuthError::InvalidLoginUrl`], saying what is wrong.
    pub fn parse(url: &str) -> Result<Self, AuthError> {
        let parsed = check_url(url, "login URL")?;
        let text = parsed.as_str().trim_end_matches('/').to_string();
        Ok(Self {
            secure: parsed.scheme() == "https",
            loopback: is_loopback(&parsed),
            url: text,
        })
    }

    /// The URL, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// Whether the URL uses `https`.
    pub fn is_https(&self) -> bool {
        self.secure
    }

    /// Whether the host is `localhost` or a loopback address
    /// (127.0.0.0/8, `::1`).
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// Checks the transport policy: `https`, or `http` to a loopback host,
    /// or any `http` when `allow_insecure_http`.
    pub(crate) fn check_tls(&self, allow_insecure_http: bool) -> Result<(), AuthError> {
        if self.secure || self.loopback || allow_insecure_http {
            Ok(())
        } else {
            Err(insecure(&self.url, "login URL"))
        }
    }

    /// The URL of an endpoint below this one (`path` starts with `/`).
    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Default for LoginUrl {
    /// [`LoginUrl::production`].
    fn default() -> Self {
        Self::production()
    }
}

impl FromStr for LoginUrl {
    type Err = AuthError;

    fn from_str(url: &str) -> Result<Self, AuthError> {
        Self::parse(url)
    }
}

impl TryFrom<&str> for LoginUrl {
    type Error = AuthError;

    fn try_from(url: &str) -> Result<Self, AuthError> {
        Self::parse(url)
    }
}

impl TryFrom<String> for LoginUrl {
    type Error = AuthError;

    fn try_from(url: String) -> Result<Self, AuthError> {
        Self::parse(&url)
    }
}

impl fmt::Display for LoginUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Debug for LoginUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LoginUrl").field(&self.url).finish()
    }
}

/// Parses an `http(s)` URL with a host and no credentials, query or
/// fragment. `what` names it in errors ("login URL", "instance URL").
fn check_url(url: &str, what: &str) -> Result<Url, AuthError> {
    let trimmed = url.trim();
    let shown = || format!("{:?}", truncate(trimmed.to_string(), 100));
    if trimmed.is_empty() {
        return Err(AuthError::InvalidLoginUrl(format!("the {what} is empty")));
    }
    let parsed = Url::parse(trimmed).map_err(|e| {
        AuthError::InvalidLoginUrl(format!(
            "{} is not a URL ({e}); expected e.g. https://login.salesforce.com",
            shown()
        ))
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Never echo the URL: it holds a user name or password.
        return Err(AuthError::InvalidLoginUrl(format!(
            "the {what} must not contain a user name or password"
        )));
    }
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(AuthError::InvalidLoginUrl(format!(
            "{} is not an http or https URL",
            shown()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(AuthError::InvalidLoginUrl(format!(
            "{} has no host",
            shown()
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(AuthError::InvalidLoginUrl(format!(
            "the {what} {} must not have a query string or fragment",
            shown()
        )));
    }
    Ok(parsed)
}

/// Whether the URL's host is `localhost` or a loopback address.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => {
            let name = bare.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// The error for plain `http` to a host that is not loopback.
fn insecure(url: &str, what: &str) -> AuthError {
    AuthError::InvalidLoginUrl(format!(
        "the {what} {url} uses plain http:// to a host that is not loopback, \
         so passwords and tokens would travel unencrypted; use https://, or \
         call Authenticator::allow_insecure_http(true) to accept it"
    ))
}

/// Checks and normalises an instance URL a login returned (or that was
/// given with an access token): `scheme://host[:port]`, no trailing `/`,
/// under the same transport policy as login URLs.
pub(crate) fn instance_url(url: &str, allow_insecure_http: bool) -> Result<String, AuthError> {
    let parsed = check_url(url, "instance URL")?;
    let origin = parsed.origin().ascii_serialization();
    let secure = parsed.scheme() == "https";
    if !secure && !is_loopback(&parsed) && !allow_insecure_http {
        return Err(insecure(&origin, "instance URL"));
    }
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert_eq!(LoginUrl::default(), LoginUrl::production());
        assert_eq!(LoginUrl::production().as_str(), PRODUCTION);
        assert_eq!(LoginUrl::sandbox().as_str(), SANDBOX);
        assert!(LoginUrl::sandbox().is_https());
        assert_eq!(LoginUrl::parse(SANDBOX), Ok(LoginUrl::sandbox()));
    }

    #[test]
    fn normalises() {
        let url = LoginUrl::parse("  HTTPS://Acme.My.Salesforce.com// ").expect("valid");
        assert_eq!(url.as_str(), "https://acme.my.salesforce.com");
        assert_eq!(
            url.endpoint("/services/oauth2/token"),
            "https://acme.my.salesforce.com/services/oauth2/token"
        );
        let url = LoginUrl::parse("http://127.0.0.1:8710/").expect("valid");
        assert_eq!(url.as_str(), "http://127.0.0.1:8710");
        assert!(url.is_loopback());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "   ",
            "not a url",
            "login.salesforce.com",
            "ftp://login.salesforce.com",
            "mailto:someone@example.com",
            "https://",
            "https://login.salesforce.com/?x=1",
            "https://login.salesforce.com/#x",
            "file:///etc/passwd",
        ] {
            let err = LoginUrl::parse(bad).expect_err(bad);
            assert!(matches!(err, AuthError::InvalidLoginUrl(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn never_echoes_url_credentials() {
        let err = LoginUrl::parse("https://user:hunter2@login.salesforce.com").expect_err("creds");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }

    #[test]
    fn tls_policy() {
        for loopback in [
            "http://127.0.0.1:1",
            "http://127.1.2.3",
            "http://[::1]:80",
            "http://localhost:8080",
            "http://LOCALHOST",
        ] {
            let url = LoginUrl::parse(loopback).expect(loopback);
            assert!(url.check_tls(false).is_ok(), "{loopback}");
        }
        let url = LoginUrl::parse("http://example.com").expect("parses");
        let err = url.check_tls(false).expect_err("plain http refused");
        let text = err.to_string();
        assert!(text.contains("http://example.com"), "{text}");
        assert!(text.contains("allow_insecure_http"), "{text}");
        assert!(url.check_tls(true).is_ok());
        assert!(LoginUrl::production().check_tls(false).is_ok());
    }

    #[test]
    fn instance_urls() {
        assert_eq!(
            instance_url("https://acme.my.salesforce.com/", false),
            Ok("https://acme.my.salesforce.com".to_string())
        );
        assert_eq!(
            instance_url("https://na1.salesforce.com/services/Soap/u/62.0/00D", false),
            Ok("https://na1.salesforce.com".to_string())
        );
        assert_eq!(
            instance_url("http://127.0.0.1:9000", false),
            Ok("http://127.0.0.1:9000".to_string())
        );
        assert!(instance_url("http://example.com", false).is_err());
        assert_eq!(
            instance_url("http://example.com", true),
            Ok("http://example.com".to_string())
        );
        assert!(instance_url("nonsense", true).is_err());
    }
}
