//! A real local identity provider over loopback: a JWKS endpoint whose key set can be rotated,
//! an RFC 7662 introspection endpoint, and switches that make either fail or hang. Every
//! request is counted.

#![allow(unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// How an endpoint behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// Answers 500.
    Failing,
    /// Never answers (until the client gives up).
    Hanging,
    /// Answers after this many milliseconds.
    Slow(u64),
}

#[derive(Default)]
pub struct IdpState {
    pub jwks: Mutex<Value>,
    pub cache_control: Mutex<Option<&'static str>>,
    pub jwks_mode: Mutex<Option<Mode>>,
    pub introspection_mode: Mutex<Option<Mode>>,
    /// token → introspection answer.
    pub tokens: Mutex<HashMap<String, Value>>,
    pub jwks_hits: AtomicUsize,
    pub evil_hits: AtomicUsize,
    pub introspection_hits: AtomicUsize,
    /// The discovery document served (OpenID Connect Discovery 1.0 §4).
    pub discovery: Mutex<Value>,
    pub discovery_hits: AtomicUsize,
}

pub struct Idp {
    pub addr: SocketAddr,
    pub state: Arc<IdpState>,
}

pub const CLIENT_ID: &str = "orders-api";
pub const CLIENT_SECRET: &str = "introspection-client-secret-0123456789";

impl Idp {
    pub async fn start(jwks: Value) -> Self {
        let state = Arc::new(IdpState::default());
        *state.jwks.lock().unwrap() = jwks;
        let app = Router::new()
            .route("/certs", get(certs))
            .route("/evil-certs", get(evil))
            .route("/introspect", post(introspect))
            .route("/.well-known/openid-configuration", get(discovery))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}/certs", self.addr)
    }

    pub fn evil_url(&self) -> String {
        format!("http://{}/evil-certs", self.addr)
    }

    pub fn discovery_url(&self) -> String {
        format!("http://{}/.well-known/openid-configuration", self.addr)
    }

    pub fn set_discovery(&self, document: Value) {
        *self.state.discovery.lock().unwrap() = document;
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    pub fn evil_hits(&self) -> usize {
        self.state.evil_hits.load(Ordering::SeqCst)
    }

    pub fn introspection_url(&self) -> String {
        format!("http://{}/introspect", self.addr)
    }

    pub fn set_jwks(&self, jwks: Value) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    pub fn set_jwks_mode(&self, mode: Mode) {
        *self.state.jwks_mode.lock().unwrap() = Some(mode);
    }

    pub fn set_introspection_mode(&self, mode: Mode) {
        *self.state.introspection_mode.lock().unwrap() = Some(mode);
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn introspection_hits(&self) -> usize {
        self.state.introspection_hits.load(Ordering::SeqCst)
    }

    /// Registers an opaque token and the introspection answer for it.
    pub fn add_token(&self, token: &str, answer: Value) {
        self.state
            .tokens
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }
}

async fn behave(mode: Option<Mode>) -> Option<Response> {
    match mode.unwrap_or(Mode::Up) {
        Mode::Up => None,
        Mode::Failing => Some(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Mode::Hanging => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            None
        }
        Mode::Slow(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            None
        }
    }
}

async fn certs(State(s): State<Arc<IdpState>>) -> Response {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mode = *s.jwks_mode.lock().unwrap();
    if let Some(r) = behave(mode).await {
        return r;
    }
    let body = s.jwks.lock().unwrap().to_string();
    let cc = (*s.cache_control.lock().unwrap()).unwrap_or("max-age=300");
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, cc),
        ],
        body,
    )
        .into_response()
}

async fn discovery(State(s): State<Arc<IdpState>>) -> Response {
    s.discovery_hits.fetch_add(1, Ordering::SeqCst);
    axum::Json(s.discovery.lock().unwrap().clone()).into_response()
}

async fn evil(State(s): State<Arc<IdpState>>) -> Response {
    s.evil_hits.fetch_add(1, Ordering::SeqCst);
    StatusCode::NOT_FOUND.into_response()
}

/// RFC 7662 §2.1: a form POST with `token`, from an authenticated client.
async fn introspect(
    State(s): State<Arc<IdpState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.introspection_hits.fetch_add(1, Ordering::SeqCst);
    let mode = *s.introspection_mode.lock().unwrap();
    if let Some(r) = behave(mode).await {
        return r;
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let answer = s
        .tokens
        .lock()
        .unwrap()
        .get(&token)
        .cloned()
        .unwrap_or_else(|| json!({"active": false}));
    axum::Json(answer).into_response()
}
