//! The service of a [`QuotaLayer`](super::QuotaLayer): the rules checked against the store in
//! one pass, the typed outcome and the rate-limit fields of the response.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use smallvec::SmallVec;
use tower_service::Service;
use tracing::Instrument;

use super::batch::{QuotaCheck, batch_refused};
use super::future::{ResponseFuture, Settle};
use super::layer::{Quota, Shared};
use super::limit::Verdict;
use super::policy::QuotaKey;
use super::refund::{Taken, took};
use super::rule::{Counting, QuotaShadow};
use super::store::{QuotaMode, QuotaStore};
use super::tally::{Tally, record_limits, too_many};
use crate::body::{ResponseBody, refusal as refusal_response};
use crate::clock::Timestamp;
use crate::error::{Chain, StoreError, StoreErrorKind};
use crate::outcome::{QuotaOutcome, WantOutcomes};
use crate::principal::Principal;
use crate::rejection::{QuotaProblem, Rejection, UnavailableReason};
use crate::route::matched_template;
use crate::telemetry::{self, DecisionTrace};

fn refuse<B>(
    rejection: &Rejection,
    outcome: QuotaOutcome,
    trace: DecisionTrace,
    extensions: &http::Extensions,
) -> Response<ResponseBody<B>> {
    let mut res = refusal_response("quota", rejection, trace, extensions);
    if !outcome.is_empty() {
        QuotaOutcome::merge_into(res.extensions_mut(), outcome);
    }
    res
}

impl<St> Shared<St> {
    /// The route template of a request and its cost: axum's matched template when present,
    /// else the cost table's own match of the path.
    fn route(&self, parts: &Parts) -> (Option<Arc<str>>, u64) {
        let keyed_by_route = self.keyed_by_route;
        if self.exact.is_empty() && !keyed_by_route {
            return (None, 1);
        }
        if let Some(t) = matched_template(&parts.extensions) {
            return match self.exact.get(t) {
                Some((t, cost)) => (Some(t.clone()), *cost),
                // A template no cost or rule names: only a route key needs its name.
                None if keyed_by_route => (Some(t.into()), 1),
                None => (None, 1),
            };
        }
        match self.router.at(parts.uri.path()) {
            Ok(m) => (Some(m.value.0.clone()), m.value.1),
            Err(_) => (None, 1),
        }
    }
}

/// Where the synchronous pass stopped.
enum Pass {
    /// Every rule admitted the request.
    Admitted,
    /// A rule refused it, or the store failed; the units the rules before took.
    Refused(Rejection, Box<QuotaOutcome>, Taken),
    /// Rule `i` needs the store's asynchronous check.
    Pending(usize),
}

impl<St: QuotaStore> Shared<St> {
    /// One rule's check inputs: its policy, key, cost and whether it consumes now.
    pub(super) fn prepare(
        &self,
        i: usize,
        parts: &Parts,
        route: Option<&Arc<str>>,
        cost: u64,
    ) -> (QuotaKey, u64, bool) {
        let rule = &self.rules[i];
        let policy = rule.policy_for(&parts.extensions);
        let key = rule.key_for(parts, policy, route);
        match rule.counting {
            Counting::Every => (key, cost, true),
            Counting::Responses(_) => (key, 1, false),
        }
    }

    /// Folds one rule's verdict into the tally, or returns the refusal.
    fn settle(
        &self,
        i: usize,
        key: QuotaKey,
        result: Result<Verdict, crate::StoreError>,
        tally: &mut Tally,
    ) -> Result<(), Rejection> {
        let verdict = match result {
            Ok(v) => v,
            Err(e) => {
                telemetry::backend_error("quota_store", "error");
                tracing::warn!(layer = "quota", error = %Chain(&e), "quota store failed: refusing");
                return Err(Rejection::unavailable(
                    "quota",
                    UnavailableReason::QuotaStore,
                ));
            }
        };
        if verdict.mode() != QuotaMode::Enforced {
            telemetry::quota_degraded(verdict.mode().code());
        }
        let rule = &self.rules[i];
        if !verdict.is_allowed() {
            tally.outcome.note_mode(verdict.mode());
            if !rule.shadow {
                // The refusal tells the client of this policy's limits alone.
                let mut told = QuotaOutcome::new();
                told.note_mode(tally.outcome.mode());
                record_limits(&mut told, key.policy(), &verdict);
                tally.outcome = told;
                // RateLimit fields draft-12 §5: which problem this refusal is.
                let problem = match &rule.counting {
                    _ if verdict.mode() == QuotaMode::Degraded => {
                        QuotaProblem::TemporaryReducedCapacity
                    }
                    Counting::Responses(f) if f.abnormal_usage() => {
                        QuotaProblem::AbnormalUsageDetected
                    }
                    _ => QuotaProblem::QuotaExceeded,
                };
                return Err(too_many(&key, &verdict, self.headers, problem));
            }
            tracing::info!(
                layer = "quota",
                policy = key.policy().name(),
                key = key.kind(),
                "shadow quota rule would refuse"
            );
            tally.outcome.note_shadow(QuotaShadow {
                policy: key.policy().name_arc().clone(),
                retry_after: verdict.retry_after(),
            });
            return Ok(());
        }
        match rule.counting {
            Counting::Every if rule.shadow => tally.outcome.note_mode(verdict.mode()),
            Counting::Every => tally.record(&key, &verdict, self.headers),
            Counting::Responses(_) => {
                tally.outcome.note_mode(verdict.mode());
                // The usual single charge (a failed-authentication rule) needs no vector.
                if tally.first_charge.is_none() {
                    tally.first_charge = Some((i, key));
                } else {
                    tally.charges.push((i, key));
                }
            }
        }
        Ok(())
    }

    fn sync_pass(
        &self,
        parts: &Parts,
        route: Option<&Arc<str>>,
        cost: u64,
        tally: &mut Tally,
    ) -> Pass {
        let now = self.clock.now();
        for i in 0..self.rules.len() {
            if !self.rules[i].applies_to(route, parts) {
                continue;
            }
            let (key, rule_cost, consume) = self.prepare(i, parts, route, cost);
            let Some(result) = self.store_of(i).check_now(&key, rule_cost, now, consume) else {
                return Pass::Pending(i);
            };
            let taken = took(consume, &result).then(|| key.clone());
            if let Err(r) = self.settle(i, key, result, tally) {
                // All or nothing: what the rules before took is given back.
                let taken = mem::take(&mut tally.taken);
                return Pass::Refused(r, Box::new(mem::take(&mut tally.outcome)), taken);
            }
            if let Some(key) = taken {
                tally.taken.push((i, key, rule_cost, now));
            }
        }
        Pass::Admitted
    }

    /// Whether rule `i` counts `res`.
    pub(super) fn counts<B>(&self, i: usize, res: &Response<B>) -> bool {
        match &self.rules[i].counting {
            Counting::Responses(f) => (f.0)(res.status(), res.extensions()),
            Counting::Every => false,
        }
    }

    /// The charges due for a response: the keys whose rule's filter matches it.
    /// Checks the rules from `start` on at the store, all at once: one round trip of latency
    /// for all of them, not one each. `Err` with the first refusal.
    async fn check_rest(
        &self,
        start: usize,
        parts: &Parts,
        route: Option<&Arc<str>>,
        cost: u64,
        tally: &mut Tally,
    ) -> Result<(), Rejection> {
        let now = self.clock.now();
        let checks: Vec<_> = (start..self.rules.len())
            .filter(|&i| self.rules[i].applies_to(route, parts))
            .map(|i| {
                let (key, rule_cost, consume) = self.prepare(i, parts, route, cost);
                (i, key, rule_cost, consume)
            })
            .collect();
        let results = self.check_batches(&checks, false, now).await;
        let mut refused = None;
        for ((i, key, rule_cost, _), (result, held)) in checks.into_iter().zip(results) {
            let taken = held.then(|| key.clone());
            if refused.is_none()
                && let Err(r) = self.settle(i, key, result, tally)
            {
                refused = Some(r);
                continue;
            }
            if let Some(key) = taken {
                tally.taken.push((i, key, rule_cost, now));
            }
        }
        match refused {
            // All or nothing: every rule that took units for this request gives them back.
            Some(r) => {
                self.refund(mem::take(&mut tally.taken)).await;
                Err(r)
            }
            None => Ok(()),
        }
    }

    pub(super) fn due<B>(&self, res: &Response<B>, tally: &mut Tally) -> Vec<(usize, QuotaKey)> {
        let first = tally.first_charge.take();
        first
            .into_iter()
            .chain(tally.charges.drain(..))
            .filter(|(i, _)| self.counts(*i, res))
            .collect()
    }

    /// Checks `checks` (rule, key, cost, consume) at `now` with one
    /// [`check_all`](QuotaStore::check_all) per store, all at once; every check a shadow one
    /// (counted on its own) when `independent`. Each answer comes with whether the units it
    /// took are held: its store's batch admitted the request, so they are given back if
    /// another store's batch refuses it (a refusing batch holds nothing).
    async fn check_batches(
        &self,
        checks: &[(usize, QuotaKey, u64, bool)],
        independent: bool,
        now: Timestamp,
    ) -> Vec<(Result<Verdict, StoreError>, bool)> {
        // The stores in the order their first rule comes; usually one.
        let mut stores: SmallVec<[usize; 2]> = SmallVec::new();
        for (i, ..) in checks {
            if !stores.contains(&self.rule_store[*i]) {
                stores.push(self.rule_store[*i]);
            }
        }
        let batches: Vec<(usize, Vec<QuotaCheck<'_>>)> = stores
            .iter()
            .map(|&s| {
                let batch = checks
                    .iter()
                    .filter(|(i, ..)| self.rule_store[*i] == s)
                    .map(|(i, key, cost, consume)| {
                        QuotaCheck::new(key, *cost)
                            .consume(*consume)
                            .shadow(independent || self.rules[*i].shadow)
                    })
                    .collect();
                (s, batch)
            })
            .collect();
        let answers = join_all(
            batches
                .iter()
                .map(|(s, batch)| self.stores[*s].1.check_all(batch, now)),
        )
        .await;
        let mut answers: Vec<_> = batches
            .iter()
            .zip(answers)
            .map(|((_, batch), results)| {
                let refused = batch_refused(batch, &results);
                let consume = batch
                    .iter()
                    .map(|c| c.consume)
                    .collect::<SmallVec<[bool; 4]>>();
                results.into_iter().zip(consume).map(move |(r, consume)| {
                    let held = !refused && took(consume, &r);
                    (r, held)
                })
            })
            .collect();
        // Back in the order of `checks`.
        checks
            .iter()
            .map(|(i, ..)| {
                let b = stores.iter().position(|s| *s == self.rule_store[*i]);
                b.and_then(|b| answers[b].next()).unwrap_or_else(|| {
                    (
                        Err(StoreError::from_kind(StoreErrorKind::InvalidData)),
                        false,
                    )
                })
            })
            .collect()
    }

    /// The store rule `i` counts in.
    pub(super) fn store_of(&self, i: usize) -> &St {
        &self.stores[self.rule_store[i]].1
    }

    /// Charges `key` of rule `i` one unit now, with a store that answers at once.
    pub(super) fn charge_now(&self, i: usize, key: &QuotaKey) {
        if let Some(Err(e)) = self.store_of(i).check_now(key, 1, self.clock.now(), true) {
            tracing::warn!(layer = "quota", error = %Chain(&e), "quota store failed to count a response");
        }
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for Quota<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    St: QuotaStore,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error, St>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        let (mut parts, body) = req.into_parts();
        let (route, cost) = shared.route(&parts);
        let mut tally = Tally::new();
        tally.wanted = shared.headers.legacy || parts.extensions.get::<WantOutcomes>().is_some();
        if shared.headers.legacy {
            // The legacy fields name the tightest limit of every stage: the stages inside
            // record theirs for this one to read.
            parts.extensions.insert(WantOutcomes);
        }
        let trace = DecisionTrace::start("quota", &parts.headers, &parts.extensions);
        let pass = trace
            .span()
            .in_scope(|| shared.sync_pass(&parts, route.as_ref(), cost, &mut tally));
        let start = match pass {
            Pass::Admitted => {
                trace.allowed(parts.extensions.get::<Principal>());
                let future = self.inner.call(Request::from_parts(parts, body));
                let charge = tally.first_charge.take();
                let taken = mem::take(&mut tally.taken);
                // Nothing to add to the response: carry nothing (no allocation).
                let tally = (!tally.is_trivial()).then(|| Box::new(tally));
                let settle =
                    (charge.is_some() || tally.is_some() || !taken.is_empty()).then(|| Settle {
                        charge,
                        tally,
                        taken,
                        shared: shared.clone(),
                    });
                return ResponseFuture::inner(future, settle);
            }
            Pass::Refused(rejection, outcome, taken) => {
                if !taken.is_empty() {
                    shared.refund_detached(taken);
                }
                return ResponseFuture::refused(refuse(
                    &rejection,
                    *outcome,
                    trace,
                    &parts.extensions,
                ));
            }
            Pass::Pending(i) => i,
        };
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let shared = shared.clone();
        ResponseFuture::boxed(Box::pin(async move {
            let checked = shared
                .check_rest(start, &parts, route.as_ref(), cost, &mut tally)
                .instrument(trace.span().clone())
                .await;
            if let Err(r) = checked {
                let outcome = mem::take(&mut tally.outcome);
                return Ok(refuse(&r, outcome, trace, &parts.extensions));
            }
            trace.allowed(parts.extensions.get::<Principal>());
            let mut res = inner
                .call(Request::from_parts(parts, body))
                .await?
                .map(ResponseBody::inner);
            if super::refund::refused_by_quota(res.extensions()) && !tally.taken.is_empty() {
                // An inner quota stage refused it: what this one took is given back.
                shared.refund(mem::take(&mut tally.taken)).await;
            }
            let due: Vec<_> = shared
                .due(&res, &mut tally)
                .into_iter()
                .map(|(i, key)| (i, key, 1, true))
                .collect();
            // Each charge on its own: one over its limit leaves the others counted.
            let charged = shared.check_batches(&due, true, shared.clock.now());
            for e in charged.await.into_iter().filter_map(|(r, _)| r.err()) {
                tracing::warn!(layer = "quota", error = %Chain(&e), "quota store failed to count a response");
            }
            tally.apply(&mut res, shared.headers);
            Ok(res)
        }))
    }
}

/// Runs `futures` concurrently and returns their outputs in order.
pub(super) async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut ready_all = true;
        for (fut, out) in pending.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => ready_all = false,
                }
            }
        }
        if ready_all {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().collect()
}
