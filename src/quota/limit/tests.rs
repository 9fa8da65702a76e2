use proptest::prelude::*;

use super::window::{days_from_civil, year_month};
use super::*;

const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn at(secs: u64, millis: u64) -> Timestamp {
    Timestamp::from_unix_nanos((T0 + secs) * NANOS_PER_SEC + millis * 1_000_000)
}

struct Key {
    limits: Vec<Limit>,
    cells: [u64; MAX_LIMITS],
}

impl Key {
    fn new(limits: Vec<Limit>) -> Self {
        Self {
            limits,
            cells: [0; MAX_LIMITS],
        }
    }

    fn hit(&mut self, now: Timestamp, cost: u64) -> Verdict {
        apply(&self.limits, &mut self.cells, now, cost, true).0
    }

    fn peek(&mut self, now: Timestamp, cost: u64) -> Verdict {
        apply(&self.limits, &mut self.cells, now, cost, false).0
    }
}

#[test]
fn burst_then_steady_rate() {
    let mut key = Key::new(vec![Limit::per_second(10).burst(5)]);
    let t = at(0, 0);
    for expected_remaining in (0..5).rev() {
        let v = key.hit(t, 1);
        assert!(v.is_allowed());
        assert_eq!(v.states()[0].remaining(), expected_remaining);
    }
    let refused = key.hit(t, 1);
    assert!(!refused.is_allowed());
    assert_eq!(refused.retry_after(), Duration::from_millis(100));
    assert_eq!(refused.states()[0].remaining(), 0);
    assert_eq!(refused.states()[0].reset(), Duration::from_millis(100));
    assert!(refused.states()[0].exceeded());

    // One unit refills every 100ms: 99ms is too early, 100ms is on time.
    assert!(!key.hit(at(0, 99), 1).is_allowed());
    assert!(key.hit(at(0, 100), 1).is_allowed());
    // Steady: a request every 100ms is always admitted, with nothing to spare.
    for i in 2..=50 {
        let v = key.hit(at(0, 100 * i), 1);
        assert!(v.is_allowed(), "request {i}");
        assert_eq!(v.states()[0].remaining(), 0);
        assert!(!key.hit(at(0, 100 * i), 1).is_allowed());
    }
    // After a quiet second the full burst is back, and no more.
    let later = at(6, 0);
    assert_eq!(key.peek(later, 1).states()[0].remaining(), 4);
    assert!(key.hit(later, 5).is_allowed());
    assert!(!key.hit(later, 1).is_allowed());
}

#[test]
fn steady_rate_over_a_minute_admits_rate_times_time_plus_burst() {
    let mut key = Key::new(vec![Limit::per_second(10).burst(10)]);
    let mut admitted = 0;
    // A request every 10ms (ten times the rate) for 60 seconds.
    for ms in (0..60_000).step_by(10) {
        if key.hit(at(ms / 1000, ms % 1000), 1).is_allowed() {
            admitted += 1;
        }
    }
    // 10 at once, then 10 per second for the 59.99 seconds that follow.
    assert_eq!(admitted, 10 + 599);
}

#[test]
fn window_resets_at_the_boundary() {
    let mut key = Key::new(vec![Limit::quota(3, Window::Minute)]);
    let t = at(59, 0); // 00:00:59
    for remaining in [2, 1, 0] {
        let v = key.hit(t, 1);
        assert!(v.is_allowed());
        assert_eq!(v.states()[0].remaining(), remaining);
        assert_eq!(v.states()[0].reset(), Duration::from_secs(1));
    }
    let refused = key.hit(at(59, 999), 1);
    assert!(!refused.is_allowed());
    assert_eq!(refused.retry_after(), Duration::from_millis(1));
    // 00:01:00 is a new window: the full quota again, resetting in a minute.
    let v = key.hit(at(60, 0), 1);
    assert!(v.is_allowed());
    assert_eq!(v.states()[0].remaining(), 2);
    assert_eq!(v.states()[0].reset(), Duration::from_secs(60));
}

#[test]
fn daily_and_monthly_windows_follow_the_utc_calendar() {
    // 2026-01-31T23:59:59Z: the day and the month both end in one second.
    let t = at(30 * 86_400 + 86_399, 0);
    for window in [Window::Day, Window::Month] {
        let (_, end) = window.locate(t);
        assert_eq!(end, at(31 * 86_400, 0), "{window}");
    }
    // February 2028 is a leap month: it ends 29 days after it starts.
    let feb_2028 = Timestamp::parse_rfc3339("2028-02-01T00:00:00Z").unwrap();
    let (index, end) = Window::Month.locate(feb_2028);
    assert_eq!(
        end,
        Timestamp::parse_rfc3339("2028-03-01T00:00:00Z").unwrap()
    );
    // December rolls into January of the next year.
    let dec = Timestamp::parse_rfc3339("2027-12-15T10:00:00Z").unwrap();
    let (dec_index, dec_end) = Window::Month.locate(dec);
    assert_eq!(
        dec_end,
        Timestamp::parse_rfc3339("2028-01-01T00:00:00Z").unwrap()
    );
    assert_eq!(index, dec_index + 2);

    let mut key = Key::new(vec![Limit::quota(2, Window::Month)]);
    let jan_end = at(30 * 86_400 + 86_399, 0);
    assert!(key.hit(jan_end, 2).is_allowed());
    assert!(!key.hit(jan_end, 1).is_allowed());
    assert!(key.hit(at(31 * 86_400, 0), 2).is_allowed());
}

#[test]
fn cost_is_charged_in_units() {
    let mut key = Key::new(vec![Limit::per_minute(60).burst(5)]);
    let t = at(0, 0);
    let v = key.hit(t, 3);
    assert!(v.is_allowed());
    assert_eq!(v.states()[0].remaining(), 2);
    let refused = key.hit(t, 3);
    assert!(!refused.is_allowed());
    // One more unit is needed: one emission interval (a second).
    assert_eq!(refused.retry_after(), Duration::from_secs(1));
    assert!(key.hit(t, 2).is_allowed());
}

#[test]
fn limits_of_one_key_are_all_or_nothing() {
    let mut key = Key::new(vec![Limit::per_second(100), Limit::quota(2, Window::Hour)]);
    let t = at(0, 0);
    assert!(key.hit(t, 1).is_allowed());
    assert!(key.hit(t, 1).is_allowed());
    let refused = key.hit(t, 1);
    assert!(!refused.is_allowed());
    assert!(!refused.states()[0].exceeded());
    assert!(refused.states()[1].exceeded());
    // The hourly quota refused, so the rate was not charged: 98 of 100 remain.
    assert_eq!(key.peek(t, 1).states()[0].remaining(), 97);
    assert_eq!(refused.retry_after(), Duration::from_secs(3_600));
}

#[test]
fn a_peek_consumes_nothing() {
    let mut key = Key::new(vec![Limit::per_second(1).burst(1)]);
    for _ in 0..10 {
        assert!(key.peek(at(0, 0), 1).is_allowed());
    }
    assert!(key.hit(at(0, 0), 1).is_allowed());
    assert!(!key.peek(at(0, 0), 1).is_allowed());
}

#[test]
fn a_key_is_idle_once_its_state_equals_a_fresh_one() {
    let limits = vec![
        Limit::per_second(10).burst(10),
        Limit::quota(5, Window::Minute),
    ];
    let mut cells = [0; MAX_LIMITS];
    let (_, idle) = apply(&limits, &mut cells, at(10, 0), 2, true);
    // The quota's window ends at 00:01:00, later than the rate's refill (200ms).
    assert_eq!(idle, at(60, 0));
}

#[test]
fn validation_refuses_limits_that_cannot_admit() {
    assert!(Limit::per_second(0).validate().is_err());
    assert!(Limit::per_second(5).burst(0).validate().is_err());
    assert!(Limit::quota(0, Window::Day).validate().is_err());
    assert!(
        Limit::quota(5, Window::Every(Duration::from_millis(1500)))
            .validate()
            .is_err()
    );
    assert!(
        Limit::rate(1, Duration::from_secs(3_600 * 24 * 400))
            .validate()
            .is_err()
    );
    assert!(Limit::per_second(2_000_000).validate().is_err());
    assert!(Limit::per_second(1_000_000).validate().is_ok());
    assert!(Limit::per_second(5).validate().is_ok());
}

#[test]
fn a_host_verdict_with_too_many_states_still_refuses() {
    let mut states = vec![LimitState::new(5, Duration::ZERO, false); MAX_LIMITS];
    states.push(LimitState::new(0, Duration::from_secs(1), true));
    let v = Verdict::new(&states, Duration::from_secs(1));
    assert!(!v.is_allowed());
    assert_eq!(v.states().len(), MAX_LIMITS);
}

#[test]
fn policy_params_describe_the_burst_and_its_refill() {
    assert_eq!(Limit::per_minute(100).policy_params(), (100, 60));
    assert_eq!(Limit::per_second(10).burst(20).policy_params(), (20, 2));
    assert_eq!(
        Limit::quota(1_000, Window::Day).policy_params(),
        (1_000, 86_400)
    );
}

#[test]
fn a_share_is_at_least_one() {
    let l = Limit::per_second(10).burst(20).share(4);
    assert_eq!(l.gcra(), (400_000_000, 5));
    assert_eq!(Limit::quota(3, Window::Day).share(10).capacity(), 1);
}

proptest! {
    /// GCRA never admits more than `burst + elapsed / T` units, whatever the arrival pattern.
    #[test]
    fn gcra_admits_at_most_burst_plus_elapsed_rate(
        steps in prop::collection::vec((0u64..300, 1u64..4), 1..300),
        rate in 1u64..50,
        burst in 1u64..20,
    ) {
        let limit = Limit::per_second(rate).burst(burst);
        let (t, _) = limit.gcra();
        let mut key = Key::new(vec![limit]);
        let mut now = 0u64;
        let mut admitted = 0u64;
        for (dt_ms, cost) in steps {
            now += dt_ms * 1_000_000;
            if key.hit(Timestamp::from_unix_nanos(T0 * NANOS_PER_SEC + now), cost).is_allowed() {
                admitted += cost;
            }
            prop_assert!(admitted <= burst + now / t);
        }
    }

    /// A window never admits more than its maximum, and a refused request always names a
    /// retry time that lies within the window.
    #[test]
    fn windows_admit_at_most_their_maximum(
        steps in prop::collection::vec((0u64..5_000, 1u64..4), 1..300),
        max in 1u64..30,
    ) {
        let mut key = Key::new(vec![Limit::quota(max, Window::Minute)]);
        let mut now = T0 * NANOS_PER_SEC;
        let mut used: std::collections::HashMap<u64, u64> = Default::default();
        for (dt_ms, cost) in steps {
            now += dt_ms * 1_000_000;
            let v = key.hit(Timestamp::from_unix_nanos(now), cost);
            if v.is_allowed() {
                *used.entry(now / (60 * NANOS_PER_SEC)).or_default() += cost;
            } else {
                prop_assert!(v.retry_after() <= Duration::from_secs(60));
                prop_assert!(v.retry_after() > Duration::ZERO);
            }
        }
        prop_assert!(used.values().all(|&n| n <= max));
    }

    #[test]
    fn civil_month_round_trips(days in 0u64..200_000) {
        let (y, m) = year_month(days);
        let first = days_from_civil(y, m);
        prop_assert!(first <= days && days - first < 31);
        let (y2, m2) = year_month(first);
        prop_assert_eq!((y, m), (y2, m2));
    }
}

#[test]
fn what_was_given_back_is_admitted_again_as_if_never_taken() {
    let limits = vec![Limit::per_second(2), Limit::quota(3, Window::Minute)];
    let now = at(100, 0);
    let mut cells = [0u64; 2];
    let (first, _) = apply(&limits, &mut cells, now, 1, true);
    assert!(first.is_allowed());
    let before = cells;
    let (second, _) = apply(&limits, &mut cells, now, 1, true);
    assert!(second.is_allowed());
    give_back(&limits, &mut cells, now, 1);
    assert_eq!(cells, before, "the second request left no trace");
    give_back(&limits, &mut cells, now, 1);
    // Back to a fresh key's answers: the full burst and the whole window.
    let (fresh, _) = apply(&limits, &mut [0u64; 2], now, 1, false);
    let (peek, _) = apply(&limits, &mut cells, now, 1, false);
    assert_eq!(peek.states(), fresh.states());
    // A give-back in a later window leaves that window's count alone.
    let (_, _) = apply(&limits, &mut cells, at(200, 0), 1, true);
    let kept = cells;
    give_back(&limits[1..], &mut cells[1..], at(100, 0), 1);
    assert_eq!(cells[1], kept[1]);
}
