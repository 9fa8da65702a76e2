//! The circuit breaker in front of an introspection endpoint.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Timestamp;

/// A circuit breaker in front of the endpoint. Times are Unix nanoseconds of the
/// authenticator's clock; `open_until` is 0 while the circuit is closed.
#[derive(Debug)]
pub(super) struct Breaker {
    threshold: u32,
    cool_down: Duration,
    probe_for: Duration,
    failures: AtomicU32,
    open_until: AtomicU64,
    probe_at: AtomicU64,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` failures in a row for `cool_down`; a probe
    /// that outlives `probe_for` was lost, and another request may probe.
    pub(super) fn new(threshold: u32, cool_down: Duration, probe_for: Duration) -> Self {
        Self {
            threshold,
            cool_down,
            probe_for,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probe_at: AtomicU64::new(0),
        }
    }

    /// `None` when a call may go out now; otherwise how long the circuit stays open.
    pub(super) fn hold(&self, now: Timestamp) -> Option<Duration> {
        let until = self.open_until.load(Ordering::Acquire);
        if self.threshold == 0 || until == 0 {
            return None;
        }
        let now = now.as_unix_nanos();
        if now < until {
            return Some(Duration::from_nanos(until - now));
        }
        // Half open: one request probes; the others wait for its answer, or until the probe
        // is presumed lost.
        let probe = self.probe_at.load(Ordering::Acquire);
        let lost = probe == 0 || now.saturating_sub(probe) > nanos(self.probe_for);
        if lost
            && self
                .probe_at
                .compare_exchange(probe, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return None;
        }
        Some(self.cool_down.min(self.probe_for))
    }

    /// Records a call's outcome: an answer closes the circuit, the `threshold`-th failure in
    /// a row (or a failed probe) opens it for `cool_down`.
    pub(super) fn record(&self, answered: bool, now: Timestamp) {
        if self.threshold == 0 {
            return;
        }
        if answered {
            self.failures.store(0, Ordering::Release);
            self.open_until.store(0, Ordering::Release);
            self.probe_at.store(0, Ordering::Release);
            return;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let probing = self.open_until.load(Ordering::Acquire) != 0;
        if failures >= self.threshold || probing {
            let until = now
                .as_unix_nanos()
                .saturating_add(nanos(self.cool_down))
                .max(1);
            self.open_until.store(until, Ordering::Release);
            self.probe_at.store(0, Ordering::Release);
            tracing::warn!(layer = "authn", failures, cool_down = ?self.cool_down, "introspection circuit open: the endpoint failed repeatedly");
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Breaker {
        Breaker {
            threshold,
            cool_down: Duration::from_secs(2),
            probe_for: Duration::from_secs(4),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probe_at: AtomicU64::new(0),
        }
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + ms * 1_000_000)
    }

    #[test]
    fn the_breaker_opens_after_failures_in_a_row_and_one_probe_closes_it() {
        let b = breaker(3);
        b.record(false, at(0));
        b.record(false, at(10));
        assert_eq!(b.hold(at(20)), None, "two failures: still closed");
        b.record(true, at(30));
        b.record(false, at(40));
        b.record(false, at(50));
        assert_eq!(b.hold(at(60)), None, "an answer reset the count");
        b.record(false, at(70));
        assert_eq!(b.hold(at(80)), Some(Duration::from_millis(1_990)), "open");
        // Cool-down over: one request probes, the others are held while it is out.
        assert_eq!(b.hold(at(2_100)), None);
        assert!(b.hold(at(2_110)).is_some());
        // The probe fails: open again for a whole cool-down.
        b.record(false, at(2_200));
        assert_eq!(b.hold(at(2_300)), Some(Duration::from_millis(1_900)));
        // Next probe answers: closed for everyone.
        assert_eq!(b.hold(at(4_300)), None);
        b.record(true, at(4_400));
        assert_eq!(b.hold(at(4_410)), None);
        assert_eq!(b.hold(at(4_420)), None);
    }

    #[test]
    fn a_lost_probe_lets_another_request_probe() {
        let b = breaker(1);
        b.record(false, at(0));
        assert_eq!(b.hold(at(2_000)), None, "the probe");
        // Its request went away: no answer is ever recorded.
        assert!(b.hold(at(3_000)).is_some());
        assert_eq!(b.hold(at(6_001)), None, "presumed lost after probe_for");
    }

    #[test]
    fn zero_failures_turns_the_breaker_off() {
        let b = breaker(0);
        for ms in 0..10 {
            b.record(false, at(ms));
        }
        assert_eq!(b.hold(at(20)), None);
    }
}
