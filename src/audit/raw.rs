//! [`RawEvent`]: what the request path captures, and its formatting into an [`AuditEvent`]
//! in the queue's task.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};

use super::AuditFields;
#[cfg(test)]
use super::event::{
    AuditEvent, AuditPrincipal, AuthzShadow, EventKind, Outcome, QuotaLimit, QuotaState,
    ResponseCheckState, ResponseError, SCHEMA_VERSION,
};
#[cfg(test)]
use super::redact::{REDACTED, Redaction};
#[cfg(test)]
use crate::clock::Timestamp;
use crate::outcome::{Decision, QuotaOutcome, ResponseDivergence, ShadowDivergence};
#[cfg(test)]
use crate::principal::AuthMethod;
use crate::principal::Principal;
use crate::rejection::Rejection;

/// What the request path captures: cheap clones only (reference counts, small copies).
/// Formatting, redaction and serialization happen in the queue's task.
pub(crate) struct RawEvent {
    pub(crate) seq: u64,
    pub(super) request: RawRequest,
    pub(super) latency: Duration,
    pub(super) end: End,
}

/// The request's part of a [`RawEvent`], held by the response future until the response is
/// known. Kept apart from the outcomes so that the future (which the router boxes) stays small.
pub(super) struct RawRequest {
    /// When the request arrived; the queue's task turns it into wall time (one clock read per
    /// batch instead of one per request).
    pub(super) start: Instant,
    pub(super) request_id: HeaderValue,
    pub(super) client_ip: Option<IpAddr>,
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) route: Option<RouteName>,
    /// The request's W3C `traceparent`, when it sent a valid one.
    pub(super) trace: Option<crate::telemetry::TraceParent>,
    pub(super) user_agent: Option<HeaderValue>,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
}

// The common case is the large variant: boxing it would add an allocation per request.
#[allow(clippy::large_enum_variant)]
#[cfg_attr(test, derive(Clone))]
pub(super) enum End {
    Response {
        status: StatusCode,
        principal: Option<Principal>,
        rejection: Option<Rejection>,
        decision: Option<Decision>,
        divergence: Option<ShadowDivergence>,
        response: Option<ResponseDivergence>,
        quota: Option<QuotaOutcome>,
        fields: Option<AuditFields>,
    },
    Error,
    Cancelled,
}

/// The route template the router matched, kept as the router's own reference-counted value
/// (axum's `MatchedPath`); without axum there is none.
#[cfg(feature = "axum")]
pub(super) type RouteName = axum::extract::MatchedPath;
#[cfg(not(feature = "axum"))]
pub(super) type RouteName = std::convert::Infallible;

pub(super) fn route_of(ext: &http::Extensions) -> Option<RouteName> {
    #[cfg(feature = "axum")]
    {
        ext.get::<axum::extract::MatchedPath>().cloned()
    }
    #[cfg(not(feature = "axum"))]
    {
        let _ = ext;
        None
    }
}

pub(super) fn route_str(r: &RouteName) -> &str {
    #[cfg(feature = "axum")]
    {
        r.as_str()
    }
    #[cfg(not(feature = "axum"))]
    {
        match *r {}
    }
}

#[cfg(test)]
/// The caller, as audit records it: never a key, a token or a hash.
fn audit_principal(p: &Principal) -> AuditPrincipal {
    let (credential, key_id, issuer) = match p.method() {
        AuthMethod::ApiKey { key_id } => ("api_key", Some(key_id.to_string()), None),
        AuthMethod::Bearer { issuer } => ("bearer", None, Some(issuer.to_string())),
        _ => ("anonymous", None, None),
    };
    AuditPrincipal {
        subject: p.subject().to_owned(),
        credential: credential.to_owned(),
        key_id,
        issuer,
        confirmation: p.confirmation().map(|c| c.as_str().to_owned()),
    }
}

#[cfg(test)]
/// How a request that got a response ended: refused by a layer (and which rule or policy
/// decided), or allowed (by which rule).
fn outcome_of(rejection: Option<&Rejection>, decision: Option<&Decision>) -> Outcome {
    match rejection {
        Some(r) => Outcome::Refused {
            layer: r.layer().to_owned(),
            reason: r.reason().to_owned(),
            rule: match r {
                Rejection::Forbidden(f) => f.rule().map(|x| x.description().to_owned()),
                Rejection::TooManyRequests(t) => Some(format!("quota policy {}", t.policy())),
                _ => None,
            },
            cause: match r {
                Rejection::Unavailable(u) => u.cause().map(str::to_owned),
                Rejection::Transport(t) => t.credential().map(str::to_owned),
                _ => None,
            },
        },
        None => Outcome::Allowed {
            rule: decision
                .and_then(Decision::rule)
                .map(|r| r.description().to_owned()),
        },
    }
}

#[cfg(test)]
/// The audit form of a shadow policy's disagreement.
fn response_check(d: &ResponseDivergence) -> ResponseCheckState {
    ResponseCheckState {
        mode: d.mode.to_owned(),
        action: d.action.to_owned(),
        status: d.status,
        errors: d
            .errors
            .iter()
            .map(|v| ResponseError {
                pointer: v.pointer.to_string(),
                keyword: v.keyword.to_string(),
            })
            .collect(),
    }
}

#[cfg(test)]
fn authz_shadow(d: &ShadowDivergence) -> AuthzShadow {
    AuthzShadow {
        enforced: d.enforced.outcome().code().to_owned(),
        enforced_rule: d.enforced.rule().map(|r| r.description().to_owned()),
        shadow: d.shadow.outcome().code().to_owned(),
        shadow_rule: d.shadow.rule().map(|r| r.description().to_owned()),
    }
}

#[cfg(test)]
/// The audit form of the quota stages' typed outcome.
fn quota_state(q: &QuotaOutcome) -> QuotaState {
    QuotaState {
        mode: q.mode().code().to_owned(),
        shadow_policy: q.shadow().map(|s| s.policy.to_string()),
        limits: q
            .limits()
            .iter()
            .map(|l| QuotaLimit {
                policy: l.item.to_string(),
                remaining: l.remaining,
                reset_s: l.reset_secs(),
            })
            .collect(),
    }
}

#[cfg(test)]
fn truncate(s: &str, max: usize) -> String {
    truncate_chars(s, max).to_owned()
}

/// `s` cut to at most `max` characters.
pub(super) fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
impl RawRequest {
    /// The recorded headers, secret ones replaced by [`REDACTED`], long ones cut.
    fn headers_redacted(
        &self,
        redaction: &Redaction,
    ) -> std::collections::BTreeMap<String, String> {
        self.headers
            .iter()
            .map(|(k, v)| {
                let value = if redaction.secret_headers.contains(k) {
                    REDACTED.to_owned()
                } else {
                    truncate(&String::from_utf8_lossy(v.as_bytes()), 256)
                };
                (k.as_str().to_owned(), value)
            })
            .collect()
    }
}

#[cfg(test)]
impl RawEvent {
    /// The event, formatted and redacted: the model the line written by `write_json` is held
    /// to (the tests compare them byte for byte). `anchor` is a reading of the
    /// wall clock and the monotonic one taken together, for this batch.
    pub(crate) fn into_event(
        self,
        redaction: &Redaction,
        anchor: (Timestamp, Instant),
    ) -> AuditEvent {
        let (wall, mono) = anchor;
        let ago = u64::try_from(
            mono.saturating_duration_since(self.request.start)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        let time = Timestamp::from_unix_nanos(wall.as_unix_nanos().saturating_sub(ago));
        let mut event = AuditEvent {
            version: SCHEMA_VERSION,
            kind: EventKind::Request,
            seq: self.seq,
            time: time.to_string(),
            request_id: self.request.request_id.to_str().ok().map(str::to_owned),
            trace_id: self.request.trace.map(|t| t.trace_id().to_owned()),
            parent_id: self.request.trace.map(|t| t.parent_id().to_owned()),
            principal: None,
            tenant: None,
            client_ip: self.request.client_ip.map(|ip| ip.to_string()),
            method: Some(self.request.method.to_string()),
            route: self.request.route.as_ref().map(|r| route_str(r).to_owned()),
            path: Some(redaction.path(self.request.uri.path(), self.request.uri.query())),
            status: None,
            outcome: None,
            authz_shadow: None,
            response_check: None,
            quota: None,
            latency_us: Some(u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX)),
            user_agent: self
                .request
                .user_agent
                .as_ref()
                .map(|v| truncate(&String::from_utf8_lossy(v.as_bytes()), 256)),
            headers: self.request.headers_redacted(redaction),
            fields: Default::default(),
            dropped: None,
            prev: None,
            hash: None,
        };
        match self.end {
            End::Error => event.outcome = Some(Outcome::Error),
            End::Cancelled => event.outcome = Some(Outcome::Cancelled),
            End::Response {
                status,
                principal,
                rejection,
                decision,
                divergence,
                response,
                quota,
                fields,
            } => {
                event.status = Some(status.as_u16());
                if let Some(p) = &principal {
                    event.tenant = p.tenant().map(str::to_owned);
                    event.principal = Some(audit_principal(p));
                }
                event.outcome = Some(outcome_of(rejection.as_ref(), decision.as_ref()));
                event.authz_shadow = divergence.as_ref().map(authz_shadow);
                event.response_check = response.as_ref().map(response_check);
                event.quota = quota.filter(|q| !q.is_empty()).as_ref().map(quota_state);
                if let Some(f) = fields {
                    event.fields = f.0.into_iter().collect();
                }
            }
        }
        event
    }
}
