#![doc = include_str!("../../docs/observability.md")]

mod request_id;
mod trace_context;

use http::{Extensions, HeaderMap, HeaderValue};
use tracing::Span;
use tracing::field::Empty;

pub use request_id::{MakeRequestId, RequestId, UuidV4, X_REQUEST_ID};
pub(crate) use request_id::{acceptable as acceptable_request_id, incoming as incoming_request_id};
pub use trace_context::{TRACEPARENT, TraceParent};

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
    /// Counter: JSON bodies the validation layer checked, by how. Label `path` (`fused`:
    /// checked while the handler's type was built, in one pass; `tape`: parsed, then checked;
    /// `gave_up`: the fused pass gave up, and the tape path decided).
    pub const VALIDATION_BODIES: &str = "palisade_validation_bodies_total";

    /// Every name above: what a dashboard or an alert set should cover
    /// (`docs/grafana-dashboard.json` does, and a test checks it).
    pub const ALL: &[&str] = &[
        ALLOWED,
        REFUSED,
        DECISION_SECONDS,
        BACKEND_ERRORS,
        QUOTA_DEGRADED,
        AUDIT_EVENTS,
        JWKS_FETCHES,
        CACHE_LOOKUPS,
        RESPONSE_DIVERGENCES,
        VALIDATION_BODIES,
    ];
}

/// Histogram buckets (seconds) that fit [`names::DECISION_SECONDS`]: from a decision in memory
/// (tens of microseconds) to one that waited for a backend up to its timeout. Give them to the
/// exporter (`PrometheusBuilder::set_buckets_for_metric`) so that quantiles can be aggregated
/// across instances, as `docs/grafana-dashboard.json` does.
pub const DECISION_SECONDS_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0,
];

/// What a decision span names its request by: the request id and the trace context, read from
/// the request only when `palisade`'s `DEBUG` spans are enabled. For a span opened after the
/// request has gone on (a response check), captured before.
#[derive(Clone, Default)]
pub(crate) struct RequestNames {
    id: Option<HeaderValue>,
    trace: Option<TraceParent>,
}

impl RequestNames {
    pub(crate) fn of(headers: &HeaderMap, ext: &Extensions) -> Self {
        if !spans_enabled() {
            return Self::default();
        }
        Self {
            id: request_id::incoming(headers, ext, &X_REQUEST_ID),
            trace: TraceParent::from_headers(headers),
        }
    }
}

fn spans_enabled() -> bool {
    tracing::enabled!(target: "palisade", tracing::Level::DEBUG)
}

/// One layer's decision about one request: a `DEBUG` span named `palisade.decision` with the
/// layer, the request id and trace context, and once decided the outcome, reason and subject
/// as fields, open from the start of
/// the decision until it is taken (a subscriber sees where time went); with the `metrics`
/// feature also the decision counters and histogram.
pub(crate) struct DecisionTrace {
    layer: &'static str,
    span: Span,
    #[cfg(feature = "metrics")]
    start: tokio::time::Instant,
}

impl DecisionTrace {
    /// Starts the decision of `layer` about the request of these `headers` and `extensions`.
    pub(crate) fn start(layer: &'static str, headers: &HeaderMap, extensions: &Extensions) -> Self {
        Self::start_for(layer, &RequestNames::of(headers, extensions))
    }

    /// Starts a decision about a request whose names were captured before.
    pub(crate) fn start_for(layer: &'static str, names: &RequestNames) -> Self {
        // Checked first so that a disabled span is `Span::none()`: with `tracing`'s `log`
        // feature on (some dependency may turn it on) and no subscriber set, a span built by the
        // macro would still consult the `log` crate on creation, entry, exit and drop.
        let span = if spans_enabled() {
            tracing::debug_span!(
                target: "palisade",
                "palisade.decision",
                layer,
                request_id = names.id.as_ref().and_then(|v| v.to_str().ok()),
                trace_id = names.trace.as_ref().map(TraceParent::trace_id),
                parent_id = names.trace.as_ref().map(TraceParent::parent_id),
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

    pub(super) fn validation_body(path: &str) -> Option<&'static Key> {
        use super::names::VALIDATION_BODIES as N;
        Some(match path {
            "fused" => key!(N, "path" => "fused"),
            "tape" => key!(N, "path" => "tape"),
            "gave_up" => key!(N, "path" => "gave_up"),
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

/// The validation layer checked a JSON body by `path` (`fused`, `tape`, `gave_up`).
#[inline]
pub(crate) fn validation_body(path: &'static str) {
    #[cfg(feature = "metrics")]
    count(keys::validation_body(path), 1);
    #[cfg(not(feature = "metrics"))]
    let _ = path;
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
