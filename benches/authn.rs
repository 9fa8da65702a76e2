//! API-key authentication per request, in-process through `tower::ServiceExt::oneshot`,
//! against the same axum router without palisade; and the authenticator alone.
//!
//! Run with: `cargo bench --bench authn`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

mod support;

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};
use palisade::authn::Authenticator;
use palisade::{Palisade, Principal};
use support::{CASES, KeyFixture};
use tower::ServiceExt;

fn request(key: Option<&str>) -> Request<Body> {
    // As a TLS listener marks it (the transport guard refuses keys otherwise).
    let mut b =
        Request::get("/v1/orders/42").extension(palisade::transport::ConnectionScheme::Https);
    if let Some(key) = key {
        b = b.header("x-api-key", key);
    }
    b.body(Body::empty()).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = KeyFixture::new();
    let authenticator = f.keys.authenticator(f.store.clone());

    let bare: Router = Router::new().route("/v1/orders/{id}", get(|| async { "ok" }));
    let guarded: Router = Router::new()
        .route(
            "/v1/orders/{id}",
            get(|p: Principal| async move {
                black_box(p);
                "ok"
            }),
        )
        .layer(
            Palisade::builder()
                .authenticate(f.keys.authenticator(f.store.clone()))
                .build()
                .unwrap(),
        );

    let mut group = c.benchmark_group("authn");
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| async {
            let res = bare.clone().oneshot(request(None)).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        });
    });
    for case in CASES {
        let key = f.key(case);
        let status = if case == "valid" { 200 } else { 401 };
        group.bench_function(format!("api_key/{case}"), |b| {
            b.to_async(&rt).iter(|| async {
                let res = guarded.clone().oneshot(request(key)).await.unwrap();
                assert_eq!(res.status(), status);
            });
        });
    }
    // The authenticator alone: what the layer adds per request minus routing and rendering.
    for case in CASES {
        let (parts, ()) = request(f.key(case)).map(|_| ()).into_parts();
        group.bench_function(format!("authenticator/{case}"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(authenticator.authenticate(&parts).await) });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
