//! Opaque (Pub/Sub API) markers in Redis, under a key namespace of their
//! own that no Python client reads.

use ::redis::AsyncCommands as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::DateTime;

use super::{RedisStore, glob_escape};
use crate::replay::{OpaqueMarker, StoreError};

impl RedisStore {
    pub(super) fn opaque_key(&self, topic: &str) -> String {
        format!("{}{}", self.opaque_prefix, topic)
    }

    /// The key's value: `<base64 replay id>` or `<base64 replay id> <epoch ms>`.
    fn encode_opaque(marker: &OpaqueMarker) -> String {
        let id = STANDARD.encode(&marker.replay_id);
        match marker.created_millis() {
            Some(ms) => format!("{id} {ms}"),
            None => id,
        }
    }

    fn decode_opaque(&self, topic: &str, value: &str) -> Result<OpaqueMarker, StoreError> {
        let corrupt = || StoreError::Corrupt {
            store: self.name.clone(),
            detail: format!(
                "{} does not hold a Pub/Sub replay marker",
                self.opaque_key(topic)
            ),
        };
        let (id, ms) = match value.split_once(' ') {
            Some((id, ms)) => (id, Some(ms)),
            None => (value, None),
        };
        let replay_id = STANDARD.decode(id).map_err(|_| corrupt())?;
        if replay_id.is_empty() {
            return Err(corrupt());
        }
        let created = match ms {
            Some(ms) => Some(
                ms.parse()
                    .ok()
                    .and_then(DateTime::from_timestamp_millis)
                    .ok_or_else(corrupt)?,
            ),
            None => None,
        };
        Ok(OpaqueMarker { replay_id, created })
    }

    pub(super) async fn get_opaque_impl(
        &self,
        topic: &str,
    ) -> Result<Option<OpaqueMarker>, StoreError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = conn
            .get(self.opaque_key(topic))
            .await
            .map_err(|e| self.redis_err(e))?;
        value.map(|v| self.decode_opaque(topic, &v)).transpose()
    }

    /// Sets every marker in one MULTI/EXEC, each with the TTL (renewed on
    /// every write, like the integer keys).
    pub(super) async fn put_opaque_impl(
        &self,
        markers: &[(String, OpaqueMarker)],
    ) -> Result<(), StoreError> {
        if markers.is_empty() {
            return Ok(());
        }
        self.check_ttl(markers.iter().map(|(topic, _)| topic.as_str()));
        let ttl_ms = self
            .ttl
            .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .unwrap_or(0);
        if let Some(fence) = &self.fence {
            let script = ::redis::Script::new(super::fence::FENCED_PUT_LUA);
            let mut invocation = script.prepare_invoke();
            invocation.arg(ttl_ms);
            for (topic, marker) in markers {
                invocation
                    .key(self.opaque_key(topic))
                    .arg(Self::encode_opaque(marker));
            }
            for (topic, _) in markers {
                let (key, value) = super::fence::of(fence, topic);
                invocation.key(key).arg(value);
            }
            let mut conn = self.conn.clone();
            let results: Vec<i64> = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.redis_err(e))?;
            super::fence::log_refused(markers.iter().map(|(t, _)| t.as_str()), &results);
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for (topic, marker) in markers {
            let cmd = pipe
                .cmd("SET")
                .arg(self.opaque_key(topic))
                .arg(Self::encode_opaque(marker));
            if ttl_ms > 0 {
                cmd.arg("PX").arg(ttl_ms);
            }
            cmd.ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.redis_err(e))
    }

    pub(super) async fn remove_opaque_impl(&self, topic: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = conn
            .del(self.opaque_key(topic))
            .await
            .map_err(|e| self.redis_err(e))?;
        Ok(())
    }

    pub(super) async fn list_opaque_impl(&self) -> Result<Vec<(String, OpaqueMarker)>, StoreError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", glob_escape(&self.opaque_prefix));
        let mut topics = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.redis_err(e))?;
            topics.extend(
                keys.iter()
                    .filter_map(|k| k.strip_prefix(&self.opaque_prefix))
                    .map(str::to_string),
            );
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        topics.sort();
        topics.dedup();
        let mut all = Vec::with_capacity(topics.len());
        for chunk in topics.chunks(500) {
            let mut cmd = ::redis::cmd("MGET");
            for topic in chunk {
                cmd.arg(self.opaque_key(topic));
            }
            let values: Vec<Option<String>> = cmd
                .query_async(&mut conn)
                .await
                .map_err(|e| self.redis_err(e))?;
            for (topic, value) in chunk.iter().zip(values) {
                // A key that expired between SCAN and MGET is simply gone.
                if let Some(value) = value {
                    all.push((topic.clone(), self.decode_opaque(topic, &value)?));
                }
            }
        }
        Ok(all)
    }
}
