//! Request bodies: UTF-8, palisade's JSON parser with its limits (depth, width, string length,
//! duplicate names), the control-character guard and the schema, through the validation
//! layer; the parser's verdict on syntax is held to serde_json's.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use palisade::validate::{JsonLimits, Operation, SchemaSet, Validate, ValidateLayer};
use serde_json::json;
use tower::{Layer, ServiceExt};

type Body = axum::body::Body;
type Handler = fn(
    http::Request<Body>,
) -> std::future::Ready<Result<http::Response<Body>, std::convert::Infallible>>;
type Svc = Validate<tower::util::ServiceFn<Handler>>;

fn ok(
    _: http::Request<Body>,
) -> std::future::Ready<Result<http::Response<Body>, std::convert::Infallible>> {
    std::future::ready(Ok(http::Response::new(Body::empty())))
}

fn svc() -> &'static Svc {
    static S: OnceLock<Svc> = OnceLock::new();
    S.get_or_init(|| {
        let schema = json!({
            "type": "object",
            "required": ["item"],
            "properties": {
                "item": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 64},
                "qty": {"type": "integer", "minimum": 1},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                "meta": {"type": "object", "additionalProperties": {"type": ["string", "number", "null"]}}
            }
        });
        let layer = ValidateLayer::builder()
            .operation(
                Method::POST,
                "/v1/orders",
                Operation::new()
                    .json_body(SchemaSet::new().compile(&schema).unwrap())
                    .max_body_bytes(64 * 1024)
                    .json_limits(JsonLimits {
                        max_depth: 16,
                        max_members: 256,
                        max_string_bytes: 1024,
                        ..JsonLimits::default()
                    }),
            )
            .build()
            .unwrap();
        layer.layer(tower::service_fn(ok as Handler))
    })
}

fuzz_target!(|data: &[u8]| {
    let req = http::Request::post("/v1/orders")
        .header("content-type", "application/json")
        .body(Body::from(data.to_vec()))
        .unwrap();
    let res = common::runtime()
        .block_on(svc().clone().oneshot(req))
        .unwrap();
    let s = res.status().as_u16();
    assert!(matches!(s, 200 | 400 | 413 | 415 | 422), "status {s}");
    // What passed is valid JSON (the handler may rely on it), and what was refused as
    // malformed (400) is not JSON to serde_json either.
    let json = serde_json::from_slice::<serde_json::Value>(data).is_ok();
    if s == 200 {
        assert!(json);
    }
    if s == 400 {
        assert!(!json, "refused as malformed, but serde_json reads it");
    }
});
