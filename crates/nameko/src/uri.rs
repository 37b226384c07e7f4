//! AMQP URI handling: Nameko's `AMQP_URI` parsed exactly as kombu (which
//! Nameko connects with) parses it, and password redaction.

use std::net::Ipv6Addr;
use std::str::FromStr;

use lapin::uri::{AMQPAuthority, AMQPScheme, AMQPUri, AMQPUserInfo};

use crate::Error;

/// A parsed AMQP URI, accepted in the forms Nameko accepts in its `AMQP_URI`
/// setting (`pyamqp://`, `amqp://`, `amqps://`) and parsed as kombu parses
/// them.
///
/// kombu's rules (`kombu.utils.url.url_to_parts`, the `Connection` defaults
/// and the py-amqp transport's `default_connection_params`):
///
/// - the scheme is case-insensitive; `pyamqp` and `amqp` are AMQP,
///   `amqps` is AMQP over TLS (`pyamqps`, unknown to kombu, is accepted
///   too);
/// - what follows `scheme://` is split as an `http://` URL: the network
///   location ends at the first `/`, `?` or `#`; the query follows `?`;
///   a `#` fragment is dropped;
/// - the user info is what precedes the location's **last** `@`, split at
///   its **first** `:` into user and password;
/// - the host is lowercased up to its first `%` (a zone id keeps its case);
///   a bracketed `[IPv6]` host loses its brackets; the port must be ASCII
///   digits in `0..=65535`;
/// - the virtual host is the path without **one** leading `/`: so an empty
///   path, `/` and `//` and `/%2F` all mean `/`, `/x` means `x`, `//x`
///   means `/x`, `/a/b` means `a/b`;
/// - user, password, host and virtual host are percent-decoded like
///   Python's `urllib.parse.unquote` (invalid escapes kept as they are,
///   invalid UTF-8 replaced by U+FFFD, `+` kept);
/// - an empty (or missing) user or password is `guest`, an empty host
///   `localhost`, an empty virtual host `/`, an empty or zero port the
///   scheme's default (5672, 5671 for TLS).
///
/// kombu reads `a;b` as a failover list; this crate does not fail over and
/// refuses such URIs rather than half-following them. The query keeps
/// lapin's meaning (`heartbeat`, `frame_max`, `channel_max`,
/// `connection_timeout`, `auth_mechanism`).
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
/// // A trailing slash is the default virtual host, as for Nameko.
/// assert_eq!(AmqpUri::parse("pyamqp://guest:guest@127.0.0.1:5672/").unwrap().vhost(), "/");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUri {
    parsed: AMQPUri,
}

impl AmqpUri {
    /// Parses `uri` (surrounding whitespace ignored) as kombu does.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUri`], showing the URI with its password redacted
    /// and why it was refused.
    pub fn parse(uri: &str) -> Result<Self, Error> {
        let uri = uri.trim();
        parse_kombu(uri)
            .map(|parsed| Self { parsed })
            .map_err(|why| {
                // Without `://` there is no telling where a password would be.
                let shown = if uri.contains("://") {
                    redact_uri(uri)
                } else {
                    "(not shown)".to_owned()
                };
                Error::InvalidUri(format!("{shown} ({why})"))
            })
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

    /// The password (never shown by `Display` or `Debug`).
    pub fn password(&self) -> &str {
        &self.parsed.authority.userinfo.password
    }

    /// Whether the connection uses TLS (`amqps://`).
    pub fn is_tls(&self) -> bool {
        self.parsed.scheme == AMQPScheme::AMQPS
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
        let host = &self.parsed.authority.host;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        write!(
            f,
            "{}://{}:***@{}:{}/{}",
            self.parsed.scheme,
            self.parsed.authority.userinfo.username,
            host,
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

/// kombu's defaults for what a URI leaves out (py-amqp transport).
const DEFAULT_USER: &str = "guest";
const DEFAULT_PASSWORD: &str = "guest";
const DEFAULT_HOST: &str = "localhost";
const DEFAULT_VHOST: &str = "/";

/// Parses as `kombu.utils.url.url_to_parts` plus kombu's defaults. The
/// reasons never quote the URI (a malformed one may show its password in
/// unexpected places).
fn parse_kombu(uri: &str) -> Result<AMQPUri, &'static str> {
    if uri.contains(';') {
        return Err("a ';'-separated failover list is not supported: give one URI");
    }
    // urllib drops these anywhere in a URL.
    let uri: String = uri
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let not_a_uri = "not a URI: expected pyamqp://, amqp:// or amqps://";
    let colon = uri.find(':').ok_or(not_a_uri)?;
    let scheme = &uri[..colon];
    let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !valid_scheme || !uri[colon..].starts_with("://") {
        return Err(not_a_uri);
    }
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "pyamqp" | "amqp" => AMQPScheme::AMQP,
        "pyamqps" | "amqps" => AMQPScheme::AMQPS,
        _ => return Err("unsupported scheme: use pyamqp://, amqp:// or amqps://"),
    };

    let rest = &uri[colon + 3..];
    let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (netloc, after) = rest.split_at(netloc_end);
    let after = after.split_once('#').map_or(after, |(before, _)| before);
    let (path, query) = after.split_once('?').unwrap_or((after, ""));

    if netloc.contains('[') != netloc.contains(']') {
        return Err("invalid IPv6 address");
    }
    if let Some((_, bracketed)) = netloc.split_once('[') {
        let inner = bracketed.split_once(']').map_or(bracketed, |(h, _)| h);
        let address = inner.split_once('%').map_or(inner, |(a, _)| a);
        if address.parse::<Ipv6Addr>().is_err() || inner.ends_with('%') {
            return Err("only an IPv6 address may be in brackets");
        }
    }

    let (userinfo, hostinfo) = match netloc.rsplit_once('@') {
        Some((userinfo, hostinfo)) => (Some(userinfo), hostinfo),
        None => (None, netloc),
    };
    let (username, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (info, None),
        },
        None => ("", None),
    };
    let (host, port) = match hostinfo.split_once('[') {
        Some((_, bracketed)) => {
            let (host, after) = bracketed.split_once(']').unwrap_or((bracketed, ""));
            (host, after.split_once(':').map_or("", |(_, port)| port))
        }
        None => hostinfo.split_once(':').unwrap_or((hostinfo, "")),
    };
    // Lowercased up to a zone id's '%', then unquoted (urllib, then kombu).
    let host = match host.split_once('%') {
        Some((name, zone)) => format!("{}%{zone}", name.to_lowercase()),
        None => host.to_lowercase(),
    };
    let port = if port.is_empty() {
        0
    } else {
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the port is not a number");
        }
        port.parse::<u16>()
            .map_err(|_| "the port is out of range 0-65535")?
    };
    let vhost = path.strip_prefix('/').unwrap_or(path);

    let or_default = |value: String, default: &str| {
        if value.is_empty() {
            default.to_owned()
        } else {
            value
        }
    };
    let query = if query.is_empty() {
        Default::default()
    } else {
        AMQPUri::from_str(&format!("amqp://localhost/?{query}"))
            .map_err(|_| "invalid query parameters")?
            .query
    };
    Ok(AMQPUri {
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: or_default(unquote(username), DEFAULT_USER),
                password: or_default(password.map(unquote).unwrap_or_default(), DEFAULT_PASSWORD),
            },
            host: or_default(unquote(&host), DEFAULT_HOST),
            port: if port == 0 {
                scheme.default_port()
            } else {
                port
            },
        },
        vhost: or_default(unquote(vhost), DEFAULT_VHOST),
        scheme,
        query,
    })
}

/// Python's `urllib.parse.unquote`: `%XX` escapes (either case) become
/// bytes, anything else is kept; each run of ASCII text is decoded as
/// UTF-8 with U+FFFD for invalid sequences; non-ASCII text is kept.
fn unquote(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut run: Vec<u8> = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !b.is_ascii() {
            out.push_str(&String::from_utf8_lossy(&run));
            run.clear();
            // A whole non-ASCII character, kept as it is.
            let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            i += ch.len_utf8().max(1);
            continue;
        }
        let hex = |k: usize| bytes.get(k).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                // Both digits are < 16.
                run.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 3;
            }
            _ => {
                run.push(b);
                i += 1;
            }
        }
    }
    out.push_str(&String::from_utf8_lossy(&run));
    out
}

/// Replaces the password of a `scheme://user:password@host…` URI by `***`:
/// the one redaction of the workspace ([`sfstream_common::redact_url`]),
/// under the name this crate has always given it.
///
/// ```
/// assert_eq!(
///     sfstream_nameko::redact_uri("amqp://guest:s3cret@host/%2f"),
///     "amqp://guest:***@host/%2f"
/// );
/// ```
pub fn redact_uri(uri: &str) -> String {
    sfstream_common::redact_url(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> (String, String, String, u16, String) {
        let u = AmqpUri::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
        (
            u.username().to_owned(),
            u.password().to_owned(),
            u.host().to_owned(),
            u.port(),
            u.vhost().to_owned(),
        )
    }

    fn vhost(uri: &str) -> String {
        parts(uri).4
    }

    #[test]
    fn vhost_forms_as_kombu() {
        // The form `nameko run` users write: a trailing slash.
        assert_eq!(vhost("pyamqp://guest:guest@127.0.0.1:5672/"), "/");
        assert_eq!(vhost("pyamqp://guest:guest@127.0.0.1:5672"), "/");
        assert_eq!(vhost("pyamqp://h//"), "/");
        assert_eq!(vhost("pyamqp://h/%2F"), "/");
        assert_eq!(vhost("pyamqp://h/%2f"), "/");
        assert_eq!(vhost("pyamqp://h/x"), "x");
        assert_eq!(vhost("pyamqp://h//x"), "/x");
        assert_eq!(vhost("pyamqp://h/a/b"), "a/b");
        assert_eq!(vhost("pyamqp://h/a%2Fb"), "a/b");
        assert_eq!(vhost("pyamqp://h/v%20h"), "v h");
        assert_eq!(vhost("pyamqp://h/+"), "+");
        assert_eq!(vhost("pyamqp://h/x?heartbeat=5"), "x");
        assert_eq!(vhost("pyamqp://h/?heartbeat=5"), "/");
        assert_eq!(vhost("pyamqp://h#frag/x"), "/");
        assert_eq!(vhost("pyamqp://h/x#frag"), "x");
    }

    #[test]
    fn percent_decoding_as_python_unquote() {
        assert_eq!(unquote("a%2Fb%2fc"), "a/b/c");
        assert_eq!(unquote("%zz%2"), "%zz%2");
        assert_eq!(unquote("%"), "%");
        assert_eq!(unquote("ü%C3%BC"), "üü");
        assert_eq!(unquote("%E2%82"), "\u{fffd}");
        assert_eq!(unquote("%E2a%82"), "\u{fffd}a\u{fffd}");
        assert_eq!(unquote("a+b"), "a+b");
        assert_eq!(vhost("amqp://h/%E2%82"), "\u{fffd}");
    }

    #[test]
    fn credentials_host_and_port_as_kombu() {
        assert_eq!(
            parts("PYAMQP://U:P@HoSt%41:0/x?heartbeat=5#frag"),
            ("U".into(), "P".into(), "hostA".into(), 5672, "x".into())
        );
        assert_eq!(
            parts("amqp://u%40x:p%3Aw@h/v"),
            ("u@x".into(), "p:w".into(), "h".into(), 5672, "v".into())
        );
        // Last '@' ends the user info, first ':' splits it.
        assert_eq!(
            parts("amqp://a@b@h"),
            ("a@b".into(), "guest".into(), "h".into(), 5672, "/".into())
        );
        assert_eq!(parts("amqp://u:p:q@h").1, "p:q");
        // Empty parts take the defaults.
        assert_eq!(
            parts("amqp://@:/"),
            (
                "guest".into(),
                "guest".into(),
                "localhost".into(),
                5672,
                "/".into()
            )
        );
        assert_eq!(parts("amqp://u:@h").1, "guest");
        assert_eq!(parts("amqp://h").0, "guest");
        assert_eq!(parts("amqps://h").3, 5671);
        assert!(AmqpUri::parse("amqps://h").unwrap().is_tls());
        assert_eq!(parts("pyamqps://h:1234").3, 1234);
        assert_eq!(parts("amqp://h:00005673").3, 5673);
        assert_eq!(parts("amqp://[::1]:5673/v").2, "::1");
        assert_eq!(parts("amqp://[::1]:5673/v").3, 5673);
        assert_eq!(parts("amqp://[fe80::1%25EtH0]/").2, "fe80::1%EtH0");
        assert_eq!(parts("amqp://HOST%2Dx/").2, "host-x");
        assert_eq!(parts("  amqp://h/x \n").4, "x");
    }

    #[test]
    fn refused_as_kombu_refuses_and_never_quoted() {
        for bad in [
            "amqp://u:topsecret@h:abc/",
            "amqp://u:topsecret@h:99999",
            "amqp://u:topsecret@h:+5/",
            "amqp://u:topsecret@[::1/",
            "amqp://u:topsecret@h]/",
            "amqp://u:topsecret@[127.0.0.1]/",
            "amqp://u:topsecret@h;amqp://u:topsecret@g",
            "redis://u:topsecret@h",
            "u:topsecret@h",
            "amqp:/u:topsecret@h",
            "amqp://u:top/secret@h",
            "amqp://u:topsecret@h/?heartbeat=x",
        ] {
            let err = AmqpUri::parse(bad).expect_err(bad).to_string();
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn display_redacts() {
        let u = AmqpUri::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(u.to_string(), "amqp://guest:***@127.0.0.1:5672/%2f");
        let u = AmqpUri::parse("amqps://me:pw@[::1]/a%2Fb").unwrap();
        assert_eq!(u.to_string(), "amqps://me:***@[::1]:5671/a%2fb");
        assert!(!format!("{u:?}").contains("pw"));
    }

    #[test]
    fn query_keeps_lapin_meaning() {
        let u = AmqpUri::parse("amqp://h/v?heartbeat=7&frame_max=8192").unwrap();
        assert_eq!(u.lapin_uri().query.heartbeat, Some(7));
        assert_eq!(u.lapin_uri().query.frame_max, Some(8192));
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_uri("amqp://u:p@h:1/v"), "amqp://u:***@h:1/v");
        assert_eq!(redact_uri("amqp://u@h"), "amqp://u@h");
        assert_eq!(redact_uri("nonsense"), "nonsense");
        assert_eq!(redact_uri("amqp://h/v@x"), "amqp://h/v@x");
        assert_eq!(redact_uri("amqp://u:p@ss@h/"), "amqp://u:***@h/");
        assert_eq!(redact_uri("amqp://u:pa/ss@h/"), "amqp://u:***@h/");
        assert_eq!(redact_uri("amqp://u:pa#ss@h/"), "amqp://u:***@h/");
        assert_eq!(
            redact_uri("amqp://u:p1@h;amqp://v:p2@g"),
            "amqp://u:***@h;amqp://v:***@g"
        );
    }
}
