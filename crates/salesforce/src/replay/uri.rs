//! [`open_store`]: a store from a URI, as a CLI's `--replay-store` takes it.

use std::sync::Arc;
use std::time::Duration;

use super::file::FileStore;
use super::memory::MemoryStore;
use super::redis::RedisStore;
use super::store::{ReplayStore, StoreError};
use sfstream_common::redact_url;

/// Opens the store a URI names:
///
/// - `memory:` — a [`MemoryStore`];
/// - `file:PATH` (or `file://PATH`) — a [`FileStore`] at `PATH`, whose
///   directory must exist;
/// - `redis://[USER:PASSWORD@]HOST[:PORT][/DB][?ttl=SECONDS]` or
///   `rediss://…` — a [`RedisStore`] with the default key prefixes; `ttl`
///   sets the expiry of written keys, renewed on every commit (a TTL
///   shorter than a channel's retention is warned about: see
///   [`RedisStore`]); other query parameters go to the redis client.
///
/// Anything else is a [`StoreError::InvalidUri`] naming the accepted forms.
///
/// ```
/// use sfstream_salesforce::replay::{open_store, ReplayMarker};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = open_store("memory:").await?;
/// store.advance("/event/Printer__e", ReplayMarker::new(2112, None)).await?;
///
/// let dir = tempfile::tempdir()?;
/// let file = open_store(&format!("file:{}", dir.path().join("replay.redb").display())).await?;
/// assert!(file.list().await?.is_empty());
///
/// let err = open_store("sqlite:replay.db").await.expect_err("not a store URI");
/// assert!(err.to_string().contains("expected memory:, file:PATH, redis://"));
/// # Ok(())
/// # }
/// ```
pub async fn open_store(uri: &str) -> Result<Arc<dyn ReplayStore>, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUri {
        uri: redact_url(uri),
        reason: reason.to_string(),
    };
    let trimmed = uri.trim();
    let Some((scheme, rest)) = trimmed.split_once(':') else {
        return Err(invalid("no scheme"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "memory" => {
            if !rest.is_empty() && rest != "//" {
                return Err(invalid("memory: takes no path"));
            }
            Ok(Arc::new(MemoryStore::new()))
        }
        "file" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(invalid("file: needs a path"));
            }
            let path = path.to_string();
            let store = tokio::task::spawn_blocking(move || FileStore::open(path))
                .await
                .map_err(|e| StoreError::Task {
                    store: redact_url(uri),
                    detail: e.to_string(),
                })??;
            Ok(Arc::new(store))
        }
        "redis" | "rediss" => Ok(Arc::new(open_redis_store(trimmed).await?)),
        _ => Err(invalid("unknown scheme")),
    }
}

/// A [`RedisStore`] from a `redis://…[?ttl=SECONDS]` URI (as
/// [`open_store`] reads it), for callers that need the Redis store itself
/// (to fence it, say).
pub async fn open_redis_store(uri: &str) -> Result<RedisStore, StoreError> {
    let trimmed = uri.trim();
    let invalid = |reason: &str| StoreError::InvalidUri {
        uri: redact_url(uri),
        reason: reason.to_string(),
    };
    let rest = trimmed
        .strip_prefix("redis:")
        .or_else(|| trimmed.strip_prefix("rediss:"))
        .ok_or_else(|| invalid("not a redis:// URI"))?;
    if !rest.starts_with("//") || rest.len() <= 2 {
        return Err(invalid("a redis URI needs a host"));
    }
    let (url, ttl) = split_ttl(trimmed).map_err(|reason| invalid(&reason))?;
    RedisStore::connect(&url, ttl).await
}

/// Takes `ttl=SECONDS` out of the query string of `url`.
fn split_ttl(url: &str) -> Result<(String, Option<Duration>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut ttl = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("ttl", value)) => {
                let seconds: u64 = value.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("ttl must be a positive number of seconds, not `{value}`")
                })?;
                ttl = Some(Duration::from_secs(seconds));
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_query() {
        assert_eq!(
            split_ttl("redis://h:1/2?ttl=60"),
            Ok(("redis://h:1/2".to_string(), Some(Duration::from_secs(60))))
        );
        assert_eq!(
            split_ttl("redis://h/2?protocol=resp3&ttl=5"),
            Ok((
                "redis://h/2?protocol=resp3".to_string(),
                Some(Duration::from_secs(5))
            ))
        );
        assert_eq!(split_ttl("redis://h"), Ok(("redis://h".to_string(), None)));
        assert!(split_ttl("redis://h?ttl=soon").is_err());
        assert!(split_ttl("redis://h?ttl=0").is_err());
    }

    #[tokio::test]
    async fn bad_uris() {
        for uri in [
            "",
            "replay.db",
            "sqlite:x",
            "file:",
            "memory:x",
            "redis:",
            "redis://u:secret@h?ttl=x",
        ] {
            let err = match open_store(uri).await {
                Err(e) => e.to_string(),
                Ok(store) => panic!("{uri} opened {store:?}"),
            };
            assert!(
                err.contains("expected memory:, file:PATH, redis://"),
                "{err}"
            );
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
