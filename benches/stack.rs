//! The whole stack, per request, beside what a Rust user would assemble from public crates, and
//! the bare handler, in one criterion run, in-process through axum (`oneshot`) on one
//! current-thread runtime (the audit queue drains on the measured thread too): `POST
//! /v1/orders` with a ~1 KB JSON order, for an API-key caller and for an ES256 JWT caller
//! repeating its token (first-sight tokens: `benches/stack_instructions.rs`).
//!
//! - palisade: audit → quota per client IP → authn → quota per subject → authz (20 rules,
//!   three-level roles, the measured rule 11th) → validation (the order's JSON Schema, 64 KiB
//!   body limit) → handler (`Validated<Order>`).
//! - peer: a `tracing` JSON event through `tracing-appender`'s non-blocking writer →
//!   `tower_governor` keyed per credential → axum's `DefaultBodyLimit` (64 KiB) → a `from_fn`
//!   route layer (SHA-256 of the key and a map lookup, or `jsonwebtoken::decode` ES256) →
//!   casbin RBAC matching axum's route template exactly (the same 20 rules and roles; a
//!   second row with casbin's `keyMatch2` on the raw path) → handler (`serde_json` +
//!   `jsonschema` + `from_value`).
//! - bare: the handler alone, taking the body as bytes (`bare`) or as axum's `Json<Order>`
//!   (`bare/json`: what a handler with no guard still pays to read the order).
//!
//! Run with: `cargo bench --bench stack --features jwt`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

#[path = "support/order.rs"]
mod order;
#[path = "support/runtime.rs"]
mod runtime;
#[path = "support/stacks.rs"]
mod stacks;

use axum::Router;
use criterion::{Criterion, criterion_group, criterion_main};
use http::StatusCode;
use order::body;
use stacks::{Stacks, request};
use tower::ServiceExt;

fn bench(c: &mut Criterion) {
    let rt = runtime::one_worker();
    let _guard = runtime::json_events_to_nothing();
    let body = body();
    let st = rt.block_on(async { Stacks::new() });
    let (api_key, bearer) = (st.api_key.clone(), st.bearer.clone());
    let mut group = c.benchmark_group("stack");
    let cases: [(&str, &Router, &str, &str); 9] = [
        ("bare", &st.bare, "x-api-key", &api_key),
        ("bare/json", &st.bare_json, "x-api-key", &api_key),
        ("palisade/api-key", &st.palisade_key, "x-api-key", &api_key),
        (
            "palisade/api-key-without-audit",
            &st.no_audit,
            "x-api-key",
            &api_key,
        ),
        (
            "palisade/api-key-without-body-validation",
            &st.no_validation,
            "x-api-key",
            &api_key,
        ),
        (
            "palisade/es256-repeated",
            &st.palisade_jwt,
            "authorization",
            &bearer,
        ),
        ("peer/api-key", &st.peer, "x-api-key", &api_key),
        (
            "peer/api-key-keymatch2",
            &st.peer_keymatch2,
            "x-api-key",
            &api_key,
        ),
        ("peer/es256", &st.peer, "authorization", &bearer),
    ];
    for (name, router, header, value) in cases {
        let res = rt
            .block_on(router.clone().oneshot(request(header, value, &body)))
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let res = router
                    .clone()
                    .oneshot(request(header, value, &body))
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::CREATED);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
