//! Query-string coercion: parameters checked and coerced against an object schema (integers,
//! numbers, booleans, arrays from repeated keys or in the OpenAPI delimited styles, deepObject
//! objects), through the validation layer, string guards included.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use palisade::validate::{Operation, SchemaSet, Validate, ValidateLayer};
use serde_json::json;
use tower::{Layer, ServiceExt};

type Svc = Validate<
    tower::util::ServiceFn<
        fn(
            http::Request<axum::body::Body>,
        ) -> std::future::Ready<
            Result<http::Response<axum::body::Body>, std::convert::Infallible>,
        >,
    >,
>;

fn ok(
    _: http::Request<axum::body::Body>,
) -> std::future::Ready<Result<http::Response<axum::body::Body>, std::convert::Infallible>> {
    std::future::ready(Ok(http::Response::new(axum::body::Body::empty())))
}

fn svc() -> &'static Svc {
    static S: OnceLock<Svc> = OnceLock::new();
    S.get_or_init(|| {
        let schema = json!({
            "type": "object",
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "ratio": {"type": "number"},
                "flag": {"type": "boolean"},
                "tag": {"type": "array", "items": {"type": "string", "maxLength": 8}},
                "q": {"type": "string"},
                "ids": {"type": "array", "items": {"type": "integer"}, "explode": false},
                "pipes": {"type": "array", "items": {"type": "number"}, "style": "pipeDelimited"},
                "words": {"type": "array", "items": {"type": "string"}, "style": "spaceDelimited"},
                "filter": {"type": "object", "style": "deepObject",
                           "properties": {"min": {"type": "integer"}, "on": {"type": "boolean"}}}
            },
            "additionalProperties": false
        });
        let layer = ValidateLayer::builder()
            .operation(
                Method::GET,
                "/v1/orders",
                Operation::new().query(&SchemaSet::new(), &schema),
            )
            .build()
            .unwrap();
        layer.layer(tower::service_fn(ok as fn(_) -> _))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(req) = http::Request::get(format!("/v1/orders?{query}")).body(axum::body::Body::empty())
    else {
        return;
    };
    let res = common::runtime()
        .block_on(svc().clone().oneshot(req))
        .unwrap();
    let s = res.status().as_u16();
    assert!(s == 200 || s == 422 || s == 400, "status {s}");
});
