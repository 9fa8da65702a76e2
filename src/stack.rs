//! [`Palisade`]: the builder that composes the layers in the one safe order.
//!
//! ```text
//! audit → client ip → transport → quota (per client) → authn → quota (per principal)
//!       → authz → validate → handler
//! ```
//!
//! The transport guard ([`crate::transport`]) is on by default: credentials over plain HTTP
//! are refused before any lookup, so tell the stack how requests reach it (a trusted proxy's
//! `X-Forwarded-Proto`, or [`ConnectionScheme`](crate::transport::ConnectionScheme) from the
//! host's TLS acceptor).
//!
//! The result is one
//! [`tower::Layer`](tower_layer::Layer), usable on an axum `Router` or around any hyper service.
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
//! // TLS ends at the proxies of 10.0.0.0/8, which say `X-Forwarded-Proto: https`.
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

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use http::request::Parts;
use ipnet::IpNet;
use tower_layer::{Identity, Layer};
use tower_service::Service;

use crate::authn::{Authenticator, Authn, AuthnLayer, ResourceMetadata};
use crate::authz::AuthzLayer;
use crate::client_ip::{ClientIpLayer, ClientIpResolver, ClientIpService, ForwardedHeader};
use crate::error::ConfigError;
use crate::invalidation::{DynInvalidationBus, InvalidationBus};
use crate::quota::QuotaLayer;
use crate::rejection::{Formatter, RefusalFormat};
use crate::route::{RouteTable, matched_template};
use crate::transport::{SecurityHeaders, Transport, TransportLayer, TransportPolicy};
use crate::validate::ValidateLayer;

mod stages;

pub use stages::{AuditStage, AuthzStage, Handles, QuotaStage};

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
            authz: Identity::new(),
            clients: Identity::new(),
            principals: Identity::new(),
            validate: Identity::new(),
            audit: Identity::new(),
            opts: Options::default(),
        }
    }
}

/// Marks a builder that has no authenticator yet.
#[derive(Debug, Clone, Copy)]
pub struct NoAuthn;

/// Builds a [`PalisadeLayer`]; see [`Palisade::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PalisadeBuilder<
    A,
    Z = Identity,
    Qc = Identity,
    Qp = Identity,
    V = Identity,
    Au = Identity,
> {
    client_ip: ClientIpResolver,
    authn: A,
    authz: Z,
    clients: Qc,
    principals: Qp,
    validate: V,
    audit: Au,
    opts: Options,
}

/// What the stack's own service does besides calling the layers: the refusal format it hands
/// them, and the routes it resolves once for all of them.
#[derive(Debug, Clone, Default)]
struct Options {
    format: Option<Formatter>,
    routes: Option<Arc<RouteTable>>,
    metadata: Option<ResourceMetadata>,
    transport: TransportPolicy,
    headers: SecurityHeaders,
    invalidation: Option<Arc<dyn DynInvalidationBus>>,
}

impl<A, Z, Qc, Qp, V, Au> PalisadeBuilder<A, Z, Qc, Qp, V, Au> {
    /// Writes every refusal's body with `format` instead of RFC 9457 problem details (status
    /// and headers stay palisade's). See [`RefusalFormat`].
    pub fn refusal_format(mut self, format: impl RefusalFormat) -> Self {
        self.opts.format = Some(Formatter(Arc::new(format)));
        self
    }

    /// The routes the host serves, for a host whose router does not name the route it matched
    /// (a router other than axum's, or the stack wrapping the whole axum `Router` from outside).
    /// The stack then resolves each request's path once against `routes` and hands the
    /// [`RouteMatch`](crate::route::RouteMatch) (template and path parameters) to
    /// authorization, quotas and validation, which would otherwise each match the path against
    /// the templates they know. Under axum's `Router::layer` the router's `MatchedPath` is used
    /// and this table is not consulted.
    ///
    /// A path the table does not match is left to each layer, as without a table; so keep it
    /// in step with the policy when the policy is reloaded with routes more specific than
    /// those here.
    pub fn routes(mut self, routes: RouteTable) -> Self {
        self.opts.routes = Some(Arc::new(routes));
        self
    }

    /// Serves the API's OAuth 2.0 Protected Resource Metadata (RFC 9728) to `GET` and `HEAD`
    /// at its path, before authentication (the per-client quota still counts it), and names
    /// it in every `Bearer` challenge of a 401. See [`ResourceMetadata`].
    pub fn resource_metadata(mut self, metadata: ResourceMetadata) -> Self {
        self.opts.metadata = Some(metadata);
        self
    }

    /// Carries `bus` in the built layer's [`Handles::invalidation`], so that the host publishes
    /// revocations and policy changes through the stack it built. The caches themselves listen
    /// where they are built: [`CachedKeyStore`](crate::authn::api_key::CachedKeyStore), the
    /// JWT and introspection builders' `invalidation`, [`LivePolicy::watch_with_bus`]
    /// (`docs/invalidation.md`).
    ///
    /// [`LivePolicy::watch_with_bus`]: crate::authz::LivePolicy::watch_with_bus
    pub fn invalidation(mut self, bus: impl InvalidationBus) -> Self {
        self.opts.invalidation = Some(Arc::new(bus));
        self
    }

    /// When plain HTTP is refused (see [`crate::transport`]). By default a credential over
    /// plain HTTP is refused (403 `insecure_transport`) before any lookup.
    pub fn transport(mut self, policy: TransportPolicy) -> Self {
        self.opts.transport = policy;
        self
    }

    /// Lets clients on this machine use plain HTTP, for development (see
    /// [`TransportPolicy::allow_plain_http_from_loopback`]).
    pub fn allow_plain_http_from_loopback(mut self) -> Self {
        self.opts.transport = self.opts.transport.allow_plain_http_from_loopback();
        self
    }

    /// Turns the transport guard off: credentials are accepted over plain HTTP. **Unsafe**;
    /// see [`TransportPolicy::with_insecure_plain_http`].
    pub fn with_insecure_plain_http(mut self) -> Self {
        self.opts.transport = self.opts.transport.with_insecure_plain_http();
        self
    }

    /// The security headers added to responses (on by default: HSTS over TLS, `nosniff`,
    /// framing denied, `no-store` on credentialed responses; [`SecurityHeaders::none`] for
    /// none).
    pub fn response_headers(mut self, headers: SecurityHeaders) -> Self {
        self.opts.headers = headers;
        self
    }

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
    ) -> PalisadeBuilder<B, Z, Qc, Qp, V, Au> {
        PalisadeBuilder {
            client_ip: self.client_ip,
            authn: authenticator,
            authz: self.authz,
            clients: self.clients,
            principals: self.principals,
            validate: self.validate,
            audit: self.audit,
            opts: self.opts,
        }
    }

    /// Authorizes with `layer` after authentication. Routes its policy declares public then
    /// also admit requests without credentials (as the anonymous principal).
    pub fn authorize<Az>(
        self,
        layer: AuthzLayer<Az>,
    ) -> PalisadeBuilder<A, AuthzLayer<Az>, Qc, Qp, V, Au> {
        PalisadeBuilder {
            client_ip: self.client_ip,
            authn: self.authn,
            authz: layer,
            clients: self.clients,
            principals: self.principals,
            validate: self.validate,
            audit: self.audit,
            opts: self.opts,
        }
    }

    /// Limits requests **before** authentication, by client address (or route, or a custom
    /// key): cheap flood protection that runs before any credential is checked, and the place
    /// for [`Counting::failed_authentication`](crate::quota::Counting::failed_authentication)
    /// rules. A rule keyed by the principal here is a [`ConfigError`] at
    /// [`build`](Self::build).
    pub fn limit_clients<St>(
        self,
        layer: QuotaLayer<St>,
    ) -> PalisadeBuilder<A, Z, QuotaLayer<St>, Qp, V, Au> {
        PalisadeBuilder {
            client_ip: self.client_ip,
            authn: self.authn,
            authz: self.authz,
            clients: layer,
            principals: self.principals,
            validate: self.validate,
            audit: self.audit,
            opts: self.opts,
        }
    }

    /// Limits requests **after** authentication and before authorization: per API key, user
    /// or tenant, by tier. Anonymous callers on public routes count by client address.
    pub fn limit_principals<St>(
        self,
        layer: QuotaLayer<St>,
    ) -> PalisadeBuilder<A, Z, Qc, QuotaLayer<St>, V, Au> {
        PalisadeBuilder {
            client_ip: self.client_ip,
            authn: self.authn,
            authz: self.authz,
            clients: self.clients,
            principals: layer,
            validate: self.validate,
            audit: self.audit,
            opts: self.opts,
        }
    }

    /// Validates input (content type, size, JSON Schema of body and parameters) **after**
    /// authorization, so only an allowed caller's body is ever read or parsed.
    pub fn validate(
        self,
        layer: ValidateLayer,
    ) -> PalisadeBuilder<A, Z, Qc, Qp, ValidateLayer, Au> {
        PalisadeBuilder {
            client_ip: self.client_ip,
            authn: self.authn,
            authz: self.authz,
            clients: self.clients,
            principals: self.principals,
            validate: layer,
            audit: self.audit,
            opts: self.opts,
        }
    }

    /// Audits every request, **outermost**: one event per request, refused or served, with
    /// the client address found by this stack's own resolver (its trusted proxies). The queue's
    /// [`AuditHandle`](crate::audit::AuditHandle) is in the built layer's [`handles`](PalisadeLayer::handles).
    pub fn audit<Au2: AuditStage>(self, audit: Au2) -> PalisadeBuilder<A, Z, Qc, Qp, V, Au2> {
        PalisadeBuilder {
            client_ip: self.client_ip,
            authn: self.authn,
            authz: self.authz,
            clients: self.clients,
            principals: self.principals,
            validate: self.validate,
            audit,
            opts: self.opts,
        }
    }
}

impl<A: Authenticator, Z: AuthzStage, Qc: QuotaStage, Qp: QuotaStage, V: Clone, Au: AuditStage>
    PalisadeBuilder<A, Z, Qc, Qp, V, Au>
{
    /// Builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for any mistake in the configuration (policies are compiled before
    /// they reach the builder; later layers compile schemas and limits here).
    #[allow(clippy::type_complexity)] // the layer's type names each stage
    pub fn build(self) -> Result<PalisadeLayer<A, Z, Qc, Qp, V, Au::Layer>, ConfigError> {
        if self.clients.needs_principal() {
            return Err(ConfigError::Invalid {
                field: "limit_clients",
                message: "a rule keyed by key id, subject or tenant runs before authentication \
                          and would never see a principal: add it with limit_principals"
                    .into(),
            });
        }
        let policy = self.authz.public_routes();
        let mut authn = match &policy {
            Some(policy) => AuthnLayer::with_public_routes(self.authn, policy.clone()),
            None => AuthnLayer::new(self.authn),
        };
        if let Some(metadata) = self.opts.metadata.clone() {
            authn = authn.resource_metadata(metadata);
        }
        let (audit, audit_handle) = self.audit.finish(&self.client_ip)?;
        // The guard asks the authenticators whether a request carries their kind of
        // credential: a look at the headers, never a check.
        let probe = authn.clone();
        let transport = TransportLayer::new(self.opts.transport.clone(), self.client_ip.clone())
            .with_headers(self.opts.headers.clone())
            .with_credential_probe(move |p: &Parts| probe.authenticator().credential_kind(p));
        let handles = Handles {
            audit: audit_handle,
            policy,
            shadow: self.authz.shadow_policy(),
            invalidation: self.opts.invalidation.clone(),
            quota: [self.clients.stats(), self.principals.stats()]
                .into_iter()
                .flatten()
                .collect(),
        };
        Ok(PalisadeLayer {
            stack: Arc::new(Stack {
                audit,
                client_ip: ClientIpLayer::new(self.client_ip),
                transport,
                clients: self.clients,
                authn,
                principals: self.principals,
                authz: self.authz,
                validate: self.validate,
                handles,
                opts: (self.opts.format.is_some() || self.opts.routes.is_some())
                    .then(|| Arc::new(self.opts)),
            }),
        })
    }
}

/// All of palisade as one layer: audit → client address → transport guard → per-client
/// quota → authentication → per-principal quota → authorization → validation. Cloning is cheap.
#[derive(Debug)]
pub struct PalisadeLayer<A, Z = Identity, Qc = Identity, Qp = Identity, V = Identity, Au = Identity>
{
    /// Everything behind one reference count: the router clones the layer per route (and,
    /// for a router that is not given its state, per request).
    stack: Arc<Stack<A, Z, Qc, Qp, V, Au>>,
}

#[derive(Debug)]
struct Stack<A, Z, Qc, Qp, V, Au> {
    audit: Au,
    client_ip: ClientIpLayer,
    transport: TransportLayer,
    clients: Qc,
    authn: AuthnLayer<A>,
    principals: Qp,
    authz: Z,
    validate: V,
    /// What the host gets back.
    handles: Handles,
    /// The refusal format and the route table, when the host gave either.
    opts: Option<Arc<Options>>,
}

impl<A, Z, Qc, Qp, V, Au> PalisadeLayer<A, Z, Qc, Qp, V, Au> {
    /// What the stack hands back: the audit queue and the live policies.
    #[must_use]
    pub fn handles(&self) -> &Handles {
        &self.stack.handles
    }
}

impl<A, Z, Qc, Qp, V, Au> Clone for PalisadeLayer<A, Z, Qc, Qp, V, Au> {
    fn clone(&self) -> Self {
        Self {
            stack: self.stack.clone(),
        }
    }
}

impl<S, A, Z, Qc, Qp, V, Au> Layer<S> for PalisadeLayer<A, Z, Qc, Qp, V, Au>
where
    V: Layer<S>,
    Z: Layer<V::Service>,
    Qp: Layer<Z::Service>,
    Qc: Layer<Authn<Qp::Service, A>>,
    Au: Layer<ClientIpService<Transport<Qc::Service>>>,
{
    type Service = PalisadeService<Au::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        let stack = &*self.stack;
        let validate = stack.validate.layer(inner);
        let authz = stack.authz.layer(validate);
        let authn = stack.authn.layer(stack.principals.layer(authz));
        let transport = stack.transport.layer(stack.clients.layer(authn));
        PalisadeService {
            inner: stack.audit.layer(stack.client_ip.layer(transport)),
            opts: stack.opts.clone(),
        }
    }
}

/// The service of [`PalisadeLayer`]: the composed stack.
#[derive(Debug, Clone)]
pub struct PalisadeService<S> {
    inner: S,
    opts: Option<Arc<Options>>,
}

impl<S, B> Service<Request<B>> for PalisadeService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(opts) = &self.opts {
            // Every layer renders its refusals with the host's format, found here.
            if let Some(format) = &opts.format {
                req.extensions_mut().insert(format.clone());
            }
            // One route resolution for every layer, unless the router named the route.
            if let Some(routes) = &opts.routes
                && matched_template(req.extensions()).is_none()
                && let Some(m) = routes.matched(req.uri().path())
            {
                req.extensions_mut().insert(m);
            }
        }
        self.inner.call(req)
    }
}
