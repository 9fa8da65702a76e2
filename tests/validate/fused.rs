//! The fused body path over loopback: once an operation has learned its handler's type (from
//! the first `Validated<T>`), every later body is checked and built in one pass, and the
//! answers are the ones the tape path gives: the same status and problem document for every
//! refusal, the handler never reached, the same value for every acceptance.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::post;
use http::{Method, Request};
use http_body_util::Full;
use palisade::validate::{DenyPattern, Operation, ValidateLayer, Validated};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::support::{Reply, send};
use super::{Order, order_schema, schema_set};

/// A server whose handler takes `Validated<Order>`. With `fused`, the layer learns its type
/// and takes the fused path; without, a deny pattern (matched by path, which the fused pass
/// does not follow) keeps every body on the tape path.
async fn start(fused: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let set = schema_set();
    let mut create = Operation::new().json_body(set.compile(&order_schema()).unwrap());
    if !fused {
        create = create.deny(DenyPattern::new("/never", "never").unwrap());
    }
    let layer = ValidateLayer::builder()
        .operation(Method::POST, "/v1/orders", create)
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let route = post(move |Validated(order): Validated<Order>| async move {
        h.fetch_add(1, Ordering::SeqCst);
        axum::Json(json!({
            "customer": order.customer,
            "skus": order.items.iter().map(|i| i.sku.clone()).collect::<Vec<_>>(),
            "qty": order.items.iter().map(|i| i.qty).sum::<u32>(),
        }))
    });
    let app = Router::new().route("/v1/orders", route).layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

async fn post_order(addr: std::net::SocketAddr, body: &str) -> Reply {
    let req = Request::post("/v1/orders")
        .header("host", "test")
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    send(addr, req).await
}

/// Bodies of every kind: valid ones (with escapes, unknown-but-allowed members, whole numbers
/// written as floats) and every refusal the layer makes.
fn corpus() -> Vec<String> {
    let valid = json!({"customer": "acme", "items": [{"sku": "ABC-1234", "qty": 2}]});
    let mut bodies: Vec<String> = vec![
        valid.to_string(),
        r#"{"customer":"a\u0063me","items":[{"sku":"ABC-1234","qty":2,"colour":"red"}]}"#.into(),
        r#"{"items":[{"qty":3,"sku":"XYZ-0001"},{"sku":"ABC-1234","qty":1}],"customer":"b","note":"n"}"#.into(),
        r#"{"customer":"acme","items":[{"sku":"ABC-1234","qty":2.0}]}"#.into(),
        // RFC 8259 §4: a member named twice.
        r#"{"customer":"acme","customer":"evil","items":[{"sku":"ABC-1234","qty":2}]}"#.into(),
        r#"{"customer":"acme","items":[{"sku":"ABC-1234","qty":2,"qty":900}]}"#.into(),
        // The schema: unknown member, missing one, pattern, bounds, types, empty array.
        r#"{"customer":"acme","items":[{"sku":"ABC-1234","qty":2}],"admin":true}"#.into(),
        r#"{"items":[{"sku":"ABC-1234","qty":2}]}"#.into(),
        r#"{"customer":"acme","items":[{"sku":"abc","qty":2}]}"#.into(),
        r#"{"customer":"acme","items":[{"sku":"ABC-1234","qty":1000}]}"#.into(),
        r#"{"customer":"acme","items":[{"sku":"ABC-1234","qty":"2"}]}"#.into(),
        r#"{"customer":"","items":[{"sku":"ABC-1234","qty":2}]}"#.into(),
        r#"{"customer":"acme","items":[]}"#.into(),
        r#"{"customer":"acme","items":{}}"#.into(),
        r#"["customer","acme"]"#.into(),
        // CVE-2021-42574 and control characters, escaped and sent as is.
        r#"{"customer":"ac\u202eme","items":[{"sku":"ABC-1234","qty":2}]}"#.into(),
        "{\"customer\":\"ac\u{202e}me\",\"items\":[{\"sku\":\"ABC-1234\",\"qty\":2}]}".into(),
        r#"{"customer":"acme","items":[{"sku":"ABC-1234","qty":2}],"n\u0000te":"x"}"#.into(),
        // Not JSON; trailing data; deep nesting.
        r#"{"customer":"acme","items":[{"sku":"ABC-1234","qty":2}]"#.into(),
        r#"{"customer":"acme","items":[{"sku":"ABC-1234","qty":2}]}{}"#.into(),
        format!(r#"{{"customer":"acme","items":[{{"sku":"ABC-1234","qty":2}}],"note":{}{}}}"#, "[".repeat(40), "]".repeat(40)),
    ];
    bodies.push(valid.to_string());
    bodies
}

#[tokio::test]
async fn after_learning_its_type_the_layer_answers_every_body_as_before() {
    let (learner, learner_hits) = start(true).await;
    let (reader, reader_hits) = start(false).await;
    // The first body teaches the learner its type.
    let first = corpus()[0].clone();
    assert_eq!(post_order(learner, &first).await.status, 200);
    assert_eq!(post_order(reader, &first).await.status, 200);
    for round in 0..2 {
        for body in corpus() {
            let before = learner_hits.load(Ordering::SeqCst);
            let a = post_order(learner, &body).await;
            let b = post_order(reader, &body).await;
            assert_eq!(a.status, b.status, "round {round}: {body}");
            assert_eq!(
                a.headers.get("content-type"),
                b.headers.get("content-type"),
                "{body}"
            );
            let (a_json, b_json): (Value, Value) = (a.json(), b.json());
            assert_eq!(a_json, b_json, "round {round}: {body}");
            if a.status != 200 {
                assert_eq!(
                    learner_hits.load(Ordering::SeqCst),
                    before,
                    "the handler ran for a refused body: {body}"
                );
                assert_eq!(a.headers["content-type"], "application/problem+json");
            }
        }
    }
    let accepted = learner_hits.load(Ordering::SeqCst);
    assert_eq!(accepted, reader_hits.load(Ordering::SeqCst));
    // Four valid bodies a round (one of them the float), twice, and the first one.
    assert_eq!(accepted, 1 + 2 * 5, "accepted bodies");
}

/// Attack: a client sends bodies the fused pass gives up on and the tape path accepts (`2.0`
/// for an integer), to keep an operation on the slower path for everyone. After 16 such
/// bodies in a row the pass is on probation, tried on one body in 256; the first valid body it
/// builds brings every later body back to it.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn a_client_cannot_keep_an_operation_off_the_fused_path() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The runtime is the test's own thread: the server's counters land in this recorder.
    let _local = metrics::set_default_local_recorder(&recorder);
    let count = |path: &str| -> u64 {
        let line = format!("palisade_validation_bodies_total{{path=\"{path}\"}} ");
        handle
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&line)?.parse().ok())
            .unwrap_or(0)
    };
    let (learner, _) = start(true).await;
    let valid = &corpus()[0];
    let whole = r#"{"customer":"acme","items":[{"sku":"ABC-1234","qty":2.0}]}"#;
    assert_eq!(post_order(learner, valid).await.status, 200);
    for _ in 0..40 {
        assert_eq!(post_order(learner, whole).await.status, 200);
    }
    assert_eq!(count("gave_up"), 16, "on probation after 16, untried since");
    let fused = count("fused");
    for _ in 0..300 {
        assert_eq!(post_order(learner, valid).await.status, 200);
    }
    // The 256th body since the probation began (the 232nd valid one) was tried and built.
    assert_eq!(count("fused") - fused, 300 - 231);
    assert_eq!(count("gave_up"), 16);
}
