//! Secrets out of logs: the password of a URL replaced by `***`.

/// Replaces the password of a `scheme://user:password@host…` URL by `***`
/// (each URL of a `;`-separated list, as kombu accepts for brokers). A
/// password with an unescaped `/`, `?` or `#` is redacted too. Anything
/// without a password comes back unchanged.
///
/// ```
/// use sfstream_common::redact_url;
///
/// assert_eq!(redact_url("redis://:s3cret@127.0.0.1:6379/0"), "redis://:***@127.0.0.1:6379/0");
/// assert_eq!(redact_url("amqp://guest:s3cret@host/%2f"), "amqp://guest:***@host/%2f");
/// assert_eq!(redact_url("amqp://u:pa/ss@host/"), "amqp://u:***@host/");
/// assert_eq!(redact_url("amqp://a:1@h1;amqp://b:2@h2"), "amqp://a:***@h1;amqp://b:***@h2");
/// assert_eq!(redact_url("file:markers.redb"), "file:markers.redb");
/// assert_eq!(redact_url("redis://host/0"), "redis://host/0");
/// ```
pub fn redact_url(url: &str) -> String {
    url.split(';').map(redact_one).collect::<Vec<_>>().join(";")
}

fn redact_one(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let start = scheme_end + 3;
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // The user info ends at the authority's last '@'; failing that (a
    // password with an unescaped '/', '?' or '#'), at the last '@' at all.
    let Some(at) = rest[..authority_end].rfind('@').or_else(|| rest.rfind('@')) else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!("{}{}:***{}", &url[..start], &userinfo[..colon], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_broker_urls() {
        for (url, want) in [
            ("redis://user:pass@host", "redis://user:***@host"),
            ("redis://user:p@ss@host:1/2", "redis://user:***@host:1/2"),
            ("redis://:pass@host/0", "redis://:***@host/0"),
            (
                "rediss://u:pass@h:6380/1?ttl=5",
                "rediss://u:***@h:6380/1?ttl=5",
            ),
            ("redis://user@host", "redis://user@host"),
            ("redis://host/a@b", "redis://host/a@b"),
            ("memory:", "memory:"),
            ("amqp://u:pa#ss@h/", "amqp://u:***@h/"),
            ("nonsense", "nonsense"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn never_shows_a_password() {
        for (url, password) in [
            ("redis://user:hunter2@h:6379/0", "hunter2"),
            ("rediss://:p%40ss@h", "p%40ss"),
            ("amqp://guest:gu#est@h/", "gu#est"),
            ("amqp://guest:a?b@h/x", "a?b"),
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains(password), "{url} -> {shown}");
            assert!(shown.contains("***"), "{url} -> {shown}");
        }
    }
}
