//! Runs one API-key authentication case N times, for instruction counts under callgrind
//! (repeatable, unlike wall time on a shared machine). Not a criterion bench: run it through
//! `benches/callgrind.sh`, which subtracts a run with N = 0 to leave the per-request cost.
//!
//! Usage: `authn_instructions CASE N` with CASE one of valid, unknown_id, wrong_secret,
//! bad_checksum, missing (the authenticator alone), `stack:CASE` (an axum router behind
//! palisade, through `oneshot`) or `stack:bare` (the same router without palisade).

mod support;

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use palisade::authn::Authenticator;
use palisade::{Palisade, Principal};
use support::KeyFixture;
use tower::ServiceExt;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let (Some(case), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: authn_instructions CASE N");
        return;
    };
    let n: u64 = n.parse().expect("N is a number");
    let f = KeyFixture::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(case) = case.strip_prefix("stack:") {
        let router: Router = Router::new().route(
            "/v1/orders/{id}",
            get(|p: Option<Principal>| async move {
                black_box(p);
                "ok"
            }),
        );
        let router = if case == "bare" {
            router
        } else {
            router.layer(
                Palisade::builder()
                    .authenticate(f.keys.authenticator(f.store.clone()))
                    .build()
                    .unwrap(),
            )
        };
        let key = if case == "bare" { None } else { f.key(case) };
        rt.block_on(async {
            for _ in 0..n {
                let mut b = http::Request::get("/v1/orders/42");
                if let Some(key) = key {
                    b = b.header("x-api-key", key);
                }
                let res = router.clone().oneshot(b.body(Body::empty()).unwrap()).await;
                black_box(res.unwrap());
            }
        });
        return;
    }
    let authenticator = f.keys.authenticator(f.store.clone());
    let (parts, ()) = http::Request::get("/v1/orders/42")
        .header("x-api-key", f.key(&case).unwrap_or_default())
        .body(())
        .unwrap()
        .into_parts();
    let mut parts = parts;
    if case == "missing" {
        parts.headers.clear();
    }
    rt.block_on(async {
        for _ in 0..n {
            black_box(authenticator.authenticate(black_box(&parts)).await);
        }
    });
}
