//! What one channel has handled lately: events per 10-second bucket over
//! the last minutes, the creation time of the last handled event (for the
//! lag), and handler failures with the last error.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

/// Seconds per rate bucket.
pub const BUCKET_SECS: i64 = 10;
/// Buckets kept: the last five minutes.
pub const BUCKETS: usize = 30;

/// The activity of one channel. Cheap to update from many tasks.
#[derive(Debug, Default)]
pub struct Activity {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone)]
struct Inner {
    /// (bucket number, events handled in it), oldest first, at most [`BUCKETS`].
    buckets: VecDeque<(i64, u64)>,
    handled: u64,
    failed: u64,
    last_created: Option<DateTime<Utc>>,
    last_handled_at: Option<DateTime<Utc>>,
    last_error: Option<(String, DateTime<Utc>)>,
}

/// A copy of an [`Activity`] at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivitySnapshot {
    /// Events handled per second in each bucket, oldest first, ending with
    /// the current (partial) bucket; always [`BUCKETS`] values.
    pub rate: Vec<f64>,
    /// Events handled per second over the last minute.
    pub per_sec: f64,
    /// Events handled.
    pub handled: u64,
    /// Events whose handling failed.
    pub failed: u64,
    /// When the last handled event was created, when known.
    pub last_created: Option<DateTime<Utc>>,
    /// When the last event was handled.
    pub last_handled_at: Option<DateTime<Utc>>,
    /// The last handler error and when it happened.
    pub last_error: Option<(String, DateTime<Utc>)>,
}

fn bucket_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(BUCKET_SECS)
}

impl Activity {
    /// Counts an event handled at `now`, created at `created` (when known).
    pub fn handled(&self, created: Option<DateTime<Utc>>, now: DateTime<Utc>) {
        let mut inner = self.inner.lock();
        inner.handled += 1;
        inner.last_handled_at = Some(now);
        if let Some(created) = created {
            inner.last_created = Some(inner.last_created.map_or(created, |c| c.max(created)));
        }
        let bucket = bucket_of(now);
        match inner.buckets.back_mut() {
            Some((b, count)) if *b == bucket => *count += 1,
            _ => {
                inner.buckets.push_back((bucket, 1));
                while inner.buckets.len() > BUCKETS {
                    inner.buckets.pop_front();
                }
            }
        }
    }

    /// Counts an event whose handling failed with `error`, at `now`.
    pub fn failed(&self, error: &str, now: DateTime<Utc>) {
        const MAX_ERROR: usize = 2_000;
        let mut inner = self.inner.lock();
        inner.failed += 1;
        let mut error = error.to_string();
        if error.len() > MAX_ERROR {
            let mut end = MAX_ERROR;
            while !error.is_char_boundary(end) {
                end -= 1;
            }
            error.truncate(end);
            error.push('…');
        }
        inner.last_error = Some((error, now));
    }

    /// The activity as of `now`.
    pub fn snapshot(&self, now: DateTime<Utc>) -> ActivitySnapshot {
        let inner = self.inner.lock().clone();
        let current = bucket_of(now);
        let first = current - BUCKETS as i64 + 1;
        let mut counts = vec![0u64; BUCKETS];
        for (bucket, count) in &inner.buckets {
            if (first..=current).contains(bucket) {
                counts[(bucket - first) as usize] = *count;
            }
        }
        // The current bucket has run only part of its time.
        let current_secs = (now.timestamp().rem_euclid(BUCKET_SECS) + 1) as f64;
        let rate = counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let secs = if i == BUCKETS - 1 {
                    current_secs
                } else {
                    BUCKET_SECS as f64
                };
                *n as f64 / secs
            })
            .collect();
        let minute = (60 / BUCKET_SECS) as usize;
        let last_minute: u64 = counts[BUCKETS - minute..].iter().sum();
        let minute_secs = (minute - 1) as f64 * BUCKET_SECS as f64 + current_secs;
        ActivitySnapshot {
            rate,
            per_sec: last_minute as f64 / minute_secs,
            handled: inner.handled,
            failed: inner.failed,
            last_created: inner.last_created,
            last_handled_at: inner.last_handled_at,
            last_error: inner.last_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap_or_default()
    }

    #[test]
    fn rates_per_bucket_over_the_last_minutes() {
        let activity = Activity::default();
        let start = 1_700_000_000 - 1_700_000_000 % BUCKET_SECS;
        // 20 events in an old bucket, 10 in the previous one, 3 now.
        for _ in 0..20 {
            activity.handled(None, at(start - 600));
        }
        for _ in 0..10 {
            activity.handled(Some(at(start - 12)), at(start - 5));
        }
        for _ in 0..3 {
            activity.handled(Some(at(start - 1)), at(start + 1));
        }
        let snapshot = activity.snapshot(at(start + 1));
        assert_eq!(snapshot.rate.len(), BUCKETS);
        assert_eq!(snapshot.handled, 33);
        // The current bucket has run 2 s: 3 events in 2 s.
        assert_eq!(snapshot.rate[BUCKETS - 1], 1.5);
        assert_eq!(snapshot.rate[BUCKETS - 2], 1.0);
        // The old bucket is past the window.
        assert_eq!(snapshot.rate[..BUCKETS - 2].iter().sum::<f64>(), 0.0);
        // 13 events over 52 s.
        assert!((snapshot.per_sec - 13.0 / 52.0).abs() < 1e-9);
        assert_eq!(snapshot.last_created, Some(at(start - 1)));
        assert_eq!(snapshot.last_handled_at, Some(at(start + 1)));
    }

    #[test]
    fn the_newest_creation_time_wins_and_failures_keep_their_error() {
        let activity = Activity::default();
        activity.handled(Some(at(100)), at(200));
        activity.handled(Some(at(90)), at(201));
        activity.failed("boom", at(202));
        activity.failed(&"é".repeat(3_000), at(203));
        let snapshot = activity.snapshot(at(203));
        assert_eq!(snapshot.last_created, Some(at(100)));
        assert_eq!(snapshot.failed, 2);
        let (error, when) = snapshot.last_error.unwrap_or_default();
        assert!(
            error.ends_with('…') && error.len() <= 2_003,
            "{}",
            error.len()
        );
        assert_eq!(when, at(203));
    }
}
