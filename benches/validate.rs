//! Validating a realistic ~1 KB order body per request, in-process through axum
//! (`oneshot`): palisade's `ValidateLayer` + `Validated<Order>` beside the same work done by
//! hand in the handler (`serde_json` parse, `jsonschema` validation, deserialize), and the
//! bare handler, in the same run.
//!
//! Run with: `cargo bench --bench validate`

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
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Order {
    customer: Customer,
    currency: String,
    items: Vec<Item>,
    shipping: Address,
    note: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Customer {
    id: String,
    email: String,
    tier: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Item {
    sku: String,
    name: String,
    qty: u32,
    unit_price: f64,
    gift: bool,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Address {
    line1: String,
    city: String,
    postcode: String,
    country: String,
}

/// The order schema: nested objects, 10 line items, patterns, enums, bounds.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["customer", "currency", "items", "shipping"],
        "additionalProperties": false,
        "properties": {
            "customer": {
                "type": "object", "required": ["id", "email", "tier"], "additionalProperties": false,
                "properties": {
                    "id": {"type": "string", "pattern": "^cus_[a-zA-Z0-9]{12}$"},
                    "email": {"type": "string", "maxLength": 254, "pattern": "^[^@\\s]+@[^@\\s]+$"},
                    "tier": {"enum": ["free", "pro", "enterprise"]}
                }
            },
            "currency": {"enum": ["EUR", "USD", "GBP", "JPY"]},
            "items": {
                "type": "array", "minItems": 1, "maxItems": 50,
                "items": {
                    "type": "object", "required": ["sku", "name", "qty", "unit_price"], "additionalProperties": false,
                    "properties": {
                        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                        "name": {"type": "string", "minLength": 1, "maxLength": 80},
                        "qty": {"type": "integer", "minimum": 1, "maximum": 999},
                        "unit_price": {"type": "number", "exclusiveMinimum": 0, "maximum": 100000},
                        "gift": {"type": "boolean"}
                    }
                }
            },
            "shipping": {
                "type": "object", "required": ["line1", "city", "postcode", "country"],
                "properties": {
                    "line1": {"type": "string", "minLength": 1, "maxLength": 100},
                    "city": {"type": "string", "minLength": 1, "maxLength": 60},
                    "postcode": {"type": "string", "pattern": "^[A-Z0-9 -]{3,10}$"},
                    "country": {"type": "string", "pattern": "^[A-Z]{2}$"}
                }
            },
            "note": {"type": ["string", "null"], "maxLength": 500}
        }
    })
}

pub fn body() -> Bytes {
    let items: Vec<Value> = (0..10)
        .map(|i| json!({"sku": format!("ABC-{:04}", 1000 + i), "name": format!("Widget #{i}"), "qty": i + 1, "unit_price": 19.99 + f64::from(i), "gift": i % 3 == 0}))
        .collect();
    let order = json!({
        "customer": {"id": "cus_a1B2c3D4e5F6", "email": "alice@example.com", "tier": "pro"},
        "currency": "EUR",
        "items": items,
        "shipping": {"line1": "1 Rue de la Paix", "city": "Paris", "postcode": "75002", "country": "FR"},
        "note": "Leave at the door, please."
    });
    Bytes::from(order.to_string())
}

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
        .unwrap()
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
            async move {
                let Ok(value) = serde_json::from_slice::<Value>(&b) else {
                    return StatusCode::BAD_REQUEST;
                };
                if validator.iter_errors(&value).next().is_some() {
                    return StatusCode::UNPROCESSABLE_ENTITY;
                }
                let Ok(order) = serde_json::from_value::<Order>(value) else {
                    return StatusCode::UNPROCESSABLE_ENTITY;
                };
                black_box(order);
                StatusCode::OK
            }
        }),
    );

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
