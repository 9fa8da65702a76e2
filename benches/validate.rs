//! Validating a realistic ~1 KB order body per request, in-process through axum
//! (`oneshot`): palisade's `ValidateLayer` + `Validated<Order>` beside the same work done by
//! hand in the handler (`serde_json` parse, `jsonschema` validation, deserialize), and the
//! bare handler, in the same run.
//!
//! With the `openapi` feature, `validate-startup` loads a large published OpenAPI document (497
//! KB, every schema compiled, responses checked): start-up work, never per request.
//!
//! Run with: `cargo bench --bench validate` (`--features openapi` for `validate-startup`)

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Method, Request, StatusCode};
use palisade::validate::{Operation, SchemaSet, ValidateLayer, Validated};
use serde_json::Value;
use tower::ServiceExt;

#[path = "support/order.rs"]
mod order;

use order::{Order, body, schema};

fn request(body: &Bytes) -> Request<Body> {
    Request::post("/v1/orders")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body.clone()))
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = body();
    assert!((900..1300).contains(&body.len()), "{} bytes", body.len());

    let bare: Router = Router::new().route(
        "/v1/orders",
        post(|b: Bytes| async move {
            black_box(b);
            "ok"
        }),
    );
    let layer = ValidateLayer::builder()
        .operation(
            Method::POST,
            "/v1/orders",
            Operation::new().json_body(SchemaSet::new().compile(&schema()).unwrap()),
        )
        .build()
        .unwrap();
    let palisade: Router = Router::new()
        .route(
            "/v1/orders",
            post(|Validated(order): Validated<Order>| async move {
                black_box(order);
                "ok"
            }),
        )
        .layer(layer);
    // By hand: what a host writes without palisade.
    let validator = Arc::new(jsonschema::validator_for(&schema()).unwrap());
    let by_hand: Router = Router::new().route(
        "/v1/orders",
        post(move |b: Bytes| {
            let validator = validator.clone();
            async move { order::by_hand(&validator, &b, StatusCode::OK) }
        }),
    );

    // Where the time goes, piece by piece.
    let mut parts = c.benchmark_group("validate-parts");
    let v: Value = serde_json::from_slice(&body).unwrap();
    let compiled = SchemaSet::new().compile(&schema()).unwrap();
    parts.bench_function("serde_json-parse-value", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&body)).unwrap()));
    });
    parts.bench_function("jsonschema-is_valid", |b| {
        b.iter(|| black_box(compiled.is_valid(black_box(&v))));
    });
    parts.bench_function("from_value-order", |b| {
        b.iter(|| black_box(serde_json::from_value::<Order>(black_box(v.clone())).unwrap()));
    });
    parts.bench_function("clone-value", |b| {
        b.iter(|| black_box(black_box(&v).clone()));
    });
    parts.bench_function("serde_json-parse-order", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Order>(black_box(&body)).unwrap()));
    });
    parts.finish();

    let mut group = c.benchmark_group("validate");
    for (name, router) in [
        ("bare", &bare),
        ("palisade", &palisade),
        ("by-hand", &by_hand),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let res = router.clone().oneshot(request(&body)).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
            });
        });
    }
    group.finish();
    one_megabyte(c, &rt);
}

/// A 1 MB body (1,050 orders in one array), in bytes per second: palisade's validation and
/// `Validated<Vec<Order>>` beside the same work by hand.
fn one_megabyte(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let body = order::batch_body(1_050);
    assert!(
        (1_000_000..1_100_000).contains(&body.len()),
        "{} bytes",
        body.len()
    );
    let layer = ValidateLayer::builder()
        .operation(
            Method::POST,
            "/v1/orders",
            Operation::new()
                .max_body_bytes(2 << 20)
                .json_body(SchemaSet::new().compile(&order::batch_schema()).unwrap()),
        )
        .build()
        .unwrap();
    let palisade: Router = Router::new()
        .route(
            "/v1/orders",
            post(|Validated(orders): Validated<Vec<Order>>| async move {
                black_box(orders);
                "ok"
            }),
        )
        .layer(layer);
    let validator = Arc::new(jsonschema::validator_for(&order::batch_schema()).unwrap());
    let by_hand: Router = Router::new()
        .route(
            "/v1/orders",
            post(move |b: Bytes| {
                let validator = validator.clone();
                async move { order::by_hand_batch(&validator, &b) }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(2 << 20));
    // The floor: serde_json builds the orders from the bytes, with no check at all.
    let serde_only: Router = Router::new()
        .route(
            "/v1/orders",
            post(|b: Bytes| async move {
                let orders: Vec<Order> = serde_json::from_slice(&b).unwrap();
                black_box(orders);
                "ok"
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(2 << 20));
    let mut group = c.benchmark_group("validate-1mb");
    group.throughput(criterion::Throughput::Bytes(body.len() as u64));
    group.sample_size(20);
    for (name, router) in [
        ("palisade", &palisade),
        ("by-hand", &by_hand),
        ("serde-only", &serde_only),
    ] {
        group.bench_function(name, |b| {
            b.to_async(rt).iter(|| async {
                let res = router.clone().oneshot(request(&body)).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
            });
        });
    }
    group.finish();
}

/// Loading `tests/openapi/published/star-trek.json` into a layer: every request, parameter
/// and response schema compiled, with its fused plan.
#[cfg(feature = "openapi")]
fn startup(c: &mut Criterion) {
    use palisade::validate::ResponseCheck;
    use palisade::validate::openapi::OpenApi;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/openapi/published/star-trek.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut group = c.benchmark_group("validate-startup");
    group.sample_size(10);
    group.bench_function("star-trek-openapi", |b| {
        b.iter(|| {
            let doc = OpenApi::from_json(&text)
                .unwrap()
                .check_responses(ResponseCheck::Refuse);
            black_box(doc.layer().unwrap())
        });
    });
    group.finish();
}

#[cfg(not(feature = "openapi"))]
fn startup(_: &mut Criterion) {}

criterion_group!(benches, bench, startup);
criterion_main!(benches);
