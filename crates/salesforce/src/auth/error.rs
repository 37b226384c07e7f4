//! Why a login failed.

use crate::Secret;

/// How many characters of a server's answer an error keeps.
pub(crate) const BODY_EXCERPT_CHARS: usize = 200;

/// What replaces a secret found in text an error would carry.
const REDACTED: &str = "<redacted>";

/// Shortest secret scrubbed from server text.
const MIN_SCRUBBED_LEN: usize = 6;

/// Why a login failed.
///
/// No variant ever carries a password, security token, consumer secret,
/// refresh token, private key, assertion or access token: text that comes
/// from the server is scrubbed of the credentials that were sent, and
/// truncated, before it is put in an error.
///
/// Use [`AuthError::is_auth_failure`] (or its complement
/// [`AuthError::is_retryable`]) to decide between retrying later and giving
/// up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The OAuth token endpoint refused the request, e.g.
    /// `invalid_grant: authentication failure` for a wrong password,
    /// `invalid_client` for a wrong consumer secret.
    #[error("login refused: {error}: {description}")]
    Rejected {
        /// The OAuth `error` code (`invalid_grant`, `invalid_client_id`,
        /// `invalid_client`, `unsupported_grant_type`, `inactive_user`, …).
        error: String,
        /// Salesforce's `error_description`.
        description: String,
    },

    /// SOAP `login` answered with a fault, e.g. `INVALID_LOGIN`.
    #[error("SOAP login fault {code}: {message}")]
    SoapFault {
        /// The fault code without its namespace prefix (`INVALID_LOGIN`,
        /// `Client`, `Server`, …).
        code: String,
        /// The fault's message.
        message: String,
    },

    /// The server answered with an HTTP status that is neither a token nor
    /// a recognised error (a proxy, a maintenance page, a wrong URL, …).
    #[error("login failed with HTTP {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The start of the body (about 200 characters), scrubbed of secrets.
        body: String,
    },

    /// The server could not be reached or did not answer in time.
    #[error("cannot reach the login server: {0}")]
    Transport(String),

    /// The JWT bearer private key is not a usable PEM-encoded RSA key.
    #[error("invalid private key: {0}")]
    InvalidKey(String),

    /// The login URL (or an instance URL) is not acceptable.
    #[error("invalid login URL: {0}")]
    InvalidLoginUrl(String),

    /// The API version is not of the form `62.0`.
    #[error("invalid API version {0:?}: expected a version such as \"62.0\"")]
    InvalidApiVersion(String),

    /// The session came from an access token given as is
    /// ([`Credentials::AccessToken`](super::Credentials::AccessToken)): it
    /// has expired or was revoked, and without other credentials it cannot
    /// be renewed.
    #[error(
        "the access token has expired or was revoked and cannot be renewed: \
         it was given as is, without credentials to log in again"
    )]
    CannotRenew,

    /// The server's answer could not be understood.
    #[error("malformed login response: {0}")]
    MalformedResponse(String),
}

impl AuthError {
    /// Whether logging in again later cannot help: the server refused the
    /// credentials (wrong password, revoked refresh token, unknown consumer
    /// key, wrongly signed assertion, SOAP `INVALID_LOGIN`, …), an access
    /// token cannot be renewed, or the configuration itself is unusable (a
    /// bad key, login URL or API version).
    ///
    /// Network trouble, timeouts, server errors (HTTP 5xx, 408, 429), and
    /// answers that could not be understood are not auth failures: retry
    /// them with a backoff. This is exactly `!self.is_retryable()`.
    pub fn is_auth_failure(&self) -> bool {
        !self.is_retryable()
    }

    /// Whether the failure may be temporary, so that logging in again after
    /// a pause may succeed. The complement of [`AuthError::is_auth_failure`].
    pub fn is_retryable(&self) -> bool {
        match self {
            AuthError::Transport(_) | AuthError::MalformedResponse(_) => true,
            AuthError::Http { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            AuthError::Rejected { error, .. } => matches!(
                error.as_str(),
                "server_error" | "temporarily_unavailable" | "rate_limit_exceeded"
            ),
            AuthError::SoapFault { code, .. } => matches!(
                code.as_str(),
                "Server" | "SERVER_UNAVAILABLE" | "UNKNOWN_EXCEPTION" | "REQUEST_LIMIT_EXCEEDED"
            ),
            AuthError::InvalidKey(_)
            | AuthError::InvalidLoginUrl(_)
            | AuthError::InvalidApiVersion(_)
            | AuthError::CannotRenew => false,
        }
    }
}

/// Scrubs the secrets of one login from text before it goes into an error.
#[derive(Default)]
pub(crate) struct Redactor {
    /// Every form in which a secret may come back: as sent, XML-escaped and
    /// URL-encoded. Longest first, so that a secret containing another is
    /// replaced whole.
    needles: Vec<String>,
}

impl Redactor {
    /// A redactor for `secrets` (empty ones are ignored).
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let mut redactor = Self::default();
        for secret in secrets {
            redactor.add(secret.expose());
        }
        redactor
    }

    /// Adds a secret given as plain text. Secrets shorter than
    /// [`MIN_SCRUBBED_LEN`] are left alone: replacing every `p` or `token`
    /// would mangle messages (`htt<redacted>://`) and protect nothing.
    pub(crate) fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SCRUBBED_LEN {
            return;
        }
        let forms = [
            secret.to_string(),
            quick_xml::escape::escape(secret).into_owned(),
            quick_xml::escape::partial_escape(secret).into_owned(),
            url_encode(secret),
            url_encode(secret).replace("%20", "+"),
            url_encode(secret).replace("%20", "+").replace("%2A", "*"),
        ];
        for form in forms {
            if !self.needles.contains(&form) {
                self.needles.push(form);
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// `text` with every secret replaced by `<redacted>`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for needle in &self.needles {
            if text.contains(needle.as_str()) {
                text = text.replace(needle.as_str(), REDACTED);
            }
        }
        text
    }

    /// `text` scrubbed, then cut to about [`BODY_EXCERPT_CHARS`] characters
    /// (scrubbing first, so no part of a secret survives the cut).
    pub(crate) fn excerpt(&self, text: &str) -> String {
        truncate(self.scrub(text.trim()), BODY_EXCERPT_CHARS)
    }
}

/// `text` cut to at most `max` characters, marked with `…` when cut.
pub(crate) fn truncate(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_every_form_of_a_secret() {
        let secret = Secret::new("p&ss w<rd");
        let redactor = Redactor::new([&secret]);
        let text = "a p&ss w<rd b p&amp;ss w&lt;rd c p%26ss%20w%3Crd d p%26ss+w%3Crd";
        let scrubbed = redactor.scrub(text);
        assert_eq!(
            scrubbed,
            "a <redacted> b <redacted> c <redacted> d <redacted>"
        );
    }

    #[test]
    fn very_short_secrets_do_not_mangle_messages() {
        let redactor = Redactor::new([&Secret::new("p"), &Secret::new("token")]);
        let text = "cannot connect to http://127.0.0.1:1: security token refused";
        assert_eq!(redactor.scrub(text), text);
    }

    #[test]
    fn excerpt_scrubs_before_cutting() {
        let secret = Secret::new("hunter2");
        let redactor = Redactor::new([&secret]);
        let body = format!("{}hunter2", "x".repeat(BODY_EXCERPT_CHARS - 3));
        let excerpt = redactor.excerpt(&body);
        assert!(!excerpt.contains("hun"), "{excerpt}");
        assert!(excerpt.ends_with('…'));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("ééé".into(), 2), "éé…");
        assert_eq!(truncate("éé".into(), 2), "éé");
        assert_eq!(truncate(String::new(), 0), "");
    }

    #[test]
    fn classification() {
        let rejected = AuthError::Rejected {
            error: "invalid_grant".into(),
            description: "authentication failure".into(),
        };
        assert!(rejected.is_auth_failure());
        assert!(!rejected.is_retryable());
        let fault = AuthError::SoapFault {
            code: "INVALID_LOGIN".into(),
            message: "x".into(),
        };
        assert!(fault.is_auth_failure());
        assert!(AuthError::CannotRenew.is_auth_failure());
        assert!(AuthError::InvalidKey("x".into()).is_auth_failure());
        assert!(AuthError::Transport("x".into()).is_retryable());
        assert!(AuthError::MalformedResponse("x".into()).is_retryable());
        for (status, retry) in [
            (500, true),
            (503, true),
            (429, true),
            (408, true),
            (404, false),
        ] {
            let e = AuthError::Http {
                status,
                body: String::new(),
            };
            assert_eq!(e.is_retryable(), retry, "{status}");
        }
        let busy = AuthError::SoapFault {
            code: "SERVER_UNAVAILABLE".into(),
            message: "x".into(),
        };
        assert!(busy.is_retryable());
    }
}
