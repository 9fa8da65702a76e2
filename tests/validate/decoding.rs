//! Content codings decoded before the body is checked (feature `decompression`), over real
//! HTTP: the handler sees the decoded body, a bomb stops at the limit.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::Full;
use palisade::validate::{Coding, Decoding, Operation, SchemaSet, ValidateLayer};
use serde_json::{Value, json};

use crate::support::{self, send};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `POST /orders` decoding `decoding`, 1 MiB body limit; the handler answers with the body and
/// the `Content-Encoding` it received.
async fn server(decoding: Decoding) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let schema = SchemaSet::new()
        .compile(&json!({"type": "object", "required": ["name"]}))
        .unwrap();
    let op = Operation::new()
        .json_body(schema)
        .max_body_bytes(1 << 20)
        .decode(decoding);
    let layer = ValidateLayer::builder()
        .operation(http::Method::POST, "/orders", op)
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/orders",
            post(move |headers: HeaderMap, body: Bytes| async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({
                    "body": String::from_utf8_lossy(&body),
                    "content_encoding": headers.get("content-encoding").map(|v| v.to_str().unwrap_or("?")),
                    "content_length": headers.get("content-length").map(|v| v.to_str().unwrap_or("?")),
                }))
            }),
        )
        .layer(layer);
    (support::serve(app).await, hits)
}

async fn send_coded(addr: std::net::SocketAddr, coding: &str, body: Vec<u8>) -> support::Reply {
    let req = Request::post("/orders")
        .header("host", "orders")
        .header("content-type", "application/json")
        .header("content-encoding", coding)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    send(addr, req).await
}

#[tokio::test]
async fn rfc9110_8_4_1_gzip_deflate_br_and_zstd_bodies_are_decoded_checked_and_handed_on_plain() {
    let (addr, hits) = server(Decoding::all()).await;
    let plain = br#"{"name": "tea", "qty": 2}"#;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(plain).unwrap();
    let mut br = Vec::new();
    brotli::BrotliCompress(
        &mut &plain[..],
        &mut br,
        &brotli::enc::BrotliEncoderParams::default(),
    )
    .unwrap();
    for (coding, encoded) in [
        ("br", br),
        ("gzip", gzip(plain)),
        ("deflate", z.finish().unwrap()),
        ("zstd", zstd::encode_all(&plain[..], 3).unwrap()),
    ] {
        let reply = send_coded(addr, coding, encoded).await;
        assert_eq!(reply.status, 200, "{coding}: {:?}", reply.body);
        let seen: Value = reply.json();
        assert_eq!(
            seen["body"],
            String::from_utf8_lossy(plain).as_ref(),
            "{coding}"
        );
        assert_eq!(
            seen["content_encoding"],
            Value::Null,
            "{coding}: no coding left"
        );
        assert_eq!(seen["content_length"], plain.len().to_string(), "{coding}");
    }
    // The decoded body is checked: `name` is required.
    let reply = send_coded(addr, "gzip", gzip(br#"{"qty": 2}"#)).await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    // Plain JSON labelled gzip is not a gzip stream.
    let reply = send_coded(addr, "gzip", plain.to_vec()).await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(reply.json()["code"], "malformed_body");
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_gzip_bomb_of_ten_megabytes_is_413_at_the_limit_and_never_reaches_the_handler() {
    let (addr, hits) = server(Decoding::all().max_ratio(u32::MAX)).await;
    let mut bomb_plain = b"{\"name\": \"".to_vec();
    bomb_plain.extend(std::iter::repeat_n(b'a', 10 << 20));
    bomb_plain.extend(b"\"}");
    let bomb = gzip(&bomb_plain);
    assert!(bomb.len() < 64 << 10, "{} bytes on the wire", bomb.len());
    let started = tokio::time::Instant::now();
    let reply = send_coded(addr, "gzip", bomb).await;
    assert_eq!(reply.status, 413, "{:?}", reply.body);
    assert_eq!(reply.json()["errors"][0]["keyword"], "maxBodyBytes");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_body_that_expands_past_the_ratio_is_413() {
    let (addr, hits) = server(Decoding::new([Coding::Gzip]).max_ratio(10)).await;
    let mut plain = b"{\"name\": \"".to_vec();
    plain.extend(std::iter::repeat_n(b'a', 100 << 10));
    plain.extend(b"\"}");
    let reply = send_coded(addr, "gzip", gzip(&plain)).await;
    assert_eq!(reply.status, 413, "{:?}", reply.body);
    assert_eq!(reply.json()["errors"][0]["keyword"], "maxRatio");
    // A coding the operation does not decode is still 415, naming those it does (RFC 9110
    // §12.5.3).
    let reply = send_coded(addr, "zstd", zstd::encode_all(&b"{}"[..], 3).unwrap()).await;
    assert_eq!(reply.status, 415, "{:?}", reply.body);
    assert_eq!(
        reply
            .headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip, identity")
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
