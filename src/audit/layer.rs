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

/// The request id header, read from the client when well-formed and set on every response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in the request extensions for handlers (and their logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);

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
    pub(crate) id_prefix: u32,
    pub(crate) ids: std::sync::atomic::AtomicU64,
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

    /// The client's `x-request-id` when it is 1–128 characters of `[A-Za-z0-9._:-]`, else a
    /// fresh one (unique per process: a random prefix and a counter).
    fn request_id(&self, headers: &http::HeaderMap) -> HeaderValue {
        if let Some(v) = headers.get(&X_REQUEST_ID) {
            let b = v.as_bytes();
            if !b.is_empty()
                && b.len() <= 128
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
            {
                return v.clone();
            }
        }
        self.fresh_id()
    }

    /// A fresh id: the layer's random prefix and a counter, in hex. Ids are handed out from
    /// blocks of [`ID_BLOCK`] written at once into one shared buffer per thread, so an id costs
    /// a reference count, not an allocation and a copy.
    fn fresh_id(&self) -> HeaderValue {
        // A layer built where a dropped one lived may finish that one's block: those ids were
        // reserved and never handed out, so they stay unique.
        let owner = self as *const Self as usize;
        IDS.with(|cell| {
            let mut ids = cell.borrow_mut();
            if ids.owner != owner || ids.next == ID_BLOCK {
                let first = self.ids.fetch_add(ID_BLOCK as u64, Ordering::Relaxed);
                let mut buf = vec![0u8; ID_BLOCK * ID_LEN];
                for (i, id) in buf.chunks_exact_mut(ID_LEN).enumerate() {
                    write_hex(&mut id[..8], u64::from(self.id_prefix));
                    write_hex(&mut id[8..], first + i as u64);
                }
                *ids = IdBlock {
                    owner,
                    // The first slice makes the buffer shared; later ones count references.
                    bytes: bytes::Bytes::from(buf),
                    next: 0,
                };
            }
            let at = ids.next * ID_LEN;
            ids.next += 1;
            HeaderValue::from_maybe_shared(ids.bytes.slice(at..at + ID_LEN))
                .unwrap_or_else(|_| HeaderValue::from_static("0"))
        })
    }
}

/// Ids written per block, and the length of one (8 hex digits of prefix, 16 of counter).
const ID_BLOCK: usize = 64;
const ID_LEN: usize = 24;

/// This thread's current block of fresh ids, and the layer (`Shared`) it belongs to.
struct IdBlock {
    owner: usize,
    bytes: bytes::Bytes,
    next: usize,
}

thread_local! {
    static IDS: std::cell::RefCell<IdBlock> = const {
        std::cell::RefCell::new(IdBlock { owner: 0, bytes: bytes::Bytes::new(), next: ID_BLOCK })
    };
}

fn write_hex(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
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
        let request_id = shared.request_id(req.headers());
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
                        res.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
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
