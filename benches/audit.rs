//! The audit layer's cost per request beside the usual alternative — one `tracing` JSON event
//! per request written through `tracing-appender`'s non-blocking writer — and the bare
//! handler, in one criterion run, in-process through axum (`oneshot`) on a two-worker runtime
//! (the audit queue's task runs on the other worker, as in a server).
//!
//! Run with: `cargo bench --bench audit`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::StatusCode;
use palisade::BoxError;
use palisade::audit::{AuditLayer, AuditRecord, AuditSink};
use tower::ServiceExt;

#[path = "support/runtime.rs"]
mod runtime;

/// Formats and drops: what a real sink costs besides its I/O.
struct Discard;

impl AuditSink for Discard {
    async fn write(&self, batch: &[AuditRecord]) -> Result<(), BoxError> {
        black_box(batch);
        Ok(())
    }
}

/// The alternative: a `from_fn` middleware logging one JSON event per request.
async fn log_request(req: Request, next: Next) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let ua = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let start = tokio::time::Instant::now();
    let res = next.run(req).await;
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status = res.status().as_u16(),
        latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        user_agent = ua.as_deref(),
        "request"
    );
    res
}

fn request() -> http::Request<Body> {
    http::Request::get("/v1/orders/42?page=2")
        .header("user-agent", "bench/1.0")
        .body(Body::empty())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = runtime::two_workers();
    let _guard = runtime::json_events_to_nothing();

    let router = || Router::new().route("/v1/orders/{id}", get(|| async { "ok" }));
    let bare: Router = router();
    let traced: Router = router().layer(middleware::from_fn(log_request));
    let (audit, handle) = rt.block_on(async {
        AuditLayer::builder(Discard)
            .capacity(65_536)
            .build()
            .unwrap()
    });
    let audited: Router = router().layer(audit);

    let mut group = c.benchmark_group("audit");
    for (name, r) in [
        ("bare", &bare),
        ("tracing-json-non-blocking", &traced),
        ("palisade-audit", &audited),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let res = r.clone().oneshot(request()).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
            });
        });
    }
    group.finish();

    // The request path alone: requests on this thread (a current-thread runtime), the queue's
    // task and tracing-appender's writer on their own threads (the audit layer built inside a
    // one-worker runtime spawns its task there), so on two cores the difference from bare is
    // what the request thread pays, not the drain's work competing for the same core.
    let requests = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let drain = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (audit, thread_handle) = drain.block_on(async {
        AuditLayer::builder(Discard)
            .capacity(65_536)
            .build()
            .unwrap()
    });
    let audited_apart: Router = router().layer(audit);
    let mut group = c.benchmark_group("audit-request-thread");
    for (name, r) in [
        ("bare", &bare),
        ("tracing-json-non-blocking", &traced),
        ("palisade-audit", &audited_apart),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&requests).iter(|| async {
                let res = r.clone().oneshot(request()).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
            });
        });
    }
    group.finish();
    drain.block_on(thread_handle.shutdown());
    eprintln!(
        "audit, request thread apart: {} events written, {} dropped",
        thread_handle.written(),
        thread_handle.dropped()
    );
    rt.block_on(handle.shutdown());
    eprintln!(
        "audit: {} events written, {} dropped",
        handle.written(),
        handle.dropped()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
