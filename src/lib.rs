//! palisade: composable [`tower`](https://docs.rs/tower) layers that guard an HTTP API.
//!
//! Safe by default (deny, fail closed, no secret in any response or log) and fast (the
//! in-memory hot path does no I/O and almost no allocation). Each layer works alone; the
//! [`Palisade`] builder composes them in the one safe order.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`audit`] | one event per request (who, what, outcome, latency) to pluggable sinks, off the request path |
//! | [`authn`] | API keys (hashed, constant-time, enumeration-proof), bearer JWTs (JWKS), RFC 7662 introspection → [`Principal`], or 401 |
//! | [`authz`] | RBAC on (method, route template): roles, inheritance, scopes, public routes, or 403 |
//! | [`validate`] | content type, body size, JSON guards, JSON Schema / OpenAPI for body, query, headers, path, or 4xx |
//! | [`quota`] | rate limits and quotas per address, key, user, tenant or route, in memory or Redis, or 429 |
//! | [`client_ip`] | the caller's address, trusting forwarded headers only from trusted proxies |
//! | [`transport`] | credentials over plain HTTP refused before any lookup; OWASP's security response headers |
//! | [`rejection`] | every refusal as RFC 9457 problem details |
//! | [`invalidation`] | revocations and policy changes published once, applied by every instance's caches (in process or Redis pub/sub) |
//! | [`clock`] | injected time, for tests that never sleep |
//! | [`route`] | the (method, template) of a request |
//! | `config` | a declarative YAML / TOML / JSON configuration (feature `config`) |
//!
//! # Quick start
//!
//! ```
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use palisade::{Palisade, Principal};
//! use palisade::authn::api_key::{ApiKeys, KeySpec, MemoryKeyStore};
//! use palisade::transport::ConnectionScheme;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ApiKeys::new();
//! let store = MemoryKeyStore::new();
//! let issued = keys.generate(KeySpec::new("alice").role("admin"))?;
//! store.insert(issued.record);
//!
//! let app = Router::new()
//!     .route("/hello", get(|p: Principal| async move { format!("hello {}", p.subject()) }))
//!     .layer(Palisade::builder().authenticate(keys.authenticator(store)).build()?);
//!
//! // Keys are accepted over TLS only: your TLS listener marks each request (or a trusted
//! // proxy says `X-Forwarded-Proto: https`); see `palisade::transport`.
//! let key = issued.plaintext.expose_secret();
//! let tls = Request::get("/hello").header("x-api-key", key).extension(ConnectionScheme::Https);
//! let ok = app.clone().oneshot(tls.body(Body::empty())?).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//!
//! let refused = app.oneshot(Request::get("/hello").body(Body::empty())?).await?;
//! assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! # Runtime
//!
//! Backend timeouts use tokio timers: run palisade inside a tokio runtime with the time driver
//! enabled (`#[tokio::main]` does this).
//!
//! # Features
//!
//! - `axum` (default): the [`Principal`] extractor, axum `MatchedPath` routes and
//!   `ConnectInfo` peer addresses.
//! - `config` (default): declarative configuration files.
//! - `redis`: `RedisStore`, quotas shared through Redis.
//! - `redis-tls`: `rediss://` URLs for `RedisStore` (rustls).
//! - `jwt`: `authn::jwt::JwtAuthenticator`, bearer JWTs against JWKS URLs or static keys.
//! - `aws-lc`: JWT signatures (RSA, ECDSA, Ed25519) checked by AWS-LC instead of RustCrypto
//!   (fewer instructions per first-sight token; builds C from source).
//! - `introspection`: `authn::introspection::IntrospectionAuthenticator`, opaque tokens
//!   through RFC 7662.
//! - `openapi`: `validate::openapi::OpenApi`, validation rules from an OpenAPI document.
//! - `metrics`: counters and a histogram through the `metrics` facade ([`telemetry`]).
//! - `decompression`: gzip, deflate, br and zstd request bodies decoded (bounded) for
//!   operations that opt in.
//! - `full`: everything but `aws-lc`.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
#[cfg(any(feature = "jwt", feature = "introspection"))]
mod fetch;
#[cfg(feature = "config")]
mod file;
pub mod future;
mod json_text;
mod macros;
#[cfg(feature = "redis")]
mod redis_link;
#[cfg(feature = "redis")]
mod redis_pubsub;
mod redis_spec;
mod stack;
#[cfg(any(feature = "jwt", feature = "introspection", feature = "redis-tls"))]
mod tls;

pub mod audit;
pub mod authn;
pub mod authz;
pub mod client_cert;
pub mod client_ip;
pub mod clock;
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config;
pub mod error;
pub mod invalidation;
pub mod outcome;
pub mod principal;
pub mod quota;
pub mod rejection;
pub mod route;
pub mod telemetry;
pub mod transport;
pub mod validate;

pub use body::ResponseBody;
pub use client_ip::ClientIp;
pub use error::{BoxError, ConfigError, StoreError};
pub use principal::{AuthMethod, Confirmation, Principal};
pub use rejection::Rejection;
pub use route::Route;
pub use stack::{
    AuditStage, AuthzStage, Handles, NoAuthn, Palisade, PalisadeBuilder, PalisadeLayer,
    PalisadeService, QuotaStage,
};

/// Recipes for axum: `layer` and `route_layer`, state, nested routers, CORS, tracing and
/// request ids, different guards for different routes (`docs/axum.md`).
#[cfg(all(feature = "axum", any(doc, doctest)))]
pub mod axum_recipes {
    #![doc = include_str!("../docs/axum.md")]
}

/// A boxed `Send` future, as the `Dyn*` companion traits return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The types most hosts need: `use palisade::prelude::*;` brings the stack builder, each
/// layer's main types and traits, the extractors, and the errors.
pub mod prelude {
    pub use crate::audit::{AuditLayer, AuditSink, JsonLinesSink, TracingSink};
    pub use crate::authn::api_key::{ApiKeys, KeyRecord, KeySpec, KeyStore, MemoryKeyStore};
    pub use crate::authn::{Authenticator, AuthnLayer, Chain};
    pub use crate::authz::{
        Authorizer, AuthzLayer, AuthzRequest, LivePolicy, Methods, PolicySpec, Refusal, RuleSpec,
    };
    pub use crate::clock::{Clock, SystemClock, Timestamp};
    #[cfg(feature = "config")]
    pub use crate::config::Config;
    pub use crate::quota::{
        KeyBy, Limit, MemoryStore, QuotaLayer, QuotaPolicy, QuotaRule, QuotaStore, Window,
    };
    pub use crate::validate::{Operation, SchemaSet, ValidateLayer};
    #[cfg(feature = "axum")]
    pub use crate::validate::{Validated, ValidatedQuery};
    pub use crate::{ClientIp, ConfigError, Palisade, Principal, Rejection, StoreError};
}
