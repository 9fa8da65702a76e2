//! [`AuditLayer`], its service [`Audit`] and [`ResponseFuture`]: one event per request, sent
//! when the response head is known, or when the inner service fails, or when the client goes
//! away (the future is dropped).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::time::Instant;

use http::header::USER_AGENT;
use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tokio::sync::mpsc;
use tower_layer::Layer;
use tower_service::Service;

use super::AuditFields;
use super::queue::Stats;
use super::raw::{End, RawEvent, RawRequest, route_of};
use crate::client_ip::ClientIpResolver;
use crate::outcome::{Decision, QuotaOutcome, ResponseDivergence, ShadowDivergence};
use crate::principal::Principal;
use crate::rejection::Rejection;
use crate::telemetry::{MakeRequestId, TraceParent, UuidV4};

pub use crate::telemetry::{RequestId, X_REQUEST_ID};

/// Emits one [`AuditEvent`](super::AuditEvent) per request to a bounded queue. Cloning is cheap.
#[derive(Clone)]
pub struct AuditLayer {
    pub(crate) shared: Option<Arc<Shared>>,
}

impl AuditLayer {
    /// A layer that records nothing and passes every request through (a stack whose
    /// configuration has no `audit` section).
    #[must_use]
    pub fn off() -> Self {
        Self { shared: None }
    }
}

impl fmt::Debug for AuditLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLayer").finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    /// Keeps the queue open while any layer or service lives; the last holder flushes it.
    #[allow(dead_code)]
    pub(crate) guard: Arc<super::queue::Guard>,
    pub(crate) tx: mpsc::Sender<RawEvent>,
    pub(crate) wake: Arc<tokio::sync::Notify>,
    pub(crate) capacity: usize,
    pub(crate) stats: Arc<Stats>,
    pub(crate) resolver: ClientIpResolver,
    pub(crate) record: Vec<HeaderName>,
    /// The request id's header (`x-request-id` by default).
    pub(crate) header: HeaderName,
    /// The host's id maker; UUID v4 when `None`.
    pub(crate) make_id: Option<Arc<dyn MakeRequestId>>,
}

impl Shared {
    fn push(&self, mut raw: RawEvent) {
        if self.stats.closed.load(Ordering::Acquire) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::audit_events("dropped", 1);
            return;
        }
        raw.seq = self.stats.seq.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(raw).is_err() {
            // Full (or closed): dropped and counted; the drain task reports the loss.
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::audit_events("dropped", 1);
        } else {
            crate::telemetry::audit_events("queued", 1);
        }
        // The task drains on its own tick; it is woken early only when the queue fills up.
        if self.tx.capacity() < self.capacity / 2 {
            self.wake.notify_one();
        }
    }

    /// The id the request already has when acceptable (see [`RequestId`]), else a fresh one.
    fn request_id(&self, headers: &http::HeaderMap, ext: &http::Extensions) -> HeaderValue {
        if let Some(id) = crate::telemetry::incoming_request_id(headers, ext, &self.header) {
            return id;
        }
        match &self.make_id {
            Some(make) => Some(make.make_request_id())
                .filter(|id| crate::telemetry::acceptable_request_id(id.as_bytes()))
                .unwrap_or_else(|| UuidV4.make_request_id()),
            None => UuidV4.make_request_id(),
        }
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`AuditLayer`].
#[derive(Clone)]
pub struct Audit<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

impl<S: fmt::Debug> fmt::Debug for Audit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

struct Pending {
    shared: Arc<Shared>,
    request: RawRequest,
}

impl Pending {
    fn finish(self, end: End) {
        self.shared.push(RawEvent {
            seq: 0,
            latency: self.request.start.elapsed(),
            request: self.request,
            end,
        });
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Audit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(shared) = &self.shared else {
            return ResponseFuture {
                inner: self.inner.call(req),
                pending: None,
            };
        };
        let start = Instant::now();
        let request_id = shared.request_id(req.headers(), req.extensions());
        // One id on every side, for whatever runs inside: the extensions (palisade's and
        // tower-http's) and, when the request carries the header with another value (a
        // client's malformed id), the header. An absent header stays absent: adding a field
        // could reallocate the header map on every request.
        let mut sent = req.headers().get_all(&shared.header).iter();
        let first = sent.next();
        if first.is_some_and(|v| *v != request_id) || sent.next().is_some() {
            req.headers_mut()
                .insert(shared.header.clone(), request_id.clone());
        }
        #[cfg(feature = "tower-http")]
        req.extensions_mut()
            .insert(tower_http::request_id::RequestId::new(request_id.clone()));
        let headers = shared
            .record
            .iter()
            .filter_map(|name| Some((name.clone(), req.headers().get(name)?.clone())))
            .collect();
        let request = RawRequest {
            start,
            request_id: request_id.clone(),
            client_ip: shared.resolver.resolve_request(&req).map(|ip| ip.0),
            method: req.method().clone(),
            uri: req.uri().clone(),
            route: route_of(req.extensions()),
            trace: TraceParent::from_headers(req.headers()),
            user_agent: req.headers().get(USER_AGENT).cloned(),
            headers,
        };
        req.extensions_mut().insert(RequestId(request_id));
        // The layers inside record their typed outcomes for this event.
        req.extensions_mut().insert(crate::outcome::WantOutcomes);
        ResponseFuture {
            inner: self.inner.call(req),
            pending: Some(Pending {
                shared: shared.clone(),
                request,
            }),
        }
    }
}

pin_project! {
    /// The response future of [`Audit`]. Dropped before completion (the client went away),
    /// it still records the request, as cancelled.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.finish(End::Cancelled);
            }
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some(pending) = this.pending.take() {
            match &result {
                Ok(res) => {
                    let ext = res.extensions();
                    let request_id = pending.request.request_id.clone();
                    let header = pending.shared.header.clone();
                    pending.finish(End::Response {
                        status: res.status(),
                        principal: ext.get::<Principal>().cloned(),
                        rejection: ext.get::<Rejection>().cloned(),
                        decision: ext.get::<Decision>().cloned(),
                        divergence: ext.get::<ShadowDivergence>().cloned(),
                        response: ext.get::<ResponseDivergence>().cloned(),
                        quota: ext.get::<QuotaOutcome>().cloned(),
                        fields: ext.get::<AuditFields>().cloned(),
                    });
                    let mut result = result;
                    if let Ok(res) = &mut result {
                        // Not added to a map already at `http`'s size limit (no panic).
                        let _ = res.headers_mut().try_insert(header, request_id);
                    }
                    return Poll::Ready(result);
                }
                Err(_) => pending.finish(End::Error),
            }
        }
        Poll::Ready(result)
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
