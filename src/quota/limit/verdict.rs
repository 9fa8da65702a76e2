//! What a check answers: [`Verdict`] and each limit's [`LimitState`].

use std::time::Duration;

use super::{MAX_LIMITS, duration_nanos};
use crate::outcome::QuotaMode;

/// What one limit says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitState {
    pub(super) remaining: u64,
    pub(super) reset_ns: u64,
    pub(super) exceeded: bool,
}

impl LimitState {
    /// A state: `remaining` units, more available after `reset`, and whether this limit refuses.
    #[must_use]
    pub fn new(remaining: u64, reset: Duration, exceeded: bool) -> Self {
        Self {
            remaining,
            reset_ns: duration_nanos(reset),
            exceeded,
        }
    }

    /// Units (requests, or cost units) still admitted now, after this request if it was
    /// admitted.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Time until more quota becomes available (the `t` of the `RateLimit` field): for a rate,
    /// until the next unit refills (zero when full); for a quota, until the window ends.
    #[must_use]
    pub fn reset(&self) -> Duration {
        Duration::from_nanos(self.reset_ns)
    }

    /// Whether this limit alone refuses the request.
    #[must_use]
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

/// The answer of a check: admitted or not, when to retry, and the state of every limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub(super) allowed: bool,
    pub(super) retry_after: Duration,
    pub(super) len: u8,
    pub(super) states: [LimitState; MAX_LIMITS],
    pub(super) mode: QuotaMode,
}

impl Verdict {
    /// A verdict for `states` (one per limit): admitted when no state is exceeded. For stores
    /// written by hosts. Only the first [`MAX_LIMITS`] states are kept for the rate-limit
    /// fields, but every state counts towards the answer.
    #[must_use]
    pub fn new(states: &[LimitState], retry_after: Duration) -> Self {
        let kept = states.len().min(MAX_LIMITS);
        let mut all = [LimitState::default(); MAX_LIMITS];
        all[..kept].copy_from_slice(&states[..kept]);
        Self {
            allowed: !states.iter().any(|s| s.exceeded),
            retry_after,
            len: kept as u8,
            states: all,
            mode: QuotaMode::Enforced,
        }
    }

    /// A verdict that admits without counting (no limit applied).
    #[must_use]
    pub const fn unlimited() -> Self {
        Self {
            allowed: true,
            retry_after: Duration::ZERO,
            len: 0,
            states: [LimitState {
                remaining: 0,
                reset_ns: 0,
                exceeded: false,
            }; MAX_LIMITS],
            mode: QuotaMode::Enforced,
        }
    }

    /// The same verdict, reached in `mode` (stores set this when an outage policy decided).
    #[must_use]
    pub const fn with_mode(mut self, mode: QuotaMode) -> Self {
        self.mode = mode;
        self
    }

    /// How the verdict was reached.
    #[must_use]
    pub fn mode(&self) -> QuotaMode {
        self.mode
    }

    /// Whether the request was admitted (and, for a consuming check, counted).
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// How long until the refused request would be admitted (zero when admitted).
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The state of each limit, in the policy's order.
    #[must_use]
    pub fn states(&self) -> &[LimitState] {
        &self.states[..usize::from(self.len)]
    }
}
