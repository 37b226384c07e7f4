//! `limits/` and the `Sforce-Limit-Info` header.

use std::collections::BTreeMap;

use serde_json::Value;

use super::client::{Call, SalesforceClient};
use super::error::RestError;

/// The org's daily API request usage, as the `Sforce-Limit-Info` header of
/// every answer reports it (`api-usage=10018/100000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    /// Requests made in the last 24 hours.
    pub used: u64,
    /// The allocation.
    pub max: u64,
}

impl ApiUsage {
    /// Requests left before the allocation is reached.
    pub fn remaining(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }
}

/// Parses `api-usage=used/max` out of a `Sforce-Limit-Info` value (which
/// may carry other entries, e.g. `per-app-api-usage=…`).
pub fn parse_limit_info(value: &str) -> Option<ApiUsage> {
    value
        .split([',', ';'])
        .map(str::trim)
        .find_map(|entry| entry.strip_prefix("api-usage="))
        .and_then(|usage| {
            let (used, max) = usage.split_once('/')?;
            Some(ApiUsage {
                used: used.trim().parse().ok()?,
                max: max.trim().parse().ok()?,
            })
        })
}

/// One entry of `limits/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The allocation.
    pub max: i64,
    /// What is left of it.
    pub remaining: i64,
}

impl SalesforceClient {
    /// The org's limits (`DailyApiRequests`, `DailyStreamingApiEvents`,
    /// `HourlyPublishedPlatformEvents`, …) by name. Entries without `Max`
    /// and `Remaining` are left out.
    ///
    /// # Errors
    ///
    /// As every call.
    pub async fn limits(&self) -> Result<BTreeMap<String, Limit>, RestError> {
        let body = self.json(&Call::get("limits")).await?;
        let Value::Object(map) = body else {
            return Err(RestError::decode("limits: expected a JSON object"));
        };
        Ok(map
            .iter()
            .filter_map(|(name, entry)| {
                Some((
                    name.clone(),
                    Limit {
                        max: entry.get("Max")?.as_i64()?,
                        remaining: entry.get("Remaining")?.as_i64()?,
                    },
                ))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_info() {
        assert_eq!(
            parse_limit_info("api-usage=10018/100000"),
            Some(ApiUsage {
                used: 10018,
                max: 100000
            })
        );
        assert_eq!(
            parse_limit_info("per-app-api-usage=1/2(appName=x), api-usage=3/4"),
            Some(ApiUsage { used: 3, max: 4 })
        );
        assert_eq!(parse_limit_info("api-usage=x/4"), None);
        assert_eq!(parse_limit_info(""), None);
        assert_eq!(ApiUsage { used: 5, max: 3 }.remaining(), 0);
    }
}
