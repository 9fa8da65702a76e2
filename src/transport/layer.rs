//! [`TransportLayer`] and its service [`Transport`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::headers::SecurityHeaders;
use super::policy::{RequireTls, TransportPolicy, scheme};
use crate::body::{ResponseBody, refusal};
use crate::client_ip::ClientIpResolver;
use crate::clock::{Clock, SystemClock};
use crate::future::{Finish, ResponseFuture};
use crate::rejection::{Rejection, TransportReason, TransportRefusal};
use crate::telemetry::DecisionTrace;

/// Tells whether a request carries a credential, and of which kind (`"api_key"`,
/// `"bearer"`...), **without checking it**: no lookup, no hashing, no signature. The
/// [`Palisade`](crate::Palisade) stack asks its authenticators (their `credential_kind`); a
/// closure `Fn(&Parts) -> Option<&'static str>` is a probe.
pub trait CredentialProbe: Send + Sync + 'static {
    /// The kind of credential in `parts`, or `None`.
    fn credential_kind(&self, parts: &Parts) -> Option<&'static str>;
}

impl<F> CredentialProbe for F
where
    F: Fn(&Parts) -> Option<&'static str> + Send + Sync + 'static,
{
    fn credential_kind(&self, parts: &Parts) -> Option<&'static str> {
        self(parts)
    }
}

/// Refuses credentials sent over plain HTTP and adds the security response headers. See the
/// [module docs](crate::transport).
#[derive(Clone)]
pub struct TransportLayer {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    policy: TransportPolicy,
    headers: SecurityHeaders,
    resolver: ClientIpResolver,
    probe: Option<Arc<dyn CredentialProbe>>,
    /// At most one warning a second, however many plain-HTTP credentials arrive.
    warnings: WarnLimit,
}

/// One warning per second at most, each saying how many were held back before it: a client
/// that sends a thousand keys over plain HTTP cannot flood the host's log.
#[derive(Default)]
struct WarnLimit {
    /// The Unix second of the last warning.
    last: AtomicU64,
    /// Warnings held back since.
    held: AtomicU64,
}

impl Clone for WarnLimit {
    /// A layer being configured has warned of nothing yet.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl WarnLimit {
    /// `Some(held back)` when a warning may be written now.
    fn admit(&self) -> Option<u64> {
        self.admit_at(SystemClock.now().as_unix_secs())
    }

    /// [`admit`](Self::admit) at Unix second `now`.
    fn admit_at(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if now > last
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::Relaxed));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl fmt::Debug for TransportLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportLayer")
            .field("policy", &self.shared.policy)
            .field("headers", &self.shared.headers)
            .field("probe", &self.shared.probe.is_some())
            .finish_non_exhaustive()
    }
}

impl TransportLayer {
    /// A layer that enforces `policy`, believing forwarded schemes from the proxies `resolver`
    /// trusts, and adds the default [`SecurityHeaders`].
    #[must_use]
    pub fn new(policy: TransportPolicy, resolver: ClientIpResolver) -> Self {
        if policy.is_off() {
            tracing::warn!(
                target: "palisade::transport",
                "the transport guard is off: credentials are accepted over plain HTTP, where anyone on the path can read them"
            );
        }
        Self {
            shared: Arc::new(Shared {
                policy,
                headers: SecurityHeaders::default(),
                resolver,
                probe: None,
                warnings: WarnLimit::default(),
            }),
        }
    }

    /// Adds `headers` to responses instead of the defaults ([`SecurityHeaders::none`] for none).
    #[must_use]
    pub fn with_headers(mut self, headers: SecurityHeaders) -> Self {
        Arc::make_mut(&mut self.shared).headers = headers;
        self
    }

    /// Finds credentials with `probe` too, besides `Authorization` and the policy's
    /// credential headers.
    #[must_use]
    pub fn with_credential_probe(mut self, probe: impl CredentialProbe) -> Self {
        Arc::make_mut(&mut self.shared).probe = Some(Arc::new(probe));
        self
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &TransportPolicy {
        &self.shared.policy
    }

    /// The response headers.
    #[must_use]
    pub fn headers(&self) -> &SecurityHeaders {
        &self.shared.headers
    }
}

impl Shared {
    /// The kind of credential the request carries, found without checking it.
    fn credential(&self, parts: &Parts) -> Option<&'static str> {
        if let Some(kind) = self.probe.as_ref().and_then(|p| p.credential_kind(parts)) {
            return Some(kind);
        }
        if parts.headers.contains_key(AUTHORIZATION) {
            return Some("authorization");
        }
        self.policy
            .credential_headers()
            .iter()
            .any(|h| parts.headers.contains_key(h))
            .then_some("credential_header")
    }

    /// The refusal of a request that may not come over plain HTTP.
    fn refuse<B>(
        &self,
        parts: &Parts,
        credential: Option<&'static str>,
    ) -> Response<ResponseBody<B>> {
        let rejection = Rejection::Transport(TransportRefusal::new(
            TransportReason::InsecureTransport,
            credential,
        ));
        if let Some((kind, held)) = credential.zip(self.warnings.admit()) {
            // Never the credential: its kind and where it came from, so it can be rotated.
            // Every refusal is in the audit log; the warning is for the operator's eye.
            tracing::warn!(
                target: "palisade::transport",
                credential = kind,
                client = ?crate::client_ip::peer_addr_of(&parts.extensions).map(|a| a.ip()),
                held_back = held,
                "a credential came over plain HTTP and was refused; it is exposed and must be rotated"
            );
        }
        let trace = DecisionTrace::start("transport", &parts.headers, &parts.extensions);
        let mut res = refusal("transport", &rejection, trace, &parts.extensions);
        self.headers
            .apply(res.headers_mut(), false, credential.is_some());
        res
    }
}

impl<S> Layer<S> for TransportLayer {
    type Service = Transport<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Transport {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`TransportLayer`]. See the [module docs](crate::transport).
#[derive(Clone)]
pub struct Transport<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Transport<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Transport<S> {
    crate::macros::define_inner_service_accessors!();
}

/// Adds the security headers to the inner service's response.
#[derive(Debug)]
pub struct AddHeaders {
    shared: Arc<Shared>,
    secure: bool,
    credentialed: bool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransportShared")
    }
}

impl Finish for AddHeaders {
    fn finish<B>(self, res: &mut Response<ResponseBody<B>>) {
        self.shared
            .headers
            .apply(res.headers_mut(), self.secure, self.credentialed);
    }
}

impl<S, B, ResB> Service<Request<B>> for Transport<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error, AddHeaders>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let shared = &*self.shared;
        let guard = !shared.policy.is_off();
        if !guard && !shared.headers.is_enabled() {
            return ResponseFuture::inner(self.inner.call(req), None);
        }
        let (parts, body) = req.into_parts();
        let credential = if guard || shared.headers.needs_credential() {
            shared.credential(&parts)
        } else {
            None
        };
        let scheme = scheme(&shared.resolver, &parts.extensions, &parts.headers);
        if guard && !scheme.secure {
            let refused = match shared.policy.require_tls() {
                RequireTls::Credentials => credential.is_some(),
                RequireTls::AllRequests => true,
            };
            let local =
                shared.policy.allows_loopback() && scheme.client.is_some_and(|ip| ip.is_loopback());
            if refused && !local {
                return ResponseFuture::refused(shared.refuse(&parts, credential));
            }
        }
        let finish = shared.headers.is_enabled().then(|| AddHeaders {
            shared: self.shared.clone(),
            secure: scheme.secure,
            credentialed: credential.is_some(),
        });
        let req = Request::from_parts(parts, body);
        ResponseFuture::inner(self.inner.call(req), finish)
    }
}

#[cfg(test)]
mod tests {
    use super::WarnLimit;

    #[test]
    fn one_warning_a_second_counting_what_was_held_back() {
        let limit = WarnLimit::default();
        assert_eq!(limit.admit_at(100), Some(0));
        for _ in 0..1000 {
            assert_eq!(limit.admit_at(100), None);
        }
        assert_eq!(limit.admit_at(101), Some(1000));
        assert_eq!(limit.admit_at(101), None);
        assert_eq!(limit.admit_at(105), Some(1));
        // A clock that steps back never unlocks a second warning early.
        assert_eq!(limit.admit_at(104), None);
    }
}
