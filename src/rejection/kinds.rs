//! The details each kind of [`Rejection`](super::Rejection) carries.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use serde::Serialize;

use super::challenge;
use super::reasons::{AuthnReason, InvalidReason, Scheme, UnavailableReason};

/// An authentication failure: the reason and the challenges for `WWW-Authenticate`.
#[derive(Debug, Clone)]
pub struct AuthnFailure {
    pub(super) reason: AuthnReason,
    pub(super) challenges: Arc<[HeaderValue]>,
    pub(super) dpop_nonce: Option<HeaderValue>,
}

impl AuthnFailure {
    /// A failure for `reason`, sending `challenges` in `WWW-Authenticate`.
    #[must_use]
    pub fn new(reason: AuthnReason, challenges: Arc<[HeaderValue]>) -> Self {
        Self {
            reason,
            challenges,
            dpop_nonce: None,
        }
    }

    /// Sends `nonce` in `DPoP-Nonce` with the refusal (RFC 9449 §9: the nonce the client's
    /// next proof must carry).
    #[must_use]
    pub fn with_dpop_nonce(mut self, nonce: HeaderValue) -> Self {
        self.dpop_nonce = Some(nonce);
        self
    }

    /// The `DPoP-Nonce` sent with the refusal, if any.
    #[must_use]
    pub fn dpop_nonce(&self) -> Option<&HeaderValue> {
        self.dpop_nonce.as_ref()
    }

    /// `WWW-Authenticate` (each challenge) and `DPoP-Nonce` (RFC 9449 §9: the nonce the next
    /// proof must carry).
    pub(super) fn write_headers(&self, headers: &mut http::HeaderMap) {
        for c in self.challenges.iter() {
            headers.append(http::header::WWW_AUTHENTICATE, c.clone());
        }
        if let Some(nonce) = &self.dpop_nonce {
            headers.insert(http::HeaderName::from_static("dpop-nonce"), nonce.clone());
        }
    }

    /// The same failure with other challenges.
    #[must_use]
    pub(crate) fn with_challenges(mut self, challenges: Arc<[HeaderValue]>) -> Self {
        self.challenges = challenges;
        self
    }

    /// The precise reason.
    #[must_use]
    pub fn reason(&self) -> AuthnReason {
        self.reason
    }

    /// The `WWW-Authenticate` values sent with the refusal.
    #[must_use]
    pub fn challenges(&self) -> &[HeaderValue] {
        &self.challenges
    }
}

/// An authorization refusal: the reason code, the rule that decided (if a rule did), and for
/// bearer-token callers missing a scope the RFC 6750 §3.1 `insufficient_scope` challenge.
#[derive(Debug, Clone)]
pub struct Forbidden {
    pub(super) reason: &'static str,
    pub(super) rule: Option<crate::outcome::RuleRef>,
    pub(super) challenge: Option<HeaderValue>,
}

impl Forbidden {
    /// A refusal for `reason` (a stable code such as `missing_role` or `not_owner`), decided by
    /// `rule`.
    #[must_use]
    pub fn new(reason: &'static str, rule: Option<crate::outcome::RuleRef>) -> Self {
        Self {
            reason,
            rule,
            challenge: None,
        }
    }

    /// Adds `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` (RFC 6750 §3.1).
    #[must_use]
    pub fn with_insufficient_scope(self, scopes: &str) -> Self {
        self.with_insufficient_scope_in(Scheme::Bearer, scopes)
    }

    /// The same challenge in `scheme`: `DPoP error="insufficient_scope", scope="…"` for a
    /// caller whose token is DPoP-bound (RFC 9449 §7.1), `Bearer` otherwise.
    #[must_use]
    pub fn with_insufficient_scope_in(mut self, scheme: Scheme, scopes: &str) -> Self {
        let scheme = if scheme == Scheme::Dpop {
            Scheme::Dpop
        } else {
            Scheme::Bearer
        };
        self.challenge = challenge::insufficient_scope(scheme, scopes);
        self
    }

    /// The reason code.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The rule that decided, if any.
    #[must_use]
    pub fn rule(&self) -> Option<&crate::outcome::RuleRef> {
        self.rule.as_ref()
    }
}

/// No route serves the request: its path is unknown (404), or its route does not serve its
/// method (405, with the `Allow` field of RFC 9110 §10.2.1 listing the methods the caller may
/// use there).
#[derive(Debug, Clone)]
pub struct NoRoute {
    pub(super) allow: Option<HeaderValue>,
}

impl NoRoute {
    /// An unknown path: 404.
    #[must_use]
    pub fn not_found() -> Self {
        Self { allow: None }
    }

    /// A method the route does not serve: 405 with `Allow: allow` (`GET, HEAD`; empty when
    /// the caller may use no method there).
    #[must_use]
    pub fn method_not_allowed(allow: HeaderValue) -> Self {
        Self { allow: Some(allow) }
    }

    /// The `Allow` field of a 405; `None` for a 404.
    #[must_use]
    pub fn allow(&self) -> Option<&HeaderValue> {
        self.allow.as_ref()
    }

    /// The reason code: `method_not_allowed` or `route_not_found`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        if self.allow.is_some() {
            "method_not_allowed"
        } else {
            "route_not_found"
        }
    }
}

/// A rate limit or quota refusal: which limits were exceeded, when to retry, and the
/// rate-limit header fields to send.
#[derive(Debug, Clone)]
pub struct TooManyRequests {
    pub(super) policy: Arc<str>,
    pub(super) violated: Arc<[Box<str>]>,
    pub(super) retry_after: Duration,
    pub(super) fields: Arc<[(HeaderName, HeaderValue)]>,
    pub(super) problem: QuotaProblem,
}

/// Which problem type of the IETF RateLimit fields draft (draft-ietf-httpapi-ratelimit-headers-12
/// §5) a quota refusal is: its status, `type` URI, title and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum QuotaProblem {
    /// §5.1 `quota-exceeded` (429): the caller used up a quota.
    #[default]
    QuotaExceeded,
    /// §5.2 `temporary-reduced-capacity` (503): the service's capacity is temporarily reduced.
    /// palisade answers it when a shared store is down and each instance enforces its local
    /// share of the limits (`OnOutage::Local` in the quota layer).
    TemporaryReducedCapacity,
    /// §5.3 `abnormal-usage-detected` (429): the requests suggest unintended or malicious
    /// behaviour. palisade answers it when a failed-authentication rule refuses (too many bad
    /// credentials from one address).
    AbnormalUsageDetected,
}

impl QuotaProblem {
    /// The problem type URI (draft §5, registered with IANA).
    #[must_use]
    pub const fn type_uri(self) -> &'static str {
        match self {
            Self::QuotaExceeded => super::QUOTA_EXCEEDED,
            Self::TemporaryReducedCapacity => super::TEMPORARY_REDUCED_CAPACITY,
            Self::AbnormalUsageDetected => super::ABNORMAL_USAGE_DETECTED,
        }
    }

    /// The problem's title.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Self::QuotaExceeded => "Quota Exceeded",
            Self::TemporaryReducedCapacity => "Temporary Reduced Capacity",
            Self::AbnormalUsageDetected => "Abnormal Usage Detected",
        }
    }

    /// The response status: 503 for reduced capacity, else 429.
    #[must_use]
    pub const fn status(self) -> http::StatusCode {
        match self {
            Self::TemporaryReducedCapacity => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The code sent to the client and recorded by audit.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::QuotaExceeded => "quota_exceeded",
            Self::TemporaryReducedCapacity => "temporary_reduced_capacity",
            Self::AbnormalUsageDetected => "abnormal_usage_detected",
        }
    }
}

impl TooManyRequests {
    /// A refusal by `policy`, whose limits `violated` (their item names) are exceeded, to be
    /// retried after `retry_after`, sending `fields` (the `RateLimit-Policy` / `RateLimit`
    /// fields, or any the host wants) with the response.
    #[must_use]
    pub fn new(
        policy: Arc<str>,
        violated: Arc<[Box<str>]>,
        retry_after: Duration,
        fields: Arc<[(HeaderName, HeaderValue)]>,
    ) -> Self {
        Self {
            policy,
            violated,
            retry_after,
            fields,
            problem: QuotaProblem::QuotaExceeded,
        }
    }

    /// Says which problem type the refusal is (default [`QuotaProblem::QuotaExceeded`]).
    #[must_use]
    pub fn with_problem(mut self, problem: QuotaProblem) -> Self {
        self.problem = problem;
        self
    }

    /// Which problem type the refusal is.
    #[must_use]
    pub fn problem(&self) -> QuotaProblem {
        self.problem
    }

    /// The refusing policy's name.
    #[must_use]
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The item names of the exceeded limits.
    pub fn violated(&self) -> impl ExactSizeIterator<Item = &str> {
        self.violated.iter().map(AsRef::as_ref)
    }

    /// How long until the request would be admitted.
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// `Retry-After` in whole seconds, rounded up and at least 1 (RFC 9110 §10.2.3), so a client
    /// that honours it is admitted.
    #[must_use]
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// The header fields sent with the refusal, besides `Retry-After`.
    #[must_use]
    pub fn fields(&self) -> &[(HeaderName, HeaderValue)] {
        &self.fields
    }
}

/// Input refused by the validation layer: the reason and what is wrong (bounded).
#[derive(Debug, Clone)]
pub struct InvalidInput {
    pub(super) reason: InvalidReason,
    pub(super) errors: Arc<[Violation]>,
    /// The layer that refused: validation, unless a request-level check in another layer
    /// (a doubled `Host` seen by authentication) found it first.
    pub(super) layer: &'static str,
}

impl InvalidInput {
    /// A refusal for `reason` listing `errors`.
    ///
    /// Each pointer is written in the URI-fragment form RFC 6901 §6 gives (a character a
    /// fragment may not hold, such as a space or `%`, percent-encoded), and an error repeated
    /// at the same place for the same keyword is listed once.
    #[must_use]
    pub fn new(reason: InvalidReason, errors: impl Into<Vec<Violation>>) -> Self {
        let mut errors: Vec<Violation> = errors.into();
        for v in &mut errors {
            if let std::borrow::Cow::Owned(encoded) = fragment(&v.pointer) {
                v.pointer = encoded.into();
            }
        }
        let mut seen: Vec<(InputPart, &str, &str)> = Vec::with_capacity(errors.len());
        let mut keep = vec![true; errors.len()];
        for (i, v) in errors.iter().enumerate() {
            let key = (v.part, &*v.pointer, &*v.keyword);
            if seen.contains(&key) {
                keep[i] = false;
            } else {
                seen.push(key);
            }
        }
        let mut keep = keep.into_iter();
        errors.retain(|_| keep.next().unwrap_or(true));
        Self {
            reason,
            errors: errors.into(),
            layer: "validate",
        }
    }

    /// The same refusal, made by `layer` (as the audit event and the trace name it).
    #[must_use]
    pub fn refused_by(mut self, layer: &'static str) -> Self {
        self.layer = layer;
        self
    }

    /// The refusal of a request that sends one of `names` more than once (400
    /// `duplicate_header`), or `None` when each appears at most once. RFC 9110 §5.3: a field
    /// that is not a list appears once; RFC 9112 §3.2: a request with two `Host` lines is 400.
    /// Two lines of a singleton let two readers take different ones.
    #[must_use]
    pub fn duplicate_header(headers: &http::HeaderMap, names: &[http::HeaderName]) -> Option<Self> {
        let name = names
            .iter()
            .find(|name| headers.get_all(*name).iter().nth(1).is_some())?;
        Some(Self::new(
            InvalidReason::DuplicateHeader,
            vec![Violation {
                part: InputPart::Header,
                pointer: format!("#/{}", name.as_str()).into(),
                keyword: "singleton".into(),
                detail: "the header appears more than once".into(),
            }],
        ))
    }

    /// The reason.
    #[must_use]
    pub fn reason(&self) -> InvalidReason {
        self.reason
    }

    /// What is wrong, in the order found.
    #[must_use]
    pub fn errors(&self) -> &[Violation] {
        &self.errors
    }
}

/// Where a [`Violation`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InputPart {
    /// The body.
    Body,
    /// A query parameter.
    Query,
    /// A header.
    Header,
    /// A path parameter.
    Path,
    /// A cookie.
    Cookie,
    /// The handler's response (response validation, never a client's fault).
    Response,
}

/// One thing wrong with the input: where (a JSON pointer into the body, or the parameter),
/// the failing keyword, and a message that never repeats the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which part of the request.
    #[serde(rename = "in")]
    pub part: InputPart,
    /// A JSON pointer (RFC 6901) as a URI fragment (`#/items/3/qty`) into the body, or into the
    /// object of parameters (`#/limit`).
    pub pointer: Box<str>,
    /// The failing JSON Schema keyword (`minimum`, `required`...) or guard (`maxDepth`...).
    pub keyword: Box<str>,
    /// What is wrong.
    pub detail: Box<str>,
}

/// A backend failure that made a layer refuse (fail closed).
#[derive(Debug, Clone)]
pub struct Unavailable {
    pub(super) layer: &'static str,
    pub(super) reason: UnavailableReason,
    pub(super) retry_after: Option<std::time::Duration>,
    pub(super) cause: Option<&'static str>,
}

impl Unavailable {
    /// The precise reason.
    #[must_use]
    pub fn reason(&self) -> UnavailableReason {
        self.reason
    }

    /// The host's own code for what failed (an authorization hook's outage), for audit and
    /// logs only: never sent to the client.
    #[must_use]
    pub fn cause(&self) -> Option<&'static str> {
        self.cause
    }

    /// How long the client is told to wait: the layer's estimate, or the reason's default.
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        self.retry_after
            .unwrap_or_else(|| self.reason.default_retry_after())
    }
}

/// The characters a URI fragment holds as they are (RFC 3986 §3.5: `pchar`, `/` and `?`);
/// every other one is percent-encoded.
const FRAGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'/')
    .remove(b'?');

/// A JSON pointer in URI-fragment form (`#/a b` → `#/a%20b`), the leading `#` kept.
fn fragment(pointer: &str) -> std::borrow::Cow<'_, str> {
    let Some(path) = pointer.strip_prefix('#') else {
        return std::borrow::Cow::Borrowed(pointer);
    };
    match std::borrow::Cow::from(percent_encoding::utf8_percent_encode(path, FRAGMENT)) {
        std::borrow::Cow::Borrowed(_) => std::borrow::Cow::Borrowed(pointer),
        std::borrow::Cow::Owned(encoded) => std::borrow::Cow::Owned(format!("#{encoded}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pointer: &str, keyword: &str) -> Violation {
        Violation {
            part: InputPart::Body,
            pointer: pointer.into(),
            keyword: keyword.into(),
            detail: "d".into(),
        }
    }

    #[test]
    fn rfc6901_6_pointers_are_uri_fragments() {
        let input = InvalidInput::new(
            InvalidReason::SchemaViolation,
            vec![
                v("#/items/0/qty", "minimum"),
                v("#/a b/100%/é", "type"),
                v("#/x~1y/{z}", "type"),
            ],
        );
        let pointers: Vec<&str> = input.errors().iter().map(|e| &*e.pointer).collect();
        assert_eq!(
            pointers,
            ["#/items/0/qty", "#/a%20b/100%25/%C3%A9", "#/x~1y/%7Bz%7D"]
        );
    }

    #[test]
    fn an_error_repeated_at_one_place_for_one_keyword_is_listed_once() {
        let input = InvalidInput::new(
            InvalidReason::SchemaViolation,
            vec![
                v("#/a", "type"),
                v("#/a", "type"),
                v("#/a", "minimum"),
                v("#/b", "type"),
            ],
        );
        let listed: Vec<(&str, &str)> = input
            .errors()
            .iter()
            .map(|e| (&*e.pointer, &*e.keyword))
            .collect();
        assert_eq!(
            listed,
            [("#/a", "type"), ("#/a", "minimum"), ("#/b", "type")]
        );
    }
}
