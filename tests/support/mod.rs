//! Shared helpers for the HTTP integration tests: a real server on 127.0.0.1:0 and a real
//! HTTP/1.1 client.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Extension;
use axum::routing::any;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use palisade::authn::api_key::{ApiKeyAuthenticator, ApiKeys, KeySpec, MemoryKeyStore};
use palisade::authz::{Decision, ShadowDivergence};
use palisade::clock::{ManualClock, Timestamp};
use palisade::outcome::{QuotaMode, QuotaOutcome, QuotaShadow};
use palisade::transport::ConnectionScheme;
use palisade::{ClientIp, Principal, Rejection};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tower::Layer;

/// A server under test: its address, how often the handler ran, and the refusals an outer
/// "audit" layer saw in response extensions.
/// `jsonwebtoken::encode` on its RustCrypto backend, installed explicitly: with the benches'
/// `_peer-aws-lc` feature both of jsonwebtoken's backends are built and it would not choose.
#[cfg(feature = "jwt")]
pub fn encode_jwt(
    header: &jsonwebtoken::Header,
    claims: &impl serde::Serialize,
    key: &jsonwebtoken::EncodingKey,
) -> jsonwebtoken::errors::Result<String> {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    jsonwebtoken::encode(header, claims, key)
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub refusals: Arc<Mutex<Vec<Rejection>>>,
    pub divergences: Arc<Mutex<Vec<ShadowDivergence>>>,
    /// The quota mode of each response that had one other than `Enforced`.
    pub quota_modes: Arc<Mutex<Vec<QuotaMode>>>,
    /// The would-be refusals of shadow quota rules.
    pub quota_shadows: Arc<Mutex<Vec<QuotaShadow>>>,
}

impl TestServer {
    /// Serves `/{*path}` and `/` with a JSON handler, with `guard` wrapped around the router
    /// (so routes are decided on the raw path, as a non-axum host would). Each request is
    /// marked `ConnectionScheme::Https`, as a host's TLS acceptor marks it: the tests speak
    /// plain HTTP on loopback, and the transport tests use [`start_plain`](Self::start_plain).
    pub async fn start<L, B>(guard: L) -> Self
    where
        L: Layer<Router>,
        L::Service: tower::Service<
                axum::extract::Request,
                Response = http::Response<B>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        Self::start_with(guard, Some(ConnectionScheme::Https)).await
    }

    /// As [`start`](Self::start), with requests left as they came: plain HTTP.
    pub async fn start_plain<L, B>(guard: L) -> Self
    where
        L: Layer<Router>,
        L::Service: tower::Service<
                axum::extract::Request,
                Response = http::Response<B>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        Self::start_with(guard, None).await
    }

    async fn start_with<L, B>(guard: L, scheme: Option<ConnectionScheme>) -> Self
    where
        L: Layer<Router>,
        L::Service: tower::Service<
                axum::extract::Request,
                Response = http::Response<B>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let divergences = Arc::new(Mutex::new(Vec::new()));
        let quota_modes = Arc::new(Mutex::new(Vec::new()));
        let quota_shadows = Arc::new(Mutex::new(Vec::new()));
        let counter = hits.clone();
        let handler = move |principal: Principal,
                            ip: Option<Extension<ClientIp>>,
                            decision: Option<Extension<Decision>>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({
                    "subject": principal.subject(),
                    "key_id": principal.key_id().map(ToString::to_string),
                    "roles": principal.roles().collect::<Vec<_>>(),
                    "scopes": principal.scopes().collect::<Vec<_>>(),
                    "tier": principal.tier(),
                    "method": principal.method(),
                    "tenant": principal.tenant(),
                    "client_ip": ip.map(|Extension(ip)| ip.to_string()),
                    "rule": decision.and_then(|Extension(d)| d.rule().map(|r| r.description().to_owned())),
                }))
            }
        };
        let router = Router::new()
            .route("/", any(handler.clone()))
            .route("/{*path}", any(handler));
        let (seen, diverged, modes, shadows) = (
            refusals.clone(),
            divergences.clone(),
            quota_modes.clone(),
            quota_shadows.clone(),
        );
        let service = tower::ServiceBuilder::new()
            // Outermost, like the audit layer: reads why a layer refused.
            .map_response(move |res: http::Response<B>| {
                if let Some(r) = res.extensions().get::<Rejection>() {
                    seen.lock().unwrap().push(r.clone());
                }
                if let Some(d) = res.extensions().get::<ShadowDivergence>() {
                    diverged.lock().unwrap().push(d.clone());
                }
                if let Some(q) = res.extensions().get::<QuotaOutcome>() {
                    if q.mode() != QuotaMode::Enforced {
                        modes.lock().unwrap().push(q.mode());
                    }
                    if let Some(s) = q.shadow() {
                        shadows.lock().unwrap().push(s.clone());
                    }
                }
                res.map(axum::body::Body::new)
            })
            // The host's TLS acceptor, when the server plays one.
            .map_request(move |mut req: axum::extract::Request| {
                if let Some(scheme) = scheme {
                    req.extensions_mut().insert(scheme);
                }
                req
            })
            .layer(guard)
            .service(router);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let make =
                axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                    SocketAddr,
                >(service);
            axum::serve(listener, make).await.unwrap();
        });
        Self {
            addr,
            hits,
            refusals,
            divergences,
            quota_modes,
            quota_shadows,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn last_refusal(&self) -> Option<Rejection> {
        self.refusals.lock().unwrap().last().cloned()
    }

    /// GET `path` with `headers` over a fresh connection.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(http::Method::GET, path, headers).await
    }

    /// `method` on `path` with `headers` over a fresh connection.
    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        send(self.addr, b.body(Full::new(Bytes::new())).unwrap()).await
    }
}

/// API keys in a memory store, and a manual clock starting at 2026-01-01T00:00:00Z.
pub struct Keys {
    pub keys: ApiKeys,
    pub store: MemoryKeyStore,
    pub clock: ManualClock,
}

impl Keys {
    /// 2026-01-01T00:00:00Z, in Unix seconds.
    pub const T0: u64 = 1_767_225_600;

    pub fn new() -> Self {
        Self {
            keys: ApiKeys::new(),
            store: MemoryKeyStore::new(),
            clock: ManualClock::new(Timestamp::from_unix_secs(Self::T0)),
        }
    }

    /// Issues and stores a key; returns its plaintext.
    pub fn issue(&self, spec: KeySpec) -> String {
        let issued = self.keys.generate(spec).unwrap();
        self.store.insert(issued.record);
        issued.plaintext.expose_secret().to_owned()
    }

    /// An authenticator over the store.
    pub fn authenticator(&self) -> ApiKeyAuthenticator<MemoryKeyStore> {
        self.keys.authenticator(self.store.clone())
    }
}

/// A response with its body read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Everything the client sees, as text: for "no secret in any output" checks.
    pub fn visible_text(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        s.push_str(&String::from_utf8_lossy(&self.body));
        s
    }
}

/// Sends one request on a fresh HTTP/1.1 connection to `addr`.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res: Response<hyper::body::Incoming> = sender.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// Sends `raw` bytes as one HTTP/1.1 request on a fresh connection (the path reaches the server
/// exactly as written: no client normalises `..`, `//` or percent-encoding) and returns the
/// status code and body.
pub async fn raw(addr: SocketAddr, raw: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// Serves `app` on 127.0.0.1 with the peer address attached to every request, each marked
/// `ConnectionScheme::Https` as a host's TLS acceptor marks it; returns its address.
pub async fn serve(app: Router) -> SocketAddr {
    serve_plain(app.layer(Extension(ConnectionScheme::Https))).await
}

/// As [`serve`], with requests left as they came: plain HTTP.
pub async fn serve_plain(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Collects what a `tracing` subscriber writes (`with_writer(move || captured.clone())`).
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// What was written, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A sink that keeps every record in memory.
#[derive(Clone, Default)]
pub struct MemorySink(pub Arc<Mutex<Vec<palisade::audit::AuditRecord>>>);

impl palisade::audit::AuditSink for MemorySink {
    async fn write(
        &self,
        batch: &[palisade::audit::AuditRecord],
    ) -> Result<(), palisade::BoxError> {
        self.0.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

impl MemorySink {
    pub fn events(&self) -> Vec<palisade::audit::AuditEvent> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.event().clone())
            .collect()
    }

    pub fn lines(&self) -> String {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|r| format!("{}\n", r.json()))
            .collect()
    }

    /// Waits until `n` request events arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<palisade::audit::AuditEvent> {
        for _ in 0..500 {
            let events: Vec<_> = self
                .events()
                .into_iter()
                .filter(|e| e.kind == palisade::audit::EventKind::Request)
                .collect();
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{n} events did not arrive: {:?}", self.events());
    }
}

/// `n` requests at once, in rounds of one per key of `keys`, each round moving every key on
/// to the next of `servers` (so each key alternates between instances): their statuses. The
/// quota tests send them against a store the instances share.
pub async fn at_once(servers: &[&TestServer], keys: &[String], n: usize) -> Vec<StatusCode> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (key, round) = (i % keys.len(), i / keys.len());
        let addr = servers[(key + round) % servers.len()].addr;
        let key = keys[key].clone();
        tasks.spawn(async move {
            let req = Request::get("/")
                .header("host", addr.to_string())
                .header("x-api-key", key)
                .body(Full::new(Bytes::new()))
                .unwrap();
            send(addr, req).await.status
        });
    }
    tasks.join_all().await
}

/// The script calls (`EVALSHA`, and `EVAL` for a script the server did not know yet) a
/// Redis server's `INFO commandstats` answer counts.
#[allow(dead_code)]
pub fn script_calls_in(info: &str) -> u64 {
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}
