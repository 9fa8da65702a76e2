//! [`QuotaCheck`]: one rule's check in a request's batch ([`QuotaStore::check_all`]), and
//! the batch done check by check, for stores without an atomic one.

use std::future::Future;
use std::sync::atomic::AtomicBool;

use super::limit::Verdict;
use super::policy::QuotaKey;
use super::refund::{refund_failed, took};
use super::service::join_all;
use super::store::QuotaStore;
use crate::clock::Timestamp;
use crate::error::StoreError;

/// One check of a request's batch ([`QuotaStore::check_all`]): `cost` units for `key`,
/// consumed or only tested, binding or shadow.
///
/// ```
/// use palisade::quota::{Limit, QuotaCheck, QuotaKey, QuotaPolicy};
///
/// let user = QuotaKey::custom(QuotaPolicy::new("user", [Limit::per_second(5)]), "alice");
/// // A rule that counts responses tests its limits before the handler runs.
/// let check = QuotaCheck::new(&user, 1).consume(false);
/// assert!(!check.consume && !check.shadow);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct QuotaCheck<'a> {
    /// Whose limits: the key and its policy.
    pub key: &'a QuotaKey,
    /// The units the request costs under this check.
    pub cost: u64,
    /// Whether an admitted request consumes the units now (`false`: only tested, as a rule
    /// that counts responses does before the handler answers).
    pub consume: bool,
    /// Whether this check's refusal refuses nothing (a shadow rule): the others still
    /// consume, and this one consumes only when it admits.
    pub shadow: bool,
}

impl<'a> QuotaCheck<'a> {
    /// A binding check that consumes `cost` units of `key` when the whole batch admits.
    #[must_use]
    pub fn new(key: &'a QuotaKey, cost: u64) -> Self {
        Self {
            key,
            cost,
            consume: true,
            shadow: false,
        }
    }

    /// Whether an admitted request consumes the units now (default `true`).
    #[must_use]
    pub fn consume(mut self, consume: bool) -> Self {
        self.consume = consume;
        self
    }

    /// Whether this check's refusal refuses nothing (default `false`).
    #[must_use]
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.shadow = shadow;
        self
    }
}

/// Whether the answers of a batch refuse the request: a binding check refused, or any check
/// failed (a store that cannot decide refuses, shadow rule or not).
pub(super) fn batch_refused(
    checks: &[QuotaCheck<'_>],
    results: &[Result<Verdict, StoreError>],
) -> bool {
    checks.iter().zip(results).any(|(c, r)| match r {
        Ok(v) => !v.is_allowed() && !c.shadow,
        Err(_) => true,
    })
}

/// Whether a failed refund of a store's own batch was logged at `warn` already.
pub(super) static REFUND_WARNED: AtomicBool = AtomicBool::new(false);

/// The batch check by check: every check at once with `check`, then, when the batch refuses
/// the request, every unit an admitted check consumed given back with `refund` (a refund the
/// store cannot make is logged, once at `warn`).
pub(super) async fn check_each<'r, 'k, C, CF, R, RF>(
    checks: &'r [QuotaCheck<'k>],
    check: C,
    refund: R,
) -> Vec<Result<Verdict, StoreError>>
where
    C: Fn(&'r QuotaCheck<'k>) -> CF,
    CF: Future<Output = Result<Verdict, StoreError>>,
    R: Fn(&'r QuotaCheck<'k>) -> RF,
    RF: Future<Output = Result<(), StoreError>>,
{
    let results = join_all(checks.iter().map(check)).await;
    if batch_refused(checks, &results) {
        let given = join_all(
            checks
                .iter()
                .zip(&results)
                .filter(|(c, r)| took(c.consume, r))
                .map(|(c, _)| refund(c)),
        )
        .await;
        for e in given.iter().filter_map(|r| r.as_ref().err()) {
            refund_failed(&REFUND_WARNED, e);
        }
    }
    results
}

/// [`check_each`] over a store's own `check` and `refund`: the default of
/// [`QuotaStore::check_all`].
pub(super) fn check_each_of<'s, 'r, 'k, S: QuotaStore + ?Sized>(
    store: &'s S,
    checks: &'r [QuotaCheck<'k>],
    now: Timestamp,
) -> impl Future<Output = Vec<Result<Verdict, StoreError>>> + Send + use<'s, 'r, 'k, S> {
    check_each(
        checks,
        move |c| store.check(c.key, c.cost, now, c.consume),
        move |c| store.refund(c.key, c.cost, now),
    )
}
