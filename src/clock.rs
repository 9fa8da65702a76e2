//! Time, injected: [`Clock`], [`Timestamp`], [`SystemClock`] and [`ManualClock`].
//!
//! Everything in palisade that reads the time (key expiry, token `exp`/`nbf`, quota arithmetic,
//! audit latency) takes it from a [`Clock`] owned by the layer, so tests drive time with a
//! [`ManualClock`] instead of sleeping.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use palisade::clock::{Clock, ManualClock, Timestamp};
//!
//! let clock = ManualClock::new(Timestamp::from_unix_secs(1_700_000_000));
//! let other = clock.clone(); // clones share one time
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(other.now().as_unix_secs(), 1_700_000_090);
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in wall-clock time: nanoseconds since the Unix epoch.
///
/// Wall time (not a monotonic instant) because token expiry and quotas shared through Redis are
/// wall-time facts. Arithmetic saturates instead of overflowing.
///
/// In serde it is an RFC 3339 string (`"2026-01-31T12:00:00Z"`); an integer is read as Unix
/// seconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const UNIX_EPOCH: Self = Self(0);

    /// A timestamp from nanoseconds since the Unix epoch.
    #[must_use]
    pub const fn from_unix_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// A timestamp from whole seconds since the Unix epoch (saturating).
    #[must_use]
    pub const fn from_unix_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the Unix epoch.
    #[must_use]
    pub const fn as_unix_nanos(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch.
    #[must_use]
    pub const fn as_unix_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// `self + d`, saturating at the largest timestamp.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self - d`, saturating at the epoch.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_nanos(d)))
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Converts a [`SystemTime`]; times before the epoch become the epoch.
    #[must_use]
    pub fn from_system_time(t: SystemTime) -> Self {
        t.duration_since(UNIX_EPOCH)
            .map_or(Self::UNIX_EPOCH, |d| Self(duration_nanos(d)))
    }

    /// Converts to a [`SystemTime`].
    #[must_use]
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    /// Parses an RFC 3339 date-time such as `2026-01-31T12:00:00Z`.
    ///
    /// # Errors
    ///
    /// When `s` is not an RFC 3339 date-time in UTC or is out of range.
    pub fn parse_rfc3339(s: &str) -> Result<Self, humantime::TimestampError> {
        humantime::parse_rfc3339_weak(s).map(Self::from_system_time)
    }
}

fn duration_nanos(d: Duration) -> u64 {
    // u64 arithmetic (no u128): this runs on every clock read.
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Timestamp {
    /// Appends the same text as `Display` (`2026-01-31T12:00:00.123456789Z`), without the
    /// formatting machinery: the audit line writes one per event.
    pub(crate) fn write_rfc3339(self, out: &mut String) {
        let secs = self.as_unix_secs();
        if secs >= 253_402_300_800 {
            use fmt::Write as _;
            let _ = write!(out, "{self}");
            return;
        }
        // Days to a civil date (Howard Hinnant's `civil_from_days`, for days since 1970).
        let days = secs / 86_400;
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        let rest = secs % 86_400;
        let mut b = [0u8; 30];
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, rest / 3600);
        put(14, 2, rest / 60 % 60);
        put(17, 2, rest % 60);
        put(20, 9, self.0 % 1_000_000_000);
        for (at, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (29, b'Z'),
        ] {
            b[at] = c;
        }
        out.push_str(std::str::from_utf8(&b).unwrap_or_default());
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // humantime formats up to year 9999; past that print the raw number.
        if self.as_unix_secs() < 253_402_300_800 {
            fmt::Display::fmt(&humantime::format_rfc3339_nanos(self.to_system_time()), f)
        } else {
            write!(f, "@{}ns", self.0)
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr<'a> {
            Secs(u64),
            Text(std::borrow::Cow<'a, str>),
        }
        match Repr::deserialize(d)? {
            Repr::Secs(s) => Ok(Self::from_unix_secs(s)),
            Repr::Text(t) => Self::parse_rfc3339(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// A source of wall-clock time.
///
/// Implementations must be cheap: the clock is read on the request path.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The operating system's wall clock. The default everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the system time
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// A clock that moves only when told to; its clones share one time. For tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    #[must_use]
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(start.as_unix_nanos())),
        }
    }

    /// Moves the time forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let d = duration_nanos(d);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(d))
            });
    }

    /// Sets the time to `t` (which may move it backwards, as wall clocks do).
    pub fn set(&self, t: Timestamp) {
        self.now.store(t.as_unix_nanos(), Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn written(t: Timestamp) -> String {
        let mut out = String::new();
        t.write_rfc3339(&mut out);
        out
    }

    #[test]
    fn rfc3339_is_written_as_displayed_at_the_edges() {
        // The epoch, leap days, the last second of a year, 2100 (not a leap year), and the
        // last nanosecond a `u64` holds (in 2554).
        for secs in [
            0,
            951_782_400,
            1_709_164_800,
            1_767_225_599,
            4_107_456_000,
            18_446_744_072,
        ] {
            for nanos in [0, 1, 999_999_999] {
                let t = Timestamp::from_unix_nanos((secs * 1_000_000_000u64).saturating_add(nanos));
                assert_eq!(written(t), t.to_string(), "{secs}.{nanos}");
            }
        }
    }

    proptest! {
        #[test]
        fn rfc3339_is_written_as_displayed(nanos in 0u64..u64::MAX) {
            let t = Timestamp::from_unix_nanos(nanos);
            prop_assert_eq!(written(t), t.to_string());
        }
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_unix_nanos(u64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(5)).as_unix_nanos(),
            u64::MAX
        );
        assert_eq!(
            Timestamp::UNIX_EPOCH.saturating_sub(Duration::from_secs(1)),
            Timestamp::UNIX_EPOCH
        );
        assert_eq!(
            Timestamp::UNIX_EPOCH.saturating_duration_since(t),
            Duration::ZERO
        );
        assert_eq!(
            Timestamp::from_unix_secs(u64::MAX).as_unix_nanos(),
            u64::MAX
        );
    }

    #[test]
    fn serde_round_trips_rfc3339_and_reads_integer_seconds() {
        let t = Timestamp::from_unix_secs(1_767_225_600); // 2026-01-01T00:00:00Z
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-01-01T00:00:00.000000000Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert_eq!(
            serde_json::from_str::<Timestamp>("\"2026-01-01T00:00:00Z\"").unwrap(),
            t
        );
        assert_eq!(serde_json::from_str::<Timestamp>("1767225600").unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new(Timestamp::from_unix_secs(10));
        let b = a.clone();
        a.advance(Duration::from_millis(1500));
        assert_eq!(b.now().as_unix_nanos(), 11_500_000_000);
        b.set(Timestamp::from_unix_secs(3));
        assert_eq!(a.now().as_unix_secs(), 3);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now().as_unix_secs() > 1_577_836_800);
    }
}
