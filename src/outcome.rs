//! Typed decisions that layers leave in the request and response extensions, for the layers
//! outside them (audit, the header renderer) and for the host.
//!
//! A layer never reads another layer's headers: what the quota layer decided travels as a
//! [`QuotaOutcome`], what authorization decided as a [`Decision`] (and a
//! [`ShadowDivergence`] when a candidate policy disagreed). These types belong to the core,
//! so a layer that reads them depends on no other layer.
//!
//! | value | put by | where |
//! | --- | --- | --- |
//! | [`Decision`] | authz | request extensions (for the handler) and response extensions |
//! | [`ShadowDivergence`] | authz, when a shadow policy disagrees | response extensions |
//! | [`QuotaOutcome`] | each quota stage, merged | response extensions |
//!
//! Recording the quota figures costs a little on every request, so the quota stages record
//! them only for a request whose extensions carry [`WantOutcomes`] (the audit layer puts it
//! there; a host layer that reads the outcome does the same). A mode other than `enforced`, a
//! shadow rule's would-be refusal and a 429's figures are recorded always.
//!
//! ```
//! use palisade::outcome::{LimitOutcome, QuotaOutcome};
//! use std::time::Duration;
//!
//! let mut res = http::Response::new(());
//! let mut stage = QuotaOutcome::default();
//! stage.push_limit(LimitOutcome::new("free-second", 5, 4, Duration::from_millis(200)));
//! QuotaOutcome::merge_into(res.extensions_mut(), stage);
//! let told = res.extensions().get::<QuotaOutcome>().unwrap();
//! assert_eq!(told.limits()[0].remaining, 4);
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Extensions;
use smallvec::SmallVec;

/// Asks the layers inside for their typed outcomes: put it in a request's extensions before
/// the stack sees the request, and read the outcomes from the response's. Zero-sized: inserting
/// it allocates nothing.
///
/// ```
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(palisade::outcome::WantOutcomes);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WantOutcomes;

/// Why an authorization decision came out as it did. Codes are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A public rule matched.
    Public,
    /// A rule matched and the caller holds a granted role (or the rule needs none) and every
    /// required scope.
    Granted,
    /// No rule covers this method and route: denied by default.
    NoRule,
    /// The path matches no route: neither the router (no matched template) nor the policy
    /// knows it (404 unless the policy hides routes).
    NoRoute,
    /// The policy describes this route (its exact template) but grants no method like this
    /// one on it (405 with `Allow`, unless the policy hides routes).
    MethodNotAllowed,
    /// A rule matched but the caller holds none of its roles.
    MissingRole,
    /// A rule matched, the role is held, but a required scope is not.
    MissingScope,
    /// A rule matched but the caller is anonymous.
    NotAuthenticated,
    /// A rule matched, role and scopes are held, but the user's authentication is not the
    /// one the rule asks for (`acr`) or too old (`auth_time`): RFC 9470 step-up.
    InsufficientUserAuthentication,
}

impl Outcome {
    /// Whether the request may proceed.
    #[must_use]
    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Public | Self::Granted)
    }

    /// The stable code (`"missing_role"`).
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Granted => "granted",
            Self::NoRule => "no_matching_rule",
            Self::NoRoute => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::MissingRole => "missing_role",
            Self::MissingScope => "missing_scope",
            Self::NotAuthenticated => "not_authenticated",
            Self::InsufficientUserAuthentication => "insufficient_user_authentication",
        }
    }
}

/// An authorization decision: the outcome and the rule that decided (none for
/// [`Outcome::NoRule`], [`Outcome::NoRoute`] and [`Outcome::MethodNotAllowed`]). Cheap to
/// clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    outcome: Outcome,
    rule: Option<RuleRef>,
}

impl Decision {
    /// A decision: `outcome`, reached by `rule`.
    #[must_use]
    pub fn new(outcome: Outcome, rule: Option<RuleRef>) -> Self {
        Self { outcome, rule }
    }

    /// The outcome.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether the request may proceed.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        self.outcome.is_allowed()
    }

    /// The rule that decided, if one matched.
    #[must_use]
    pub fn rule(&self) -> Option<&RuleRef> {
        self.rule.as_ref()
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => write!(f, "{} by {rule}", self.outcome.code()),
            None => f.write_str(self.outcome.code()),
        }
    }
}

/// Names a rule of a compiled policy: its position in the written policy and a description
/// (`routes[3]: GET /v1/orders/{id} roles=[reader]`), for audit and debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    index: usize,
    text: Arc<RuleText>,
}

/// What a [`RuleRef`] says of its rule, shared (a refusal carries one pointer).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RuleText {
    description: Arc<str>,
    scopes: Arc<str>,
    /// The RFC 9470 challenge a caller that falls short of the rule's step-up gets.
    step_up: Option<http::HeaderValue>,
}

impl RuleRef {
    /// Rule `index` of a policy's `routes`, described by `description`, requiring `scopes`
    /// (space-separated).
    #[must_use]
    pub fn new(index: usize, description: Arc<str>, scopes: Arc<str>) -> Self {
        Self {
            index,
            text: Arc::new(RuleText {
                description,
                scopes,
                step_up: None,
            }),
        }
    }

    /// The same rule, asking callers whose authentication falls short for `challenge` (a
    /// `WWW-Authenticate` value with `error="insufficient_user_authentication"`, RFC 9470 §3).
    #[must_use]
    pub fn with_step_up(mut self, challenge: http::HeaderValue) -> Self {
        Arc::make_mut(&mut self.text).step_up = Some(challenge);
        self
    }

    /// The RFC 9470 challenge of the rule's step-up requirement, if it has one.
    #[must_use]
    pub fn step_up(&self) -> Option<&http::HeaderValue> {
        self.text.step_up.as_ref()
    }

    /// The rule's index in the policy's `routes`.
    #[must_use]
    pub fn index(&self) -> usize {
        self.index
    }

    /// A description of the rule.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.text.description
    }

    /// The rule's required scopes, space-separated (as RFC 6750 `scope` wants them).
    #[must_use]
    pub fn scopes(&self) -> &str {
        &self.text.scopes
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text.description)
    }
}

/// A shadow policy's decision that differed from the enforced one. Put in the response
/// extensions (for audit) and logged; never enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowDivergence {
    /// What the enforced policy decided (and what happened).
    pub enforced: Decision,
    /// What the candidate policy would have decided.
    pub shadow: Decision,
}

/// A response that broke what its operation declares (response validation, OWASP API3:2023).
/// The validation layer puts it in the response extensions; the audit event records it as
/// `response_check`.
#[derive(Debug, Clone)]
pub struct ResponseDivergence {
    /// The check's mode: `shadow`, `strip` or `refuse`.
    pub mode: &'static str,
    /// What became of the response: `reported` (sent as it was), `stripped` (undeclared
    /// properties removed, then sent) or `refused` (replaced by a 500 problem document).
    pub action: &'static str,
    /// The handler's status.
    pub status: u16,
    /// What diverged: pointers into the response body and keywords, never values.
    pub errors: std::sync::Arc<[crate::rejection::Violation]>,
}

/// How a quota verdict was reached: by the store as configured, or by its outage policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum QuotaMode {
    /// The store decided (the normal case).
    #[default]
    Enforced,
    /// The shared store was down: this instance enforced its share of the limits locally.
    Degraded,
    /// The shared store was down and the request was let through unchecked (fail open).
    FailOpen,
}

impl QuotaMode {
    /// A stable code: `enforced`, `degraded` or `fail_open`.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Enforced => "enforced",
            Self::Degraded => "degraded",
            Self::FailOpen => "fail_open",
        }
    }
}

/// A refusal a shadow quota rule would have made, on a request it let through; never enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaShadow {
    /// The policy that would have refused.
    pub policy: Arc<str>,
    /// How long the caller would have been told to wait.
    pub retry_after: Duration,
}

/// One limit's state after a request: what the client is told in the `RateLimit` fields
/// (whether or not those fields are sent).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitOutcome {
    /// The item's name (the policy's, and the limit's when a policy has several).
    pub item: Arc<str>,
    /// The limit's capacity (requests or cost units per window).
    pub capacity: u64,
    /// Units remaining after this request.
    pub remaining: u64,
    /// Time until more quota is available.
    pub reset: Duration,
}

impl LimitOutcome {
    /// A limit's state.
    pub fn new(item: impl Into<Arc<str>>, capacity: u64, remaining: u64, reset: Duration) -> Self {
        Self {
            item: item.into(),
            capacity,
            remaining,
            reset,
        }
    }

    /// `reset` in whole seconds, rounded up (as the `t` parameter and `Retry-After` say it).
    #[must_use]
    pub fn reset_secs(&self) -> u64 {
        self.reset.as_secs() + u64::from(self.reset.subsec_nanos() > 0)
    }
}

/// What the quota stages decided for one request: the least normal [`QuotaMode`], the first
/// would-be refusal of a shadow rule, and the state of each limit that counted the request.
/// Each stage merges its part into the one value in the response extensions
/// ([`merge_into`](Self::merge_into)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaOutcome {
    mode: QuotaMode,
    shadow: Option<QuotaShadow>,
    /// Inline for the usual few limits: recording them allocates nothing.
    limits: SmallVec<[LimitOutcome; 2]>,
}

impl QuotaOutcome {
    /// Nothing decided yet (as [`Default`], in a `const` context).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            mode: QuotaMode::Enforced,
            shadow: None,
            limits: SmallVec::new_const(),
        }
    }

    /// The least normal mode of any verdict.
    #[must_use]
    pub fn mode(&self) -> QuotaMode {
        self.mode
    }

    /// The first refusal a shadow rule would have made.
    #[must_use]
    pub fn shadow(&self) -> Option<&QuotaShadow> {
        self.shadow.as_ref()
    }

    /// Each limit's state, in the order the rules ran (inner stage first).
    #[must_use]
    pub fn limits(&self) -> &[LimitOutcome] {
        &self.limits
    }

    /// The limit with the fewest units remaining.
    #[must_use]
    pub fn tightest(&self) -> Option<&LimitOutcome> {
        self.limits.iter().min_by_key(|l| l.remaining)
    }

    /// Whether there is nothing to record: enforced, no shadow refusal, no limit.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.mode == QuotaMode::Enforced && self.shadow.is_none() && self.limits.is_empty()
    }

    /// Notes a verdict reached in `mode` (the least normal one is kept).
    pub fn note_mode(&mut self, mode: QuotaMode) {
        self.mode = self.mode.max(mode);
    }

    /// Notes a shadow rule's would-be refusal (the first one is kept).
    pub fn note_shadow(&mut self, shadow: QuotaShadow) {
        self.shadow.get_or_insert(shadow);
    }

    /// Adds a limit's state.
    pub fn push_limit(&mut self, limit: LimitOutcome) {
        self.limits.push(limit);
    }

    /// Merges `other` (an outer stage's part) into `self`.
    pub fn merge(&mut self, other: Self) {
        self.note_mode(other.mode);
        if let Some(s) = other.shadow {
            self.note_shadow(s);
        }
        self.limits.extend(other.limits);
    }

    /// Merges `part` into the outcome already in `extensions`, or puts it there.
    pub fn merge_into(extensions: &mut Extensions, part: Self) {
        match extensions.get_mut::<Self>() {
            Some(existing) => existing.merge(part),
            None => {
                extensions.insert(part);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_merge_into_one_outcome() {
        let mut ext = Extensions::new();
        let mut inner = QuotaOutcome::default();
        inner.push_limit(LimitOutcome::new("user", 10, 7, Duration::from_secs(3)));
        QuotaOutcome::merge_into(&mut ext, inner);
        let mut outer = QuotaOutcome::default();
        outer.note_mode(QuotaMode::Degraded);
        outer.note_shadow(QuotaShadow {
            policy: "ip".into(),
            retry_after: Duration::from_secs(1),
        });
        outer.push_limit(LimitOutcome::new("ip", 100, 2, Duration::from_millis(1500)));
        QuotaOutcome::merge_into(&mut ext, outer);
        let merged = ext.get::<QuotaOutcome>().unwrap();
        assert_eq!(merged.mode(), QuotaMode::Degraded);
        assert_eq!(merged.shadow().map(|s| &*s.policy), Some("ip"));
        assert_eq!(merged.limits().len(), 2);
        assert_eq!(&*merged.tightest().unwrap().item, "ip");
        assert_eq!(merged.tightest().unwrap().reset_secs(), 2);
        assert!(!merged.is_empty());
        assert!(QuotaOutcome::default().is_empty());
    }

    #[test]
    fn the_least_normal_mode_wins() {
        let mut o = QuotaOutcome::default();
        o.note_mode(QuotaMode::FailOpen);
        o.note_mode(QuotaMode::Degraded);
        assert_eq!(o.mode(), QuotaMode::FailOpen);
    }
}
