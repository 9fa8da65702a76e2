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
    /// The request id: the client's `x-request-id` when well-formed, else generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
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

/// One limit's state, as the response's `RateLimit` field told the client.
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

/// The items of one `RateLimit` field (draft-ietf-httpapi-ratelimit-headers-10 §3.1: a list of
/// `"policy";r=remaining;t=seconds`), skipping any item that does not read.
pub(crate) fn parse_ratelimit(field: &str, out: &mut Vec<QuotaLimit>) {
    for item in field.split(',') {
        let mut parts = item.trim().split(';');
        let Some(name) = parts
            .next()
            .and_then(|n| n.strip_prefix('"')?.strip_suffix('"'))
        else {
            continue;
        };
        let (mut remaining, mut reset) = (None, None);
        for p in parts {
            match p.trim().split_once('=') {
                Some(("r", v)) => remaining = v.parse().ok(),
                Some(("t", v)) => reset = v.parse().ok(),
                _ => {}
            }
        }
        if let (Some(remaining), Some(reset_s)) = (remaining, reset) {
            out.push(QuotaLimit {
                policy: name.to_owned(),
                remaining,
                reset_s,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ratelimit_items_are_read_and_bad_ones_skipped() {
        let mut out = Vec::new();
        parse_ratelimit(
            r#""per-ip";r=39;t=1, "per-user";r=0;t=3600, bad;r=1;t=1, "x";r=-1;t=2"#,
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                QuotaLimit {
                    policy: "per-ip".into(),
                    remaining: 39,
                    reset_s: 1
                },
                QuotaLimit {
                    policy: "per-user".into(),
                    remaining: 0,
                    reset_s: 3600
                },
            ]
        );
    }

    proptest! {
        #[test]
        fn ratelimit_fields_as_the_quota_layer_writes_them_read_back(
            items in proptest::collection::vec(("[a-z0-9-]{1,12}", any::<u64>(), any::<u64>()), 0..5)
        ) {
            let field = items
                .iter()
                .map(|(n, r, t)| format!("\"{n}\";r={r};t={t}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut out = Vec::new();
            parse_ratelimit(&field, &mut out);
            let read: Vec<(String, u64, u64)> =
                out.into_iter().map(|l| (l.policy, l.remaining, l.reset_s)).collect();
            prop_assert_eq!(read, items);
        }

        #[test]
        fn any_field_reads_without_panic(field in ".{0,80}") {
            parse_ratelimit(&field, &mut Vec::new());
        }
    }
}
