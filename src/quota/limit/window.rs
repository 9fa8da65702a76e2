//! [`Window`]: the span of a fixed-window quota, aligned to the Unix epoch in UTC.

use std::fmt;
use std::time::Duration;

use super::NANOS_PER_SEC;
use crate::clock::Timestamp;

/// The span of a fixed-window quota. Windows are aligned to the Unix epoch in UTC: a day
/// starts at midnight UTC, a month on its first day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Window {
    /// A minute, starting at second 0.
    Minute,
    /// An hour, starting at minute 0.
    Hour,
    /// A day, starting at midnight UTC.
    Day,
    /// A calendar month (28 to 31 days), starting on the first at midnight UTC.
    Month,
    /// A fixed span, counted from the Unix epoch (at least one second, whole seconds).
    Every(Duration),
}

impl Window {
    /// The window's length in seconds, as the `w` parameter of `RateLimit-Policy`
    /// (31 days for a calendar month: the field has one value, the longest month is the bound).
    #[must_use]
    pub fn seconds(self) -> u64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
            Self::Month => 31 * 86_400,
            Self::Every(d) => d.as_secs(),
        }
    }

    /// The number of the window containing `now` and the time it ends.
    pub(crate) fn locate(self, now: Timestamp) -> (u32, Timestamp) {
        let nanos = now.as_unix_nanos();
        if self == Self::Month {
            let days = nanos / (86_400 * NANOS_PER_SEC);
            let (y, m) = year_month(days);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let end = days_from_civil(ny, nm) * 86_400;
            // Months since year 0: fits u32 for any representable time.
            let index = u32::try_from(y * 12 + (m - 1)).unwrap_or(u32::MAX);
            return (index, Timestamp::from_unix_secs(end));
        }
        let period = self.seconds().max(1) * NANOS_PER_SEC;
        let index = nanos / period;
        let end = Timestamp::from_unix_nanos(index.saturating_add(1).saturating_mul(period));
        // Wraps only after 2^32 windows (136 years of one-second windows): the number just has
        // to differ from the previous window's.
        (index as u32, end)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Minute => f.write_str("minute"),
            Self::Hour => f.write_str("hour"),
            Self::Day => f.write_str("day"),
            Self::Month => f.write_str("month"),
            Self::Every(d) => write!(f, "{}s", d.as_secs()),
        }
    }
}

/// Civil (year, month 1-12) of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub(super) fn year_month(days: u64) -> (u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m)
}

/// Days since 1970-01-01 of the first day of (year, month).
pub(super) fn days_from_civil(y: u64, m: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}
