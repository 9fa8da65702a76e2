//! What palisade tells operators: a `tracing` span per layer decision, and (feature `metrics`)
//! counters and a histogram through the [`metrics`](https://docs.rs/metrics) facade, for
//! whatever recorder the host installs (Prometheus, StatsD, OpenTelemetry...). Without a
//! subscriber or a recorder each call costs a load and a branch. No value recorded here is a
//! secret: labels are layer names and stable reason codes, span fields the principal's subject
//! and the outcome.
//!
//! The metric names, their labels and what they count are listed in `docs/observability.md`.

use tracing::Span;
use tracing::field::Empty;

use crate::principal::Principal;
use crate::rejection::Rejection;

/// Metric names, public so hosts can describe or filter them.
pub mod names {
    /// Counter: requests a layer let through. Label `layer`.
    pub const ALLOWED: &str = "palisade_requests_allowed_total";
    /// Counter: requests a layer refused. Labels `layer`, `reason` (the problem body's `code`)
    /// and `status`.
    pub const REFUSED: &str = "palisade_requests_refused_total";
    /// Histogram (seconds): how long a layer took to decide, its backend's wait included and the
    /// inner service excluded. Label `layer`.
    pub const DECISION_SECONDS: &str = "palisade_decision_seconds";
    /// Counter: a backend failed or timed out. Labels `backend` (`key_store`, `quota_store`,
    /// `redis`, `jwks`, `introspection`, `policy_source`) and `kind` (`error`, `timeout`).
    pub const BACKEND_ERRORS: &str = "palisade_backend_errors_total";
    /// Counter: quota decisions taken without the shared store. Label `mode` (`degraded`:
    /// local counters, `fail_open`: unchecked).
    pub const QUOTA_DEGRADED: &str = "palisade_quota_degraded_decisions_total";
    /// Counter: audit events by what became of them. Label `state` (`queued`, `written`,
    /// `dropped`, `failed`).
    pub const AUDIT_EVENTS: &str = "palisade_audit_events_total";
    /// Counter: JWKS fetches. Label `outcome` (`ok`, `error`).
    pub const JWKS_FETCHES: &str = "palisade_jwks_fetches_total";
    /// Counter: lookups in palisade's caches. Labels `cache` (`jwt`, `introspection`) and
    /// `result` (`hit`, `miss`).
    pub const CACHE_LOOKUPS: &str = "palisade_cache_lookups_total";
    /// Counter: responses that broke their operation's declaration (response validation).
    /// Label `action` (`reported`, `stripped`, `refused`).
    pub const RESPONSE_DIVERGENCES: &str = "palisade_response_divergences_total";
}

/// One layer's decision about one request: a `DEBUG` span named `palisade.decision` with the
/// layer, and once decided the outcome, reason and subject as fields, open from the start of
/// the decision until it is taken (a subscriber sees where time went); with the `metrics`
/// feature also the decision counters and histogram.
pub(crate) struct DecisionTrace {
    layer: &'static str,
    span: Span,
    #[cfg(feature = "metrics")]
    start: tokio::time::Instant,
}

impl DecisionTrace {
    pub(crate) fn start(layer: &'static str) -> Self {
        // Checked first so that a disabled span is `Span::none()`: with `tracing`'s `log`
        // feature on (some dependency may turn it on) and no subscriber set, a span built by the
        // macro would still consult the `log` crate on creation, entry, exit and drop.
        let span = if tracing::enabled!(target: "palisade", tracing::Level::DEBUG) {
            tracing::debug_span!(
                target: "palisade",
                "palisade.decision",
                layer,
                outcome = Empty,
                reason = Empty,
                subject = Empty,
            )
        } else {
            Span::none()
        };
        Self {
            layer,
            span,
            #[cfg(feature = "metrics")]
            start: tokio::time::Instant::now(),
        }
    }

    /// The span, to enter while deciding (or to instrument a decision's future with).
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    pub(crate) fn allowed(self, principal: Option<&Principal>) {
        if !self.span.is_disabled() {
            self.span.record("outcome", "allowed");
            if let Some(p) = principal {
                self.span.record("subject", p.subject());
            }
        }
        #[cfg(feature = "metrics")]
        {
            count(keys::allowed(self.layer), 1);
            self.took();
        }
    }

    pub(crate) fn refused(self, rejection: &Rejection) {
        if !self.span.is_disabled() {
            self.span.record("outcome", "refused");
            self.span.record("reason", rejection.reason());
        }
        #[cfg(feature = "metrics")]
        {
            metrics::counter!(
                names::REFUSED,
                "layer" => self.layer,
                "reason" => rejection.reason(),
                "status" => status_label(rejection.status()),
            )
            .increment(1);
            self.took();
        }
        #[cfg(not(feature = "metrics"))]
        let _ = self.layer;
    }

    #[cfg(feature = "metrics")]
    fn took(&self) {
        if let Some(key) = keys::decision_seconds(self.layer) {
            let seconds = self.start.elapsed().as_secs_f64();
            metrics::with_recorder(|r| {
                r.register_histogram(key, &keys::METADATA).record(seconds);
            });
        }
    }
}

#[cfg(feature = "metrics")]
fn status_label(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

/// Keys with a closed set of labels are statics: recording one allocates nothing (a key built
/// from dynamic parts would allocate its label list on every call, recorder or not).
#[cfg(feature = "metrics")]
mod keys {
    use metrics::{Key, Label, Level, Metadata};

    pub(super) static METADATA: Metadata<'static> =
        Metadata::new("palisade", Level::INFO, Some(module_path!()));

    macro_rules! key {
        ($name:expr $(, $k:literal => $v:literal)*) => {{
            static LABELS: &[Label] = &[$(Label::from_static_parts($k, $v)),*];
            static KEY: Key = Key::from_static_parts($name, LABELS);
            &KEY
        }};
    }

    macro_rules! by_layer {
        ($fn:ident, $name:expr) => {
            pub(super) fn $fn(layer: &str) -> Option<&'static Key> {
                Some(match layer {
                    "quota" => key!($name, "layer" => "quota"),
                    "authn" => key!($name, "layer" => "authn"),
                    "authz" => key!($name, "layer" => "authz"),
                    "validate" => key!($name, "layer" => "validate"),
                    _ => return None,
                })
            }
        };
    }

    by_layer!(allowed, super::names::ALLOWED);
    by_layer!(decision_seconds, super::names::DECISION_SECONDS);

    pub(super) fn backend_error(backend: &str, timeout: bool) -> Option<&'static Key> {
        use super::names::BACKEND_ERRORS as N;
        Some(match (backend, timeout) {
            ("key_store", false) => key!(N, "backend" => "key_store", "kind" => "error"),
            ("key_store", true) => key!(N, "backend" => "key_store", "kind" => "timeout"),
            ("quota_store", _) => key!(N, "backend" => "quota_store", "kind" => "error"),
            ("redis", _) => key!(N, "backend" => "redis", "kind" => "error"),
            ("jwks", _) => key!(N, "backend" => "jwks", "kind" => "error"),
            ("introspection", false) => key!(N, "backend" => "introspection", "kind" => "error"),
            ("introspection", true) => key!(N, "backend" => "introspection", "kind" => "timeout"),
            ("policy_source", _) => key!(N, "backend" => "policy_source", "kind" => "error"),
            ("dpop_replay", false) => key!(N, "backend" => "dpop_replay", "kind" => "error"),
            ("dpop_replay", true) => key!(N, "backend" => "dpop_replay", "kind" => "timeout"),
            _ => return None,
        })
    }

    pub(super) fn quota_degraded(mode: &str) -> Option<&'static Key> {
        use super::names::QUOTA_DEGRADED as N;
        Some(match mode {
            "degraded" => key!(N, "mode" => "degraded"),
            "fail_open" => key!(N, "mode" => "fail_open"),
            _ => return None,
        })
    }

    pub(super) fn audit_events(state: &str) -> Option<&'static Key> {
        use super::names::AUDIT_EVENTS as N;
        Some(match state {
            "queued" => key!(N, "state" => "queued"),
            "written" => key!(N, "state" => "written"),
            "dropped" => key!(N, "state" => "dropped"),
            "failed" => key!(N, "state" => "failed"),
            _ => return None,
        })
    }

    pub(super) fn jwks_fetch(ok: bool) -> &'static Key {
        use super::names::JWKS_FETCHES as N;
        if ok {
            key!(N, "outcome" => "ok")
        } else {
            key!(N, "outcome" => "error")
        }
    }

    pub(super) fn response_divergence(action: &str) -> Option<&'static Key> {
        use super::names::RESPONSE_DIVERGENCES as N;
        Some(match action {
            "reported" => key!(N, "action" => "reported"),
            "stripped" => key!(N, "action" => "stripped"),
            "refused" => key!(N, "action" => "refused"),
            _ => return None,
        })
    }

    pub(super) fn cache_lookup(cache: &str, hit: bool) -> Option<&'static Key> {
        use super::names::CACHE_LOOKUPS as N;
        Some(match (cache, hit) {
            ("jwt", true) => key!(N, "cache" => "jwt", "result" => "hit"),
            ("jwt", false) => key!(N, "cache" => "jwt", "result" => "miss"),
            ("introspection", true) => key!(N, "cache" => "introspection", "result" => "hit"),
            ("introspection", false) => key!(N, "cache" => "introspection", "result" => "miss"),
            ("dpop_headers", true) => key!(N, "cache" => "dpop_headers", "result" => "hit"),
            ("dpop_headers", false) => key!(N, "cache" => "dpop_headers", "result" => "miss"),
            _ => return None,
        })
    }
}

#[cfg(feature = "metrics")]
fn count(key: Option<&'static metrics::Key>, n: u64) {
    if let Some(key) = key {
        metrics::with_recorder(|r| r.register_counter(key, &keys::METADATA).increment(n));
    }
}

/// A backend failed (`timeout` false) or did not answer in time.
#[inline]
pub(crate) fn backend_error(backend: &'static str, kind: &'static str) {
    #[cfg(feature = "metrics")]
    count(keys::backend_error(backend, kind == "timeout"), 1);
    #[cfg(not(feature = "metrics"))]
    let _ = (backend, kind);
}

/// A quota decision taken without the shared store (`mode` is the [`QuotaMode`] code).
///
/// [`QuotaMode`]: crate::outcome::QuotaMode
#[inline]
pub(crate) fn quota_degraded(mode: &'static str) {
    #[cfg(feature = "metrics")]
    count(keys::quota_degraded(mode), 1);
    #[cfg(not(feature = "metrics"))]
    let _ = mode;
}

/// `n` audit events reached `state`.
#[inline]
pub(crate) fn audit_events(state: &'static str, n: u64) {
    #[cfg(feature = "metrics")]
    count(keys::audit_events(state), n);
    #[cfg(not(feature = "metrics"))]
    let _ = (state, n);
}

/// A JWKS fetch ended (`ok` or `error`).
#[inline]
#[cfg_attr(not(feature = "jwt"), allow(dead_code))]
pub(crate) fn jwks_fetch(ok: bool) {
    #[cfg(feature = "metrics")]
    count(Some(keys::jwks_fetch(ok)), 1);
    #[cfg(not(feature = "metrics"))]
    let _ = ok;
}

/// A lookup in one of palisade's caches.
#[inline]
#[cfg_attr(not(feature = "_fetch"), allow(dead_code))]
pub(crate) fn cache_lookup(cache: &'static str, hit: bool) {
    #[cfg(feature = "metrics")]
    count(keys::cache_lookup(cache, hit), 1);
    #[cfg(not(feature = "metrics"))]
    let _ = (cache, hit);
}

/// A response diverged from its operation's declaration (`action`: `reported`, `stripped`,
/// `refused`).
#[inline]
pub(crate) fn response_divergence(action: &'static str) {
    #[cfg(feature = "metrics")]
    count(keys::response_divergence(action), 1);
    #[cfg(not(feature = "metrics"))]
    let _ = action;
}
