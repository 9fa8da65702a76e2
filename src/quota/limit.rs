//! The pure arithmetic of limits: [`Limit`] (a GCRA rate with burst, or a fixed-window quota)
//! and [`apply`], which checks and consumes several limits of one key in one step.
//!
//! No storage and no clock here: the state of a key is one `u64` cell per limit, and the time
//! is an argument. [`MemoryStore`](super::MemoryStore) keeps cells in memory; the Redis store
//! runs the same arithmetic in a Lua script.
//!
//! # GCRA
//!
//! A rate of `n` per `period` with a burst of `b` is the generic cell rate algorithm: the
//! emission interval is `T = period / n` and the cell holds the theoretical arrival time (TAT).
//! A request of cost `c` at `now` is admitted when `max(TAT, now) + c·T <= now + b·T`, and then
//! TAT moves to that sum. It behaves as a token bucket of size `b` refilled one token every `T`,
//! with one integer of state and no refill loop.
//!
//! # Windows
//!
//! A quota of `n` per minute, hour, day, calendar month (UTC) or fixed duration counts requests
//! in the current window; the cell packs the window number (high 32 bits) and the count (low 32).
//! A window boundary resets the count.

use std::fmt;
use std::time::Duration;

use crate::clock::Timestamp;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The most limits one [`QuotaPolicy`](super::QuotaPolicy) may hold.
pub const MAX_LIMITS: usize = 4;

/// One limit: a rate with a burst (GCRA) or a quota per window.
///
/// ```
/// use std::time::Duration;
/// use palisade::quota::{Limit, Window};
///
/// let steady = Limit::per_second(10).burst(20);        // 10/s, bursts of 20
/// let slow = Limit::rate(100, Duration::from_secs(60)); // 100/min, bursts of 100
/// let daily = Limit::quota(10_000, Window::Day);        // 10,000 per UTC day
/// # let _ = (steady, slow, daily);
/// ```
///
/// In a configuration file a limit is written `{rate: 10, per: 1s, burst: 20}` or
/// `{quota: 10000, window: day}` (with an optional `name`); a mistake names the value and what
/// was expected (`per: 1x`: "`1x` is not a duration: expected a number and a unit...").
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "file::RawLimit")]
pub struct Limit {
    kind: Kind,
    name: Option<Box<str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `count` per `period`, admitting bursts of `burst`.
    Rate {
        count: u64,
        period: Duration,
        burst: u64,
        /// The emission interval `period / count` in nanoseconds, computed once.
        interval: u64,
    },
    /// `max` per window.
    Quota { max: u64, window: Window },
}

impl Limit {
    /// `count` requests per `period`, with bursts of up to `count` (change it with
    /// [`burst`](Self::burst)).
    #[must_use]
    pub fn rate(count: u64, period: Duration) -> Self {
        Self {
            kind: Kind::Rate {
                count,
                period,
                burst: count,
                interval: interval(count, period),
            },
            name: None,
        }
    }

    /// `count` per second.
    #[must_use]
    pub fn per_second(count: u64) -> Self {
        Self::rate(count, Duration::from_secs(1))
    }

    /// `count` per minute.
    #[must_use]
    pub fn per_minute(count: u64) -> Self {
        Self::rate(count, Duration::from_secs(60))
    }

    /// `count` per hour.
    #[must_use]
    pub fn per_hour(count: u64) -> Self {
        Self::rate(count, Duration::from_secs(3_600))
    }

    /// At most `max` per `window` (a fixed-window quota: the count resets at the boundary).
    #[must_use]
    pub fn quota(max: u64, window: Window) -> Self {
        Self {
            kind: Kind::Quota { max, window },
            name: None,
        }
    }

    /// Sets the burst of a rate: how many requests may arrive at once after a quiet spell.
    /// Ignored for window quotas.
    #[must_use]
    pub fn burst(mut self, burst: u64) -> Self {
        if let Kind::Rate { burst: b, .. } = &mut self.kind {
            *b = burst;
        }
        self
    }

    /// Names the limit in the `RateLimit-Policy` and `RateLimit` fields (default: the policy
    /// name, then `-` and the limit's position when the policy has several).
    #[must_use]
    pub fn named(mut self, name: impl Into<Box<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The name given with [`named`](Self::named).
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// How many requests the limit admits at once: the burst of a rate, the maximum of a quota.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        match self.kind {
            Kind::Rate { burst, .. } => burst,
            Kind::Quota { max, .. } => max,
        }
    }

    /// `(q, w)` of the `RateLimit-Policy` field: the quota and its window in seconds. For a rate
    /// that is the burst and the time the burst takes to refill.
    pub(crate) fn policy_params(&self) -> (u64, u64) {
        match self.kind {
            Kind::Rate { .. } => {
                let (t, b) = self.gcra();
                (b, t.saturating_mul(b).div_ceil(NANOS_PER_SEC).max(1))
            }
            Kind::Quota { max, window } => (max, window.seconds().max(1)),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// `(emission interval in nanoseconds, burst)` of a rate.
    pub(crate) fn gcra(&self) -> (u64, u64) {
        match self.kind {
            Kind::Rate {
                interval, burst, ..
            } => (interval, burst),
            Kind::Quota { max, .. } => (0, max),
        }
    }

    /// Checks the limit's own sanity.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self.kind {
            Kind::Rate {
                count,
                period,
                burst,
                ..
            } => {
                if count == 0 {
                    return Err("a rate must admit at least one request per period".into());
                }
                if burst == 0 {
                    return Err("a burst must be at least 1".into());
                }
                if period < Duration::from_millis(1) {
                    return Err("a rate's period must be at least 1ms".into());
                }
                if period > Duration::from_secs(366 * 86_400) {
                    return Err("a rate's period must be at most a year".into());
                }
                if period.as_nanos() < u128::from(count) * 1_000 {
                    return Err(
                        "a rate is at most one per microsecond (the stores' resolution)".into(),
                    );
                }
                let (t, b) = self.gcra();
                if t.checked_mul(b)
                    .is_none_or(|span| span > 10 * 366 * 86_400 * NANOS_PER_SEC)
                {
                    return Err("burst × interval must be under ten years".into());
                }
                Ok(())
            }
            Kind::Quota { max, window } => {
                if max == 0 {
                    return Err("a quota must admit at least one request per window".into());
                }
                if max > u64::from(u32::MAX) {
                    return Err(format!("a quota is at most {} per window", u32::MAX));
                }
                if let Window::Every(d) = window
                    && (d.as_secs() == 0 || d.subsec_nanos() != 0)
                {
                    return Err(format!(
                        "a window must be a whole number of seconds, at least 1, not {}",
                        humantime::format_duration(d)
                    ));
                }
                Ok(())
            }
        }
    }

    /// The limit that enforces `1/share` of this one (at least one request): what each of
    /// `share` instances enforces locally while a shared store is down.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn share(&self, share: u64) -> Self {
        let share = share.max(1);
        let kind = match self.kind {
            Kind::Rate {
                count,
                period,
                burst,
                ..
            } => {
                // The same count over `share` times the period: exact, unlike dividing it.
                let period = period.saturating_mul(u32::try_from(share).unwrap_or(u32::MAX));
                Kind::Rate {
                    count,
                    period,
                    burst: (burst / share).max(1),
                    interval: interval(count, period),
                }
            }
            Kind::Quota { max, window } => Kind::Quota {
                max: (max / share).max(1),
                window,
            },
        };
        Self {
            kind,
            name: self.name.clone(),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Rate {
                count,
                period,
                burst,
                ..
            } => write!(
                f,
                "{count} per {} (burst {burst})",
                humantime::format_duration(period)
            ),
            Kind::Quota { max, window } => write!(f, "{max} per {window}"),
        }
    }
}

/// The emission interval of `count` per `period`, in nanoseconds rounded up to whole
/// microseconds (the resolution of the Redis script, so both stores give the same answers).
fn interval(count: u64, period: Duration) -> u64 {
    let period = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
    period.div_ceil(count.max(1)).div_ceil(1_000).max(1) * 1_000
}

/// What one limit says about a request: its state, the cell to store if the request is
/// admitted, the wait before it would be, and until when its stored state matters.
struct Step {
    state: LimitState,
    next: u64,
    retry: u64,
    /// With the request counted / not counted: when the cell stops mattering.
    idle_if_taken: u64,
    idle_if_not: u64,
}

fn step(limit: &Limit, cell: u64, now: Timestamp, cost: u64) -> Step {
    let now_ns = now.as_unix_nanos();
    match limit.kind {
        Kind::Rate {
            interval: t, burst, ..
        } => {
            let tat = cell.max(now_ns);
            let new_tat = tat.saturating_add(t.saturating_mul(cost));
            let horizon = now_ns.saturating_add(t.saturating_mul(burst));
            // A rate is back to full once its TAT has passed.
            if new_tat <= horizon {
                Step {
                    state: LimitState {
                        remaining: (horizon - new_tat) / t,
                        reset_ns: until_next_unit(new_tat, now_ns, t),
                        exceeded: false,
                    },
                    next: new_tat,
                    retry: 0,
                    idle_if_taken: new_tat,
                    idle_if_not: cell,
                }
            } else {
                Step {
                    state: LimitState {
                        remaining: horizon.saturating_sub(tat) / t,
                        reset_ns: until_next_unit(tat, now_ns, t),
                        exceeded: true,
                    },
                    next: cell,
                    retry: new_tat - horizon,
                    idle_if_taken: cell,
                    idle_if_not: cell,
                }
            }
        }
        Kind::Quota { max, window } => {
            let (index, end) = window.locate(now);
            let end = end.as_unix_nanos();
            let current = cell != 0 && (cell >> 32) as u32 == index;
            let used = if current { cell & 0xffff_ffff } else { 0 };
            let reset = end.saturating_sub(now_ns);
            // A count matters until its window ends; an older window's count, not at all.
            let idle_if_not = if current { end } else { 0 };
            if used.saturating_add(cost) <= max {
                Step {
                    state: LimitState {
                        remaining: max - used - cost,
                        reset_ns: reset,
                        exceeded: false,
                    },
                    next: (u64::from(index) << 32) | (used + cost),
                    retry: 0,
                    idle_if_taken: end,
                    idle_if_not,
                }
            } else {
                Step {
                    state: LimitState {
                        remaining: max.saturating_sub(used),
                        reset_ns: reset,
                        exceeded: true,
                    },
                    next: cell,
                    retry: reset,
                    idle_if_taken: idle_if_not,
                    idle_if_not,
                }
            }
        }
    }
}

/// Checks `cost` against every limit of one key at `now`, and when all admit it and `consume`
/// is set, consumes it from all of them. `cells` holds the key's state, one per limit (zero for
/// a fresh key). Returns the verdict and the time after which the key's state is equivalent to
/// a fresh one (when it may be forgotten).
///
/// All or nothing: a request one limit refuses is counted by none.
pub(crate) fn apply(
    limits: &[Limit],
    cells: &mut [u64],
    now: Timestamp,
    cost: u64,
    consume: bool,
) -> (Verdict, Timestamp) {
    let mut verdict = Verdict::unlimited();
    verdict.len = limits.len() as u8;
    if let [limit] = limits {
        // The usual single-limit policy: no per-limit arrays.
        let s = step(limit, cells[0], now, cost);
        verdict.states[0] = s.state;
        verdict.allowed = !s.state.exceeded;
        verdict.retry_after = Duration::from_nanos(s.retry);
        let idle = if verdict.allowed && consume {
            cells[0] = s.next;
            s.idle_if_taken
        } else {
            s.idle_if_not
        };
        return (verdict, Timestamp::from_unix_nanos(idle));
    }
    let mut steps: [Option<Step>; MAX_LIMITS] = [const { None }; MAX_LIMITS];
    let mut retry = 0;
    for (i, limit) in limits.iter().enumerate() {
        let s = step(limit, cells[i], now, cost);
        verdict.states[i] = s.state;
        verdict.allowed &= !s.state.exceeded;
        retry = retry.max(s.retry);
        steps[i] = Some(s);
    }
    let take = verdict.allowed && consume;
    let mut idle = now.as_unix_nanos();
    for (cell, s) in cells.iter_mut().zip(steps.iter().flatten()) {
        if take {
            *cell = s.next;
            idle = idle.max(s.idle_if_taken);
        } else {
            idle = idle.max(s.idle_if_not);
        }
    }
    if !verdict.allowed {
        verdict.retry_after = Duration::from_nanos(retry);
    }
    (verdict, Timestamp::from_unix_nanos(idle))
}

/// Gives back `cost` units that [`apply`] consumed at `now` from every limit of one key (the
/// request was refused by another rule: a refused request costs nothing anywhere). A rate's
/// TAT moves back by `cost` intervals; a window's count drops by `cost` if the window of `now`
/// is still the cell's. Returns when the key's state equals a fresh one.
pub(crate) fn give_back(
    limits: &[Limit],
    cells: &mut [u64],
    now: Timestamp,
    cost: u64,
) -> Timestamp {
    let now_ns = now.as_unix_nanos();
    let mut idle = 0;
    for (limit, cell) in limits.iter().zip(cells.iter_mut()) {
        match limit.kind {
            Kind::Rate { interval: t, .. } => {
                *cell = cell.saturating_sub(t.saturating_mul(cost));
                idle = idle.max(*cell);
            }
            Kind::Quota { window, .. } => {
                let (index, end) = window.locate(now);
                if *cell != 0 && (*cell >> 32) as u32 == index {
                    let used = (*cell & 0xffff_ffff).saturating_sub(cost);
                    *cell = (u64::from(index) << 32) | used;
                    if used > 0 {
                        idle = idle.max(end.as_unix_nanos());
                    }
                }
            }
        }
    }
    Timestamp::from_unix_nanos(idle.max(now_ns))
}

/// Nanoseconds until the bucket whose TAT is `tat` has one more unit than now (zero when
/// full).
fn until_next_unit(tat: u64, now: u64, t: u64) -> u64 {
    if tat <= now {
        return 0;
    }
    let partial = (tat - now) % t;
    if partial == 0 { t } else { partial }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

mod file;
mod verdict;
mod window;

pub use verdict::{LimitState, Verdict};
pub use window::Window;

#[cfg(test)]
mod tests;
