//! Response validation (OWASP API3:2023) over real HTTP: a handler that returns a property its
//! document does not declare is reported (shadow), cleaned (strip) or refused (refuse), and
//! the audit event says which.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use http::Method;
use palisade::audit::{AuditLayer, AuditRecord, ChannelSink};
use palisade::validate::ResponseCheck;
use palisade::validate::openapi::OpenApi;
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;

use crate::{call, support};

fn users(mode: ResponseCheck) -> OpenApi {
    OpenApi::new(json!({
        "openapi": "3.1.0",
        "info": {"title": "users", "version": "1"},
        "paths": {"/users/{id}": {"get": {
            "parameters": [{"name": "id", "in": "path", "required": true,
                            "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "a user", "content": {"application/json": {"schema":
                    {"$ref": "#/components/schemas/User"}}}},
                "404": {"description": "none"}
            }
        }}},
        "components": {"schemas": {"User": {"type": "object", "required": ["id", "name"],
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}}}
    }))
    .unwrap()
    .check_responses(mode)
}

/// The handler answers `/users/1` with a password hash it should not, `/users/2` with a
/// wrong type, `/users/3` with 418 (undeclared), `/users/4` as declared.
async fn start(mode: ResponseCheck) -> (SocketAddr, Receiver<AuditRecord>) {
    let (sink, events) = ChannelSink::new(64);
    let (audit, _handle) = AuditLayer::builder(sink).build().unwrap();
    let app = Router::new()
        .route(
            "/users/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<String>| async move {
                match id.as_str() {
                    "1" => (StatusCode::OK, axum::Json(json!({"id": 1, "name": "ada", "password_hash": "$argon2id$secret"}))),
                    "2" => (StatusCode::OK, axum::Json(json!({"id": "two", "name": "bob"}))),
                    "3" => (StatusCode::IM_A_TEAPOT, axum::Json(json!({}))),
                    _ => (StatusCode::OK, axum::Json(json!({"id": 4, "name": "cy"}))),
                }
            }),
        )
        .layer(users(mode).layer().unwrap())
        .layer(audit);
    (support::serve(app).await, events)
}

async fn event(events: &mut Receiver<AuditRecord>) -> Value {
    let record = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an audit event")
        .expect("the queue is open");
    serde_json::from_str(record.json()).unwrap()
}

#[tokio::test]
async fn owasp_api3_shadow_mode_reports_an_undeclared_property_and_sends_the_response_unchanged() {
    let (addr, mut events) = start(ResponseCheck::Shadow).await;
    let reply = call(addr, Method::GET, "/users/1", &[], None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["password_hash"],
        "$argon2id$secret",
        "shadow changes nothing"
    );
    let e = event(&mut events).await;
    let check = &e["response_check"];
    assert_eq!(check["mode"], "shadow", "{e}");
    assert_eq!(check["action"], "reported");
    assert_eq!(
        check["errors"][0],
        json!({"pointer": "#/password_hash", "keyword": "undeclared"})
    );
    assert!(
        !e.to_string().contains("argon2id"),
        "no value in the event: {e}"
    );
    // A declared response leaves no trace.
    assert_eq!(
        call(addr, Method::GET, "/users/4", &[], None).await.status,
        200
    );
    assert!(event(&mut events).await.get("response_check").is_none());
    // An undeclared status is reported too.
    assert_eq!(
        call(addr, Method::GET, "/users/3", &[], None).await.status,
        418
    );
    assert_eq!(
        event(&mut events).await["response_check"]["errors"][0]["keyword"],
        "status"
    );
}

#[tokio::test]
async fn owasp_api3_strip_mode_removes_an_undeclared_property_and_refuses_what_stays_invalid() {
    let (addr, mut events) = start(ResponseCheck::Strip).await;
    let reply = call(addr, Method::GET, "/users/1", &[], None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"id": 1, "name": "ada"}));
    assert_eq!(
        reply
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(reply.body.len().to_string().as_str())
    );
    let e = event(&mut events).await;
    assert_eq!(e["response_check"]["action"], "stripped", "{e}");
    // A wrong type cannot be stripped away: 500, and the body says nothing of it.
    let reply = call(addr, Method::GET, "/users/2", &[], None).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["code"], "invalid_response");
    assert!(!String::from_utf8_lossy(&reply.body).contains("two"));
    let e = event(&mut events).await;
    assert_eq!(e["response_check"]["action"], "refused", "{e}");
    assert_eq!(e["response_check"]["errors"][0]["pointer"], "#/id");
}

#[tokio::test]
async fn owasp_api3_refuse_mode_answers_500_for_an_undeclared_property() {
    let (addr, mut events) = start(ResponseCheck::Refuse).await;
    let reply = call(addr, Method::GET, "/users/1", &[], None).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.json()["code"], "invalid_response");
    assert!(!String::from_utf8_lossy(&reply.body).contains("argon2id"));
    let e = event(&mut events).await;
    assert_eq!(e["status"], 500, "{e}");
    assert_eq!(e["response_check"]["action"], "refused");
    assert_eq!(
        e["response_check"]["errors"][0]["pointer"],
        "#/password_hash"
    );
    assert_eq!(
        call(addr, Method::GET, "/users/3", &[], None).await.status,
        500
    );
    let _ = event(&mut events).await;
    assert_eq!(
        call(addr, Method::GET, "/users/4", &[], None).await.status,
        200
    );
}
