//! The stack under attack, served on loopback, and the tokens the attacks forge.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use jsonwebtoken::{EncodingKey, Header};
use palisade::audit::{AuditLayer, AuditRecord, ChannelSink};
use palisade::authn::Chain;
use palisade::authn::api_key::{ApiKeys, KeySpec, MemoryKeyStore};
use palisade::authn::bearer::{ClaimMap, ClaimPath};
use palisade::authn::jwt::{Issuer, JwtAuthenticator, Key};
use palisade::authz::{Authorizer, AuthzLayer, AuthzRequest, LivePolicy, PolicySpec, Refusal};
use palisade::client_ip::ClientIpResolver;
use palisade::quota::{KeyBy, Limit, MemoryStore, QuotaLayer, QuotaPolicy, QuotaRule};
use palisade::validate::{Operation, SchemaSet, ValidateLayer, Validated};
use palisade::{Palisade, Principal};
use serde_json::{Value, json};
use tokio::sync::mpsc::Receiver;

/// The validation layer's body limit.
pub(crate) const BODY_LIMIT: usize = 256 * 1024;
/// Requests one client address may send at once before the per-address limit answers 429.
pub(crate) const PER_IP_BURST: u64 = 40;

const ISSUER: &str = "https://idp.palisade.test/realms/acme";
const AUDIENCE: &str = "orders-api";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Object-level authorization (OWASP API1): an order id starts with its tenant's name.
struct TenantOwnsOrder;

impl Authorizer for TenantOwnsOrder {
    async fn authorize(&self, request: &AuthzRequest<'_>) -> Result<(), Refusal> {
        let Some(id) = request.params.get("id") else {
            return Ok(());
        };
        let tenant = request.principal.tenant().unwrap_or_default();
        match id.strip_prefix(tenant) {
            Some(rest) if !tenant.is_empty() && rest.starts_with('-') => Ok(()),
            _ => Err(Refusal::deny("tenant_mismatch")),
        }
    }
}

/// The running stack, its keys, its handlers' call counts and its audit events.
pub(crate) struct Stack {
    pub(crate) addr: SocketAddr,
    pub(crate) reader_key: String,
    pub(crate) admin_key: String,
    calls: Arc<Mutex<HashMap<&'static str, usize>>>,
    total: Arc<AtomicUsize>,
    before: AtomicUsize,
    events: tokio::sync::Mutex<Receiver<AuditRecord>>,
}

fn count(
    calls: &Arc<Mutex<HashMap<&'static str, usize>>>,
    total: &Arc<AtomicUsize>,
    name: &'static str,
) {
    *calls.lock().unwrap().entry(name).or_default() += 1;
    total.fetch_add(1, Ordering::SeqCst);
}

impl Stack {
    pub(crate) async fn start() -> Self {
        let keys = ApiKeys::new();
        let store = MemoryKeyStore::new();
        let reader = keys
            .generate(KeySpec::new("rita").role("reader").tenant("acme"))
            .unwrap();
        let admin = keys
            .generate(KeySpec::new("adam").role("admin").tenant("acme"))
            .unwrap();
        store.insert(reader.record);
        store.insert(admin.record);
        let jwt = JwtAuthenticator::builder()
            .issuer(
                Issuer::new(ISSUER)
                    .key(
                        Key::from_pem(&String::from_utf8(fixture("es256.pub.pem")).unwrap())
                            .unwrap()
                            .with_kid("k"),
                    )
                    .audience(AUDIENCE),
            )
            .claims(ClaimMap::keycloak().tenant(ClaimPath::parse("tenant")))
            .build()
            .unwrap();

        let policy = PolicySpec::builder()
            .role("reader", [])
            .role("admin", ["reader"])
            .allow([Method::GET], "/v1/orders/{id}", ["reader"])
            .allow([Method::POST], "/v1/orders", ["reader"])
            .allow([Method::DELETE], "/v1/orders/{id}", ["admin"])
            .allow([Method::GET], "/v1/admin/users", ["admin"])
            .build();
        let schema = json!({
            "type": "object",
            "required": ["item", "qty"],
            "additionalProperties": false,
            "properties": {
                // Nested quantifiers: exponential on a backtracking engine, linear here.
                "item": {"type": "string", "pattern": "^(a+)+b?$"},
                "qty": {"type": "integer", "minimum": 1, "maximum": 100}
            }
        });
        let validate = ValidateLayer::builder()
            .operation(
                Method::POST,
                "/v1/orders",
                Operation::new()
                    .json_body(SchemaSet::new().compile(&schema).unwrap())
                    .max_body_bytes(BODY_LIMIT),
            )
            // Reads take a page size; the id and the query go through the string guards.
            .operation(
                Method::GET,
                "/v1/orders/{id}",
                Operation::new()
                    .query(
                        &SchemaSet::new(),
                        &json!({"type": "object", "properties": {"page": {"type": "integer", "minimum": 1}}}),
                    ),
            )
            .build()
            .unwrap();
        let guard = Palisade::builder()
            .limit_clients(
                QuotaLayer::builder(MemoryStore::new())
                    .rule(QuotaRule::new(
                        KeyBy::client_ip(),
                        QuotaPolicy::new("per-ip", [Limit::per_second(1).burst(PER_IP_BURST)]),
                    ))
                    .build()
                    .unwrap(),
            )
            .authenticate(Chain::new(keys.authenticator(store), jwt))
            .limit_principals(
                QuotaLayer::builder(MemoryStore::new())
                    .rule(QuotaRule::new(
                        KeyBy::Subject,
                        QuotaPolicy::new("per-user", [Limit::per_second(1_000).burst(1_000)]),
                    ))
                    .build()
                    .unwrap(),
            )
            .authorize(
                AuthzLayer::new(LivePolicy::from_spec(&policy).unwrap())
                    .with_authorizer(TenantOwnsOrder),
            )
            .validate(validate)
            .build()
            .unwrap();
        let (sink, events) = ChannelSink::new(1_024);
        let (audit, _handle) = AuditLayer::builder(sink)
            .client_ip(ClientIpResolver::new())
            .build()
            .unwrap();

        let calls: Arc<Mutex<HashMap<&'static str, usize>>> = Arc::default();
        let total = Arc::new(AtomicUsize::new(0));
        let counter = |name: &'static str| {
            let (calls, total) = (calls.clone(), total.clone());
            move || count(&calls, &total, name)
        };
        let (get_order, delete_order, create_order, admin_users) = (
            counter("get_order"),
            counter("delete_order"),
            counter("create_order"),
            counter("admin"),
        );
        let app = Router::new()
            .route(
                "/v1/orders/{id}",
                get(move |Path(id): Path<String>, p: Principal| async move {
                    get_order();
                    axum::Json(json!({"id": id, "for": p.subject()}))
                })
                .delete(move || async move {
                    delete_order();
                    "deleted"
                }),
            )
            .route(
                "/v1/orders",
                axum::routing::post(move |Validated(order): Validated<Value>| async move {
                    create_order();
                    (StatusCode::CREATED, axum::Json(order))
                }),
            )
            .route(
                "/v1/admin/users",
                get(move || async move {
                    admin_users();
                    "users"
                }),
            )
            .layer(guard)
            .layer(audit);
        let addr = crate::support::serve(app).await;
        Self {
            addr,
            reader_key: reader.plaintext.expose_secret().to_owned(),
            admin_key: admin.plaintext.expose_secret().to_owned(),
            calls,
            total,
            before: AtomicUsize::new(0),
            events: tokio::sync::Mutex::new(events),
        }
    }

    /// How many times handler `name` ran.
    pub(crate) fn calls(&self, name: &str) -> usize {
        self.calls.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    /// Marks the handler calls so far (before a request is sent).
    pub(crate) fn mark(&self) {
        self.before
            .store(self.total.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Asserts that no handler ran since the last [`mark`](Self::mark).
    pub(crate) fn assert_no_handler_ran(&self, case: &str) {
        assert_eq!(
            self.total.load(Ordering::SeqCst),
            self.before.load(Ordering::SeqCst),
            "{case}: a handler ran"
        );
    }

    /// The one audit event of the last request, as JSON; fails if there is none or more.
    pub(crate) async fn one_event(&self) -> Value {
        let mut events = self.events.lock().await;
        let record = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("an audit event within 5 s")
            .expect("the audit queue is open");
        // The queue drains every few milliseconds: a second event for the same request would
        // arrive in the same batch or the next.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            events.try_recv().is_err(),
            "more than one audit event for one request"
        );
        serde_json::from_str(record.json()).unwrap()
    }

    /// Every secret the clients of this stack hold.
    pub(crate) fn secrets(&self) -> Vec<String> {
        vec![
            self.reader_key.clone(),
            self.admin_key.clone(),
            // The secret parts alone, too (after the prefix and id).
            self.reader_key[21..].to_owned(),
            self.admin_key[21..].to_owned(),
            Tokens::new().valid(),
        ]
    }
}

/// Bearer tokens, genuine and forged.
pub(crate) struct Tokens {
    key: EncodingKey,
    other: EncodingKey,
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "jules", "tenant": "acme",
        "exp": 4_102_444_800u64, "iat": 1_767_225_600u64,
        "realm_access": {"roles": ["reader"]},
    })
}

impl Tokens {
    pub(crate) fn new() -> Self {
        Self {
            key: EncodingKey::from_ec_der(&fixture("es256.key.der")),
            other: EncodingKey::from_ec_der(&fixture("es256-next.key.der")),
        }
    }

    fn sign(&self, header: &Header, claims: &Value, key: &EncodingKey) -> String {
        crate::support::encode_jwt(header, claims, key).unwrap()
    }

    fn es256(kid: &str) -> Header {
        let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some(kid.into());
        h
    }

    pub(crate) fn valid(&self) -> String {
        self.sign(&Self::es256("k"), &claims(), &self.key)
    }

    pub(crate) fn tampered_signature(&self) -> String {
        let token = self.valid();
        let (rest, sig) = token.rsplit_once('.').unwrap();
        let mut sig = sig.as_bytes().to_vec();
        let i = sig.len() / 2;
        sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
        format!("{rest}.{}", String::from_utf8(sig).unwrap())
    }

    pub(crate) fn tampered_claims(&self) -> String {
        let token = self.valid();
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut c = claims();
        c["realm_access"]["roles"] = json!(["admin"]);
        let payload = URL_SAFE_NO_PAD.encode(c.to_string());
        parts[1] = &payload;
        parts.join(".")
    }

    pub(crate) fn alg_none(&self) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"k"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
        format!("{header}.{payload}.")
    }

    pub(crate) fn hs256_with_public_key(&self) -> String {
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("k".into());
        self.sign(
            &h,
            &claims(),
            &EncodingKey::from_secret(&fixture("es256.pub.pem")).unwrap(),
        )
    }

    pub(crate) fn expired(&self) -> String {
        let mut c = claims();
        c["exp"] = json!(1_600_000_000u64);
        c["iat"] = json!(1_590_000_000u64);
        self.sign(&Self::es256("k"), &c, &self.key)
    }

    pub(crate) fn wrong_audience(&self) -> String {
        let mut c = claims();
        c["aud"] = json!("billing-api");
        self.sign(&Self::es256("k"), &c, &self.key)
    }

    pub(crate) fn wrong_issuer(&self) -> String {
        let mut c = claims();
        c["iss"] = json!("https://evil.example/realms/acme");
        self.sign(&Self::es256("k"), &c, &self.key)
    }

    pub(crate) fn unknown_key(&self) -> String {
        self.sign(&Self::es256("k"), &claims(), &self.other)
    }

    pub(crate) fn with_jku(&self) -> String {
        let mut h = Self::es256("attacker");
        h.jku = Some("https://attacker.example/jwks.json".into());
        self.sign(&h, &claims(), &self.other)
    }
}
