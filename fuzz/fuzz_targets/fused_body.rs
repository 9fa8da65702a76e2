//! The fused body path against the token path: two validation layers over the same schema,
//! one whose operation has learned its handler's `Validated<Order>` (so bodies are checked
//! while the `Order` is built), one kept on the token path (a deny pattern, which the fused
//! path does not take). Every input must get the same status and the same answer from both.
#![no_main]

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Router;
use axum::routing::post;
use http::Method;
use libfuzzer_sys::fuzz_target;
use palisade::validate::{DenyPattern, JsonLimits, Operation, SchemaSet, ValidateLayer, Validated};
use serde::Deserialize;
use serde_json::json;
use tower::ServiceExt;

type Body = axum::body::Body;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Order {
    item: String,
    qty: Option<u32>,
    price: Option<f64>,
    kind: Option<Kind>,
    tags: Option<Vec<String>>,
    meta: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
enum Kind {
    #[serde(rename = "a")]
    A,
    #[serde(rename = "b")]
    B,
}

fn router(fused: bool) -> Router {
    let schema = json!({
        "type": "object",
        "required": ["item"],
        "properties": {
            "item": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 64},
            "qty": {"type": "integer", "minimum": 1, "maximum": 1000},
            "price": {"type": "number", "exclusiveMinimum": 0},
            "kind": {"enum": ["a", "b"]},
            "tags": {"type": "array", "maxItems": 8, "items": {"type": "string", "minLength": 1}},
            "meta": {"type": "object", "additionalProperties": {"type": ["string", "number", "null"]}}
        },
        "additionalProperties": false
    });
    let mut op = Operation::new()
        .json_body(SchemaSet::new().compile(&schema).unwrap())
        .json_limits(JsonLimits {
            max_depth: 8,
            max_members: 64,
            max_string_bytes: 256,
            ..JsonLimits::default()
        });
    if !fused {
        op = op.deny(DenyPattern::new("/never", "never").unwrap());
    }
    let layer = ValidateLayer::builder()
        .operation(Method::POST, "/o", op)
        .build()
        .unwrap();
    Router::new()
        .route(
            "/o",
            post(|Validated(o): Validated<Order>| async move { format!("{o:?}") }),
        )
        .layer(layer)
}

fn call(router: &Router, body: &[u8]) -> (u16, bytes::Bytes) {
    common::runtime().block_on(async {
        let req = http::Request::post("/o")
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .unwrap();
        let res = router.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, bytes)
    })
}

fn routers() -> &'static (Router, Router) {
    static R: OnceLock<(Router, Router)> = OnceLock::new();
    R.get_or_init(|| {
        let fused = router(true);
        // The first accepted body teaches the operation its type.
        assert_eq!(call(&fused, br#"{"item":"x"}"#).0, 200);
        (fused, router(false))
    })
}

fuzz_target!(|data: &[u8]| {
    let (fused, tape) = routers();
    let a = call(fused, data);
    let b = call(tape, data);
    assert_eq!(a.0, b.0, "status");
    assert_eq!(a.1, b.1, "answer");
});
