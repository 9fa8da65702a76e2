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
//! The problem document is the default. To answer in your API's own error format, implement
//! [`RefusalFormat`] and give it to the stack: every layer then writes its refusals with it,
//! while status, challenges and retry hints stay palisade's, and the refusal still never
//! reached your handler:
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use bytes::Bytes;
//! use http::{HeaderValue, Request, StatusCode, header::CONTENT_TYPE};
//! use palisade::rejection::{RefusalFormat, Rejection};
//! use palisade::Palisade;
//! use palisade::authn::api_key::{ApiKeys, MemoryKeyStore};
//! use tower::ServiceExt;
//!
//! /// `{"error": {"code": …}}` instead of problem+json.
//! struct HouseStyle;
//!
//! impl RefusalFormat for HouseStyle {
//!     fn render(&self, rejection: &Rejection) -> (HeaderValue, Bytes) {
//!         let body = serde_json::json!({ "error": { "code": rejection.public_reason() } });
//!         (HeaderValue::from_static("application/json"), Bytes::from(body.to_string()))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = Palisade::builder()
//!     .authenticate(ApiKeys::new().authenticator(MemoryKeyStore::new()))
//!     .refusal_format(HouseStyle)
//!     .build()?;
//! let app = Router::new().route("/", get(|| async { "hello" })).layer(guard);
//!
//! let res = app.oneshot(Request::get("/").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
//! assert!(res.headers().contains_key("www-authenticate"));
//! # Ok(()) }
//! ```

mod challenge;
mod kinds;
pub mod ratelimit;
mod reasons;
mod transport;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

#[cfg(any(feature = "jwt", feature = "introspection"))]
pub(crate) use challenge::check_realm;
pub(crate) use challenge::in_scheme;
pub use challenge::{ChallengeSet, Realm};
pub use kinds::{
    AuthnFailure, Forbidden, InputPart, InvalidInput, NoRoute, QuotaProblem, TooManyRequests,
    Unavailable, Violation,
};
pub use reasons::{AuthnReason, InvalidReason, Scheme, UnavailableReason};
pub use transport::{TransportReason, TransportRefusal};

/// The media type of problem details (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The problem type of a 429 for a quota used up (IETF RateLimit fields draft-12 §5.1).
pub const QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";
/// The problem type of a 503 for a temporarily reduced capacity (draft-12 §5.2).
pub const TEMPORARY_REDUCED_CAPACITY: &str =
    "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity";
/// The problem type of a 429 for abnormal usage (draft-12 §5.3).
pub const ABNORMAL_USAGE_DETECTED: &str =
    "https://iana.org/assignments/http-problem-types#abnormal-usage-detected";

/// Why a request was refused. The closed set of palisade refusals; it grows as layers land.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Rejection {
    /// The caller is not authenticated: no credential, or a bad one (401, or 400 for a
    /// malformed authentication request).
    Unauthenticated(AuthnFailure),
    /// The caller is authenticated but not allowed (403).
    Forbidden(Forbidden),
    /// No route serves the request: an unknown path (404) or a method its route does not
    /// serve (405 with `Allow`). Authenticated callers only; the authz layer decides it.
    NoRoute(NoRoute),
    /// A rate limit or quota is exhausted (429, with `Retry-After` and the rate-limit fields).
    TooManyRequests(TooManyRequests),
    /// A backend the decision depends on failed or timed out (503, fail closed).
    Unavailable(Unavailable),
    /// The request's input is refused by the validation layer: malformed (400), too large
    /// (413), of an unsupported media type (415), or breaking the schema or the input guards
    /// (422), with the list of what is wrong.
    Invalid(InvalidInput),
    /// The request came over plain HTTP with a credential, or at all when TLS is required
    /// for every request (403, no challenge: see [`crate::transport`]).
    Transport(TransportRefusal),
}

impl Rejection {
    /// An authentication failure with the `WWW-Authenticate` challenges to send.
    pub fn unauthenticated(
        reason: AuthnReason,
        challenges: impl IntoIterator<Item = HeaderValue>,
    ) -> Self {
        Self::Unauthenticated(AuthnFailure::new(reason, challenges.into_iter().collect()))
    }

    /// A backend failure in `layer`. The 503 carries the reason's default `Retry-After`.
    #[must_use]
    pub fn unavailable(layer: &'static str, reason: UnavailableReason) -> Self {
        Self::Unavailable(Unavailable {
            layer,
            reason,
            retry_after: None,
            cause: None,
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
            cause: None,
        })
    }

    /// This backend failure with the host's own code for what failed (`"orders_db"`), which
    /// audit records beside the reason and the client never sees. Other refusals are returned
    /// unchanged.
    #[must_use]
    pub fn with_cause(mut self, cause: &'static str) -> Self {
        if let Self::Unavailable(u) = &mut self {
            u.cause = Some(cause);
        }
        self
    }

    /// The HTTP status of the response.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(f) => f.reason.status(),
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NoRoute(n) if n.allow.is_some() => StatusCode::METHOD_NOT_ALLOWED,
            Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::TooManyRequests(t) => t.problem.status(),
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Invalid(i) => i.reason.status(),
            Self::Transport(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The precise, stable reason code, for audit and logs (never sent to the client when it
    /// differs from [`public_reason`](Self::public_reason)).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthenticated(f) => f.reason.code(),
            Self::Forbidden(f) => f.reason,
            Self::NoRoute(n) => n.reason(),
            Self::TooManyRequests(t) => t.problem.code(),
            Self::Unavailable(u) => u.reason.code(),
            Self::Invalid(i) => i.reason.code(),
            Self::Transport(t) => t.reason.code(),
        }
    }

    /// The reason code sent to the client in the problem body's `code` member.
    #[must_use]
    pub fn public_reason(&self) -> &'static str {
        match self {
            Self::Unauthenticated(f) => f.reason.public_code(),
            Self::Forbidden(f) => f.reason,
            Self::NoRoute(n) => n.reason(),
            Self::TooManyRequests(t) => t.problem.code(),
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::Invalid(i) => i.reason.code(),
            Self::Transport(t) => t.reason.code(),
        }
    }

    /// The layer that refused (`"authn"`, ...).
    #[must_use]
    pub fn layer(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "authn",
            Self::Forbidden(_) | Self::NoRoute(_) => "authz",
            Self::TooManyRequests(_) => "quota",
            Self::Unavailable(u) => u.layer,
            Self::Invalid(i) => i.layer,
            Self::Transport(_) => "transport",
        }
    }

    fn detail(&self) -> &'static str {
        match self {
            Self::Unauthenticated(f) => f.reason.detail(),
            Self::Forbidden(f) => reasons::forbidden_detail(f.reason),
            Self::NoRoute(n) => reasons::forbidden_detail(n.reason()),
            Self::TooManyRequests(t) => match t.problem {
                QuotaProblem::TemporaryReducedCapacity => {
                    "The service's capacity is temporarily reduced; retry after the time given."
                }
                QuotaProblem::AbnormalUsageDetected => {
                    "Too many failed attempts from this client; retry after the time given."
                }
                _ => {
                    "A rate limit or quota for this caller is exhausted; retry after the time given."
                }
            },
            Self::Unavailable(_) => {
                "The request could not be checked because a backend is unavailable; retry later."
            }
            Self::Invalid(i) => i.reason.detail(),
            Self::Transport(t) => t.reason.detail(),
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
            // IETF RateLimit fields draft-12 §5: the quota problem types.
            r#type: too_many.map_or("about:blank", |t| t.problem.type_uri()),
            title: too_many.map_or_else(
                || status.canonical_reason().unwrap_or("Error"),
                |t| t.problem.title(),
            ),
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
                f.write_headers(res.headers_mut());
            }
            if let Self::Forbidden(Forbidden {
                challenge: Some(c), ..
            }) = self
            {
                res.headers_mut().insert(WWW_AUTHENTICATE, c.clone());
            }
            if let Self::NoRoute(NoRoute { allow: Some(a) }) = self {
                // RFC 9110 §15.5.6: a 405 lists the methods the resource supports; set here,
                // it also keeps axum's method router from adding its own list.
                res.headers_mut().insert(ALLOW, a.clone());
            }
            if let Self::Unavailable(u) = self {
                // RFC 9110 §10.2.3: every 503 says when to retry, the layer's estimate or the
                // reason's own.
                let d = u.retry_after();
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            match self {
                Self::Invalid(InvalidInput {
                    reason: InvalidReason::UnsupportedEncoding,
                    ..
                }) => {
                    // RFC 9110 §15.5.16: say which codings would have been accepted.
                    res.headers_mut()
                        .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
                }
                Self::Invalid(InvalidInput {
                    reason: InvalidReason::BodyTimeout,
                    ..
                }) => {
                    // RFC 9110 §15.5.9: the server closes the connection after a 408; the
                    // rest of a slow body is never read.
                    res.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                _ => {}
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

/// How a refusal's body is written. The default is RFC 9457 problem details
/// (`application/problem+json`); a host with an error format of its own implements this and
/// gives it to [`PalisadeBuilder::refusal_format`](crate::PalisadeBuilder::refusal_format) (or
/// the configuration builder's). Status, `WWW-Authenticate`, `Retry-After`, the rate-limit
/// fields and `Cache-Control: no-store` stay palisade's, and the [`Rejection`] is still in the
/// response extensions.
///
/// ```
/// use bytes::Bytes;
/// use http::HeaderValue;
/// use palisade::rejection::{RefusalFormat, Rejection};
///
/// /// `{"error": {"code": …}}` instead of problem+json.
/// struct HouseStyle;
///
/// impl RefusalFormat for HouseStyle {
///     fn render(&self, rejection: &Rejection) -> (HeaderValue, Bytes) {
///         let body = serde_json::json!({ "error": { "code": rejection.public_reason() } });
///         (HeaderValue::from_static("application/json"), Bytes::from(body.to_string()))
///     }
/// }
/// ```
pub trait RefusalFormat: Send + Sync + 'static {
    /// The body of the refusal and its media type. Never put a credential in it:
    /// [`public_reason`](Rejection::public_reason) is what the client may see.
    fn render(&self, rejection: &Rejection) -> (HeaderValue, Bytes);
}

impl RefusalFormat for Arc<dyn RefusalFormat> {
    fn render(&self, rejection: &Rejection) -> (HeaderValue, Bytes) {
        (**self).render(rejection)
    }
}

/// The host's [`RefusalFormat`], carried in the request extensions by the stack so that every
/// layer renders its refusals with it.
#[derive(Clone)]
pub struct Formatter(pub Arc<dyn RefusalFormat>);

impl fmt::Debug for Formatter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Formatter")
    }
}

impl Rejection {
    /// Renders the refusal with the host's format when the request's `extensions` carry one
    /// (a [`Formatter`]), else as problem details.
    #[must_use]
    pub fn to_response_in(&self, extensions: &http::Extensions) -> Response<Full<Bytes>> {
        let mut res = self.to_response();
        if let Some(Formatter(format)) = extensions.get::<Formatter>() {
            let (content_type, body) = format.render(self);
            res.headers_mut().insert(CONTENT_TYPE, content_type);
            *res.body_mut() = Full::new(body);
        }
        res
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

/// The axum rejection of the [`Principal`](crate::Principal) extractor when no authn layer ran:
/// a wiring mistake, answered with 500 rather than serving the handler without an identity.
#[derive(Debug, Clone, Copy)]
pub struct MissingPrincipal;

impl MissingPrincipal {
    /// Renders the 500 problem response.
    #[must_use]
    pub fn to_response(self) -> Response<Full<Bytes>> {
        tracing::error!(
            "a handler asked for a Principal but no palisade authn layer ran for this route"
        );
        misconfigured(
            "principal_missing",
            "The server is misconfigured: this route is not behind an authentication layer.",
        )
    }
}

/// The 500 problem response for a wiring mistake of the host's (a handler asks for what no
/// layer provided): `code` and a fixed `detail`, nothing of the request. The caller logs the
/// mistake.
#[must_use]
pub fn misconfigured(code: &'static str, detail: &'static str) -> Response<Full<Bytes>> {
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    let problem = Problem {
        r#type: "about:blank",
        title: "Internal Server Error",
        status: status.as_u16(),
        detail,
        code,
        violated_policies: None,
        errors: None,
    };
    problem_response(status, &problem, |_| {})
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
        // RFC 9110 §10.2.3 / §15.6.4: a 503 says when to retry, even without an estimate.
        assert_eq!(res.headers()[RETRY_AFTER], "1");
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
