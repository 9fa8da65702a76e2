//! The service of a [`QuotaLayer`](super::QuotaLayer): the rules checked against the store in
//! one pass, the typed outcome and the rate-limit fields of the response.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::HeaderValue;
use http::request::Parts;
use http::{Request, Response};
use tower_service::Service;
use tracing::Instrument;

use super::future::{ResponseFuture, Settle};
use super::layer::{Quota, RateLimitHeaders, Shared};
use super::limit::{LimitState, Verdict};
use super::policy::{QuotaKey, QuotaPolicy};
use super::rule::{Counting, QuotaShadow};
use super::store::{QuotaMode, QuotaStore};
use crate::body::{ResponseBody, refusal as refusal_response};
use crate::error::Chain;
use crate::outcome::{LimitOutcome, QuotaOutcome, WantOutcomes};
use crate::principal::Principal;
use crate::rejection::ratelimit::{RATELIMIT, RATELIMIT_POLICY, legacy_fields, write_item};
use crate::rejection::{Rejection, TooManyRequests, UnavailableReason};
use crate::route::matched_template;
use crate::telemetry::{self, DecisionTrace};

const INLINE_POLICIES: usize = 4;

/// What the rules said about one request so far.
pub(super) struct Tally {
    /// Items of the `RateLimit` field for the rules that count every request.
    pub(super) ratelimit: String,
    /// The `RateLimit-Policy` values of those rules (inline for the usual few).
    pub(super) policies: [Option<HeaderValue>; INLINE_POLICIES],
    pub(super) more_policies: Vec<HeaderValue>,
    /// What this stage decided, typed: mode, shadow refusal, each limit's state. Merged into
    /// the response's [`QuotaOutcome`] whether or not the headers are sent, when an outer
    /// layer asked for it ([`WantOutcomes`]) or the legacy fields need it.
    pub(super) outcome: QuotaOutcome,
    /// Whether the limits' states are recorded in `outcome`.
    pub(super) wanted: bool,
    /// Keys to charge when the response matches their rule's filter.
    pub(super) first_charge: Option<(usize, QuotaKey)>,
    pub(super) charges: Vec<(usize, QuotaKey)>,
}

impl Tally {
    const fn new() -> Self {
        Self {
            ratelimit: String::new(),
            policies: [const { None }; INLINE_POLICIES],
            more_policies: Vec::new(),
            outcome: QuotaOutcome::new(),
            wanted: false,
            first_charge: None,
            charges: Vec::new(),
        }
    }

    pub(super) fn record(
        &mut self,
        policy: &QuotaPolicy,
        verdict: &Verdict,
        headers: RateLimitHeaders,
    ) {
        self.outcome.note_mode(verdict.mode());
        if verdict.mode() == QuotaMode::FailOpen {
            return;
        }
        if self.wanted {
            record_limits(&mut self.outcome, policy, verdict);
        }
        if !headers.on_allowed {
            return;
        }
        match self.policies.iter_mut().find(|p| p.is_none()) {
            Some(slot) => *slot = Some(policy.header().clone()),
            None => self.more_policies.push(policy.header().clone()),
        }
        if self.ratelimit.capacity() == 0 {
            self.ratelimit.reserve(64);
        }
        write_items(&mut self.ratelimit, policy, verdict.states());
    }

    /// Whether the tally has nothing to add to the response.
    pub(super) fn is_trivial(&self) -> bool {
        self.outcome.is_empty()
            && self.ratelimit.is_empty()
            && self.first_charge.is_none()
            && self.charges.is_empty()
    }

    pub(super) fn apply<B>(&mut self, res: &mut Response<B>, headers: RateLimitHeaders) {
        // The legacy fields name the tightest limit of every stage so far, read from the
        // typed outcomes (never from another stage's header).
        let tightest = if headers.legacy {
            let earlier = res.extensions().get::<QuotaOutcome>();
            earlier
                .and_then(QuotaOutcome::tightest)
                .into_iter()
                .chain(self.outcome.tightest())
                .min_by_key(|l| l.remaining)
                .map(|l| (l.capacity, l.remaining, l.reset))
        } else {
            None
        };
        // Moved out only when there is something to record (an empty one is dropped with the
        // tally, once).
        if !self.outcome.is_empty() {
            QuotaOutcome::merge_into(res.extensions_mut(), mem::take(&mut self.outcome));
        }
        if !headers.on_allowed || self.ratelimit.is_empty() {
            return;
        }
        let h = res.headers_mut();
        for p in self.policies.iter_mut().filter_map(Option::take) {
            h.append(&RATELIMIT_POLICY, p);
        }
        for p in self.more_policies.drain(..) {
            h.append(&RATELIMIT_POLICY, p);
        }
        if let Ok(v) = HeaderValue::try_from(mem::take(&mut self.ratelimit)) {
            h.append(&RATELIMIT, v);
        }
        if headers.legacy
            && let Some((cap, remaining, reset)) = tightest
        {
            for (name, value) in legacy_fields(cap, remaining, reset) {
                h.insert(name, value);
            }
        }
    }
}

/// Adds each limit's state of `verdict` to `outcome`.
fn record_limits(outcome: &mut QuotaOutcome, policy: &QuotaPolicy, verdict: &Verdict) {
    for ((limit, item), state) in policy
        .limits()
        .iter()
        .zip(policy.items())
        .zip(verdict.states())
    {
        outcome.push_limit(LimitOutcome::new(
            item.clone(),
            limit.capacity(),
            state.remaining(),
            state.reset(),
        ));
    }
}

/// Appends the `RateLimit` items of `policy`'s limits.
fn write_items(out: &mut String, policy: &QuotaPolicy, states: &[LimitState]) {
    for (item, state) in policy.item_names().zip(states) {
        write_item(out, item, state.remaining(), state.reset());
    }
}

fn too_many(policy: &QuotaPolicy, verdict: &Verdict, headers: RateLimitHeaders) -> Rejection {
    let violated: Arc<[Box<str>]> = policy
        .item_names()
        .zip(verdict.states())
        .filter(|(_, s)| s.exceeded())
        .map(|(n, _)| n.into())
        .collect();
    let mut items = String::new();
    write_items(&mut items, policy, verdict.states());
    let mut fields = vec![(RATELIMIT_POLICY.clone(), policy.header().clone())];
    if let Ok(v) = HeaderValue::try_from(items) {
        fields.push((RATELIMIT.clone(), v));
    }
    if headers.legacy
        && let Some((limit, state)) = policy
            .limits()
            .iter()
            .zip(verdict.states())
            .find(|(_, s)| s.exceeded())
    {
        fields.extend(
            legacy_fields(limit.capacity(), state.remaining(), verdict.retry_after())
                .map(|(name, value)| (name.clone(), value)),
        );
    }
    Rejection::TooManyRequests(TooManyRequests::new(
        policy.name_arc().clone(),
        violated,
        verdict.retry_after(),
        fields.into(),
    ))
}

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
    /// A rule refused it, or the store failed.
    Refused(Rejection, Box<QuotaOutcome>),
    /// Rule `i` needs the store's asynchronous check.
    Pending(usize),
}

impl<St: QuotaStore> Shared<St> {
    /// One rule's check inputs: its policy, key, cost and whether it consumes now.
    fn prepare(
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
                return Err(too_many(key.policy(), &verdict, self.headers));
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
            Counting::Every => tally.record(key.policy(), &verdict, self.headers),
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
            let (key, cost, consume) = self.prepare(i, parts, route, cost);
            let Some(result) = self.store_of(i).check_now(&key, cost, now, consume) else {
                return Pass::Pending(i);
            };
            if let Err(r) = self.settle(i, key, result, tally) {
                return Pass::Refused(r, Box::new(mem::take(&mut tally.outcome)));
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
            .map(|i| (i, self.prepare(i, parts, route, cost)))
            .collect();
        let results =
            join_all(checks.iter().map(|(i, (key, cost, consume))| {
                self.store_of(*i).check(key, *cost, now, *consume)
            }))
            .await;
        for ((i, (key, _, _)), result) in checks.into_iter().zip(results) {
            self.settle(i, key, result, tally)?;
        }
        Ok(())
    }

    pub(super) fn due<B>(&self, res: &Response<B>, tally: &mut Tally) -> Vec<(usize, QuotaKey)> {
        let first = tally.first_charge.take();
        first
            .into_iter()
            .chain(tally.charges.drain(..))
            .filter(|(i, _)| self.counts(*i, res))
            .collect()
    }

    /// The store rule `i` counts in.
    fn store_of(&self, i: usize) -> &St {
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
                // Nothing to add to the response: carry nothing (no allocation).
                let tally = (!tally.is_trivial()).then(|| Box::new(tally));
                let settle = (charge.is_some() || tally.is_some()).then(|| Settle {
                    charge,
                    tally,
                    shared: shared.clone(),
                });
                return ResponseFuture::inner(future, settle);
            }
            Pass::Refused(rejection, outcome) => {
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
            let due = shared.due(&res, &mut tally);
            let now = shared.clock.now();
            let charged = join_all(
                due.iter()
                    .map(|(i, key)| shared.store_of(*i).check(key, 1, now, true)),
            );
            for e in charged.await.into_iter().filter_map(Result::err) {
                tracing::warn!(layer = "quota", error = %Chain(&e), "quota store failed to count a response");
            }
            tally.apply(&mut res, shared.headers);
            Ok(res)
        }))
    }
}

/// Runs `futures` concurrently and returns their outputs in order.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
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
