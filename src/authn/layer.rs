//! [`AuthnLayer`], its service [`Authn`] and [`ResponseFuture`].

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, HOST};
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use super::{Authentication, Authenticator, ResourceMetadata};
use crate::body::{ResponseBody, refusal as refusal_response};
use crate::future::Finish;
use crate::principal::Principal;
use crate::rejection::{AuthnFailure, AuthnReason, InvalidInput, Rejection};
use crate::route::PublicRoutes;
use crate::telemetry::DecisionTrace;

/// Authenticates every request with an [`Authenticator`] (or a [`Chain`](super::Chain) of them).
///
/// An authenticated request gets its [`Principal`] in the extensions and reaches the inner
/// service (and the response carries the `Principal` back, for outer layers such as audit);
/// any other is answered by the layer (401, 400 or 503) and the inner service is not
/// called. See the [module docs](crate::authn).
pub struct AuthnLayer<A> {
    shared: Arc<Shared<A>>,
    metadata: Option<Arc<ResourceMetadata>>,
}

struct Shared<A> {
    authenticator: A,
    /// The challenges sent when no credential is found, computed once.
    missing: Arc<[HeaderValue]>,
    /// The same with `error="invalid_request"` (RFC 6750 §3.1), for a request that sends
    /// `Authorization` twice.
    invalid_request: Arc<[HeaderValue]>,
    /// Routes that admit requests without credentials, as anonymous.
    public: Option<Arc<dyn PublicRoutes>>,
}

impl<A: Authenticator> AuthnLayer<A> {
    /// A layer that authenticates with `authenticator`.
    pub fn new(authenticator: A) -> Self {
        Self::build(authenticator, None)
    }

    /// A layer that authenticates with `authenticator`, and lets requests **without** any
    /// credential through as [`Principal::anonymous`] on the routes `public` admits (an
    /// authorization policy's public routes, which the `LivePolicy` of the authz layer answers).
    /// A request that carries a bad credential is still refused. The
    /// [`Palisade`](crate::Palisade) builder uses this with its authorization policy.
    pub fn with_public_routes(authenticator: A, public: impl PublicRoutes) -> Self {
        Self::build(authenticator, Some(Arc::new(public)))
    }

    fn build(authenticator: A, public: Option<Arc<dyn PublicRoutes>>) -> Self {
        let mut challenges = Vec::new();
        authenticator.challenges(&mut challenges);
        let invalid_request = challenges
            .iter()
            .filter_map(|c| {
                let c = c.to_str().ok()?;
                let sep = if c.contains(' ') { ", " } else { " " };
                HeaderValue::try_from(format!("{c}{sep}error=\"invalid_request\"")).ok()
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                authenticator,
                missing: challenges.into(),
                invalid_request,
                public,
            }),
            metadata: None,
        }
    }

    /// Serves `metadata` (RFC 9728) at its path to `GET` and `HEAD`, without asking for a
    /// credential, and names it in the `resource_metadata` parameter of every `Bearer`
    /// challenge of a 401 (RFC 9728 §5.1).
    #[must_use]
    pub fn resource_metadata(mut self, metadata: ResourceMetadata) -> Self {
        self.metadata = Some(Arc::new(metadata));
        self
    }

    /// The authenticator.
    #[must_use]
    pub fn authenticator(&self) -> &A {
        &self.shared.authenticator
    }
}

impl<A> Clone for AuthnLayer<A> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

impl<A> fmt::Debug for AuthnLayer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthnLayer")
            .field("authenticator", &std::any::type_name::<A>())
            .finish()
    }
}

impl<S, A> Layer<S> for AuthnLayer<A> {
    type Service = Authn<S, A>;

    fn layer(&self, inner: S) -> Self::Service {
        Authn {
            inner,
            shared: self.shared.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

/// The service of [`AuthnLayer`]. See the [module docs](crate::authn).
pub struct Authn<S, A> {
    inner: S,
    shared: Arc<Shared<A>>,
    metadata: Option<Arc<ResourceMetadata>>,
}

impl<S, A> Authn<S, A> {
    crate::macros::define_inner_service_accessors!();
}

impl<S: Clone, A> Clone for Authn<S, A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

impl<S: fmt::Debug, A> fmt::Debug for Authn<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authn")
            .field("inner", &self.inner)
            .field("authenticator", &std::any::type_name::<A>())
            .finish()
    }
}

impl<A: Authenticator> Shared<A> {
    /// The principal to hand on, or the refusal, for an authenticator's answer.
    fn resolve(&self, answer: Authentication, parts: &Parts) -> Result<Principal, Rejection> {
        match answer {
            Authentication::Authenticated(principal) => Ok(principal),
            Authentication::Absent if self.public.as_ref().is_some_and(|p| p.is_public(parts)) => {
                Ok(Principal::anonymous())
            }
            Authentication::Absent => Err(Rejection::Unauthenticated(AuthnFailure::new(
                AuthnReason::MissingCredentials,
                self.missing.clone(),
            ))),
            Authentication::Refused(rejection) => Err(rejection),
        }
    }
}

impl<S, A, ReqBody, ResBody> Service<Request<ReqBody>> for Authn<S, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    A: Authenticator,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        // RFC 9728 §3: the metadata document is public.
        if let Some(res) = self
            .metadata
            .as_deref()
            .and_then(|m| m.answer(&parts.method, parts.uri.path()))
        {
            return ResponseFuture::refused(res.map(|b| ResponseBody::refused(Full::new(b))));
        }
        // Whatever an outer layer may have put here is not an authentication.
        parts.extensions.remove::<Principal>();
        let decision = DecisionTrace::start("authn", &parts.headers, &parts.extensions);
        let doubled = doubled(&parts, &self.shared.invalid_request);
        if let Some(rejection) = doubled {
            return ResponseFuture::refused(refusal_response(
                "authn",
                &annotate(self.metadata.as_deref(), rejection),
                decision,
                &parts.extensions,
            ));
        }
        // An authenticator that answers at once (keys in memory) needs no boxed future.
        let now = decision
            .span()
            .in_scope(|| self.shared.authenticator.authenticate_now(&parts));
        if let Some(answer) = now {
            return match self.shared.resolve(answer, &parts) {
                Ok(principal) => {
                    decision.allowed(Some(&principal));
                    parts.extensions.insert(principal.clone());
                    ResponseFuture::inner(
                        self.inner.call(Request::from_parts(parts, body)),
                        Some(principal),
                    )
                }
                Err(rejection) => ResponseFuture::refused(refusal_response(
                    "authn",
                    &annotate(self.metadata.as_deref(), rejection),
                    decision,
                    &parts.extensions,
                )),
            };
        }
        // The ready service goes into the future; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let metadata = self.metadata.clone();
        ResponseFuture::boxed(Box::pin(async move {
            let answer = shared
                .authenticator
                .authenticate(&parts)
                .instrument(decision.span().clone())
                .await;
            match shared.resolve(answer, &parts) {
                Ok(principal) => {
                    decision.allowed(Some(&principal));
                    parts.extensions.insert(principal.clone());
                    let res = inner.call(Request::from_parts(parts, body)).await?;
                    let mut res = res.map(ResponseBody::inner);
                    principal.finish(&mut res);
                    Ok(res)
                }
                Err(rejection) => Ok(refusal_response(
                    "authn",
                    &annotate(metadata.as_deref(), rejection),
                    decision,
                    &parts.extensions,
                )),
            }
        }))
    }
}

/// Before any credential is read: a second `Authorization` line (whatever its scheme) is
/// more than one credential (RFC 6750 §3.1: 400 `invalid_request`), and a second `Host` line
/// could be what a reader behind palisade takes instead (RFC 9112 §3.2).
fn doubled(parts: &Parts, invalid_request: &Arc<[HeaderValue]>) -> Option<Rejection> {
    if parts.headers.get_all(AUTHORIZATION).iter().nth(1).is_some() {
        return Some(Rejection::Unauthenticated(AuthnFailure::new(
            AuthnReason::MultipleCredentials,
            invalid_request.clone(),
        )));
    }
    InvalidInput::duplicate_header(&parts.headers, &[HOST])
        .map(|r| Rejection::Invalid(r.refused_by("authn")))
}

/// `rejection`, naming the resource metadata in its `Bearer` challenges when there is one.
fn annotate(metadata: Option<&ResourceMetadata>, rejection: Rejection) -> Rejection {
    match metadata {
        Some(m) => m.annotate(rejection),
        None => rejection,
    }
}

/// The response future of [`Authn`]: the caller rides back on the response, for outer layers
/// (audit) and hosts.
pub type ResponseFuture<F, B, E> = crate::future::ResponseFuture<F, B, E, Principal>;

impl Finish for Principal {
    fn finish<B>(self, res: &mut Response<ResponseBody<B>>) {
        // RFC 9449 §8.2: the next nonce rides on the successful response.
        if let Some(nonce) = self.dpop_nonce() {
            res.headers_mut()
                .insert(http::HeaderName::from_static("dpop-nonce"), nonce.clone());
        }
        res.extensions_mut().insert(self);
    }
}
