//! Instructions per request of exactly the stacks `benches/stack.rs` compares (built by
//! `benches/support/stacks.rs`), for callgrind. Only `measure` is counted (the set-up, whose
//! cost varies with hash seeds, is not): the requests and everything they cause on the
//! measured thread, the audit queue's encoding of their events included (it is drained before
//! `measure` returns); the peer's log lines are formatted on that thread too (only the write
//! to nothing happens on `tracing-appender`'s). Run through `benches/stack_callgrind.sh`:
//!
//! ```sh
//! stack_instructions CASE N    # CASE: bare | bare-json | palisade-key | palisade-key-no-audit
//!                              #   | palisade-es256 | palisade-es256-first | peer-key
//!                              #   | peer-key-keymatch2 | peer-es256 | peer-es256-first
//! ```
//!
//! `-first` cases send a token never seen before on every request (signed before the count
//! starts; at most 200).

// criterion is not used; this is a plain program.
#![allow(missing_docs)]

#[path = "support/order.rs"]
mod order;
#[path = "support/runtime.rs"]
mod runtime;
#[path = "support/stacks.rs"]
mod stacks;

use std::hint::black_box;

use axum::body::Bytes;
use http::StatusCode;
use stacks::{Stacks, request};
use tower::ServiceExt;

/// First-sight tokens signed per run.
const FIRST_SIGHT: u64 = 200;

/// The measured part: the requests, and the audit queue drained of their events (its task
/// runs on this thread). Callgrind collects only inside it
/// (`--toggle-collect=stack_instructions::measure`, the exact name: a pattern such as
/// `*measure*` also toggles on governor's `measure_and_replace` and AWS-LC's jitter entropy).
#[inline(never)]
fn measure(
    rt: &tokio::runtime::Runtime,
    router: &axum::Router,
    header: &str,
    values: &[&str],
    body: &Bytes,
    audit: &palisade::audit::AuditHandle,
) {
    rt.block_on(async {
        for value in values {
            let res = router
                .clone()
                .oneshot(request(header, value, body))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            black_box(res);
        }
        // Every audit event encoded and handed to the sink before the count ends.
        audit.shutdown().await;
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().expect("a case");
    let n: u64 = args.next().map_or(0, |n| n.parse().expect("a count"));
    let rt = runtime::one_worker();
    let guard = runtime::json_events_to_nothing();
    let body = order::body();
    let st = rt.block_on(async { Stacks::new() });
    let first_sight = case.ends_with("-first");
    assert!(
        !first_sight || n <= FIRST_SIGHT,
        "at most {FIRST_SIGHT} first-sight requests"
    );
    let tokens: Vec<String> = if first_sight {
        (1..=FIRST_SIGHT)
            .map(|i| format!("Bearer {}", stacks::token_numbered(i)))
            .collect()
    } else {
        Vec::new()
    };
    let (router, header, value) = match case.as_str() {
        "bare" => (&st.bare, "x-api-key", st.api_key.clone()),
        "bare-json" => (&st.bare_json, "x-api-key", st.api_key.clone()),
        "palisade-key" => (&st.palisade_key, "x-api-key", st.api_key.clone()),
        "palisade-key-no-audit" => (&st.no_audit, "x-api-key", st.api_key.clone()),
        "palisade-es256" | "palisade-es256-first" => {
            (&st.palisade_jwt, "authorization", st.bearer.clone())
        }
        "peer-key" => (&st.peer, "x-api-key", st.api_key.clone()),
        "peer-key-keymatch2" => (&st.peer_keymatch2, "x-api-key", st.api_key.clone()),
        "peer-es256" | "peer-es256-first" => (&st.peer, "authorization", st.bearer.clone()),
        other => panic!("unknown case `{other}`"),
    };
    rt.block_on(async {
        // One request outside the count: one-time set-up is not per request.
        let res = router
            .clone()
            .oneshot(request(header, &value, &body))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{case}");
    });
    let values: Vec<&str> = (0..n)
        .map(|i| {
            if first_sight {
                tokens[usize::try_from(i).unwrap()].as_str()
            } else {
                value.as_str()
            }
        })
        .collect();
    measure(&rt, router, header, &values, &body, &st.audit_handle);
    drop(guard);
}
