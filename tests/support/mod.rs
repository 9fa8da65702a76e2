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
use palisade::{ClientIp, Principal, Rejection};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tower::Layer;

/// A server under test: its address, how often the handler ran, and the refusals an outer
/// "audit" layer saw in response extensions.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub refusals: Arc<Mutex<Vec<Rejection>>>,
}

impl TestServer {
    /// Serves `/{*path}` and `/` with a JSON handler behind `guard`.
    pub async fn start<L>(guard: L) -> Self
    where
        L: Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
        L::Service: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Response:
            axum::response::IntoResponse + 'static,
        <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
    {
        let hits = Arc::new(AtomicUsize::new(0));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let counter = hits.clone();
        let handler = move |principal: Principal, ip: Option<Extension<ClientIp>>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({
                    "subject": principal.subject(),
                    "key_id": principal.key_id().map(ToString::to_string),
                    "roles": principal.roles().collect::<Vec<_>>(),
                    "tenant": principal.tenant(),
                    "client_ip": ip.map(|Extension(ip)| ip.to_string()),
                }))
            }
        };
        let seen = refusals.clone();
        let app = Router::new()
            .route("/", any(handler.clone()))
            .route("/{*path}", any(handler))
            .layer(guard)
            // Outermost, like the audit layer: reads why a layer refused.
            .layer(axum::middleware::map_response(
                move |res: axum::response::Response| {
                    let seen = seen.clone();
                    async move {
                        if let Some(r) = res.extensions().get::<Rejection>() {
                            seen.lock().unwrap().push(r.clone());
                        }
                        res
                    }
                },
            ));
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
        Self {
            addr,
            hits,
            refusals,
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
        let mut b = Request::get(path).header("host", self.addr.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        send(self.addr, b.body(Full::new(Bytes::new())).unwrap()).await
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
