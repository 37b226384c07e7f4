//! [`ReplayMarker`] (the replay id and creation time of the newest processed
//! event) and [`ReplayFrom`] (where a subscription starts).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The replay id and creation time of an event: the point a subscription
/// resumes after (aiosfstream's `ReplayMarker`).
///
/// Markers are ordered by [`ReplayMarker::is_newer_than`]: creation times are
/// compared as times, and replay ids break ties or stand in when a time is
/// missing. A [`ReplayStore`](super::ReplayStore) never moves a marker
/// backwards by that order.
///
/// ```
/// use sfstream_salesforce::replay::ReplayMarker;
///
/// let data = serde_json::json!({
///     "event": {"createdDate": "2016-03-29T16:40:08.208Z", "replayId": 13, "type": "created"},
///     "sobject": {"Id": "a00D0000008o6y8IAA", "Name": "INV-0001"}
/// });
/// let marker = ReplayMarker::from_event(&data).expect("a replay id");
/// assert_eq!(marker.replay_id, 13);
/// assert!(marker.created.is_some());
///
/// // The cheap path for raw message bytes gives the same marker.
/// let bytes = serde_json::to_vec(&data).expect("serializable");
/// assert_eq!(ReplayMarker::from_slice(&bytes), Some(marker));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplayMarker {
    /// The replay id of the event (`event.replayId`).
    pub replay_id: i64,
    /// When the event was created, if the payload says.
    pub created: Option<DateTime<Utc>>,
}

impl ReplayMarker {
    /// A marker from its parts.
    pub fn new(replay_id: i64, created: Option<DateTime<Utc>>) -> Self {
        Self { replay_id, created }
    }

    /// The marker of an event payload (the `data` of a Bayeux message), or
    /// `None` when it carries no integer `event.replayId`.
    ///
    /// The creation time comes from, in this order:
    /// `event.createdDate` (PushTopic and generic events, ISO 8601),
    /// `payload.ChangeEventHeader.commitTimestamp` (Change Data Capture,
    /// epoch milliseconds) and `payload.CreatedDate` (platform events,
    /// ISO 8601). A time that does not parse leaves `created` as `None`.
    pub fn from_event(data: &serde_json::Value) -> Option<Self> {
        let replay_id = data.get("event")?.get("replayId")?.as_i64()?;
        let event = &data["event"];
        let payload = &data["payload"];
        let created = if let Some(date) = event.get("createdDate").and_then(|d| d.as_str()) {
            parse_time(date)
        } else if let Some(ms) = payload
            .get("ChangeEventHeader")
            .and_then(|h| h.get("commitTimestamp"))
            .and_then(|t| t.as_i64())
        {
            DateTime::from_timestamp_millis(ms)
        } else {
            payload
                .get("CreatedDate")
                .and_then(|d| d.as_str())
                .and_then(parse_time)
        };
        Some(Self { replay_id, created })
    }

    /// Like [`ReplayMarker::from_event`], straight from the JSON bytes of the
    /// payload, without building a `serde_json::Value`: every field other
    /// than the few it needs is skipped, and dates are borrowed from the
    /// input. `None` when the bytes are not JSON or carry no replay id.
    pub fn from_slice(data: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Probe<'_>>(data).ok()?.marker()
    }

    /// Like [`ReplayMarker::from_slice`], for a payload kept as a
    /// [`RawValue`].
    pub fn from_raw(data: &RawValue) -> Option<Self> {
        serde_json::from_str::<Probe<'_>>(data.get()).ok()?.marker()
    }

    /// Whether `self` is strictly newer than `other`: when both have a
    /// creation time and the times differ, the later time wins; otherwise
    /// (equal times, or either missing) the larger replay id wins.
    ///
    /// Among markers that all have times (every Salesforce payload kind
    /// carries one) or all lack them, this is a total order. Markers without
    /// a time come from stores written by other clients (the Python
    /// extension stores bare replay ids); against those, replay ids decide.
    ///
    /// ```
    /// use sfstream_salesforce::replay::ReplayMarker;
    /// use chrono::DateTime;
    ///
    /// let t = |s: &str| Some(DateTime::parse_from_rfc3339(s).expect("valid").to_utc());
    /// // Half a second past ten is later, although as a string it sorts first.
    /// let a = ReplayMarker::new(1, t("2024-01-01T10:00:00.5Z"));
    /// let b = ReplayMarker::new(2, t("2024-01-01T10:00:00Z"));
    /// assert!(a.is_newer_than(&b));
    /// assert!(!b.is_newer_than(&a));
    /// // Without both times, replay ids decide.
    /// assert!(ReplayMarker::new(2, None).is_newer_than(&a));
    /// ```
    pub fn is_newer_than(&self, other: &ReplayMarker) -> bool {
        match (self.created, other.created) {
            (Some(mine), Some(theirs)) if mine != theirs => mine > theirs,
            _ => self.replay_id > other.replay_id,
        }
    }

    /// The creation time as epoch milliseconds, if known.
    pub fn created_millis(&self) -> Option<i64> {
        self.created.map(|t| t.timestamp_millis())
    }
}

/// Parses a Salesforce date-time: RFC 3339 (`2016-03-29T16:40:08.208Z`,
/// `…+02:00`) or the SOQL style with a colonless offset (`…+0000`); a time
/// without any offset is taken as UTC.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.to_utc());
    }
    if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.to_utc());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

// ---------------------------------------------------------------------------
// The allocation-light probe behind `from_slice` / `from_raw`.

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    event: Option<EventProbe<'a>>,
    #[serde(borrow, default)]
    payload: PayloadProbe<'a>,
}

impl Probe<'_> {
    fn marker(self) -> Option<ReplayMarker> {
        let event = self.event?;
        let replay_id = event.replay_id?;
        let created = if let Some(date) = event.created_date.0 {
            parse_time(&date)
        } else if let Some(ms) = self
            .payload
            .change_event_header
            .and_then(|h| h.commit_timestamp)
        {
            DateTime::from_timestamp_millis(ms)
        } else {
            self.payload.created_date.as_deref().and_then(parse_time)
        };
        Some(ReplayMarker { replay_id, created })
    }
}

#[derive(Deserialize)]
struct EventProbe<'a> {
    #[serde(rename = "replayId", default)]
    replay_id: Option<i64>,
    #[serde(rename = "createdDate", borrow, default)]
    created_date: MaybeStr<'a>,
}

#[derive(Deserialize)]
struct HeaderProbe {
    #[serde(rename = "commitTimestamp", default)]
    commit_timestamp: Option<i64>,
}

/// `payload` is an object for platform and change events but a string for
/// generic events: anything that is not an object reads as empty.
#[derive(Default)]
struct PayloadProbe<'a> {
    change_event_header: Option<HeaderProbe>,
    created_date: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for PayloadProbe<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PayloadVisitor(std::marker::PhantomData))
    }
}

struct PayloadVisitor<'a>(std::marker::PhantomData<&'a ()>);

/// A date value: a borrowed string when possible, `None` for a non-string.
#[derive(Default)]
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A non-string `CreatedDate` (null, a number) is simply no date.
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MaybeStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Visitor<'de> for PayloadVisitor<'a> {
    type Value = PayloadProbe<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event payload")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut probe = PayloadProbe::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "ChangeEventHeader" => {
                    probe.change_event_header = map.next_value::<Option<HeaderProbe>>()?;
                }
                "CreatedDate" => probe.created_date = map.next_value::<MaybeStr<'a>>()?.0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(probe)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(PayloadProbe::default())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(PayloadProbe::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(PayloadProbe::default())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(PayloadProbe::default())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(PayloadProbe::default())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(PayloadProbe::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(PayloadProbe::default())
    }
}

// ---------------------------------------------------------------------------

/// Where a subscription starts when no marker is stored (aiosfstream's
/// `ReplayOption`, plus a fixed replay id): the value of `ext.replay`.
///
/// Parses from `NEW` / `ALL` (any case, also `NEW_EVENTS` / `ALL_EVENTS`),
/// `-1` / `-2`, or a non-negative replay id, as a CLI's `--replay` takes it.
///
/// ```
/// use sfstream_salesforce::replay::ReplayFrom;
///
/// assert_eq!("new".parse::<ReplayFrom>(), Ok(ReplayFrom::New));
/// assert_eq!("-2".parse::<ReplayFrom>(), Ok(ReplayFrom::All));
/// assert_eq!("42".parse::<ReplayFrom>(), Ok(ReplayFrom::Id(42)));
/// assert_eq!(ReplayFrom::All.as_i64(), -2);
/// assert!("latest".parse::<ReplayFrom>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReplayFrom {
    /// Only events published after subscribing (`-1`, the default).
    #[default]
    New,
    /// Every retained event, then new ones (`-2`).
    All,
    /// The events after this replay id.
    Id(i64),
}

/// aiosfstream's name for [`ReplayFrom`].
pub type ReplayOption = ReplayFrom;

impl ReplayFrom {
    /// The value sent in `ext.replay`: `-1`, `-2` or the replay id.
    pub fn as_i64(self) -> i64 {
        match self {
            ReplayFrom::New => -1,
            ReplayFrom::All => -2,
            ReplayFrom::Id(id) => id,
        }
    }
}

impl From<i64> for ReplayFrom {
    /// `-1` is [`ReplayFrom::New`], `-2` is [`ReplayFrom::All`], anything
    /// else a replay id.
    fn from(value: i64) -> Self {
        match value {
            -1 => ReplayFrom::New,
            -2 => ReplayFrom::All,
            id => ReplayFrom::Id(id),
        }
    }
}

impl From<ReplayMarker> for ReplayFrom {
    /// Resume after the marker's replay id.
    fn from(marker: ReplayMarker) -> Self {
        ReplayFrom::from(marker.replay_id)
    }
}

impl fmt::Display for ReplayFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayFrom::New => f.write_str("NEW"),
            ReplayFrom::All => f.write_str("ALL"),
            ReplayFrom::Id(id) => write!(f, "{id}"),
        }
    }
}

/// A `--replay` value that is none of `NEW`, `ALL`, `-1`, `-2` or a replay
/// id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid replay option `{input}`: expected NEW, ALL, -1, -2 or a non-negative replay id")]
pub struct ParseReplayFromError {
    input: String,
}

impl FromStr for ReplayFrom {
    type Err = ParseReplayFromError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let err = || ParseReplayFromError {
            input: s.chars().take(64).collect(),
        };
        if text.eq_ignore_ascii_case("new") || text.eq_ignore_ascii_case("new_events") {
            return Ok(ReplayFrom::New);
        }
        if text.eq_ignore_ascii_case("all") || text.eq_ignore_ascii_case("all_events") {
            return Ok(ReplayFrom::All);
        }
        match text.parse::<i64>() {
            Ok(-1) => Ok(ReplayFrom::New),
            Ok(-2) => Ok(ReplayFrom::All),
            Ok(id) if id >= 0 => Ok(ReplayFrom::Id(id)),
            _ => Err(err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(text) {
            Ok(t) => t.to_utc(),
            Err(e) => panic!("bad test time {text}: {e}"),
        }
    }

    /// Every extraction path agrees: `Value`, bytes and `RawValue`.
    fn all_ways(data: &serde_json::Value) -> Option<ReplayMarker> {
        let from_value = ReplayMarker::from_event(data);
        let text = data.to_string();
        assert_eq!(ReplayMarker::from_slice(text.as_bytes()), from_value);
        let raw: Box<RawValue> = serde_json::from_str(&text).expect("raw");
        assert_eq!(ReplayMarker::from_raw(&raw), from_value);
        from_value
    }

    #[test]
    fn pushtopic_payload() {
        let data = json!({"event":{"createdDate":"2016-03-29T16:40:08.208Z","replayId":13,"type":"created"},"sobject":{"Id":"a00D0000008o6y8IAA","Name":"INV-0001","Status__c":"Open"}});
        let marker = all_ways(&data).expect("marker");
        assert_eq!(marker.replay_id, 13);
        assert_eq!(marker.created, Some(at("2016-03-29T16:40:08.208Z")));
    }

    #[test]
    fn generic_payload() {
        let data = json!({"event":{"createdDate":"2024-04-09T20:26:27.000Z","replayId":55},"payload":"This is a message."});
        let marker = all_ways(&data).expect("marker");
        assert_eq!(marker.replay_id, 55);
        assert_eq!(marker.created, Some(at("2024-04-09T20:26:27Z")));
    }

    #[test]
    fn platform_event_payload() {
        let data = json!({"schema":"dffQ2QLzDNHqwB8_sHMxdA","payload":{"CreatedDate":"2024-04-09T20:26:27.123Z","CreatedById":"005xx000001X8Uz","Printer_Model__c":"XZO-5"},"event":{"EventUuid":"2ec0b0a4-3b8e-4c35-9a73-1f8f4b6c1d2e","replayId":2112}});
        let marker = all_ways(&data).expect("marker");
        assert_eq!(marker.replay_id, 2112);
        assert_eq!(marker.created, Some(at("2024-04-09T20:26:27.123Z")));
    }

    #[test]
    fn change_event_payload() {
        let data = json!({"schema":"IeRuaY6cbI_HsV8Rv1Mc5g","payload":{"ChangeEventHeader":{"entityName":"Account","recordIds":["001xx000003DGb2AAG"],"changeType":"CREATE","changeOrigin":"com/salesforce/api/soap/62.0","transactionKey":"0002343d-9d90-e395-ed20-cf416ba652ad","sequenceNumber":1,"commitTimestamp":1712694387000_i64,"commitNumber":1082990428293_i64,"commitUser":"005xx000001X8Uz","changedFields":[]},"Name":"Acme","CreatedDate":"2001-01-01T00:00:00.000Z"},"event":{"replayId":37904280}});
        let marker = all_ways(&data).expect("marker");
        assert_eq!(marker.replay_id, 37904280);
        // The header's commit time wins over the record's own CreatedDate.
        assert_eq!(
            marker.created,
            DateTime::from_timestamp_millis(1712694387000)
        );
    }

    #[test]
    fn missing_or_odd_fields() {
        assert_eq!(all_ways(&json!({"payload": "x"})), None);
        assert_eq!(all_ways(&json!({"event": {"replayId": "13"}})), None);
        assert_eq!(all_ways(&json!({"event": {"replayId": 1.5}})), None);
        assert_eq!(
            all_ways(&json!({"event": {"replayId": 7}})),
            Some(ReplayMarker::new(7, None))
        );
        assert_eq!(
            all_ways(&json!({"event": {"replayId": 7, "createdDate": "yesterday"}})),
            Some(ReplayMarker::new(7, None))
        );
        assert_eq!(
            all_ways(&json!({"event": {"replayId": 7}, "payload": {"CreatedDate": null}})),
            Some(ReplayMarker::new(7, None))
        );
        assert_eq!(
            all_ways(&json!({"event": {"replayId": 7}, "payload": [1, {"a": 2}]})),
            Some(ReplayMarker::new(7, None))
        );
        assert_eq!(ReplayMarker::from_slice(b"not json"), None);
        // Escaped strings cannot be borrowed; they still parse.
        let escaped = br#"{"event":{"replayId":3,"createdDate":"2024-01-01T00:00:00\u002E5Z"}}"#;
        assert_eq!(
            ReplayMarker::from_slice(escaped),
            Some(ReplayMarker::new(3, Some(at("2024-01-01T00:00:00.5Z"))))
        );
    }

    #[test]
    fn time_formats() {
        let utc = at("2024-01-01T10:00:00Z");
        assert_eq!(parse_time("2024-01-01T10:00:00Z"), Some(utc));
        assert_eq!(parse_time("2024-01-01T10:00:00.000+0000"), Some(utc));
        assert_eq!(parse_time("2024-01-01T12:00:00+02:00"), Some(utc));
        assert_eq!(parse_time("2024-01-01T05:00:00.000-0500"), Some(utc));
        assert_eq!(parse_time("2024-01-01T10:00:00"), Some(utc));
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn times_compare_as_times_not_strings() {
        let half = ReplayMarker::new(1, Some(at("2024-01-01T10:00:00.5Z")));
        let quarter = ReplayMarker::new(2, Some(at("2024-01-01T10:00:00.25Z")));
        assert!(half.is_newer_than(&quarter));
        assert!(!quarter.is_newer_than(&half));
        // Strings get these wrong: '.' sorts before 'Z', and offsets differ.
        for (earlier, later) in [
            ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00.5Z"),
            ("2024-01-01T11:00:00+02:00", "2024-01-01T10:00:00Z"),
            ("2024-01-01T10:00:00.5Z", "2024-01-01T06:00:00.6-04:00"),
        ] {
            assert!(earlier > later, "strings order {earlier} after {later}");
            let e = ReplayMarker::new(9, parse_time(earlier));
            let l = ReplayMarker::new(1, parse_time(later));
            assert!(e.created.is_some() && l.created.is_some());
            assert!(l.is_newer_than(&e), "{later} after {earlier}");
            assert!(!e.is_newer_than(&l), "{earlier} before {later}");
        }
    }

    #[test]
    fn offsets_are_honoured() {
        // 11:00+02:00 is 09:00Z, earlier than 10:00Z.
        let east = ReplayMarker::new(9, parse_time("2024-01-01T11:00:00+02:00"));
        let utc = ReplayMarker::new(1, parse_time("2024-01-01T10:00:00Z"));
        assert!(utc.is_newer_than(&east));
        assert!(!east.is_newer_than(&utc));
        // The same instant written two ways: replay ids decide.
        let same = ReplayMarker::new(2, parse_time("2024-01-01T12:00:00.000+0200"));
        let utc10 = ReplayMarker::new(1, parse_time("2024-01-01T10:00:00Z"));
        assert!(same.is_newer_than(&utc10));
    }

    #[test]
    fn ids_decide_without_times() {
        let t = Some(at("2024-01-01T10:00:00Z"));
        assert!(ReplayMarker::new(5, None).is_newer_than(&ReplayMarker::new(4, t)));
        assert!(ReplayMarker::new(5, t).is_newer_than(&ReplayMarker::new(4, None)));
        assert!(ReplayMarker::new(5, t).is_newer_than(&ReplayMarker::new(4, t)));
        assert!(!ReplayMarker::new(4, t).is_newer_than(&ReplayMarker::new(4, t)));
        assert!(!ReplayMarker::new(4, None).is_newer_than(&ReplayMarker::new(4, None)));
    }

    #[test]
    fn replay_from_parsing() {
        for (text, want) in [
            ("NEW", ReplayFrom::New),
            ("new", ReplayFrom::New),
            ("New_Events", ReplayFrom::New),
            ("-1", ReplayFrom::New),
            ("ALL", ReplayFrom::All),
            ("all", ReplayFrom::All),
            ("ALL_EVENTS", ReplayFrom::All),
            ("-2", ReplayFrom::All),
            (" 42 ", ReplayFrom::Id(42)),
            ("0", ReplayFrom::Id(0)),
            ("9223372036854775807", ReplayFrom::Id(i64::MAX)),
        ] {
            assert_eq!(text.parse::<ReplayFrom>(), Ok(want), "{text}");
        }
        for bad in ["", "latest", "-3", "1.5", "99999999999999999999", "NEWS"] {
            let err = match bad.parse::<ReplayFrom>() {
                Err(e) => e.to_string(),
                Ok(v) => panic!("{bad} parsed as {v:?}"),
            };
            assert!(err.contains("NEW, ALL, -1, -2"), "{err}");
        }
        assert_eq!(ReplayFrom::New.as_i64(), -1);
        assert_eq!(ReplayFrom::All.as_i64(), -2);
        assert_eq!(ReplayFrom::Id(7).as_i64(), 7);
        assert_eq!(ReplayFrom::from(-2), ReplayFrom::All);
        assert_eq!(ReplayFrom::default(), ReplayFrom::New);
        for v in [ReplayFrom::New, ReplayFrom::All, ReplayFrom::Id(3)] {
            assert_eq!(v.to_string().parse::<ReplayFrom>(), Ok(v));
        }
    }
}
