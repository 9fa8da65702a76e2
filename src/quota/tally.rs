//! [`Tally`]: what the rules said about one request, turned into the typed outcome, the
//! `RateLimit` / `RateLimit-Policy` fields and, for a refusal, the 429.

use std::mem;
use std::sync::Arc;

use http::Response;
use http::header::HeaderValue;

use super::layer::RateLimitHeaders;
use super::limit::{LimitState, Verdict};
use super::policy::{QuotaKey, QuotaPolicy};
use super::refund::Taken;
use super::store::QuotaMode;
use crate::outcome::{LimitOutcome, QuotaOutcome};
use crate::rejection::ratelimit::{RATELIMIT, RATELIMIT_POLICY, legacy_fields, write_item};
use crate::rejection::{QuotaProblem, Rejection, TooManyRequests};

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
    /// The rules whose check consumed units, to give back if another refuses.
    pub(super) taken: Taken,
}

impl Tally {
    pub(super) const fn new() -> Self {
        Self {
            ratelimit: String::new(),
            policies: [const { None }; INLINE_POLICIES],
            more_policies: Vec::new(),
            outcome: QuotaOutcome::new(),
            wanted: false,
            first_charge: None,
            charges: Vec::new(),
            taken: Taken::new_const(),
        }
    }

    pub(super) fn record(&mut self, key: &QuotaKey, verdict: &Verdict, headers: RateLimitHeaders) {
        let policy = key.policy();
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
        let pk = headers.partition_keys.then(|| partition_key(key));
        write_items(&mut self.ratelimit, policy, verdict.states(), pk.as_ref());
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
        // A handler's response whose headers already fill `http`'s map (32,768 entries) goes out
        // without these rather than panic.
        let h = res.headers_mut();
        for p in self.policies.iter_mut().filter_map(Option::take) {
            let _ = h.try_append(&RATELIMIT_POLICY, p);
        }
        for p in self.more_policies.drain(..) {
            let _ = h.try_append(&RATELIMIT_POLICY, p);
        }
        if let Ok(v) = HeaderValue::try_from(mem::take(&mut self.ratelimit)) {
            let _ = h.try_append(&RATELIMIT, v);
        }
        if headers.legacy
            && let Some((cap, remaining, reset)) = tightest
        {
            for (name, value) in legacy_fields(cap, remaining, reset) {
                let _ = h.try_insert(name, value);
            }
        }
    }
}

/// Adds each limit's state of `verdict` to `outcome`.
pub(super) fn record_limits(outcome: &mut QuotaOutcome, policy: &QuotaPolicy, verdict: &Verdict) {
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

/// Appends the `RateLimit` items of `policy`'s limits, with the partition key `pk` if given.
fn write_items(out: &mut String, policy: &QuotaPolicy, states: &[LimitState], pk: Option<&String>) {
    for (item, state) in policy.item_names().zip(states) {
        write_item(out, item, state.remaining(), state.reset());
        if let Some(pk) = pk {
            out.push_str(";pk=");
            out.push_str(pk);
        }
    }
}

/// The partition key of `key` as a Structured Field byte sequence: `:` base64 of the first 12
/// bytes of SHA-256 of `<policy>:<key kind>:<identity>` `:` (RateLimit fields draft-12 §4.1.3,
/// §6.1: documented, so a client can predict it).
pub(super) fn partition_key(key: &QuotaKey) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    use std::fmt::Write as _;
    struct Feed(sha2::Sha256);
    impl std::fmt::Write for Feed {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.update(s.as_bytes());
            Ok(())
        }
    }
    let mut feed = Feed(sha2::Sha256::new());
    let _ = write!(feed, "{key}");
    let digest = feed.0.finalize();
    let mut out = String::with_capacity(18);
    out.push(':');
    base64::engine::general_purpose::STANDARD.encode_string(&digest[..12], &mut out);
    out.push(':');
    out
}

pub(super) fn too_many(
    key: &QuotaKey,
    verdict: &Verdict,
    headers: RateLimitHeaders,
    problem: QuotaProblem,
) -> Rejection {
    let policy = key.policy();
    let violated: Arc<[Box<str>]> = policy
        .item_names()
        .zip(verdict.states())
        .filter(|(_, s)| s.exceeded())
        .map(|(n, _)| n.into())
        .collect();
    let mut items = String::new();
    let pk = headers.partition_keys.then(|| partition_key(key));
    write_items(&mut items, policy, verdict.states(), pk.as_ref());
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
    Rejection::TooManyRequests(
        TooManyRequests::new(
            policy.name_arc().clone(),
            violated,
            verdict.retry_after(),
            fields.into(),
        )
        .with_problem(problem),
    )
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use sha2::Digest as _;

    use super::*;
    use crate::quota::Limit;

    #[test]
    fn ratelimit_draft12_6_1_the_partition_key_is_the_documented_hash() {
        let key = QuotaKey::custom(QuotaPolicy::new("free", [Limit::per_second(1)]), "alice");
        let digest = sha2::Sha256::digest(b"free:custom:alice");
        let expected = base64::engine::general_purpose::STANDARD.encode(&digest[..12]);
        assert_eq!(partition_key(&key), format!(":{expected}:"));
        // A Structured Field byte sequence: 12 bytes are 16 base64 characters, no padding.
        assert_eq!(partition_key(&key).len(), 18);
    }

    #[test]
    fn the_file_turns_partition_keys_on_by_name() {
        let on: RateLimitHeaders = serde_json::from_str(r#"{"partition_key": true}"#).unwrap();
        assert_eq!(on, RateLimitHeaders::new().with_partition_keys());
        let off: RateLimitHeaders = serde_json::from_str("{}").unwrap();
        assert_eq!(off, RateLimitHeaders::new());
        assert!(serde_json::from_str::<RateLimitHeaders>(r#"{"partition_keys": true}"#).is_err());
    }
}
