//! [`Rejection`]: why a layer refused a request, and the one place that turns it into a response.
//!
//! Every refusal in palisade is a `Rejection`. [`Rejection::to_response`] renders it as an
//! RFC 9457 problem details document (`application/problem+json`) with:
//!
//! - `WWW-Authenticate` challenges on 401 (RFC 9110 §11.6.1, RFC 6750 §3 for bearer tokens);
//! - `Cache-Control: no-store`, so no cache keeps an authentication failure;
//! - the `Rejection` itself in the response extensions, so the audit layer (and the host) can
//!   read who refused and the precise reason.
//!
//! # Public and precise reasons
//!
//! Some refusals must look alike to the client while the operator needs to tell them apart: an
//! unknown API key id and a wrong secret for a known id both answer `invalid_key`, or keys could
//! be enumerated. [`Rejection::public_reason`] is what goes on the wire; [`Rejection::reason`] is
//! the precise code for audit and logs. Neither ever contains a credential.
//!
//! # Example
//!
//! ```
//! use palisade::rejection::{AuthnReason, Rejection};
//!
//! let r = Rejection::unauthenticated(AuthnReason::WrongSecret, []);
//! assert_eq!(r.status(), 401);
//! assert_eq!(r.reason(), "wrong_secret");
//! assert_eq!(r.public_reason(), "invalid_key");
//! let response = r.to_response();
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! assert!(response.extensions().get::<Rejection>().is_some());
//! ```

//!
//! # Your own body format
//!
//! The problem document is the default. To answer in your API's own error format, wrap palisade
//! in a layer that finds the [`Rejection`] in the response extensions and renders it; status,
//! reason and challenges are all there, and the refusal still never reached your handler:
//!
//! ```
//! use axum::{Router, body::Body, response::Response, routing::get};
//! use http::{Request, StatusCode, header::CONTENT_TYPE};
//! use palisade::{Palisade, Rejection};
//! use palisade::authn::api_key::{ApiKeys, MemoryKeyStore};
//! use tower::ServiceExt;
//!
//! /// `{"error": {"code": …}}` instead of problem+json.
//! fn house_style(res: Response) -> Response {
//!     let Some(rejection) = res.extensions().get::<Rejection>().cloned() else {
//!         return res;
//!     };
//!     let (mut parts, _) = res.into_parts();
//!     let body = serde_json::json!({ "error": { "code": rejection.public_reason() } });
//!     parts.headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
//!     parts.headers.remove(http::header::CONTENT_LENGTH);
//!     Response::from_parts(parts, Body::from(body.to_string()))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = Palisade::builder()
//!     .authenticate(ApiKeys::new().authenticator(MemoryKeyStore::new()))
//!     .build()?;
//! let app = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(guard)
//!     .layer(axum::middleware::map_response(|res: Response| async { house_style(res) }));
//!
//! let res = app.oneshot(Request::get("/").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
//! assert!(res.headers().contains_key("www-authenticate"));
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// The media type of problem details (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The problem type of a 429 (IETF RateLimit fields draft §5.1).
pub const QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// Why a request was refused. The closed set of palisade refusals; it grows as layers land.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Rejection {
    /// The caller is not authenticated: no credential, or a bad one (401, or 400 for a
    /// malformed authentication request).
    Unauthenticated(AuthnFailure),
    /// The caller is authenticated but not allowed (403).
    Forbidden(Forbidden),
    /// A rate limit or quota is exhausted (429, with `Retry-After` and the rate-limit fields).
    TooManyRequests(TooManyRequests),
    /// A backend the decision depends on failed or timed out (503, fail closed).
    Unavailable(Unavailable),
    /// The request's input is refused by the validation layer: malformed (400), too large
    /// (413), of an unsupported media type (415), or breaking the schema or the input guards
    /// (422), with the list of what is wrong.
    Invalid(InvalidInput),
}

impl Rejection {
    /// An authentication failure with the `WWW-Authenticate` challenges to send.
    pub fn unauthenticated(
        reason: AuthnReason,
        challenges: impl IntoIterator<Item = HeaderValue>,
    ) -> Self {
        Self::Unauthenticated(AuthnFailure {
            reason,
            challenges: challenges.into_iter().collect(),
        })
    }

    /// A backend failure in `layer`.
    #[must_use]
    pub fn unavailable(layer: &'static str, reason: UnavailableReason) -> Self {
        Self::Unavailable(Unavailable {
            layer,
            reason,
            retry_after: None,
        })
    }

    /// A backend failure in `layer` that is known to last about `retry_after`: the answer
    /// carries `Retry-After` (RFC 9110 §10.2.3), in whole seconds, at least 1.
    #[must_use]
    pub fn unavailable_for(
        layer: &'static str,
        reason: UnavailableReason,
        retry_after: std::time::Duration,
    ) -> Self {
        Self::Unavailable(Unavailable {
            layer,
            reason,
            retry_after: Some(retry_after),
        })
    }

    /// The HTTP status of the response.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(f) => f.reason.status(),
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Invalid(i) => i.reason.status(),
        }
    }

    /// The precise, stable reason code, for audit and logs (never sent to the client when it
    /// differs from [`public_reason`](Self::public_reason)).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthenticated(f) => f.reason.code(),
            Self::Forbidden(f) => f.reason,
            Self::TooManyRequests(_) => "quota_exceeded",
            Self::Unavailable(u) => u.reason.code(),
            Self::Invalid(i) => i.reason.code(),
        }
    }

    /// The reason code sent to the client in the problem body's `code` member.
    #[must_use]
    pub fn public_reason(&self) -> &'static str {
        match self {
            Self::Unauthenticated(f) => f.reason.public_code(),
            Self::Forbidden(f) => f.reason,
            Self::TooManyRequests(_) => "quota_exceeded",
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::Invalid(i) => i.reason.code(),
        }
    }

    /// The layer that refused (`"authn"`, ...).
    #[must_use]
    pub fn layer(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "authn",
            Self::Forbidden(_) => "authz",
            Self::TooManyRequests(_) => "quota",
            Self::Unavailable(u) => u.layer,
            Self::Invalid(_) => "validate",
        }
    }

    fn detail(&self) -> &'static str {
        match self {
            Self::Unauthenticated(f) => f.reason.detail(),
            Self::Forbidden(f) => match f.reason {
                "missing_scope" => "The credential lacks a scope this operation requires.",
                "missing_role" => "The caller's roles do not allow this operation.",
                "no_matching_rule" => "No rule allows this operation.",
                _ => "The caller is not allowed to perform this operation.",
            },
            Self::TooManyRequests(_) => {
                "A rate limit or quota for this caller is exhausted; retry after the time given."
            }
            Self::Unavailable(_) => {
                "The request could not be checked because a backend is unavailable; retry later."
            }
            Self::Invalid(i) => i.reason.detail(),
        }
    }

    /// Renders the refusal: problem+json body, status, challenges, and `self` in the extensions.
    #[must_use]
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let status = self.status();
        let too_many = match self {
            Self::TooManyRequests(t) => Some(t),
            _ => None,
        };
        let body = Problem {
            // IETF RateLimit fields draft §5.1: the quota-exceeded problem type.
            r#type: if too_many.is_some() {
                QUOTA_EXCEEDED
            } else {
                "about:blank"
            },
            title: if too_many.is_some() {
                "Quota Exceeded"
            } else {
                status.canonical_reason().unwrap_or("Error")
            },
            status: status.as_u16(),
            detail: self.detail(),
            code: self.public_reason(),
            violated_policies: too_many.map(|t| &*t.violated),
            errors: match self {
                Self::Invalid(i) if !i.errors.is_empty() => Some(&*i.errors),
                _ => None,
            },
        };
        problem_response(status, &body, |res| {
            if let Self::Unauthenticated(f) = self {
                for c in f.challenges.iter() {
                    res.headers_mut().append(WWW_AUTHENTICATE, c.clone());
                }
            }
            if let Self::Forbidden(Forbidden {
                challenge: Some(c), ..
            }) = self
            {
                res.headers_mut().insert(WWW_AUTHENTICATE, c.clone());
            }
            if let Self::Unavailable(Unavailable {
                retry_after: Some(d),
                ..
            }) = self
            {
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            if let Some(t) = too_many {
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(t.retry_after_secs()));
                for (name, value) in t.fields.iter() {
                    res.headers_mut().append(name, value.clone());
                }
            }
            res.extensions_mut().insert(self.clone());
        })
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} refused the request: {} ({})",
            self.layer(),
            self.reason(),
            self.status().as_u16()
        )
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    r#type: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(rename = "violated-policies", skip_serializing_if = "Option::is_none")]
    violated_policies: Option<&'a [Box<str>]>,
    /// RFC 9457 §3.2 extension member: what is wrong with the input (Appendix A's form).
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [Violation]>,
}

fn problem_response(
    status: StatusCode,
    problem: &Problem<'_>,
    finish: impl FnOnce(&mut Response<Full<Bytes>>),
) -> Response<Full<Bytes>> {
    // Serializing a struct of strings and an integer into a Vec cannot fail.
    let json = serde_json::to_vec(problem).unwrap_or_default();
    let mut res = Response::new(Full::new(Bytes::from(json)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    finish(&mut res);
    res
}

/// An authentication failure: the reason and the challenges for `WWW-Authenticate`.
#[derive(Debug, Clone)]
pub struct AuthnFailure {
    reason: AuthnReason,
    challenges: Arc<[HeaderValue]>,
}

impl AuthnFailure {
    /// A failure for `reason`, sending `challenges` in `WWW-Authenticate`.
    #[must_use]
    pub fn new(reason: AuthnReason, challenges: Arc<[HeaderValue]>) -> Self {
        Self { reason, challenges }
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

/// Why authentication failed. Codes are stable; new reasons may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthnReason {
    /// No credential any authenticator recognises.
    MissingCredentials,
    /// More than one credential (several key headers, or a key in two places): refused as an
    /// invalid request, as RFC 6750 §3.1 does for bearer tokens (400).
    MultipleCredentials,
    /// The API key is not of the key format (prefix, length, alphabet).
    MalformedKey,
    /// The API key's checksum does not match: a typo or a truncated key. No store lookup is made.
    BadChecksum,
    /// No key with this id exists. Publicly `invalid_key`, like [`WrongSecret`](Self::WrongSecret).
    UnknownKey,
    /// The key id exists but the secret is wrong. Publicly `invalid_key`.
    WrongSecret,
    /// The key was valid but is past its expiry (only said once the secret was proved).
    KeyExpired,
    /// The key was revoked (only said once the secret was proved).
    KeyRevoked,
    /// The bearer token is not a well-formed token (RFC 6750 §2.1 syntax, or not a compact
    /// JWS with a readable header and claims). Publicly `invalid_token`, like every bearer
    /// reason below.
    MalformedToken,
    /// The bearer token is longer than the configured maximum; refused before parsing.
    TokenTooLarge,
    /// A bearer token was sent in the query string, which this API does not accept
    /// (RFC 6750 §2.3, §5.3: URLs end up in logs).
    TokenInQuery,
    /// The token's `alg` is not one the verifying key allows (`none`, or an algorithm of
    /// another family: RFC 8725 §3.1).
    UnsupportedAlgorithm,
    /// The token names a key (`kid`) that its issuer's key set does not hold.
    UnknownKeyId,
    /// The signature does not verify.
    BadSignature,
    /// The token is past its `exp` (RFC 7519 §4.1.4), leeway included.
    TokenExpired,
    /// The token's `nbf` is in the future (RFC 7519 §4.1.5), leeway included.
    TokenNotYetValid,
    /// The token's `iat` is older than the configured maximum age.
    TokenTooOld,
    /// The token's `iss` is not a configured issuer (RFC 7519 §4.1.1).
    WrongIssuer,
    /// The token's `aud` names none of the configured audiences (RFC 7519 §4.1.3).
    WrongAudience,
    /// The token's `typ` header is not the one required (RFC 8725 §3.11, RFC 9068 §4).
    WrongTokenType,
    /// A required claim is missing or of the wrong type.
    MissingClaim,
    /// The token lists a critical header extension (`crit`) that palisade does not
    /// understand (RFC 7515 §4.1.11).
    UnknownCriticalHeader,
    /// The introspection endpoint says the token is not active (RFC 7662 §2.2).
    TokenInactive,
}

impl AuthnReason {
    /// The precise code (`"wrong_secret"`), for audit.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::MultipleCredentials => "multiple_credentials",
            Self::MalformedKey => "malformed_key",
            Self::BadChecksum => "bad_checksum",
            Self::UnknownKey => "unknown_key",
            Self::WrongSecret => "wrong_secret",
            Self::KeyExpired => "key_expired",
            Self::KeyRevoked => "key_revoked",
            Self::MalformedToken => "malformed_token",
            Self::TokenTooLarge => "token_too_large",
            Self::TokenInQuery => "token_in_query",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::UnknownKeyId => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::TokenTooOld => "token_too_old",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongTokenType => "wrong_token_type",
            Self::MissingClaim => "missing_claim",
            Self::UnknownCriticalHeader => "unknown_crit",
            Self::TokenInactive => "token_inactive",
        }
    }

    /// Whether this is a bearer-token reason (answered with RFC 6750 `invalid_token`).
    #[must_use]
    pub fn is_bearer(self) -> bool {
        matches!(
            self,
            Self::MalformedToken
                | Self::TokenTooLarge
                | Self::TokenInQuery
                | Self::UnsupportedAlgorithm
                | Self::UnknownKeyId
                | Self::BadSignature
                | Self::TokenExpired
                | Self::TokenNotYetValid
                | Self::TokenTooOld
                | Self::WrongIssuer
                | Self::WrongAudience
                | Self::WrongTokenType
                | Self::MissingClaim
                | Self::UnknownCriticalHeader
                | Self::TokenInactive
        )
    }

    /// The code the client sees: unknown id and wrong secret are both `invalid_key`; every
    /// bearer-token reason is `invalid_token` (RFC 6750 §3.1).
    #[must_use]
    pub fn public_code(self) -> &'static str {
        match self {
            Self::UnknownKey | Self::WrongSecret => "invalid_key",
            other if other.is_bearer() => "invalid_token",
            other => other.code(),
        }
    }

    /// The HTTP status: 400 for [`MultipleCredentials`](Self::MultipleCredentials), else 401.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::MultipleCredentials => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// A short human description, also sent as the RFC 6750 `error_description`: it never
    /// holds the credential, and for bearer tokens only tells expired or not-yet-valid tokens
    /// apart from invalid ones.
    #[must_use]
    pub fn detail(self) -> &'static str {
        match self {
            Self::TokenExpired => "The access token has expired.",
            Self::TokenNotYetValid => "The access token is not valid yet.",
            Self::TokenTooLarge => "The access token is too large.",
            Self::TokenInQuery => "Access tokens are not accepted in the query string.",
            Self::WrongTokenType => "The access token is not of the required type.",
            Self::TokenInactive => "The access token is not active.",
            Self::MalformedToken
            | Self::UnsupportedAlgorithm
            | Self::UnknownKeyId
            | Self::BadSignature
            | Self::TokenTooOld
            | Self::WrongIssuer
            | Self::WrongAudience
            | Self::MissingClaim
            | Self::UnknownCriticalHeader => "The access token is not valid.",
            Self::MissingCredentials => "This resource requires authentication.",
            Self::MultipleCredentials => {
                "The request carries more than one credential; send exactly one."
            }
            Self::MalformedKey => "The API key is not in the expected format.",
            Self::BadChecksum => "The API key's checksum does not match; check for a typo.",
            Self::UnknownKey | Self::WrongSecret => "The API key is not valid.",
            Self::KeyExpired => "The API key has expired.",
            Self::KeyRevoked => "The API key has been revoked.",
        }
    }
}

/// An authorization refusal: the reason code, the rule that decided (if a rule did), and for
/// bearer-token callers missing a scope the RFC 6750 §3.1 `insufficient_scope` challenge.
#[derive(Debug, Clone)]
pub struct Forbidden {
    reason: &'static str,
    rule: Option<crate::outcome::RuleRef>,
    challenge: Option<HeaderValue>,
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
    pub fn with_insufficient_scope(mut self, scopes: &str) -> Self {
        self.challenge = HeaderValue::from_str(&format!(
            "Bearer error=\"insufficient_scope\", scope=\"{scopes}\""
        ))
        .ok();
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

/// A rate limit or quota refusal: which limits were exceeded, when to retry, and the
/// rate-limit header fields to send.
#[derive(Debug, Clone)]
pub struct TooManyRequests {
    policy: Arc<str>,
    violated: Arc<[Box<str>]>,
    retry_after: Duration,
    fields: Arc<[(HeaderName, HeaderValue)]>,
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
        }
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
    reason: InvalidReason,
    errors: Arc<[Violation]>,
}

impl InvalidInput {
    /// A refusal for `reason` listing `errors`.
    #[must_use]
    pub fn new(reason: InvalidReason, errors: impl Into<Arc<[Violation]>>) -> Self {
        Self {
            reason,
            errors: errors.into(),
        }
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

/// Why input was refused. Codes are stable; new reasons may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidReason {
    /// The body is not well-formed JSON (400), with the line and column in the error.
    MalformedBody,
    /// The body (declared by `Content-Length` or streamed) is over the route's limit (413).
    BodyTooLarge,
    /// The `Content-Type` is not one the route accepts (415).
    UnsupportedMediaType,
    /// The body breaks the route's schema (422).
    SchemaViolation,
    /// The body breaks an input guard: nesting depth, members per object or array, string
    /// length, control characters, or a deny pattern (422).
    HostileInput,
    /// A query or header parameter is missing, or breaks its schema (422).
    InvalidParameter,
}

impl InvalidReason {
    /// The stable code (`"schema_violation"`).
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::MalformedBody => "malformed_body",
            Self::BodyTooLarge => "body_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::SchemaViolation => "schema_violation",
            Self::HostileInput => "hostile_input",
            Self::InvalidParameter => "invalid_parameter",
        }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            Self::MalformedBody => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::SchemaViolation | Self::HostileInput | Self::InvalidParameter => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Self::MalformedBody => "The request body is not well-formed.",
            Self::BodyTooLarge => "The request body is larger than this operation accepts.",
            Self::UnsupportedMediaType => "This operation does not accept this content type.",
            Self::SchemaViolation => "The request body does not match the operation's schema.",
            Self::HostileInput => "The request body breaks an input limit.",
            Self::InvalidParameter => "A request parameter is missing or invalid.",
        }
    }
}

/// Where a [`Violation`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    layer: &'static str,
    reason: UnavailableReason,
    retry_after: Option<std::time::Duration>,
}

impl Unavailable {
    /// The precise reason.
    #[must_use]
    pub fn reason(&self) -> UnavailableReason {
        self.reason
    }
}

/// Which backend failed, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnavailableReason {
    /// The key store returned an error.
    KeyStoreError,
    /// The key store did not answer within the configured timeout.
    KeyStoreTimeout,
    /// The quota store failed or timed out, and its outage policy is to fail closed.
    QuotaStore,
    /// No key set could be fetched from an issuer's JWKS URL (and none was fetched before).
    JwksUnavailable,
    /// The token introspection endpoint failed (connection, status, or an unreadable answer).
    IntrospectionError,
    /// The token introspection endpoint did not answer within the configured timeout.
    IntrospectionTimeout,
    /// The token introspection endpoint failed several times in a row: calls are held back
    /// for a cool-down (a circuit breaker), and requests are refused at once.
    IntrospectionCircuitOpen,
}

impl UnavailableReason {
    /// The precise code, for audit.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::KeyStoreError => "key_store_error",
            Self::KeyStoreTimeout => "key_store_timeout",
            Self::QuotaStore => "quota_store_unavailable",
            Self::JwksUnavailable => "jwks_unavailable",
            Self::IntrospectionError => "introspection_error",
            Self::IntrospectionTimeout => "introspection_timeout",
            Self::IntrospectionCircuitOpen => "introspection_circuit_open",
        }
    }
}

/// The axum rejection of the [`Principal`](crate::Principal) extractor when no authn layer ran:
/// a wiring mistake, answered with 500 rather than serving the handler without an identity.
#[derive(Debug, Clone, Copy)]
pub struct MissingPrincipal;

impl MissingPrincipal {
    /// Renders the 500 problem response.
    #[must_use]
    pub fn to_response(self) -> Response<Full<Bytes>> {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        let problem = Problem {
            r#type: "about:blank",
            title: "Internal Server Error",
            status: status.as_u16(),
            detail: "The server is misconfigured: this route is not behind an authentication layer.",
            code: "principal_missing",
            violated_policies: None,
            errors: None,
        };
        tracing::error!(
            "a handler asked for a Principal but no palisade authn layer ran for this route"
        );
        problem_response(status, &problem, |_| {})
    }
}

#[cfg(feature = "axum")]
mod axum_impls {
    use axum::response::{IntoResponse, Response};

    use super::{MissingPrincipal, Rejection};

    impl IntoResponse for Rejection {
        fn into_response(self) -> Response {
            self.to_response().map(axum::body::Body::new)
        }
    }

    impl IntoResponse for MissingPrincipal {
        fn into_response(self) -> Response {
            self.to_response().map(axum::body::Body::new)
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_json(res: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn rfc9457_3_1_problem_members_are_present() {
        let challenge = HeaderValue::from_static(r#"ApiKey realm="api""#);
        let res =
            Rejection::unauthenticated(AuthnReason::MissingCredentials, [challenge]).to_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(res.headers()[WWW_AUTHENTICATE], r#"ApiKey realm="api""#);
        let v = body_json(res).await;
        assert_eq!(v["type"], "about:blank");
        // RFC 9457 §4.2.1: with about:blank the title is the status phrase.
        assert_eq!(v["title"], "Unauthorized");
        assert_eq!(v["status"], 401);
        assert_eq!(v["code"], "missing_credentials");
        assert!(v["detail"].is_string());
    }

    #[tokio::test]
    async fn unknown_key_and_wrong_secret_render_identically() {
        let a = Rejection::unauthenticated(AuthnReason::UnknownKey, []).to_response();
        let b = Rejection::unauthenticated(AuthnReason::WrongSecret, []).to_response();
        assert_eq!(a.status(), b.status());
        assert_eq!(a.headers(), b.headers());
        assert_eq!(body_json(a).await, body_json(b).await);
    }

    #[test]
    fn multiple_credentials_is_a_bad_request() {
        let r = Rejection::unauthenticated(AuthnReason::MultipleCredentials, []);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn unavailable_hides_the_backend_reason() {
        let r = Rejection::unavailable("authn", UnavailableReason::KeyStoreTimeout);
        assert_eq!(r.reason(), "key_store_timeout");
        let res = r.to_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        let v = body_json(res).await;
        assert_eq!(v["code"], "temporarily_unavailable");
        assert!(!v.to_string().contains("key_store"));
    }

    #[test]
    fn rejection_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<Rejection>();
    }
}
