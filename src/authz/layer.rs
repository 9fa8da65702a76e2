//! [`AuthzLayer`], its service [`Authz`], the [`Authorizer`] hook and shadow mode.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::request::Parts;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use super::authorizer::{Authorizer, Refusal};
use super::policy::{Decision, Outcome, Policy, RuleRef};
use super::source::LivePolicy;
use crate::body::{ResponseBody, refusal as refusal_response};
use crate::clock::{Clock, SystemClock};
use crate::future::Finish;
pub use crate::outcome::ShadowDivergence;
use crate::principal::{AuthMethod, Confirmation, Principal};
use crate::rejection::{
    AuthnFailure, AuthnReason, Forbidden, NoRoute, Rejection, Scheme, UnavailableReason,
};
use crate::route::{PublicRoutes, Route, RouteMatch, matched_template};
use crate::telemetry::DecisionTrace;

/// The path parameters of a request (`{id}` in `/v1/orders/{id}`), percent-decoded when axum
/// extracted them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams(Vec<(Box<str>, Box<str>)>);

impl PathParams {
    /// The value of parameter `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| &**k == name).map(|(_, v)| &**v)
    }

    /// Every (name, value) pair, in template order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

/// What an [`Authorizer`] sees: the caller, the route, its parameters, and the request parts.
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthzRequest<'a> {
    /// The authenticated caller.
    pub principal: &'a Principal,
    /// The route (method and template; the raw path when no template is known).
    pub route: &'a Route,
    /// The route's path parameters.
    pub params: &'a PathParams,
    /// The request head.
    pub parts: &'a Parts,
    /// The RBAC decision that allowed the request.
    pub decision: &'a Decision,
}

/// Decides every request on (method, route template) with the caller's roles and scopes; see
/// the [module docs](crate::authz).
pub struct AuthzLayer<Az = ()> {
    policy: LivePolicy,
    shadow: Option<LivePolicy>,
    authorizer: Arc<Az>,
    authorizer_timeout: Duration,
    divergences: Arc<AtomicU64>,
}

/// How long the layer waits for an [`Authorizer`] unless told otherwise.
pub const DEFAULT_AUTHORIZER_TIMEOUT: Duration = Duration::from_secs(1);

/// The audit cause of a 503 for an authorizer that did not answer in time.
const AUTHORIZER_TIMEOUT_CAUSE: &str = "authorizer_timeout";

impl AuthzLayer {
    /// Enforces `policy`, with no authorizer.
    #[must_use]
    pub fn new(policy: LivePolicy) -> Self {
        Self {
            policy,
            shadow: None,
            authorizer: Arc::new(()),
            authorizer_timeout: DEFAULT_AUTHORIZER_TIMEOUT,
            divergences: Arc::default(),
        }
    }
}

impl<Az> AuthzLayer<Az> {
    /// Adds an [`Authorizer`] that has the last word after RBAC.
    pub fn with_authorizer<B: Authorizer>(self, authorizer: B) -> AuthzLayer<B> {
        AuthzLayer {
            policy: self.policy,
            shadow: self.shadow,
            authorizer: Arc::new(authorizer),
            authorizer_timeout: self.authorizer_timeout,
            divergences: self.divergences,
        }
    }

    /// Bounds each [`Authorizer`] call to `timeout` (default one second, like a key store
    /// lookup); past it the request is refused with 503 and `Retry-After`, the audit cause
    /// `authorizer_timeout`, and the authorizer's future is dropped.
    #[must_use]
    pub fn with_authorizer_timeout(mut self, timeout: Duration) -> Self {
        self.authorizer_timeout = timeout;
        self
    }

    /// Evaluates `candidate` beside the enforced policy and records (logs, and puts a
    /// [`ShadowDivergence`] in the response extensions) every request on which they disagree,
    /// without enforcing it.
    #[must_use]
    pub fn with_shadow(mut self, candidate: LivePolicy) -> Self {
        self.shadow = Some(candidate);
        self
    }

    /// The enforced policy.
    #[must_use]
    pub fn policy(&self) -> &LivePolicy {
        &self.policy
    }

    /// The shadow (candidate) policy, if one is set.
    #[must_use]
    pub fn shadow_policy(&self) -> Option<&LivePolicy> {
        self.shadow.as_ref()
    }

    /// How many requests the shadow policy would have decided differently.
    #[must_use]
    pub fn shadow_divergences(&self) -> u64 {
        self.divergences.load(Ordering::Relaxed)
    }
}

impl<Az> Clone for AuthzLayer<Az> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            shadow: self.shadow.clone(),
            authorizer: self.authorizer.clone(),
            authorizer_timeout: self.authorizer_timeout,
            divergences: self.divergences.clone(),
        }
    }
}

impl<Az> fmt::Debug for AuthzLayer<Az> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthzLayer")
            .field("policy", &self.policy)
            .field("shadow", &self.shadow)
            .field("authorizer", &std::any::type_name::<Az>())
            .field("authorizer_timeout", &self.authorizer_timeout)
            .finish()
    }
}

impl<S, Az> Layer<S> for AuthzLayer<Az> {
    type Service = Authz<S, Az>;

    fn layer(&self, inner: S) -> Self::Service {
        Authz {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`AuthzLayer`].
pub struct Authz<S, Az = ()> {
    inner: S,
    layer: AuthzLayer<Az>,
}

impl<S, Az> Authz<S, Az> {
    crate::macros::define_inner_service_accessors!();
}

impl<S: Clone, Az> Clone for Authz<S, Az> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, Az> fmt::Debug for Authz<S, Az> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authz")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

/// The refusal of `decision`; `allow` gives the `Allow` field of a 405 (computed only then).
fn refusal(
    decision: &Decision,
    principal: Option<&Principal>,
    allow: impl FnOnce() -> http::HeaderValue,
) -> Rejection {
    let rule = decision.rule().cloned();
    match decision.outcome() {
        Outcome::NoRoute => Rejection::NoRoute(NoRoute::not_found()),
        Outcome::MethodNotAllowed => Rejection::NoRoute(NoRoute::method_not_allowed(allow())),
        Outcome::NotAuthenticated => Rejection::Unauthenticated(AuthnFailure::new(
            AuthnReason::MissingCredentials,
            Arc::new([]),
        )),
        Outcome::MissingScope => {
            let forbidden = Forbidden::new(Outcome::MissingScope.code(), rule.clone());
            // RFC 6750 §3.1: a bearer token without the needed scope gets a challenge naming
            // it, in the scheme the token came in (RFC 9449 §7.1).
            match (principal.map(Principal::method), rule) {
                (Some(AuthMethod::Bearer { .. }), Some(rule)) => Rejection::Forbidden(
                    forbidden.with_insufficient_scope_in(scheme(principal), rule.scopes()),
                ),
                _ => Rejection::Forbidden(forbidden),
            }
        }
        // RFC 9470 §3: 401 with the challenge that names what the user must do, in the scheme
        // the token came in (RFC 9449 §7.1).
        Outcome::InsufficientUserAuthentication => {
            let challenge: Option<&http::HeaderValue> = rule.as_ref().and_then(RuleRef::step_up);
            Rejection::unauthenticated(
                AuthnReason::InsufficientUserAuthentication,
                challenge.map(|c| crate::rejection::in_scheme(c, scheme(principal))),
            )
        }
        other => Rejection::Forbidden(Forbidden::new(other.code(), rule)),
    }
}

/// The scheme a caller's token came in: `DPoP` for a DPoP-bound token, else `Bearer`.
fn scheme(principal: Option<&Principal>) -> Scheme {
    match principal.and_then(Principal::confirmation) {
        Some(Confirmation::Dpop) => Scheme::Dpop,
        _ => Scheme::Bearer,
    }
}

fn refused<B>(
    rejection: &Rejection,
    divergence: Option<ShadowDivergence>,
    trace: DecisionTrace,
    extensions: &http::Extensions,
) -> Response<ResponseBody<B>> {
    let mut res = refusal_response("authz", rejection, trace, extensions);
    if let Some(d) = divergence {
        res.extensions_mut().insert(d);
    }
    res
}

impl<S, Az, ReqBody, ResBody> Service<Request<ReqBody>> for Authz<S, Az>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    Az: Authorizer,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let trace = DecisionTrace::start("authz", req.headers(), req.extensions());
        let template = matched_template(req.extensions());
        let principal = req.extensions().get::<Principal>();
        let (method, path) = (req.method(), req.uri().path());
        let policy = self.layer.policy.load();
        let decision =
            policy.decide_with(principal, method, template, path, 0, || SystemClock.now());
        let divergence = self
            .layer
            .divergence(&decision, principal, method, template, path);
        if !decision.is_allowed() {
            let rejection = refusal(&decision, principal, || {
                policy.allow_field(principal, template, path, SystemClock.now())
            });
            return ResponseFuture::refused(refused(
                &rejection,
                divergence,
                trace,
                req.extensions(),
            ));
        }
        drop(policy);
        let needs_authorizer = !Az::ALWAYS_ALLOWS && principal.is_some_and(|p| !p.is_anonymous());
        req.extensions_mut().insert(decision.clone());
        if !needs_authorizer {
            trace.allowed(req.extensions().get::<Principal>());
            return ResponseFuture::inner(self.inner.call(req), Some((decision, divergence)));
        }
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        let authorizer = (self.layer.authorizer.clone(), self.layer.authorizer_timeout);
        let policy = self.layer.policy.current();
        ResponseFuture::boxed(Box::pin(authorize_then_call(
            inner,
            req,
            authorizer,
            policy,
            (decision, divergence),
            trace,
        )))
    }
}

impl<Az> AuthzLayer<Az> {
    /// What the shadow policy would decide, when it disagrees with `decision` (counted and
    /// logged).
    fn divergence(
        &self,
        decision: &Decision,
        principal: Option<&Principal>,
        method: &http::Method,
        template: Option<&str>,
        path: &str,
    ) -> Option<ShadowDivergence> {
        let shadow = self.shadow.as_ref()?;
        let candidate = shadow
            .load()
            .decide_with(principal, method, template, path, 1, || SystemClock.now());
        if candidate.is_allowed() == decision.is_allowed() {
            return None;
        }
        self.divergences.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            layer = "authz",
            method = %method,
            route = template.unwrap_or(path),
            enforced = %decision,
            shadow = %candidate,
            "shadow policy disagrees"
        );
        Some(ShadowDivergence {
            enforced: decision.clone(),
            shadow: candidate,
        })
    }
}

/// Asks the host's authorizer about a request RBAC allowed, then calls `inner` (or refuses).
async fn authorize_then_call<S, Az, ReqBody, ResBody>(
    mut inner: S,
    req: Request<ReqBody>,
    (authorizer, timeout): (Arc<Az>, Duration),
    policy: Arc<Policy>,
    (decision, divergence): Extras,
    trace: DecisionTrace,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    Az: Authorizer,
{
    let (mut parts, body) = req.into_parts();
    let params = path_params(&mut parts, &policy).await;
    let template = matched_template(&parts.extensions).unwrap_or(parts.uri.path());
    let route = Route::new(parts.method.clone(), template);
    let principal = parts.extensions.get::<Principal>();
    let outcome = match principal {
        Some(principal) => {
            let request = AuthzRequest {
                principal,
                route: &route,
                params: &params,
                parts: &parts,
                decision: &decision,
            };
            let answer = authorizer
                .authorize(&request)
                .instrument(trace.span().clone());
            // Bounded like every other backend call: a hung ownership database is an outage.
            tokio::time::timeout(timeout, answer)
                .await
                .unwrap_or(Err(Refusal::unavailable(AUTHORIZER_TIMEOUT_CAUSE)))
        }
        None => Ok(()),
    };
    if let Err(refusal) = outcome {
        let rejection = authorizer_refusal(refusal, &decision);
        return Ok(refused(&rejection, divergence, trace, &parts.extensions));
    }
    trace.allowed(principal);
    let mut res = inner
        .call(Request::from_parts(parts, body))
        .await?
        .map(ResponseBody::inner);
    (decision, divergence).finish(&mut res);
    Ok(res)
}

/// The refusal an [`Authorizer`]'s answer makes: 403 with its code, or 503 with `Retry-After`
/// and its cause for audit (the client sees neither the cause nor any backend text).
fn authorizer_refusal(refusal: Refusal, decision: &Decision) -> Rejection {
    match refusal {
        Refusal::Deny { code } => {
            Rejection::Forbidden(Forbidden::new(code, decision.rule().cloned()))
        }
        Refusal::Unavailable { cause, retry_after } => {
            let reason = UnavailableReason::AuthorizerUnavailable;
            match retry_after {
                Some(wait) => Rejection::unavailable_for("authz", reason, wait),
                None => Rejection::unavailable("authz", reason),
            }
            .with_cause(cause)
        }
    }
}

/// The path parameters: axum's (percent-decoded) when axum routed the request, else the
/// stack's [`RouteMatch`]'s (raw), else the policy's own template table's (raw).
async fn path_params(parts: &mut Parts, policy: &Policy) -> PathParams {
    #[cfg(feature = "axum")]
    {
        use axum::extract::{FromRequestParts, RawPathParams};
        if let Ok(raw) = RawPathParams::from_request_parts(parts, &()).await {
            return PathParams(raw.iter().map(|(k, v)| (k.into(), v.into())).collect());
        }
    }
    if let Some(m) = parts.extensions.get::<RouteMatch>() {
        return PathParams(m.params().map(|(k, v)| (k.into(), v.into())).collect());
    }
    PathParams(policy.path_params(parts.uri.path()))
}

/// What authorization decided, for the response: the decision and any shadow divergence.
type Extras = (Decision, Option<ShadowDivergence>);

/// The response future of [`Authz`]: the decision (and any shadow divergence) ride back on the
/// response, for audit.
pub type ResponseFuture<F, B, E> = crate::future::ResponseFuture<F, B, E, Extras>;

impl Finish for Extras {
    fn finish<B>(self, res: &mut Response<ResponseBody<B>>) {
        let (decision, divergence) = self;
        res.extensions_mut().insert(decision);
        if let Some(d) = divergence {
            res.extensions_mut().insert(d);
        }
    }
}

/// The policy's public routes: what the authn layer asks when no credential was found.
impl PublicRoutes for LivePolicy {
    fn is_public(&self, parts: &Parts) -> bool {
        let template = matched_template(&parts.extensions);
        self.load()
            .is_public(&parts.method, template, parts.uri.path())
    }
}
