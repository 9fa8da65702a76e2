//! The validation layer over real HTTP on loopback: each refusal is the right status with a
//! problem document listing what is wrong, and the handler is never called.

#[path = "../support/mod.rs"]
mod support;

#[cfg(feature = "decompression")]
mod decoding;
mod fused;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use palisade::validate::{
    DenyPattern, Operation, SchemaSet, ValidateLayer, Validated, ValidatedQuery,
};
use serde::Deserialize;
use serde_json::{Value, json};
use support::{Reply, raw, send};
use tokio::net::TcpListener;

struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

#[derive(Debug, Deserialize)]
struct Order {
    customer: String,
    items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    sku: String,
    qty: u32,
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: u32,
    #[serde(default)]
    tag: Vec<String>,
}

fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["customer", "items"],
        "additionalProperties": false,
        "properties": {
            "customer": {"type": "string", "minLength": 1, "maxLength": 64},
            "items": {
                "type": "array", "minItems": 1, "maxItems": 100,
                "items": {"$ref": "urn:test:item"}
            },
            "note": {"type": "string"}
        }
    })
}

/// The schemas of the order: `order_schema` refers to the item's by URI.
fn schema_set() -> SchemaSet {
    SchemaSet::new().register(
        "urn:test:item",
        json!({
            "type": "object", "required": ["sku", "qty"],
            "properties": {
                "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                "qty": {"type": "integer", "minimum": 1, "maximum": 999}
            }
        }),
    )
}

async fn start(limit: usize) -> Server {
    let set = schema_set();
    let create = Operation::new()
        .json_body(set.compile(&order_schema()).unwrap())
        .accept("application/*+json")
        .max_body_bytes(limit)
        .deny(DenyPattern::new("/note", "(?i)<script").unwrap());
    let list = Operation::new()
        .query(
            &set,
            &json!({
                "type": "object", "required": ["limit"], "additionalProperties": false,
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                    "tag": {"type": "array", "items": {"type": "string"}}
                }
            }),
        )
        .headers(
            &set,
            &json!({"type": "object", "properties": {"x-request-id": {"type": "string", "format": "uuid"}}}),
        );
    let get_one = Operation::new().path(
        &set,
        &json!({"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}}}),
    );
    let layer = ValidateLayer::builder()
        .operation(Method::POST, "/v1/orders", create)
        .operation(Method::GET, "/v1/orders", list)
        .operation(Method::GET, "/v1/orders/{id}", get_one)
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let (h1, h2, h3) = (hits.clone(), hits.clone(), hits.clone());
    let app = Router::new()
        .route(
            "/v1/orders",
            post(move |Validated(order): Validated<Order>| async move {
                h1.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({
                    "customer": order.customer,
                    "items": order.items.len(),
                    "first": order.items[0].sku,
                    "qty": order.items.iter().map(|i| i.qty).sum::<u32>(),
                }))
            })
            .get(
                move |ValidatedQuery(page): ValidatedQuery<Page>| async move {
                    h2.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"limit": page.limit, "tags": page.tag}))
                },
            ),
        )
        .route(
            "/v1/orders/{id}",
            get(move || async move {
                h3.fetch_add(1, Ordering::SeqCst);
                "one"
            }),
        )
        .layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { addr, hits }
}

impl Server {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    async fn post(&self, content_type: &str, body: impl Into<Bytes>) -> Reply {
        let req = Request::post("/v1/orders")
            .header("host", "test")
            .header("content-type", content_type)
            .body(Full::new(body.into()))
            .unwrap();
        send(self.addr, req).await
    }

    /// `POST /v1/orders` with exactly these headers (in this order, repeats kept).
    async fn post_with(&self, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
        let mut b = Request::post("/v1/orders").header("host", "test");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        send(self.addr, b.body(Full::new(body.into())).unwrap()).await
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut b = Request::get(path).header("host", "test");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        send(self.addr, b.body(Full::new(Bytes::new())).unwrap()).await
    }
}

fn valid_order() -> Value {
    json!({"customer": "acme", "items": [{"sku": "ABC-1234", "qty": 2}, {"sku": "XYZ-0001", "qty": 1}]})
}

/// A refusal: status, problem document with `code`, and the handler not called.
fn refused(server: &Server, reply: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    let body = reply.json();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(server.hits(), 0, "the handler ran");
    body
}

#[tokio::test]
async fn a_valid_request_reaches_the_handler_with_the_parsed_value() {
    let server = start(64 * 1024).await;
    let reply = server
        .post("application/json", valid_order().to_string())
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"customer": "acme", "items": 2, "first": "ABC-1234", "qty": 3})
    );
    // RFC 9110 §8.3.1: media type parameters and case do not matter.
    let reply = server
        .post("Application/JSON; charset=utf-8", valid_order().to_string())
        .await;
    assert_eq!(reply.status, 200);
    // RFC 6839 §3.1: a +json type the operation accepts.
    let reply = server
        .post("application/vnd.acme.order+json", valid_order().to_string())
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn rfc9110_15_5_16_wrong_content_type_is_415() {
    let server = start(64 * 1024).await;
    let reply = server.post("text/plain", valid_order().to_string()).await;
    refused(&server, &reply, 415, "unsupported_media_type");
    let reply = server
        .post("application/x-www-form-urlencoded", "customer=acme")
        .await;
    refused(&server, &reply, 415, "unsupported_media_type");
}

#[tokio::test]
async fn rfc9110_15_5_14_one_byte_over_the_limit_is_413_with_content_length() {
    let body = valid_order().to_string();
    let server = start(body.len()).await;
    let reply = server.post("application/json", body.clone()).await;
    assert_eq!(reply.status, 200, "exactly at the limit is accepted");
    let server = start(body.len() - 1).await;
    let reply = server.post("application/json", body).await;
    refused(&server, &reply, 413, "body_too_large");
}

#[tokio::test]
async fn rfc9112_7_1_one_byte_over_the_limit_is_413_when_chunked() {
    let body = valid_order().to_string();
    let server = start(body.len() - 1).await;
    // Chunked, no Content-Length: the limit holds while streaming.
    let (a, b) = body.split_at(10);
    let request = format!(
        "POST /v1/orders HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let (status, text) = raw(server.addr, &request).await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(server.hits(), 0);
    let server = start(body.len()).await;
    let (status, _) = raw(server.addr, &request).await;
    assert_eq!(status, 200, "the same body within the limit");
}

#[tokio::test]
async fn truncated_json_is_400_with_line_and_column() {
    let server = start(64 * 1024).await;
    let text = valid_order().to_string();
    let reply = server
        .post("application/json", text[..text.len() - 5].to_owned())
        .await;
    let body = refused(&server, &reply, 400, "malformed_body");
    let detail = body["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("line 1 column"), "{detail}");
}

#[tokio::test]
async fn a_body_breaking_three_rules_lists_all_three_pointers() {
    let server = start(64 * 1024).await;
    let bad = json!({"customer": "", "items": [{"sku": "abc", "qty": 0}]});
    let reply = server.post("application/json", bad.to_string()).await;
    let body = refused(&server, &reply, 422, "schema_violation");
    let mut found: Vec<(String, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["in"], "body");
            (
                e["pointer"].as_str().unwrap().to_owned(),
                e["keyword"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("#/customer".to_owned(), "minLength".to_owned()),
            ("#/items/0/qty".to_owned(), "minimum".to_owned()),
            ("#/items/0/sku".to_owned(), "pattern".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_hundred_thousand_deep_array_is_refused_without_overflowing_the_stack() {
    let server = start(1024 * 1024).await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let reply = server.post("application/json", deep).await;
    let body = refused(&server, &reply, 422, "hostile_input");
    assert_eq!(body["errors"][0]["keyword"], "maxDepth");
}

#[tokio::test]
async fn cve_2021_42574_a_right_to_left_override_in_a_string_is_422() {
    let server = start(64 * 1024).await;
    let mut order = valid_order();
    // "Trojan Source": displayed as "acmeexe.txt", though it ends in ".exe".
    order["customer"] = json!("acme\u{202e}txt.exe");
    let reply = server.post("application/json", order.to_string()).await;
    let body = refused(&server, &reply, 422, "hostile_input");
    assert_eq!(body["errors"][0]["pointer"], "#/customer");
    assert_eq!(body["errors"][0]["keyword"], "bidiControls");
    // The same character sent as a JSON escape is found too.
    let escaped = valid_order()
        .to_string()
        .replace("\"customer\":\"", "\"customer\":\"\\u202e");
    let reply = server.post("application/json", escaped).await;
    let body = refused(&server, &reply, 422, "hostile_input");
    assert_eq!(body["errors"][0]["keyword"], "bidiControls");
}

#[tokio::test]
async fn rfc9110_5_3_two_content_type_lines_are_400_in_either_order() {
    let server = start(64 * 1024).await;
    let body = valid_order().to_string();
    for types in [
        ["application/json", "text/plain"],
        ["text/plain", "application/json"],
    ] {
        let reply = server
            .post_with(
                &[("content-type", types[0]), ("content-type", types[1])],
                body.clone(),
            )
            .await;
        let problem = refused(&server, &reply, 400, "duplicate_header");
        assert_eq!(problem["errors"][0]["pointer"], "#/content-type");
    }
}

#[tokio::test]
async fn rfc9110_15_5_16_an_encoded_body_is_415_with_the_codings_accepted() {
    let server = start(64 * 1024).await;
    // Plain JSON labelled gzip: never checked as plain, nor handed on as gzip.
    let body = valid_order().to_string();
    let reply = server
        .post_with(
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            body.clone(),
        )
        .await;
    let problem = refused(&server, &reply, 415, "unsupported_encoding");
    assert_eq!(problem["errors"][0]["keyword"], "contentEncoding");
    assert_eq!(reply.headers["accept-encoding"], "identity");
    // `identity` is no coding at all.
    let reply = server
        .post_with(
            &[
                ("content-type", "application/json"),
                ("content-encoding", "identity"),
            ],
            body,
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

#[tokio::test]
async fn owasp_input_validation_a_nul_byte_in_a_string_is_422() {
    let server = start(64 * 1024).await;
    let mut order = valid_order();
    order["customer"] = json!("acme\u{0}corp");
    let reply = server.post("application/json", order.to_string()).await;
    let body = refused(&server, &reply, 422, "hostile_input");
    assert_eq!(body["errors"][0]["pointer"], "#/customer");
    assert_eq!(body["errors"][0]["keyword"], "controlCharacters");
}

#[tokio::test]
async fn invalid_utf8_is_400() {
    let server = start(64 * 1024).await;
    let mut bytes = br#"{"customer": "ac"#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(br#"me", "items": [{"sku": "ABC-1234", "qty": 1}]}"#);
    let reply = server.post("application/json", bytes).await;
    refused(&server, &reply, 400, "malformed_body");
}

#[tokio::test]
async fn a_deny_pattern_refuses_its_field() {
    let server = start(64 * 1024).await;
    let mut order = valid_order();
    order["note"] = json!("<SCRIPT>alert(1)</script>");
    let reply = server.post("application/json", order.to_string()).await;
    let body = refused(&server, &reply, 422, "hostile_input");
    assert_eq!(body["errors"][0]["pointer"], "#/note");
    assert!(
        !reply.visible_text().contains("alert(1)"),
        "the value is not echoed"
    );
}

#[tokio::test]
async fn a_missing_body_is_422() {
    let server = start(64 * 1024).await;
    let req = Request::post("/v1/orders")
        .header("host", "test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = send(server.addr, req).await;
    let body = refused(&server, &reply, 422, "schema_violation");
    assert_eq!(body["errors"][0]["keyword"], "required");
}

#[tokio::test]
async fn query_values_are_coerced_and_a_non_integer_limit_is_422() {
    let server = start(64 * 1024).await;
    let reply = server.get("/v1/orders?limit=abc", &[]).await;
    let body = refused(&server, &reply, 422, "invalid_parameter");
    assert_eq!(body["errors"][0]["in"], "query");
    assert_eq!(body["errors"][0]["pointer"], "#/limit");
    assert_eq!(body["errors"][0]["keyword"], "type");
    let reply = server.get("/v1/orders?limit=500", &[]).await;
    assert_eq!(reply.status, 422);
    let reply = server.get("/v1/orders", &[]).await;
    assert_eq!(reply.json()["errors"][0]["keyword"], "required");
    let reply = server.get("/v1/orders?limit=10&extra=1", &[]).await;
    assert_eq!(reply.status, 422, "additionalProperties: false");
    assert_eq!(server.hits(), 0);
    let reply = server.get("/v1/orders?limit=10&tag=a&tag=b%20c", &[]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json(), json!({"limit": 10, "tags": ["a", "b c"]}));
}

#[tokio::test]
async fn rfc9110_9_3_2_head_is_validated_as_get() {
    let server = start(64 * 1024).await;
    let head = |path: &str| {
        let req = Request::head(path).header("host", "test");
        send(server.addr, req.body(Full::new(Bytes::new())).unwrap())
    };
    // axum serves HEAD with the GET handler: it gets the GET operation's checks.
    assert_eq!(head("/v1/orders?limit=abc").await.status, 422);
    assert_eq!(head("/v1/orders/0").await.status, 422);
    assert_eq!(server.hits(), 0);
    let ok = head("/v1/orders?limit=10").await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.is_empty());
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn header_and_path_parameters_are_validated() {
    let server = start(64 * 1024).await;
    let reply = server
        .get("/v1/orders?limit=1", &[("x-request-id", "not-a-uuid")])
        .await;
    let body = refused(&server, &reply, 422, "invalid_parameter");
    assert_eq!(body["errors"][0]["in"], "header");
    let reply = server.get("/v1/orders/abc", &[]).await;
    let body = refused(&server, &reply, 422, "invalid_parameter");
    assert_eq!(body["errors"][0]["in"], "path");
    assert_eq!(body["errors"][0]["pointer"], "#/id");
    let reply = server.get("/v1/orders/0", &[]).await;
    assert_eq!(reply.status, 422);
    let reply = server.get("/v1/orders/42", &[]).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn wide_bodies_are_refused_before_parsing() {
    let server = start(1024 * 1024).await;
    let wide = format!("[{}0]", "0,".repeat(20_000));
    let reply = server.post("application/json", wide).await;
    let body = refused(&server, &reply, 422, "hostile_input");
    assert_eq!(body["errors"][0]["keyword"], "maxMembers");
}

#[tokio::test]
async fn owasp_input_validation_an_encoded_nul_in_the_query_is_422_without_a_query_schema() {
    let server = start(64 * 1024).await;
    // POST /v1/orders has a body schema and no query rules: the guards hold all the same.
    let req = Request::post("/v1/orders?trace=a%00b")
        .header("host", "test")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(valid_order().to_string())))
        .unwrap();
    let reply = send(server.addr, req).await;
    let body = refused(&server, &reply, 422, "hostile_input");
    assert_eq!(body["errors"][0]["in"], "query");
    assert_eq!(body["errors"][0]["pointer"], "#/trace");
    assert_eq!(body["errors"][0]["keyword"], "controlCharacters");
    // Percent-encoded bytes that are not UTF-8 are refused, not replaced by U+FFFD.
    let reply = server.get("/v1/orders?limit=1&tag=%C0%AF", &[]).await;
    let body = refused(&server, &reply, 422, "hostile_input");
    assert_eq!(body["errors"][0]["pointer"], "#/tag");
    assert_eq!(body["errors"][0]["keyword"], "utf8");
}

#[tokio::test]
async fn owasp_input_validation_crlf_or_bad_utf8_in_a_path_parameter_is_422() {
    let server = start(64 * 1024).await;
    for path in [
        "/v1/orders/1%0d%0aSet-Cookie:x",
        "/v1/orders/%ff",
        "/v1/orders/1%00",
    ] {
        let reply = server.get(path, &[]).await;
        let body = refused(&server, &reply, 422, "hostile_input");
        assert_eq!(body["errors"][0]["in"], "path", "{path}");
        assert_eq!(body["errors"][0]["pointer"], "#/id", "{path}");
        assert!(!reply.visible_text().contains("Set-Cookie"), "not echoed");
    }
    // An encoded space is ordinary text: the schema decides (not an integer here).
    let reply = server.get("/v1/orders/4%202", &[]).await;
    refused(&server, &reply, 422, "invalid_parameter");
}

#[derive(Debug, Deserialize)]
struct Signup {
    user: String,
    age: u32,
    #[serde(default)]
    tags: Vec<String>,
}

/// HTML form bodies (`application/x-www-form-urlencoded`) are validated like JSON ones: coerced
/// to the schema's types, guarded, and handed to the handler parsed.
#[tokio::test]
async fn form_bodies_are_coerced_guarded_and_handed_on() {
    let set = SchemaSet::new();
    // Room for the 20,000-field form below: it is refused for its width, not its size.
    let signup = Operation::new().max_body_bytes(1 << 20).form_body(
        &set,
        &json!({
            "type": "object", "required": ["user", "age"], "additionalProperties": false,
            "properties": {
                "user": {"type": "string", "minLength": 1, "maxLength": 32},
                "age": {"type": "integer", "minimum": 13},
                "tags": {"type": "array", "items": {"type": "string"}}
            }
        }),
    );
    let layer = ValidateLayer::builder()
        .operation(Method::POST, "/signup", signup)
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new()
        .route(
            "/signup",
            post(move |Validated(s): Validated<Signup>| async move {
                h.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"user": s.user, "age": s.age, "tags": s.tags}))
            }),
        )
        .layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let post_form = |content_type: &'static str, body: String| async move {
        let req = Request::post("/signup")
            .header("host", "test")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        send(addr, req).await
    };
    let form = "application/x-www-form-urlencoded";
    let reply = post_form(form, "user=Ada+L&age=36&tags=a&tags=b%26c".into()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"user": "Ada L", "age": 36, "tags": ["a", "b&c"]})
    );
    let check = |reply: &Reply, status: u16, code: &str| {
        assert_eq!(reply.status, status, "{:?}", reply.body);
        let body = reply.json();
        assert_eq!(body["code"], code, "{body}");
        body
    };
    let body = check(
        &post_form(form, "user=x&age=ten".into()).await,
        422,
        "schema_violation",
    );
    assert_eq!(body["errors"][0]["in"], "body");
    assert_eq!(body["errors"][0]["pointer"], "#/age");
    let body = check(
        &post_form(form, "user=a%00b&age=20".into()).await,
        422,
        "hostile_input",
    );
    assert_eq!(body["errors"][0]["keyword"], "controlCharacters");
    let wide = (0..20_000)
        .map(|i| format!("f{i}=1"))
        .collect::<Vec<_>>()
        .join("&");
    let body = check(&post_form(form, wide).await, 422, "hostile_input");
    assert_eq!(body["errors"][0]["keyword"], "maxMembers");
    check(
        &post_form(form, "user=x&age=20&admin=true".into()).await,
        422,
        "schema_violation",
    );
    check(
        &post_form("text/plain", "user=x&age=20".into()).await,
        415,
        "unsupported_media_type",
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "only the valid form ran");
}

/// Serves `POST /slow` behind one operation whose body may take `timeout`; the handler counts.
async fn slow_body_server(timeout: std::time::Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let op = Operation::new()
        .json_body(
            SchemaSet::new()
                .compile(&json!({"type": "object"}))
                .unwrap(),
        )
        .body_timeout(timeout);
    let layer = ValidateLayer::builder()
        .operation(Method::POST, "/slow", op)
        .build()
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/slow",
            post(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "read"
            }),
        )
        .layer(layer);
    (support::serve(app).await, hits)
}

#[tokio::test]
async fn rfc9110_15_5_9_a_body_trickled_past_the_timeout_is_408_and_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, hits) = slow_body_server(std::time::Duration::from_secs(1)).await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = tokio::time::Instant::now();
    write
        .write_all(
            b"POST /slow HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n{",
        )
        .await
        .unwrap();
    // One byte every 300 ms: the 40 bytes would take 12 s.
    let trickle = tokio::spawn(async move {
        for _ in 0..39 {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            if write.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut response = Vec::new();
    let read_all = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        read.read_to_end(&mut response),
    )
    .await;
    let elapsed = started.elapsed();
    trickle.abort();
    assert!(read_all.is_ok(), "the server kept the connection open");
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 408"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains("\"code\":\"body_timeout\""), "{text}");
    // Within the timeout plus one second, and the handler never ran.
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_body_that_arrives_in_time_is_read_however_slowly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, hits) = slow_body_server(std::time::Duration::from_secs(3)).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /slow HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stream.write_all(b"}").await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn validated_takes_whole_numbers_written_with_a_fraction_or_an_exponent() {
    // JSON Schema's `integer` accepts 2.0 and 1e2 (2020-12 §6.1.1 Validation: "a number with a
    // zero fractional part"); the handler's `u32` gets 2 and 100, never a 500.
    let server = start(64 * 1024).await;
    let order = r#"{"customer": "acme", "items": [{"sku": "ABC-1234", "qty": 2.0}, {"sku": "XYZ-0001", "qty": 1e2}]}"#;
    let reply = server.post("application/json", order).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["qty"], 102);
}

#[tokio::test]
async fn a_valid_value_the_handler_type_cannot_hold_is_422_naming_the_pointer() {
    #[derive(Deserialize)]
    struct Small {
        #[allow(dead_code)]
        n: u8,
    }
    let op = Operation::new().json_body(
        SchemaSet::new()
            .compile(&json!({"type": "object", "properties": {"n": {"type": "integer"}}}))
            .unwrap(),
    );
    let layer = ValidateLayer::builder()
        .operation(Method::POST, "/small", op)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/small",
            post(|Validated(_): Validated<Small>| async { "ok" }),
        )
        .layer(layer);
    let addr = support::serve(app).await;
    let post_n = |n: &'static str| {
        Request::post("/small")
            .header("host", "t")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(r#"{{"n": {n}}}"#))))
            .unwrap()
    };
    assert_eq!(send(addr, post_n("7.0")).await.status, 200);
    let reply = send(addr, post_n("300")).await;
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    let body = reply.json();
    assert_eq!(body["code"], "schema_violation");
    assert_eq!(body["errors"][0]["pointer"], "#/n");
    assert!(
        !body.to_string().contains("300"),
        "the value is not echoed: {body}"
    );
}
