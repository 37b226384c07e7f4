//! The schema: every key, its name and its YAML type, declared once as
//! serde structs. The list of known `SALESFORCE:` keys (for the "unknown
//! key" warnings) is read from these declarations.

use serde::de::{DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer};
use serde_yaml_ng::Value;

use super::ConfigError;

/// The top level's own keys.
#[derive(Deserialize)]
pub(super) struct RawConfig {
    #[serde(rename = "AMQP_URI", default)]
    pub amqp_uri: Option<Text>,
    #[serde(default)]
    pub max_workers: Option<i64>,
    #[serde(rename = "SALESFORCE", default)]
    pub salesforce: Option<RawSalesforce>,
    #[serde(rename = "CLUSTER", default)]
    pub cluster: Option<RawCluster>,
}

/// The `CLUSTER:` section's keys.
#[derive(Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", default, deny_unknown_fields)]
pub(super) struct RawCluster {
    pub redis_uri: Option<Text>,
    pub lease_ttl: Option<f64>,
    pub replica_id: Option<Text>,
    pub work_queues: Option<bool>,
    pub ordering: Option<Text>,
    pub partitions: Option<u16>,
    pub prefetch: Option<u16>,
}

/// Delivery and operations keys, read both at the top level and under
/// `SALESFORCE:`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", default)]
pub(super) struct RawOps {
    pub retries: Option<u32>,
    pub retry_delay: Option<f64>,
    pub on_failure: Option<Text>,
    pub shutdown_timeout: Option<f64>,
    pub handler_timeout: Option<f64>,
    pub metrics_port: Option<u16>,
}

/// The `SALESFORCE:` section's own keys (the login keys are those of
/// [`LoginParts`](sfstream_salesforce::auth::LoginParts)).
#[derive(Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", default)]
pub(super) struct RawSalesforce {
    pub username: Option<Text>,
    pub password: Option<Text>,
    pub security_token: Option<Text>,
    pub sandbox: Option<bool>,
    pub api_version: Option<Text>,
    pub pushtopic_replay_enabled: Option<bool>,
    pub pushtopic_replay_redis_uri: Option<Text>,
    pub pushtopic_replay_ttl: Option<u64>,
    pub login_url: Option<Text>,
    pub consumer_key: Option<Text>,
    pub consumer_secret: Option<Text>,
    pub refresh_token: Option<Text>,
    pub jwt_key_file: Option<Text>,
    pub client_credentials: Option<bool>,
    pub access_token: Option<Text>,
    pub instance_url: Option<Text>,
    pub replay_store: Option<Text>,
    pub default_replay: Option<Text>,
    pub replay_fallback: Option<Text>,
    pub max_pending: Option<usize>,
    pub max_in_flight: Option<usize>,
    pub transport: Option<Text>,
    pub pubsub_url: Option<Text>,
    pub fetch_gap_records: Option<bool>,
    pub backfill: Option<bool>,
    pub backfill_max_records: Option<usize>,
    pub limits: Option<RawLimits>,
    pub marker_age_warn_hours: Option<RawWarnHours>,
}

/// `SALESFORCE.LIMITS:`: how often `limits/` is read, and the warning
/// threshold.
#[derive(Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", default, deny_unknown_fields)]
pub(super) struct RawLimits {
    pub interval: Option<f64>,
    pub warn_at: Option<f64>,
}

/// `SALESFORCE.MARKER_AGE_WARN_HOURS:`: the marker ages that get a warning.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawWarnHours {
    #[serde(rename = "RETENTION_24H")]
    pub retention_24h: Option<f64>,
    #[serde(rename = "RETENTION_72H")]
    pub retention_72h: Option<f64>,
}

/// The document read against the schema.
pub(super) struct Raw {
    pub config: RawConfig,
    /// The top level's operations keys.
    pub ops: RawOps,
    /// `SALESFORCE:`'s operations keys (they win over the top level's).
    pub section_ops: RawOps,
    /// Unknown `SALESFORCE:` keys, ignored.
    pub warnings: Vec<String>,
}

/// Reads the (substituted) document; errors name the key path.
pub(super) fn read(document: &Value) -> Result<Raw, ConfigError> {
    let config = typed(document, None)?;
    let ops = typed(document, None)?;
    let section = document
        .get("SALESFORCE")
        .filter(|section| section.is_mapping());
    let section_ops = match section {
        Some(section) => typed(section, Some("SALESFORCE"))?,
        None => RawOps::default(),
    };
    let warnings = section.map(unknown_keys).unwrap_or_default();
    Ok(Raw {
        config,
        ops,
        section_ops,
        warnings,
    })
}

/// `value` as a `T`, or an error naming the key path (below `under`).
fn typed<T: DeserializeOwned>(value: &Value, under: Option<&str>) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = match under {
            Some(under) if path == "." => under.to_string(),
            Some(under) => format!("{under}.{path}"),
            None => path,
        };
        ConfigError::invalid(key, e.into_inner().to_string())
    })
}

/// A warning for each key of `SALESFORCE:` the schema does not declare
/// (Python configs carry extras: never an error).
fn unknown_keys(section: &Value) -> Vec<String> {
    let known = [field_names::<RawSalesforce>(), field_names::<RawOps>()];
    let Some(section) = section.as_mapping() else {
        return Vec::new();
    };
    section
        .keys()
        .map(|key| key.as_str().unwrap_or_default())
        .filter(|name| !known.iter().any(|fields| fields.contains(name)))
        .map(|name| {
            let warning = format!("config key SALESFORCE.{name} is unknown and ignored");
            tracing::warn!("{warning}");
            warning
        })
        .collect()
}

/// The key names a struct's derived `Deserialize` declares, as it hands
/// them to the deserializer.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            // Stop here: the names are all that is wanted.
            Err(serde::de::Error::custom("fields read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// A string value: a string, or a number or boolean written as its text
/// (`API_VERSION: 37.0`, a numeric password). As an `Option`, null is
/// `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let found =
            |what: &str| serde::de::Error::custom(format!("expected a string, found {what}"));
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(Text(s)),
            Value::Bool(b) => Ok(Text(if b { "True" } else { "False" }.to_string())),
            Value::Number(n) => Ok(Text(number_text(&n))),
            Value::Null => Err(found("null")),
            Value::Mapping(_) => Err(found("a mapping")),
            Value::Sequence(_) => Err(found("a sequence")),
            Value::Tagged(_) => Err(found("a tagged value")),
        }
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        text.0
    }
}

fn number_text(n: &serde_yaml_ng::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.1}"),
        _ => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfstream_salesforce::auth::LoginPart;

    #[test]
    fn the_known_keys_come_from_the_schema() {
        let section = field_names::<RawSalesforce>();
        assert!(
            section.contains(&"PUSHTOPIC_REPLAY_REDIS_URI"),
            "{section:?}"
        );
        assert!(field_names::<RawOps>().contains(&"METRICS_PORT"));
        // Every login part is a key of the section.
        for part in LoginPart::ALL {
            assert!(section.contains(&part.key()), "{part}");
        }
    }
}
