//! Named date literals (`TODAY`, `LAST_N_DAYS:7`, ...) and the day ranges
//! they stand for. Weeks start on Sunday and days are UTC days.

use chrono::{Datelike, Days, Months, NaiveDate};

/// A named date literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NamedDate {
    Today,
    Yesterday,
    Tomorrow,
    LastWeek,
    ThisWeek,
    NextWeek,
    LastMonth,
    ThisMonth,
    NextMonth,
    LastYear,
    ThisYear,
    NextYear,
    /// `LAST_N_DAYS:n`: the past `n` days and today.
    LastNDays(u32),
    /// `NEXT_N_DAYS:n`: the next `n` days, today excluded.
    NextNDays(u32),
    /// `N_DAYS_AGO:n`: the single day `n` days ago.
    NDaysAgo(u32),
}

impl NamedDate {
    /// The literal without a `:n` argument, by name (any case).
    pub(crate) fn fixed(name: &str) -> Option<Self> {
        use NamedDate::*;
        let found = match name.to_ascii_uppercase().as_str() {
            "TODAY" => Today,
            "YESTERDAY" => Yesterday,
            "TOMORROW" => Tomorrow,
            "LAST_WEEK" => LastWeek,
            "THIS_WEEK" => ThisWeek,
            "NEXT_WEEK" => NextWeek,
            "LAST_MONTH" => LastMonth,
            "THIS_MONTH" => ThisMonth,
            "NEXT_MONTH" => NextMonth,
            "LAST_YEAR" => LastYear,
            "THIS_YEAR" => ThisYear,
            "NEXT_YEAR" => NextYear,
            "LAST_90_DAYS" => LastNDays(90),
            "NEXT_90_DAYS" => NextNDays(90),
            _ => return None,
        };
        Some(found)
    }

    /// The literal taking a `:n` argument, by name (any case).
    pub(crate) fn with_n(name: &str, n: u32) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "LAST_N_DAYS" => Some(NamedDate::LastNDays(n)),
            "NEXT_N_DAYS" => Some(NamedDate::NextNDays(n)),
            "N_DAYS_AGO" => Some(NamedDate::NDaysAgo(n)),
            _ => None,
        }
    }

    /// Whether `name` is a literal that needs `:n`.
    pub(crate) fn takes_n(name: &str) -> bool {
        Self::with_n(name, 0).is_some()
    }

    /// The days covered, as `[start, end)`, seen from `today`; `None` when
    /// out of the calendar's range.
    pub(crate) fn range(self, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
        use NamedDate::*;
        let day = |d: NaiveDate| Some((d, d.checked_add_days(Days::new(1))?));
        let sunday =
            today.checked_sub_days(Days::new(u64::from(today.weekday().num_days_from_sunday())))?;
        let week = |weeks_after: i64| {
            let start = if weeks_after < 0 {
                sunday.checked_sub_days(Days::new(7))?
            } else {
                sunday.checked_add_days(Days::new(7 * weeks_after as u64))?
            };
            Some((start, start.checked_add_days(Days::new(7))?))
        };
        let month_start = today.with_day(1)?;
        let month = |start: Option<NaiveDate>| {
            let start = start?;
            Some((start, start.checked_add_months(Months::new(1))?))
        };
        let year_start = NaiveDate::from_ymd_opt(today.year(), 1, 1)?;
        let year = |start: Option<NaiveDate>| {
            let start = start?;
            Some((start, start.checked_add_months(Months::new(12))?))
        };
        let tomorrow = today.checked_add_days(Days::new(1))?;
        match self {
            Today => day(today),
            Yesterday => day(today.checked_sub_days(Days::new(1))?),
            Tomorrow => day(tomorrow),
            LastWeek => week(-1),
            ThisWeek => week(0),
            NextWeek => week(1),
            LastMonth => month(month_start.checked_sub_months(Months::new(1))),
            ThisMonth => month(Some(month_start)),
            NextMonth => month(month_start.checked_add_months(Months::new(1))),
            LastYear => year(year_start.checked_sub_months(Months::new(12))),
            ThisYear => year(Some(year_start)),
            NextYear => year(year_start.checked_add_months(Months::new(12))),
            LastNDays(n) => Some((today.checked_sub_days(Days::new(u64::from(n)))?, tomorrow)),
            NextNDays(n) => Some((
                tomorrow,
                tomorrow.checked_add_days(Days::new(u64::from(n)))?,
            )),
            NDaysAgo(n) => day(today.checked_sub_days(Days::new(u64::from(n)))?),
        }
    }
}
