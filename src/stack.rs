//! [`Palisade`]: the builder that composes the layers in the one safe order.
//!
//! ```text
//! client ip → authn → handler
//! ```
//!
//! (audit, quotas, authorization and validation join this order as they land; see
//! `ARCHITECTURE.md`.) The result is one [`tower::Layer`](tower_layer::Layer), usable on an axum
//! `Router` or around any hyper service.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use palisade::{Palisade, Principal};
//! use palisade::authn::api_key::{ApiKeys, KeySpec, MemoryKeyStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = ApiKeys::new();
//! let store = MemoryKeyStore::new();
//! let issued = keys.generate(KeySpec::new("alice"))?;
//! store.insert(issued.record);
//!
//! let guard = Palisade::builder()
//!     .trust_proxy("10.0.0.0/8".parse()?)
//!     .authenticate(keys.authenticator(store))
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/v1/hello", get(|p: Principal| async move { format!("hello {}", p.subject()) }))
//!     .layer(guard);
//! # Ok(()) }
//! ```

use std::task::{Context, Poll};

use http::{Request, Response};
use ipnet::IpNet;
use tower_layer::Layer;
use tower_service::Service;

use crate::authn::{Authenticator, Authn, AuthnLayer, ResponseFuture};
use crate::body::ResponseBody;
use crate::client_ip::{ClientIpLayer, ClientIpResolver, ClientIpService, ForwardedHeader};
use crate::error::ConfigError;

/// Entry point: [`Palisade::builder`].
#[derive(Debug, Clone, Copy)]
pub struct Palisade;

impl Palisade {
    /// Starts a builder. An authenticator is required before [`build`](PalisadeBuilder::build)
    /// exists: there is no unauthenticated default.
    pub fn builder() -> PalisadeBuilder<NoAuthn> {
        PalisadeBuilder {
            client_ip: ClientIpResolver::new(),
            authn: NoAuthn,
        }
    }
}

/// Marks a builder that has no authenticator yet.
#[derive(Debug, Clone, Copy)]
pub struct NoAuthn;

/// Builds a [`PalisadeLayer`]; see [`Palisade::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PalisadeBuilder<A> {
    client_ip: ClientIpResolver,
    authn: A,
}

impl<A> PalisadeBuilder<A> {
    /// Trusts peers in `net` to report the client address (see [`crate::client_ip`]).
    pub fn trust_proxy(mut self, net: IpNet) -> Self {
        self.client_ip = self.client_ip.trust_proxy(net);
        self
    }

    /// Reads forwarded client addresses from `header` (default `X-Forwarded-For`).
    pub fn with_forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.client_ip = self.client_ip.with_header(header);
        self
    }

    /// Replaces the client address resolver.
    pub fn with_client_ip(mut self, resolver: ClientIpResolver) -> Self {
        self.client_ip = resolver;
        self
    }

    /// Authenticates with `authenticator` (a single one or a [`Chain`](crate::authn::Chain)).
    pub fn authenticate<B: Authenticator>(
        self,
        authenticator: B,
    ) -> PalisadeBuilder<AuthnLayer<B>> {
        PalisadeBuilder {
            client_ip: self.client_ip,
            authn: AuthnLayer::new(authenticator),
        }
    }
}

impl<A: Authenticator> PalisadeBuilder<AuthnLayer<A>> {
    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for any mistake in the configuration (none can occur yet with only
    /// authentication; later layers compile policies and schemas here).
    pub fn build(self) -> Result<PalisadeLayer<A>, ConfigError> {
        Ok(PalisadeLayer {
            client_ip: ClientIpLayer::new(self.client_ip),
            authn: self.authn,
        })
    }
}

/// All of palisade as one layer. Cloning is cheap.
#[derive(Debug)]
pub struct PalisadeLayer<A> {
    client_ip: ClientIpLayer,
    authn: AuthnLayer<A>,
}

impl<A> Clone for PalisadeLayer<A> {
    fn clone(&self) -> Self {
        Self {
            client_ip: self.client_ip.clone(),
            authn: self.authn.clone(),
        }
    }
}

impl<S, A> Layer<S> for PalisadeLayer<A> {
    type Service = PalisadeService<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        PalisadeService {
            inner: self.client_ip.layer(self.authn.layer(inner)),
        }
    }
}

/// The service of [`PalisadeLayer`].
#[derive(Debug)]
pub struct PalisadeService<S, A> {
    inner: ClientIpService<Authn<S, A>>,
}

impl<S: Clone, A> Clone for PalisadeService<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for PalisadeService<S, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    A: Authenticator,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        self.inner.call(req)
    }
}
