//! The palisade guard around a plain hyper 1 service: no axum.
//!
//! Run with: `cargo run --example hyper [-- --listen 127.0.0.1:8081]`
//!
//! Each connection's peer address goes into the request extensions as [`PeerAddr`], so
//! palisade knows the client address; the guard is applied with `tower::ServiceBuilder` and the
//! result is handed to hyper through `hyper_util`'s `TowerToHyperService`. The guard limits
//! each client address to 20 requests a second (bursts of 40) and each user to 1,000 an hour,
//! with the `RateLimit` fields on every response.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use palisade::client_ip::PeerAddr;
use palisade::prelude::*;
use tower::{ServiceBuilder, service_fn};

/// The application: a plain hyper-style handler that reads what palisade established.
async fn handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Behind the guard a Principal is always present; answer 500 if the wiring were wrong.
    let Some(principal) = req.extensions().get::<Principal>() else {
        let mut res = Response::new(Full::new(Bytes::from_static(b"not authenticated")));
        *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(res);
    };
    let client = req.extensions().get::<ClientIp>().map(ToString::to_string);
    let body = format!(
        "hello {} from {}\n",
        principal.subject(),
        client.as_deref().unwrap_or("an unknown address")
    );
    Ok(Response::new(Full::new(Bytes::from(body))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen: SocketAddr = "127.0.0.1:8081".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }

    let keys = ApiKeys::new();
    let store = MemoryKeyStore::new();
    let issued = keys.generate(KeySpec::new("demo"))?;
    store.insert(issued.record);
    let quotas = MemoryStore::new();
    let per_ip = QuotaLayer::builder(quotas.clone())
        .rule(QuotaRule::new(
            KeyBy::client_ip(),
            QuotaPolicy::new("per-ip", [Limit::per_second(20).burst(40)]),
        ))
        .build()?;
    let per_user = QuotaLayer::builder(quotas)
        .rule(QuotaRule::new(
            KeyBy::Subject,
            QuotaPolicy::new("per-user", [Limit::quota(1_000, Window::Hour)]),
        ))
        .build()?;
    let guard = Palisade::builder()
        // This example speaks plain HTTP on this machine; in production, terminate TLS (and
        // mark requests `ConnectionScheme::Https`) or trust the proxy that does.
        .allow_plain_http_from_loopback()
        .limit_clients(per_ip)
        .authenticate(keys.authenticator(store))
        .limit_principals(per_user)
        .build()?;

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("palisade hyper example listening on http://{addr}");
    println!("try it:");
    println!(
        "curl -i -H 'x-api-key: {}' http://{addr}/",
        issued.plaintext.expose_secret()
    );

    loop {
        let (stream, peer) = listener.accept().await?;
        let service = ServiceBuilder::new()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            })
            .layer(guard.clone())
            .service(service_fn(handler));
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = conn.await {
                eprintln!("connection from {peer}: {e}");
            }
        });
    }
}
