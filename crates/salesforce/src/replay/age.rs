//! How old a stored marker is, and when that age deserves a warning: the
//! one place the warn thresholds live ([`warn_age`], [`set_warn_ages`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::retention;

const HOUR: u64 = 3600;

/// The warn ages: a marker older than this is about to leave retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarnAges {
    /// For channels kept 24 hours (PushTopics, generic channels); default 18 h.
    pub short: Duration,
    /// For channels kept 72 hours (change and platform events); default 60 h.
    pub long: Duration,
}

impl Default for WarnAges {
    fn default() -> Self {
        Self {
            short: Duration::from_secs(18 * HOUR),
            long: Duration::from_secs(60 * HOUR),
        }
    }
}

static WARN_AGES: RwLock<Option<WarnAges>> = RwLock::new(None);

/// Overrides the warn ages of this process (a service's
/// `MARKER_AGE_WARN_HOURS`); [`warn_age`] reads them.
pub fn set_warn_ages(ages: WarnAges) {
    *WARN_AGES.write() = Some(ages);
}

/// The warn ages in force (the defaults unless [`set_warn_ages`] was called).
pub fn warn_ages() -> WarnAges {
    WARN_AGES.read().unwrap_or_default()
}

/// The age past which the stored marker of `channel` gets a warning: it
/// nears the channel's [`retention`] (18 h of 24, 60 h of 72, unless
/// overridden with [`set_warn_ages`]).
///
/// ```
/// use std::time::Duration;
/// use sfstream_salesforce::replay::warn_age;
///
/// assert_eq!(warn_age("/topic/Invoices"), Duration::from_secs(18 * 3600));
/// assert_eq!(warn_age("/data/AccountChangeEvent"), Duration::from_secs(60 * 3600));
/// ```
pub fn warn_age(channel: &str) -> Duration {
    let ages = warn_ages();
    if retention(channel) > Duration::from_secs(24 * HOUR) {
        ages.long
    } else {
        ages.short
    }
}

/// The age of a marker created at `created`, at `now` (zero for a time in
/// the future: clocks differ).
pub fn marker_age(created: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - created).to_std().unwrap_or(Duration::ZERO)
}

/// What a marker's age means for its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeStatus {
    /// Well within retention.
    Fresh,
    /// Older than [`warn_age`]: it expires soon.
    NearingRetention,
    /// Older than [`retention`]: Salesforce will refuse it.
    Expired,
}

/// The [`AgeStatus`] of a marker of `channel` that is `age` old.
pub fn age_status(channel: &str, age: Duration) -> AgeStatus {
    if age >= retention(channel) {
        AgeStatus::Expired
    } else if age >= warn_age(channel) {
        AgeStatus::NearingRetention
    } else {
        AgeStatus::Fresh
    }
}

/// Logs a warning when a marker of `channel` created at `created` is older
/// than its [`warn_age`] (the clients call it when they start from a stored
/// marker). Returns the status.
pub fn warn_if_old(channel: &str, created: Option<DateTime<Utc>>) -> AgeStatus {
    let Some(created) = created else {
        return AgeStatus::Fresh;
    };
    let age = marker_age(created, Utc::now());
    let status = age_status(channel, age);
    let hours = age.as_secs_f64() / HOUR as f64;
    let retention_hours = retention(channel).as_secs() / HOUR;
    match status {
        AgeStatus::Fresh => {}
        AgeStatus::NearingRetention => tracing::warn!(
            %channel, age_hours = format!("{hours:.1}"), retention_hours,
            "the stored replay marker nears the end of retention: events older than retention are lost if it is not advanced"
        ),
        AgeStatus::Expired => tracing::warn!(
            %channel, age_hours = format!("{hours:.1}"), retention_hours,
            "the stored replay marker is past retention: Salesforce will refuse it (a replay fallback, if configured, reports a gap)"
        ),
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_statuses() {
        let now = Utc::now();
        let hours = |h: i64| now - chrono::Duration::hours(h);
        assert_eq!(marker_age(hours(2), now), Duration::from_secs(2 * 3600));
        assert_eq!(
            marker_age(now + chrono::Duration::hours(1), now),
            Duration::ZERO
        );
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(age_status("/topic/X", h(17)), AgeStatus::Fresh);
        assert_eq!(age_status("/topic/X", h(19)), AgeStatus::NearingRetention);
        assert_eq!(age_status("/topic/X", h(25)), AgeStatus::Expired);
        assert_eq!(age_status("/data/X", h(25)), AgeStatus::Fresh);
        assert_eq!(
            age_status("/event/X__e", h(61)),
            AgeStatus::NearingRetention
        );
        assert_eq!(age_status("/event/X__e", h(73)), AgeStatus::Expired);
        assert_eq!(
            warn_if_old("/topic/X", Some(hours(20))),
            AgeStatus::NearingRetention
        );
        assert_eq!(warn_if_old("/topic/X", None), AgeStatus::Fresh);
    }
}
