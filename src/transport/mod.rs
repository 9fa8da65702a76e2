//! The transport guard: credentials that arrive over plain HTTP are refused **before any
//! lookup** (no key store call, no hashing, no token verification), and the security response
//! headers OWASP's REST Security Cheat Sheet recommends for APIs.
//!
//! A credential sent in clear text has already been exposed to everyone on the path: checking
//! it (and answering 200) would only teach the client that this works. The guard refuses such a
//! request with a 403 `insecure_transport` problem whose detail tells the caller to rotate the
//! credential, and logs a warning naming the kind of credential (never the credential); the
//! audit event records the refusal (layer `transport`, reason `insecure_transport`).
//!
//! # How the scheme is known
//!
//! A server knows for sure only its own connection. palisade does not terminate TLS, so:
//!
//! - the host's TLS acceptor puts [`ConnectionScheme::Https`] into each request's extensions
//!   (with axum: `.layer(Extension(ConnectionScheme::Https))` on the router served over TLS);
//! - a TLS-terminating proxy says `X-Forwarded-Proto: https` (or `Forwarded: proto=https`,
//!   RFC 7239 §5.4, when the client address resolver reads `Forwarded`). The header is
//!   believed only when the request comes straight from a proxy the stack trusts (the same list
//!   as for the client address, [`ClientIpResolver::trust_proxy`]); from any other peer it is
//!   ignored, so a client cannot claim a TLS connection it did not make. Of `X-Forwarded-Proto`
//!   the rightmost item counts (the nearest proxy's word); of `Forwarded`, the `proto` of the
//!   element that names the client, found right to left past the trusted proxies' elements.
//!   A trusted proxy's word wins over the connection's: a TLS hop from the proxy does not
//!   make the client's plain-HTTP hop safe.
//!
//! Anything else is plain HTTP, including a request whose URI says `https`: in an absolute-form
//! request line or an HTTP/2 `:scheme` that is whatever the client wrote.
//!
//! # What is refused
//!
//! By default ([`RequireTls::Credentials`]) a plain-HTTP request that carries a credential:
//! an `Authorization` header of any scheme, anything the stack's authenticators recognise (the
//! API-key header, an opted-in query parameter...), or a header named in
//! [`TransportPolicy::credential_header`]. A request without a credential is served over
//! plain HTTP, so a load balancer's health check and the public routes keep working; on a
//! protected route it then gets the usual 401, whose challenge a client must only answer over
//! HTTPS. [`RequireTls::AllRequests`] refuses every plain-HTTP request.
//!
//! Two switches weaken the guard: [`TransportPolicy::allow_plain_http_from_loopback`] (for
//! development: clients on this machine) and [`TransportPolicy::with_insecure_plain_http`]
//! (the guard off; unsafe, logged as a warning).
//!
//! # The refusal
//!
//! 403 Forbidden, `code: insecure_transport`, without a `WWW-Authenticate` challenge. RFC 9110
//! §15.5.4: the server understood the request and refuses it, and the client should not
//! repeat it with the same credentials, which is the point. 421 Misdirected Request (§15.5.20)
//! would invite the client to retry on another connection, resending the credential; 400 says
//! the request itself is malformed, which it is not. There is no redirect to `https`: the
//! credential has already travelled, and an API client following it would send it again.
//!
//! # Response headers
//!
//! [`SecurityHeaders`], **on by default**, adds the headers OWASP's REST Security Cheat Sheet
//! lists for API responses: `Strict-Transport-Security` (one year, on responses to TLS
//! requests only: RFC 6797 §7.2 forbids it over plain HTTP), `X-Content-Type-Options: nosniff`,
//! `X-Frame-Options: DENY` and `Content-Security-Policy: frame-ancestors 'none'` (an API
//! response is never a page to frame), and `Cache-Control: no-store` on responses to
//! credentialed requests. A header the handler set is kept unless
//! [`SecurityHeaders::replace_handler_headers`] says otherwise.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use palisade::client_ip::ClientIpResolver;
//! use palisade::transport::{ConnectionScheme, TransportLayer, TransportPolicy};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let svc = ServiceBuilder::new()
//!     .layer(TransportLayer::new(TransportPolicy::new(), ClientIpResolver::new()))
//!     .service(service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new("ok")) }));
//!
//! // Over TLS (the host's acceptor says so): served, with the security headers.
//! let tls = Request::get("/").header("authorization", "Bearer x")
//!     .extension(ConnectionScheme::Https).body(())?;
//! let res = svc.clone().oneshot(tls).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["strict-transport-security"], "max-age=31536000");
//! assert_eq!(res.headers()["cache-control"], "no-store");
//!
//! // The same credential over plain HTTP: refused, and never looked at.
//! let plain = Request::get("/").header("authorization", "Bearer x").body(())?;
//! assert_eq!(svc.clone().oneshot(plain).await?.status(), StatusCode::FORBIDDEN);
//!
//! // No credential: served over plain HTTP (a health check), without HSTS.
//! let res = svc.oneshot(Request::get("/health").body(())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert!(!res.headers().contains_key("strict-transport-security"));
//! # Ok(()) }
//! ```
//!
//! # Deployment caveat
//!
//! Trust exactly the proxies in front of you, and have the one facing clients overwrite
//! `X-Forwarded-Proto` (nginx: `proxy_set_header X-Forwarded-Proto $scheme;`) rather than pass
//! the client's through. Behind a proxy that the stack does not trust, every request looks
//! like plain HTTP from the proxy, and credentials are refused: trust it, or have the host's
//! acceptor set [`ConnectionScheme`].
//!
//! [`ClientIpResolver::trust_proxy`]: crate::client_ip::ClientIpResolver::trust_proxy

mod headers;
mod layer;
mod policy;

pub use headers::{NoStore, SecurityHeaders};
pub use layer::{AddHeaders, CredentialProbe, Transport, TransportLayer};
pub use policy::{RequireTls, TransportPolicy};

/// The scheme of the connection a request came on, as the host's TLS acceptor knows it: put it
/// into each request's extensions (`ConnectionScheme::Https` on a TLS listener). Without it,
/// and without a trusted proxy's word, a request counts as plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionScheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}
