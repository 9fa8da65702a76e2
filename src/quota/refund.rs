//! All or nothing across rules: what the rules that admitted a request consumed is given back
//! when another rule refuses it, so a refused request costs nothing anywhere. Across stages
//! too: a client-address stage outside authentication gives its units back when the response
//! it passes on is a refusal by an inner quota stage (a per-user limit).
//!
//! Each rule still checks and consumes atomically in its own store, so no limit ever admits
//! more than it allows (no over-admission, under any concurrency). The price is brief: between
//! a rule's consumption and its refund (one pass over the rules in memory, one store round
//! trip with Redis Cluster), the units are held, so a concurrent request may find them taken.
//! A store whose [`QuotaStore::check_all`] is atomic (Redis on one server or Sentinel) holds
//! nothing for a refused request. At most `cost` units per refused request in flight are held
//! that way, each for at most the store's timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use smallvec::SmallVec;

use super::layer::Shared;
use super::limit::Verdict;
use super::policy::QuotaKey;
use super::store::{QuotaMode, QuotaStore};
use crate::clock::Timestamp;
use crate::error::{Chain, StoreError, StoreErrorKind};
use crate::rejection::Rejection;

/// What the rules that admitted a request consumed: the rule, its key, the units and when
/// (the refund names the same window).
pub(super) type Taken = SmallVec<[(usize, QuotaKey, u64, Timestamp); 2]>;

/// Whether a check's answer consumed units: admitted, consuming, and counted by the store
/// itself (a fail-open answer took nothing; a degraded one took from the local share).
pub(super) fn took(consume: bool, result: &Result<Verdict, StoreError>) -> bool {
    consume && matches!(result, Ok(v) if v.is_allowed() && v.mode() == QuotaMode::Enforced)
}

/// Whether `res` is a refusal by a quota stage (this one's inner, as the response passes it).
pub(super) fn refused_by_quota(extensions: &http::Extensions) -> bool {
    extensions
        .get::<Rejection>()
        .is_some_and(|r| r.layer() == "quota")
}

impl<St: QuotaStore> Shared<St> {
    /// Gives back at once what `taken` consumed; returns the refunds that must wait for I/O.
    pub(super) fn refund_now(&self, taken: Taken) -> Taken {
        let mut later = Taken::new();
        for (i, key, cost, at) in taken {
            match self.store_of(i).refund_now(&key, cost, at) {
                Some(Ok(())) => {}
                Some(Err(e)) => refund_failed(&self.refund_warned, &e),
                None => later.push((i, key, cost, at)),
            }
        }
        later
    }

    /// Gives back what `taken` consumed, all at once.
    pub(super) async fn refund(&self, taken: Taken) {
        let later = self.refund_now(taken);
        self.refund_later(&later).await;
    }

    /// The refunds that wait for I/O, all at once.
    pub(super) async fn refund_later(&self, later: &Taken) {
        let done = super::service::join_all(
            later
                .iter()
                .map(|(i, key, cost, at)| self.store_of(*i).refund(key, *cost, *at)),
        )
        .await;
        for e in done.iter().filter_map(|r| r.as_ref().err()) {
            refund_failed(&self.refund_warned, e);
        }
    }

    /// Gives back `taken` without waiting: at once where the store can, else in the
    /// background (bounded by each store's own timeout).
    pub(super) fn refund_detached(self: &Arc<Self>, taken: Taken) {
        let later = self.refund_now(taken);
        if !later.is_empty() {
            let shared = self.clone();
            tokio::spawn(async move { shared.refund_later(&later).await });
        }
    }
}

/// A refund the store could not make: said once at `warn` (the request stays refused; the
/// units stay taken until they refill), then at `debug`; `warned` remembers.
pub(super) fn refund_failed(warned: &AtomicBool, e: &StoreError) {
    if warned.swap(true, Ordering::Relaxed) {
        tracing::debug!(layer = "quota", error = %Chain(e), "quota refund failed");
    } else if e.kind() == StoreErrorKind::Unsupported {
        tracing::warn!(
            layer = "quota",
            "this quota store cannot give units back: a request refused by another rule keeps what it took here"
        );
    } else {
        tracing::warn!(layer = "quota", error = %Chain(e), "quota refund failed: the units stay taken until they refill");
    }
}
