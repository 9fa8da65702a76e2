//! [`AuditEvent`]: the stable JSON record of one request (schema version 1, documented in
//! `docs/audit.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The schema version of [`AuditEvent`]'s JSON form.
pub const SCHEMA_VERSION: u32 = 1;

/// One audit record: a request and how it ended, or a report of lost events.
///
/// Field order is the JSON order; `hash` is always last, so a verifier can recompute it from
/// the line's bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// `request`, or `loss` for a report of events dropped because the queue was full.
    pub kind: EventKind,
    /// Per-process sequence number: consecutive, so a gap shows a loss.
    pub seq: u64,
    /// When the request arrived (RFC 3339, UTC).
    pub time: String,
    /// The request id: the one the request came with (the client's `x-request-id`, or an
    /// outer tower-http `SetRequestIdLayer`'s) when well-formed, else generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The W3C trace id of the request's valid `traceparent` (32 lowercase hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The caller's span id from the request's valid `traceparent` (its `parent-id`, 16
    /// lowercase hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Who called (never the credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<AuditPrincipal>,
    /// The caller's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The client address (a forwarded one only from a trusted proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// The method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The route template (`/v1/orders/{id}`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The path, with query values redacted unless allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The response status (absent when the client went away first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How the request ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// A shadow authorization policy that disagreed with the enforced one on this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authz_shadow: Option<AuthzShadow>,
    /// A response that broke what its operation declares (response validation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_check: Option<ResponseCheckState>,
    /// Quota state, when a quota stage had something to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaState>,
    /// Microseconds from arrival to the response head (or to the client leaving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// The `User-Agent`, at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Headers the host asked to record (sensitive ones redacted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Fields the host added (the [`AuditFields`](super::AuditFields) response extension).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Value>,
    /// For `loss` events: how many events were dropped since the last report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    /// Tamper evidence: the previous event's `hash` (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// Tamper evidence: HMAC-SHA256 (hex) over this line without `hash`, keyed by the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A request.
    Request,
    /// Events were dropped (the queue was full); `dropped` says how many.
    Loss,
}

/// The caller, as audit records it: never a key, a token or a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditPrincipal {
    /// The subject.
    pub subject: String,
    /// `api_key`, `bearer` or `anonymous`.
    pub credential: String,
    /// The API key id (public: it names the key, it proves nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The token issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// What the token is bound to and proved on the request: `dpop` (RFC 9449) or
    /// `client_certificate` (RFC 8705); absent for an unbound token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<String>,
}

/// A shadow authorization policy's disagreement with the enforced one (never enforced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthzShadow {
    /// What the enforced policy decided (`granted`, `missing_role`, `no_matching_rule`...).
    pub enforced: String,
    /// The enforced policy's rule that decided, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_rule: Option<String>,
    /// What the shadow policy would have decided.
    pub shadow: String,
    /// The shadow policy's rule that would have decided, when one would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_rule: Option<String>,
}

/// A response that broke what its operation declares, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponseCheckState {
    /// The check's mode: `shadow`, `strip` or `refuse`.
    pub mode: String,
    /// `reported` (sent as it was), `stripped` (undeclared properties removed) or `refused`
    /// (replaced by a 500).
    pub action: String,
    /// The handler's status.
    pub status: u16,
    /// What diverged: pointer into the response body and keyword (`undeclared`, `type`,
    /// `status`...), never a value.
    pub errors: Vec<ResponseError>,
}

/// One divergence of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponseError {
    /// Where, as a URI-fragment JSON pointer (`#/password_hash`).
    pub pointer: String,
    /// The keyword or check.
    pub keyword: String,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Every layer let it through and the service answered.
    Allowed {
        /// The authorization rule that allowed it, when one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
    },
    /// A layer refused it.
    Refused {
        /// `authn`, `authz`, `quota`, `validate`...
        layer: String,
        /// The precise reason code (`wrong_secret`, `schema_violation`...).
        reason: String,
        /// The rule that decided, when one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        /// What failed, in the host's own words, when a backend outage refused it (an
        /// authorizer's `Refusal::Unavailable` cause, such as `orders_db`); for a credential
        /// refused over plain HTTP, which kind it was (`api_key`, `authorization`,
        /// `credential_header`), so the exposed credential can be found and rotated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<String>,
    },
    /// The inner service failed (no response).
    Error,
    /// The client went away before the response.
    Cancelled,
}

/// Quota state worth recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QuotaState {
    /// `enforced`, `degraded` (local share while the shared store is down) or `fail_open`.
    pub mode: String,
    /// The policy of a shadow rule that would have refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_policy: Option<String>,
    /// Each limit the response's `RateLimit` fields reported: what remained of it after this
    /// request, and when more comes (only when the quota layer sends the fields, which it does
    /// on every response by default and on refusals always).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<QuotaLimit>,
}

/// One limit's state, as the quota layer told the client (whether or not it sent the
/// `RateLimit` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QuotaLimit {
    /// The item's name (the policy's, and the limit's when a policy has several).
    pub policy: String,
    /// Requests (or cost units) remaining.
    pub remaining: u64,
    /// Seconds until more quota is available.
    pub reset_s: u64,
}
