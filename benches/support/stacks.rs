//! The stacks compared by `benches/stack.rs` and served by `examples/load_server.rs`: the
//! full palisade stack, the same guard assembled from public crates (the peer), and the bare
//! handler, all on `POST /v1/orders` with the ~1 KB order.

#![allow(dead_code)]

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{Method, StatusCode};
use palisade::audit::{AuditLayer, AuditRecord, AuditSink};
use palisade::authn::api_key::{ApiKeys, KeySpec, MemoryKeyStore};
use palisade::authn::bearer::ClaimMap;
use palisade::authn::jwt::{Issuer, JwtAuthenticator, Key};
use palisade::authz::{AuthzLayer, LivePolicy, PolicySpec};
use palisade::quota::{
    KeyBy, Limit, MemoryStore, QuotaLayer, QuotaPolicy, QuotaRule, RateLimitHeaders,
};
use palisade::validate::{Operation, SchemaSet, ValidateLayer, Validated};
use palisade::{BoxError, Palisade};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::order::{Order, schema};

pub(crate) const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), 4567);
const ISS: &str = "https://idp.palisade.test/realms/acme";
const AUD: &str = "orders-api";

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Three levels of roles and 20 rules; `POST /v1/orders` (the measured route, granted to
/// `clerk`, which `admin`, the caller, inherits) is the 11th, as it would be somewhere in a
/// real policy rather than first.
pub(crate) fn rules() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut r = vec![("/v1/orders", "GET", "viewer")];
    for (i, path) in [
        "/v1/orders/{id}",
        "/v1/items",
        "/v1/items/{id}",
        "/v1/customers",
        "/v1/customers/{id}",
        "/v1/invoices",
        "/v1/invoices/{id}",
        "/v1/reports/{id}",
        "/v1/admin/users",
    ]
    .iter()
    .enumerate()
    {
        r.push((path, "GET", "viewer"));
        r.push((path, if i % 2 == 0 { "DELETE" } else { "PUT" }, "admin"));
    }
    r.insert(10, ("/v1/orders", "POST", "clerk"));
    assert_eq!(r.len(), 20);
    r
}

pub(crate) fn policy() -> LivePolicy {
    let mut b = PolicySpec::builder()
        .role("viewer", [])
        .role("clerk", ["viewer"])
        .role("admin", ["clerk"]);
    for (path, method, role) in rules() {
        b = b.allow(
            [Method::from_bytes(method.as_bytes()).unwrap()],
            path,
            [role],
        );
    }
    LivePolicy::from_spec(&b.build()).unwrap()
}

/// How the peer's casbin model matches the route.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Match {
    /// `r.obj == p.obj` on axum's route template (`MatchedPath`): what a careful user writes.
    Exact,
    /// `keyMatch2(r.obj, p.obj)` on the raw path (casbin's documented RESTful example, which
    /// compiles a regex on every call).
    KeyMatch2,
}

pub(crate) fn casbin(how: Match) -> casbin::Enforcer {
    use casbin::prelude::*;
    let matcher = match how {
        Match::Exact => "r.obj == p.obj",
        Match::KeyMatch2 => "keyMatch2(r.obj, p.obj)",
    };
    // casbin's set-up is async; it runs on a runtime of its own, on its own thread, so that
    // this works inside another runtime too.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let m = DefaultModel::from_str(&format!(
                "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n\
             [role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n\
             [matchers]\nm = g(r.sub, p.sub) && {matcher} && r.act == p.act\n",
            ))
            .await
            .unwrap();
            let mut e = Enforcer::new(m, MemoryAdapter::default()).await.unwrap();
            e.enable_auto_save(false);
            e.add_grouping_policies(vec![
                vec!["clerk".into(), "viewer".into()],
                vec!["admin".into(), "clerk".into()],
                vec!["alice".into(), "admin".into()],
            ])
            .await
            .unwrap();
            let rules = rules()
                .into_iter()
                .map(|(p, m, r)| {
                    let p = match how {
                        Match::Exact => p.to_owned(),
                        Match::KeyMatch2 => p.replace("{id}", ":id"),
                    };
                    vec![r.to_owned(), p, m.to_owned()]
                })
                .collect();
            e.add_policies(rules).await.unwrap();
            e
        })
    })
    .join()
    .unwrap()
}

pub(crate) fn token() -> String {
    token_numbered(0)
}

/// A token of its own (a distinct `jti`), for first-sight measurements.
pub(crate) fn token_numbered(n: u64) -> String {
    peer_crypto();
    let claims = json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "exp": 4_102_444_800u64, "iat": 1_767_225_600u64,
        "scope": "orders:write", "realm_access": {"roles": ["admin"]}, "jti": format!("t{n}"),
    });
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("es256".into());
    jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&fixture("es256.key.der")),
    )
    .unwrap()
}

/// `POST /v1/orders` with `body`, the credential in `header`, from [`PEER`].
pub(crate) fn request(header: &str, value: &str, body: &Bytes) -> http::Request<axum::body::Body> {
    let mut req = http::Request::post("/v1/orders")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .header(header, value)
        .body(axum::body::Body::from(body.clone()))
        .unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(PEER));
    // What a TLS listener marks on each request (the transport guard refuses keys otherwise).
    req.extensions_mut()
        .insert(palisade::transport::ConnectionScheme::Https);
    req
}

/// Installs the peer's jsonwebtoken backend: AWS-LC with the `_peer-aws-lc` feature (what a
/// careful user picks), RustCrypto otherwise. palisade names its own backend and ignores this.
pub(crate) fn peer_crypto() {
    #[cfg(feature = "_peer-aws-lc")]
    let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(not(feature = "_peer-aws-lc"))]
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    let _ = provider.install_default();
}

/// Formats and drops: the audit layer's work without I/O.
pub(crate) struct Discard;

impl AuditSink for Discard {
    async fn write(&self, batch: &[AuditRecord]) -> Result<(), BoxError> {
        black_box(batch);
        Ok(())
    }
}

pub(crate) fn generous(name: &str) -> QuotaPolicy {
    QuotaPolicy::new(name, [Limit::per_second(1_000_000).burst(1_000_000)])
}

/// The palisade stack; without `validate_body` the validation layer has no rule for the route
/// (it passes the request untouched) and the handler takes the bytes.
pub(crate) fn palisade_stack<A: palisade::authn::Authenticator>(
    authn: A,
    audit: Option<AuditLayer>,
    validate_body: bool,
) -> Router {
    let mut validate = ValidateLayer::builder();
    if validate_body {
        validate = validate.operation(
            Method::POST,
            "/v1/orders",
            Operation::new().json_body(SchemaSet::new().compile(&schema()).unwrap()),
        );
    }
    let guard = Palisade::builder()
        // `examples/load_server.rs` serves it over plain HTTP on loopback.
        .allow_plain_http_from_loopback()
        .limit_clients(
            QuotaLayer::builder(MemoryStore::new())
                .rule(QuotaRule::new(KeyBy::client_ip(), generous("ip")))
                .headers(RateLimitHeaders::new().only_on_refusals())
                .build()
                .unwrap(),
        )
        .authenticate(authn)
        .limit_principals(
            QuotaLayer::builder(MemoryStore::new())
                .rule(QuotaRule::new(KeyBy::Subject, generous("user")))
                .build()
                .unwrap(),
        )
        .authorize(AuthzLayer::new(policy()))
        .validate(validate.build().unwrap())
        .build()
        .unwrap();
    let router = if validate_body {
        Router::new().route(
            "/v1/orders",
            post(|Validated(order): Validated<Order>| async move {
                black_box(order);
                StatusCode::CREATED
            }),
        )
    } else {
        Router::new().route(
            "/v1/orders",
            post(|b: Bytes| async move {
                black_box(b);
                StatusCode::CREATED
            }),
        )
    }
    .layer(guard);
    match audit {
        Some(audit) => router.layer(audit),
        None => router,
    }
}

/// The peer's authenticated caller.
#[derive(Clone)]
pub(crate) struct User {
    pub(crate) sub: String,
}

#[derive(Clone)]
pub(crate) struct PeerState {
    pub(crate) keys: Arc<HashMap<[u8; 32], User>>,
    pub(crate) jwt_key: Arc<jsonwebtoken::DecodingKey>,
    pub(crate) validation: Arc<jsonwebtoken::Validation>,
    pub(crate) enforcer: Arc<casbin::Enforcer>,
    pub(crate) how: Match,
}

pub(crate) async fn peer_authn(
    axum::extract::State(s): axum::extract::State<PeerState>,
    mut req: Request,
    next: Next,
) -> Response {
    let user = if let Some(key) = req.headers().get("x-api-key") {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        s.keys.get(&digest).cloned()
    } else if let Some(token) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok()?.strip_prefix("Bearer "))
    {
        jsonwebtoken::decode::<Value>(token, &s.jwt_key, &s.validation)
            .ok()
            .and_then(|d| {
                d.claims["sub"].as_str().map(|sub| User {
                    sub: sub.to_owned(),
                })
            })
    } else {
        None
    };
    let Some(user) = user else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    use casbin::CoreApi;
    let object = match s.how {
        Match::Exact => req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or("", axum::extract::MatchedPath::as_str),
        Match::KeyMatch2 => req.uri().path(),
    };
    let allowed = s
        .enforcer
        .enforce((user.sub.as_str(), object, req.method().as_str()))
        .unwrap_or(false);
    if !allowed {
        return StatusCode::FORBIDDEN.into_response();
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

pub(crate) async fn peer_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = tokio::time::Instant::now();
    let res = next.run(req).await;
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status = res.status().as_u16(),
        latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    res
}

/// `tower_governor` keyed by the credential (API key or token).
#[derive(Clone)]
pub(crate) struct CredentialKey;

impl tower_governor::key_extractor::KeyExtractor for CredentialKey {
    type Key = String;

    fn extract<T>(&self, req: &http::Request<T>) -> Result<String, tower_governor::GovernorError> {
        req.headers()
            .get("x-api-key")
            .or_else(|| req.headers().get("authorization"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(tower_governor::GovernorError::UnableToExtractKey)
    }
}

pub(crate) fn peer_stack(state: PeerState) -> Router {
    let validator = Arc::new(jsonschema::validator_for(&schema()).unwrap());
    let mut config =
        tower_governor::governor::GovernorConfigBuilder::default().key_extractor(CredentialKey);
    config.per_nanosecond(1).burst_size(1_000_000_000);
    let governor = tower_governor::GovernorLayer::new(config.finish().unwrap());
    Router::new()
        .route(
            "/v1/orders",
            post(move |b: Bytes| {
                let validator = validator.clone();
                async move { super::order::by_hand(&validator, &b, StatusCode::CREATED) }
            }),
        )
        // After routing, so that the route template is known; the body limit a user sets
        // beside `Bytes` (palisade's default, 64 KiB).
        .route_layer(middleware::from_fn_with_state(state, peer_authn))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(governor)
        .layer(middleware::from_fn(peer_log))
}

/// Everything the comparison needs: the credentials and the three kinds of stack.
pub(crate) struct Stacks {
    pub(crate) api_key: String,
    pub(crate) bearer: String,
    pub(crate) bare: Router,
    /// The bare handler deserializing the order with axum's `Json<Order>`: what a handler
    /// with no guard in front still pays for its body.
    pub(crate) bare_json: Router,
    pub(crate) palisade_key: Router,
    pub(crate) palisade_jwt: Router,
    pub(crate) no_audit: Router,
    pub(crate) no_validation: Router,
    pub(crate) peer: Router,
    pub(crate) peer_keymatch2: Router,
    /// The audit queue of the palisade stacks: `shutdown()` drains it, so that a measurement
    /// counts the encoding of every event.
    pub(crate) audit_handle: palisade::audit::AuditHandle,
}

impl Stacks {
    /// Builds them (inside a tokio runtime: the audit queue starts a task).
    pub(crate) fn new() -> Self {
        peer_crypto();
        let keys = ApiKeys::new();
        let store = MemoryKeyStore::new();
        let issued = keys.generate(KeySpec::new("alice").role("admin")).unwrap();
        store.insert(issued.record);
        let api_key = issued.plaintext.expose_secret().to_owned();
        let bearer = format!("Bearer {}", token());
        let (audit, audit_handle) = AuditLayer::builder(Discard)
            .capacity(1 << 16)
            .build()
            .unwrap();
        let pem = String::from_utf8(fixture("es256.pub.pem")).unwrap();
        let jwt = JwtAuthenticator::builder()
            .issuer(
                Issuer::new(ISS)
                    .key(Key::from_pem(&pem).unwrap().with_kid("es256"))
                    .audience(AUD),
            )
            .claims(ClaimMap::keycloak())
            .build()
            .unwrap();
        let mut peer_keys = HashMap::new();
        peer_keys.insert(
            Sha256::digest(api_key.as_bytes()).into(),
            User {
                sub: "alice".into(),
            },
        );
        let jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
        let k = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == "es256")
            .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        let state = PeerState {
            keys: Arc::new(peer_keys),
            jwt_key: Arc::new(
                jsonwebtoken::DecodingKey::from_ec_components(
                    k["x"].as_str().unwrap(),
                    k["y"].as_str().unwrap(),
                )
                .unwrap(),
            ),
            validation: Arc::new(validation),
            enforcer: Arc::new(casbin(Match::Exact)),
            how: Match::Exact,
        };
        let peer_keymatch2 = peer_stack(PeerState {
            enforcer: Arc::new(casbin(Match::KeyMatch2)),
            how: Match::KeyMatch2,
            ..state.clone()
        });
        let peer = peer_stack(state);
        Self {
            bare: Router::new().route(
                "/v1/orders",
                post(|b: Bytes| async move {
                    black_box(b);
                    StatusCode::CREATED
                }),
            ),
            bare_json: Router::new().route(
                "/v1/orders",
                post(|axum::Json(order): axum::Json<Order>| async move {
                    black_box(order);
                    StatusCode::CREATED
                }),
            ),
            palisade_key: palisade_stack(
                keys.authenticator(store.clone()),
                Some(audit.clone()),
                true,
            ),
            palisade_jwt: palisade_stack(jwt, Some(audit.clone()), true),
            no_audit: palisade_stack(keys.authenticator(store.clone()), None, true),
            no_validation: palisade_stack(keys.authenticator(store), Some(audit), false),
            peer,
            peer_keymatch2,
            audit_handle,
            api_key,
            bearer,
        }
    }
}
