//! AMQP URI handling: Nameko's `pyamqp://` scheme and password redaction.

use std::str::FromStr;

use lapin::uri::AMQPUri;

use crate::Error;

/// A parsed AMQP URI, accepted in the forms Nameko accepts in its `AMQP_URI`
/// setting (`amqp://`, `amqps://`, and kombu's `pyamqp://` alias).
///
/// Its [`Display`](std::fmt::Display) and [`Debug`](std::fmt::Debug) forms
/// never show the password.
///
/// ```
/// use sfstream_nameko::AmqpUri;
///
/// let uri = AmqpUri::parse("pyamqp://guest:secret@localhost").unwrap();
/// assert_eq!(uri.to_string(), "amqp://guest:***@localhost:5672/%2f");
/// assert!(!format!("{uri:?}").contains("secret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUri {
    parsed: AMQPUri,
}

impl AmqpUri {
    /// Parses `uri`, rewriting the `pyamqp://` / `pyamqps://` schemes (kombu's
    /// names for the py-amqp transport) to `amqp://` / `amqps://`.
    ///
    /// A URI without a virtual host path (`amqp://host`) selects `/`, as
    /// kombu does.
    pub fn parse(uri: &str) -> Result<Self, Error> {
        let rewritten = normalize_scheme(uri);
        let parsed = AMQPUri::from_str(&rewritten).map_err(|e| {
            // The parser's message may quote parts of the URI: never echo it.
            let _ = e;
            Error::InvalidUri(redact(&rewritten))
        })?;
        Ok(Self { parsed })
    }

    /// The virtual host.
    pub fn vhost(&self) -> &str {
        &self.parsed.vhost
    }

    /// The host name.
    pub fn host(&self) -> &str {
        &self.parsed.authority.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.parsed.authority.port
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.parsed.authority.userinfo.username
    }

    pub(crate) fn lapin_uri(&self) -> AMQPUri {
        self.parsed.clone()
    }
}

impl std::fmt::Display for AmqpUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vhost: String = self
            .parsed
            .vhost
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect();
        write!(
            f,
            "{}://{}:***@{}:{}/{}",
            self.parsed.scheme,
            self.parsed.authority.userinfo.username,
            self.parsed.authority.host,
            self.parsed.authority.port,
            vhost
        )
    }
}

impl std::fmt::Debug for AmqpUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AmqpUri({self})")
    }
}

impl FromStr for AmqpUri {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// Rewrites kombu's `pyamqp`/`pyamqps` schemes to `amqp`/`amqps`.
fn normalize_scheme(uri: &str) -> String {
    let trimmed = uri.trim();
    for (from, to) in [("pyamqps://", "amqps://"), ("pyamqp://", "amqp://")] {
        if trimmed.len() >= from.len() && trimmed[..from.len()].eq_ignore_ascii_case(from) {
            return format!("{to}{}", &trimmed[from.len()..]);
        }
    }
    trimmed.to_owned()
}

/// Replaces the password of a `scheme://user:password@host…` URI by `***`.
///
/// ```
/// assert_eq!(
///     sfstream_nameko::redact_uri("amqp://guest:s3cret@host/%2f"),
///     "amqp://guest:***@host/%2f"
/// );
/// assert_eq!(sfstream_nameko::redact_uri("amqp://host"), "amqp://host");
/// ```
pub fn redact_uri(uri: &str) -> String {
    redact(uri)
}

fn redact(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else {
        return uri.to_owned();
    };
    let rest = &uri[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return uri.to_owned();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    if !userinfo.contains(':') {
        return uri.to_owned();
    }
    format!(
        "{}{}:***@{}{}",
        &uri[..scheme_end + 3],
        user,
        &authority[at + 1..],
        &rest[authority_end..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyamqp_is_rewritten() {
        let u = AmqpUri::parse("pyamqp://guest:guest@localhost").unwrap();
        assert_eq!(u.host(), "localhost");
        assert_eq!(u.port(), 5672);
        assert_eq!(u.vhost(), "/");
        assert_eq!(u.username(), "guest");
        let u = AmqpUri::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(u.vhost(), "/");
        assert_eq!(u.to_string(), "amqp://guest:***@127.0.0.1:5672/%2f");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("amqp://u:p@h:1/v"), "amqp://u:***@h:1/v");
        assert_eq!(redact("amqp://u@h"), "amqp://u@h");
        assert_eq!(redact("nonsense"), "nonsense");
        let err = AmqpUri::parse("bogus://u:topsecret@h").unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}
